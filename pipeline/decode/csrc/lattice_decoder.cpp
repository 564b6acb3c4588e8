// Lattice decoding of CTC log-probabilities against a WFST (TLG), and the whole
// (LM weight, word penalty) sweep read from one lattice per utterance.
//
// The search is token passing with the pruning of Kaldi's LatticeFasterDecoder: per frame a
// beam around the best token, at most max_active and at least min_active tokens (an adaptive
// beam), a lattice of forward links from each token to the tokens it reached, pruned every
// prune_interval frames and at the end to the tokens and links within lattice_beam of the
// best path. Every link keeps its graph cost, its acoustic cost (-log-prob, unscaled) and its
// word apart, so any objective graph + p * words + acoustic / w can be applied afterwards: one
// lattice, decoded once at a reference weight, gives the best path of every setting of a grid
// (as Kaldi's lattice-scale | lattice-add-penalty | lattice-best-path do) in one pass over it.
//
// The graph is read from the OpenFst binary format of a StdVectorFst (as kaldifst writes
// TLG.fst): input label k > 0 scores log-prob column k - 1, input 0 is epsilon.

#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace py = pybind11;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int32_t kNone = -1;

// ---------------------------------------------------------------------------------- the graph
struct Arc {
  int32_t ilabel, olabel;
  float weight;
  int32_t next;
};

struct Graph {
  int32_t start = kNone;
  int64_t num_arcs = 0;
  int32_t max_ilabel = 0;
  // arcs of state s: [begin[s], eps_end[s]) read no input, [eps_end[s], begin[s + 1]) do;
  // one array of whole arcs, so a state's arcs are read as one stream
  std::vector<int64_t> begin, eps_end;
  std::vector<Arc> arcs;
  std::vector<float> final_cost;  // +inf: not final
  int32_t num_states() const { return static_cast<int32_t>(final_cost.size()); }
};

template <typename T>
T read_pod(std::istream& in, const std::string& path) {
  T v;
  in.read(reinterpret_cast<char*>(&v), sizeof(T));
  if (!in) throw std::runtime_error(path + ": truncated FST file");
  return v;
}

std::string read_string(std::istream& in, const std::string& path) {
  const int32_t n = read_pod<int32_t>(in, path);
  if (n < 0 || n > 1024) throw std::runtime_error(path + ": not an OpenFst binary file");
  std::string s(static_cast<size_t>(n), '\0');
  in.read(&s[0], n);
  if (!in) throw std::runtime_error(path + ": truncated FST file");
  return s;
}

// OpenFst's binary VectorFst<StdArc>: a header, then per state its final weight, its arc
// count and the arcs (ilabel, olabel, weight, nextstate).
std::shared_ptr<Graph> read_fst(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  if (read_pod<int32_t>(in, path) != 2125659606)
    throw std::runtime_error(path + ": not an OpenFst binary file (bad magic number)");
  const std::string type = read_string(in, path), arc_type = read_string(in, path);
  if (type != "vector" || arc_type != "standard")
    throw std::runtime_error(path + ": a " + type + " FST of " + arc_type +
                             " arcs; expected a vector FST of standard arcs");
  read_pod<int32_t>(in, path);  // version
  const int32_t flags = read_pod<int32_t>(in, path);
  if (flags & 3) throw std::runtime_error(path + ": FSTs with symbol tables are not read here");
  read_pod<uint64_t>(in, path);  // properties
  const int64_t start = read_pod<int64_t>(in, path);
  const int64_t num_states = read_pod<int64_t>(in, path);
  read_pod<int64_t>(in, path);  // arcs
  if (num_states <= 0 || num_states > (int64_t(1) << 31) - 2)
    throw std::runtime_error(path + ": no states, or an unsupported state count");
  auto g = std::make_shared<Graph>();
  g->start = static_cast<int32_t>(start);
  g->final_cost.resize(num_states);
  g->begin.assign(num_states + 1, 0);
  g->eps_end.assign(num_states, 0);
  std::vector<Arc> arcs, eps;
  bool any_final = false;
  for (int64_t s = 0; s < num_states; ++s) {
    const float fin = read_pod<float>(in, path);
    g->final_cost[s] = fin;
    any_final = any_final || std::isfinite(fin);
    const int64_t n = read_pod<int64_t>(in, path);
    if (n < 0) throw std::runtime_error(path + ": negative arc count");
    eps.clear();
    arcs.clear();
    for (int64_t a = 0; a < n; ++a) {
      Arc arc;
      arc.ilabel = read_pod<int32_t>(in, path);
      arc.olabel = read_pod<int32_t>(in, path);
      arc.weight = read_pod<float>(in, path);
      arc.next = read_pod<int32_t>(in, path);
      if (arc.next < 0 || arc.next >= num_states || arc.ilabel < 0)
        throw std::runtime_error(path + ": arc to a state that does not exist");
      (arc.ilabel == 0 ? eps : arcs).push_back(arc);
    }
    g->begin[s] = static_cast<int64_t>(g->arcs.size());
    for (const auto* list : {&eps, &arcs}) {
      for (const Arc& arc : *list) {
        g->arcs.push_back(arc);
        g->max_ilabel = std::max(g->max_ilabel, arc.ilabel);
      }
      if (list == &eps) g->eps_end[s] = static_cast<int64_t>(g->arcs.size());
    }
  }
  g->begin[num_states] = static_cast<int64_t>(g->arcs.size());
  g->num_arcs = g->begin[num_states];
  if (start < 0 || start >= num_states) throw std::runtime_error(path + ": no start state");
  if (!any_final) throw std::runtime_error(path + ": the graph has no final state");
  return g;
}

// ---------------------------------------------------------------------------------- the search
struct Options {
  double beam = 17.0, lattice_beam = 8.0;
  int32_t max_active = 7000, min_active = 200, prune_interval = 50;
  double acoustic_scale = 1.0;  // the search's objective: graph + acoustic_scale * acoustic
  double word_penalty = 0.0;    // ... + word_penalty * words (links keep the graph cost alone)
};

struct Link {
  int32_t src, dst, olabel, next;  // next: the source token's next link
  float graph, acoustic;           // graph cost; acoustic cost unscaled (-log-prob, 0 for eps)
  bool alive;
};

struct Token {
  double cost;   // best search cost from the start
  double extra;  // how much worse than the best path the best path through it is
  int32_t state, frame, links;
  bool alive;
};

struct Stats {
  // tokens and links made; the most tokens of one frame, and the most expanded (within the
  // cutoff: what max_active bounds)
  int64_t tokens = 0, links = 0, max_frame_tokens = 0, max_expanded = 0;
};

class Search {
 public:
  Search(const Graph& g, const Options& o, const float* loglikes, int32_t T, int32_t K)
      : g_(g), o_(o), ll_(loglikes), T_(T), K_(K) {
    slot_.assign(g.num_states(), Slot{-1, kNone});
  }

  void run() {
    frame_begin_.push_back(0);
    new_frame(0);
    find_or_add(g_.start, 0.0);
    closure(0, o_.beam);
    for (int32_t t = 0; t < T_; ++t) {
      const double cutoff = emit(t);
      closure(t + 1, cutoff);
      if ((t + 1) % o_.prune_interval == 0) prune(t + 1, false);
    }
    frame_begin_.push_back(static_cast<int32_t>(toks_.size()));
    prune(T_, true);
  }

  // the best path of every setting (lm weight w > 0, word penalty p) over the lattice:
  // minimises graph + p * words + acoustic / w
  py::list sweep(const std::vector<std::pair<double, double>>& settings) const;

  Stats stats;
  bool reached_final = false;

 private:
  double ac(int32_t t, int32_t ilabel) const { return -static_cast<double>(ll_[int64_t(t) * K_ + ilabel - 1]); }

  void new_frame(int32_t frame) {
    cur_frame_ = frame;
    if (frame > 0) frame_begin_.push_back(static_cast<int32_t>(toks_.size()));
  }

  // the token of `state` in the current frame, created when missing, its cost lowered to
  // `cost` when better; (index, whether its cost changed)
  std::pair<int32_t, bool> find_or_add(int32_t state, double cost) {
    Slot& slot = slot_[state];
    if (slot.frame == cur_frame_) {
      Token& tok = toks_[slot.token];
      if (cost < tok.cost) {
        tok.cost = cost;
        return {slot.token, true};
      }
      return {slot.token, false};
    }
    slot = Slot{cur_frame_, static_cast<int32_t>(toks_.size())};
    toks_.push_back(Token{cost, 0.0, state, cur_frame_, kNone, true});
    ++stats.tokens;
    return {slot.token, true};
  }

  void add_link(int32_t src, int32_t dst, int32_t olabel, float graph, float acoustic) {
    links_.push_back(Link{src, dst, olabel, toks_[src].links, graph, acoustic, true});
    toks_[src].links = static_cast<int32_t>(links_.size()) - 1;
    ++stats.links;
  }

  // Kaldi's GetCutoff: the beam, narrowed to keep at most max_active tokens and widened to
  // keep at least min_active; sets the adaptive beam
  double cutoff(int32_t b, int32_t e, double* adaptive, int32_t* best_tok) {
    double best = kInf;
    costs_.clear();
    for (int32_t i = b; i < e; ++i) {
      if (!toks_[i].alive) continue;
      costs_.push_back(toks_[i].cost);
      if (toks_[i].cost < best) {
        best = toks_[i].cost;
        *best_tok = i;
      }
    }
    const double beam_cutoff = best + o_.beam, delta = 0.5;
    const int64_t n = static_cast<int64_t>(costs_.size());
    stats.max_frame_tokens = std::max(stats.max_frame_tokens, n);
    if (o_.max_active > 0 && n > o_.max_active) {  // the max_active-th best token, inclusive
      std::nth_element(costs_.begin(), costs_.begin() + (o_.max_active - 1), costs_.end());
      const double max_cut = costs_[o_.max_active - 1];
      if (max_cut < beam_cutoff) {
        *adaptive = max_cut - best + delta;
        return max_cut;
      }
    }
    if (o_.min_active > 0 && n > o_.min_active) {
      const int64_t m = std::min<int64_t>(o_.min_active - 1, n - 1);
      std::nth_element(costs_.begin(), costs_.begin() + m, costs_.end());
      const double min_cut = costs_[m];
      if (min_cut > beam_cutoff) {
        *adaptive = min_cut - best + delta;
        return min_cut;
      }
    }
    *adaptive = o_.beam;
    return beam_cutoff;
  }

  // frame t -> t + 1 over the arcs that read a frame; the cutoff for frame t + 1
  double emit(int32_t t) {
    const int32_t b = frame_begin_[t], e = static_cast<int32_t>(toks_.size());
    double adaptive = o_.beam;
    int32_t best = kNone;
    const double cut = cutoff(b, e, &adaptive, &best);
    double next_cut = kInf;
    if (best != kNone) {  // a first estimate of the next frame's cutoff from the best token
      const Token& tok = toks_[best];
      for (int64_t a = g_.eps_end[tok.state]; a < g_.begin[tok.state + 1]; ++a) {
        const Arc& arc = g_.arcs[a];
        const double c = tok.cost + arc_cost(arc) + o_.acoustic_scale * ac(t, arc.ilabel);
        next_cut = std::min(next_cut, c + adaptive);
      }
    }
    new_frame(t + 1);
    if (must_links_.size() < size_t(t) + 2) must_links_.resize(size_t(t) + 2, 1);
    must_links_[t] = 1;
    int64_t expanded = 0;
    for (int32_t i = b; i < e; ++i) {
      if (!toks_[i].alive || toks_[i].cost > cut) continue;
      ++expanded;
      const int32_t s = toks_[i].state;
      const double cost = toks_[i].cost;
      for (int64_t a = g_.eps_end[s]; a < g_.begin[s + 1]; ++a) {
        const Arc& arc = g_.arcs[a];
        const double acoustic = ac(t, arc.ilabel);
        const double c = cost + arc_cost(arc) + o_.acoustic_scale * acoustic;
        if (c >= next_cut) continue;
        if (c + adaptive < next_cut) next_cut = c + adaptive;
        const int32_t dst = find_or_add(arc.next, c).first;
        add_link(i, dst, arc.olabel, arc.weight, static_cast<float>(acoustic));
      }
    }
    stats.max_expanded = std::max(stats.max_expanded, expanded);
    return next_cut;
  }

  // the epsilon closure of the current frame (frame `t`), within `cut`
  void closure(int32_t t, double cut) {
    link_begin_.push_back(static_cast<int64_t>(links_.size()));  // links leaving frame t
    const int32_t b = frame_begin_[t];
    queue_.clear();
    for (int32_t i = b; i < static_cast<int32_t>(toks_.size()); ++i) queue_.push_back(i);
    size_t head = 0;
    while (head < queue_.size()) {
      const int32_t i = queue_[head++];
      if (toks_[i].cost > cut) continue;
      // its links so far were made from an older cost: drop them (they all stay in frame t)
      for (int32_t l = toks_[i].links; l != kNone; l = links_[l].next) links_[l].alive = false;
      toks_[i].links = kNone;
      const int32_t s = toks_[i].state;
      for (int64_t a = g_.begin[s]; a < g_.eps_end[s]; ++a) {
        const Arc& arc = g_.arcs[a];
        const double c = toks_[i].cost + arc_cost(arc);
        if (c >= cut) continue;
        const auto found = find_or_add(arc.next, c);
        add_link(i, found.first, arc.olabel, arc.weight, 0.0f);
        if (found.second) queue_.push_back(found.first);
      }
    }
  }

  double arc_cost(const Arc& a) const {
    return a.weight + (a.olabel != 0 ? o_.word_penalty : 0.0);
  }
  double link_cost(const Link& l) const {
    return l.graph + (l.olabel != 0 ? o_.word_penalty : 0.0) + o_.acoustic_scale * l.acoustic;
  }

  int32_t frame_end(int32_t f) const {
    return f + 1 < static_cast<int32_t>(frame_begin_.size()) ? frame_begin_[f + 1]
                                                            : static_cast<int32_t>(toks_.size());
  }

  // Kaldi's PruneForwardLinks: recompute the extra costs of frame f's tokens from their links
  // (until stable: eps links stay within the frame), dropping links more than lattice_beam
  // worse than the best path. At the final frame the final costs count (`final_extra` of a
  // token before its links). Returns whether an extra cost moved by more than `delta`.
  bool prune_links(int32_t f, double delta, bool final, double best_final) {
    const int32_t b = frame_begin_[f], e = frame_end(f);
    // the links leaving frame f are one run of links_ (its eps closure, then its emitting
    // step, made in that order): read them in memory order, not token by token
    const int64_t lb = link_begin_[f];
    const int64_t le = f + 1 < static_cast<int32_t>(link_begin_.size())
                           ? link_begin_[f + 1]
                           : static_cast<int64_t>(links_.size());
    extra_.resize(e - b);
    bool any = false;
    for (int iter = 0; iter < 1000; ++iter) {
      for (int32_t i = b; i < e; ++i) {
        const Token& tok = toks_[i];
        const double fin = final ? (reached_final ? g_.final_cost[tok.state] : 0.0) : kInf;
        extra_[i - b] = final ? tok.cost + fin - best_final : kInf;
      }
      bool same_frame = false;
      for (int64_t l = lb; l < le; ++l) {
        Link& link = links_[l];
        if (!link.alive) continue;
        const Token& src = toks_[link.src];
        const Token& dst = toks_[link.dst];
        if (!src.alive) {
          link.alive = false;
          continue;
        }
        const double c = dst.alive ? dst.extra + (src.cost + link_cost(link) - dst.cost) : kInf;
        if (!(c <= o_.lattice_beam)) {
          link.alive = false;
          continue;
        }
        same_frame = same_frame || dst.frame == f;
        double& x = extra_[link.src - b];
        if (c < x) x = c;
      }
      bool changed = false;
      for (int32_t i = b; i < e; ++i) {
        Token& tok = toks_[i];
        if (!tok.alive) continue;
        double extra = extra_[i - b];
        if (!(extra <= o_.lattice_beam)) extra = kInf;
        const bool both_inf = std::isinf(extra) && std::isinf(tok.extra);
        if (!both_inf && !(std::fabs(extra - tok.extra) <= delta)) changed = true;
        tok.extra = extra;
      }
      any = any || changed;
      if (!changed || !same_frame) break;
    }
    return any;
  }

  // Kaldi's PruneTokensForFrame: tokens no path within the lattice beam goes through
  void prune_tokens(int32_t f) {
    for (int32_t i = frame_begin_[f], e = frame_end(f); i < e; ++i) {
      Token& tok = toks_[i];
      if (tok.alive && std::isinf(tok.extra)) {
        tok.alive = false;
        for (int32_t l = tok.links; l != kNone; l = links_[l].next) links_[l].alive = false;
      }
    }
  }

  // Kaldi's PruneActiveTokens from the newest frame `newest` back (its own tokens keep extra
  // cost 0), stopping where nothing changes; at the end (`final`), from the final costs.
  void prune(int32_t newest, bool final) {
    must_links_.resize(newest + 1, 1);
    must_tokens_.resize(newest + 1, 0);
    double delta = 0.1 * o_.lattice_beam;
    if (final) {
      double best = kInf;
      for (int32_t i = frame_begin_[newest]; i < frame_end(newest); ++i)
        if (toks_[i].alive && std::isfinite(g_.final_cost[toks_[i].state]))
          reached_final = true;
      for (int32_t i = frame_begin_[newest]; i < frame_end(newest); ++i) {
        if (!toks_[i].alive) continue;
        const double fin = reached_final ? g_.final_cost[toks_[i].state] : 0.0;
        best = std::min(best, toks_[i].cost + fin);
      }
      prune_links(newest, 0.0, true, best);
      prune_tokens(newest);
      delta = 0.0;
      if (newest > 0) must_links_[newest - 1] = 1;
    }
    for (int32_t f = newest - 1; f >= 0; --f) {
      if (must_links_[f]) {
        if (prune_links(f, delta, false, 0.0) && f > 0) must_links_[f - 1] = 1;
        must_links_[f] = 0;
        must_tokens_[f] = 1;
      }
      if (f + 1 < newest && must_tokens_[f + 1]) {
        prune_tokens(f + 1);
        must_tokens_[f + 1] = 0;
      }
    }
    if (final && must_tokens_[0]) prune_tokens(0);
  }


  const Graph& g_;
  const Options o_;
  const float* ll_;
  const int32_t T_, K_;
  int32_t cur_frame_ = 0;
  std::vector<char> must_links_, must_tokens_;
  std::vector<Token> toks_;
  std::vector<Link> links_;
  struct Slot {
    int32_t frame, token;  // the token of a state in `frame` (stale for other frames)
  };
  std::vector<Slot> slot_;
  std::vector<int32_t> frame_begin_, queue_;
  std::vector<double> costs_, extra_;
  std::vector<int64_t> link_begin_;
};

py::list Search::sweep(const std::vector<std::pair<double, double>>& settings) const {
  const size_t S = settings.size(), N = toks_.size();
  // tokens in topological order: by frame, and within a frame along its eps links
  std::vector<int32_t> order, indeg(N, 0);
  order.reserve(N);
  std::vector<int32_t> ready;
  for (size_t f = 0; f + 1 < frame_begin_.size(); ++f) {
    const int32_t b = frame_begin_[f], e = frame_begin_[f + 1];
    for (int32_t i = b; i < e; ++i) {
      if (!toks_[i].alive) continue;
      for (int32_t l = toks_[i].links; l != kNone; l = links_[l].next)
        if (links_[l].alive && toks_[links_[l].dst].frame == toks_[i].frame) ++indeg[links_[l].dst];
    }
    ready.clear();
    for (int32_t i = b; i < e; ++i)
      if (toks_[i].alive && indeg[i] == 0) ready.push_back(i);
    size_t head = 0, placed = 0;
    std::vector<char> done(e - b, 0);
    while (true) {
      while (head < ready.size()) {
        const int32_t i = ready[head++];
        order.push_back(i);
        done[i - b] = 1;
        ++placed;
        for (int32_t l = toks_[i].links; l != kNone; l = links_[l].next) {
          const Link& link = links_[l];
          if (link.alive && toks_[link.dst].frame == toks_[i].frame && --indeg[link.dst] == 0)
            ready.push_back(link.dst);
        }
      }
      // an eps cycle (not expected in a TLG): take the oldest token left, as created
      int32_t left = kNone;
      for (int32_t i = b; i < e && left == kNone; ++i)
        if (toks_[i].alive && !done[i - b]) left = i;
      if (left == kNone) break;
      indeg[left] = 0;
      ready.push_back(left);
    }
    (void)placed;
  }
  std::vector<double> cost(N * S, kInf);
  std::vector<int32_t> back(N * S, kNone);
  for (size_t s = 0; s < S; ++s) cost[0 * S + s] = 0.0;  // token 0: the start
  std::vector<double> inv_w(S), pen(S);
  for (size_t s = 0; s < S; ++s) {
    inv_w[s] = 1.0 / settings[s].first;
    pen[s] = settings[s].second;
  }
  for (const int32_t i : order) {
    for (int32_t l = toks_[i].links; l != kNone; l = links_[l].next) {
      const Link& link = links_[l];
      if (!link.alive || !toks_[link.dst].alive) continue;
      const double* ci = &cost[size_t(i) * S];
      double* cd = &cost[size_t(link.dst) * S];
      int32_t* bd = &back[size_t(link.dst) * S];
      const double word = link.olabel != 0 ? 1.0 : 0.0;
      for (size_t s = 0; s < S; ++s) {
        const double c = ci[s] + link.graph + pen[s] * word + inv_w[s] * link.acoustic;
        if (c < cd[s]) {
          cd[s] = c;
          bd[s] = l;
        }
      }
    }
  }
  py::list out;
  const int32_t lb = frame_begin_[T_], le = frame_begin_[T_ + 1];
  for (size_t s = 0; s < S; ++s) {
    double best = kInf;
    int32_t best_tok = kNone;
    for (int32_t i = lb; i < le; ++i) {
      if (!toks_[i].alive) continue;
      const double fin = reached_final ? g_.final_cost[toks_[i].state] : 0.0;
      const double c = cost[size_t(i) * S + s] + fin;
      if (c < best) {
        best = c;
        best_tok = i;
      }
    }
    std::vector<int32_t> words, frames;
    double graph = 0.0, acoustic = 0.0;
    if (best_tok != kNone) {
      graph = reached_final ? g_.final_cost[toks_[best_tok].state] : 0.0;
      for (int32_t i = best_tok; back[size_t(i) * S + s] != kNone;) {
        const Link& link = links_[back[size_t(i) * S + s]];
        graph += link.graph;
        acoustic += link.acoustic;
        if (link.olabel != 0) {
          words.push_back(link.olabel);
          frames.push_back(toks_[link.src].frame);
          graph += pen[s];
        }
        i = link.src;
      }
      std::reverse(words.begin(), words.end());
      std::reverse(frames.begin(), frames.end());
    } else {
      graph = acoustic = kInf;
    }
    out.append(py::make_tuple(words, graph, acoustic, frames));
  }
  return out;
}

py::tuple decode(std::shared_ptr<Graph> graph, py::array_t<float, py::array::c_style> loglikes,
                 std::vector<std::pair<double, double>> settings, double beam, double lattice_beam,
                 int32_t max_active, int32_t min_active, double acoustic_scale,
                 int32_t prune_interval, double word_penalty) {
  if (loglikes.ndim() != 2) throw std::invalid_argument("log-probs must be a (T, K) matrix");
  const int32_t T = static_cast<int32_t>(loglikes.shape(0));
  const int32_t K = static_cast<int32_t>(loglikes.shape(1));
  if (T == 0) throw std::invalid_argument("log-probs have no frames");
  if (graph->max_ilabel > K)
    throw std::invalid_argument("the graph reads token " + std::to_string(graph->max_ilabel) +
                                " but the log-probs have " + std::to_string(K) + " columns");
  for (const auto& s : settings)
    if (!(s.first > 0)) throw std::invalid_argument("LM weights must be > 0");
  if (!(acoustic_scale > 0) || !(beam > 0) || !(lattice_beam >= 0) || prune_interval < 1)
    throw std::invalid_argument("bad search options");
  Options o;
  o.beam = beam;
  o.lattice_beam = lattice_beam;
  o.max_active = max_active;
  o.min_active = min_active;
  o.acoustic_scale = acoustic_scale;
  o.word_penalty = word_penalty;
  o.prune_interval = prune_interval;
  const float* data = loglikes.data();
  std::unique_ptr<Search> search;
  {
    py::gil_scoped_release release;
    search = std::make_unique<Search>(*graph, o, data, T, K);
    search->run();
  }
  py::list hyps = search->sweep(settings);
  py::dict stats;
  stats["tokens"] = search->stats.tokens;
  stats["links"] = search->stats.links;
  stats["max_frame_tokens"] = search->stats.max_frame_tokens;
  stats["max_expanded"] = search->stats.max_expanded;
  return py::make_tuple(hyps, search->reached_final, stats);
}

}  // namespace

void register_lattice_decoder(py::module& m) {
  py::class_<Graph, std::shared_ptr<Graph>>(m, "DecodingGraph")
      .def(py::init(&read_fst), py::arg("path"), "Read a StdVectorFst (OpenFst binary) file.")
      .def_property_readonly("num_states", &Graph::num_states)
      .def_readonly("num_arcs", &Graph::num_arcs)
      .def_readonly("start", &Graph::start)
      .def_readonly("max_ilabel", &Graph::max_ilabel)
      .def("arcs", [](const Graph& g) {
        // (state, ilabel, olabel, weight, next) of every arc, and the final costs (tests)
        std::vector<std::tuple<int32_t, int32_t, int32_t, float, int32_t>> out;
        for (int32_t s = 0; s < g.num_states(); ++s)
          for (int64_t a = g.begin[s]; a < g.begin[s + 1]; ++a)
            out.emplace_back(s, g.arcs[a].ilabel, g.arcs[a].olabel, g.arcs[a].weight,
                             g.arcs[a].next);
        return py::make_tuple(out, g.final_cost);
      });
  m.def("lattice_decode", &decode, py::arg("graph"), py::arg("loglikes"), py::arg("settings"),
        py::arg("beam"), py::arg("lattice_beam"), py::arg("max_active"), py::arg("min_active"),
        py::arg("acoustic_scale"), py::arg("prune_interval") = 50,
        py::arg("word_penalty") = 0.0,
        "Decode one utterance into a pruned lattice and read the best path of every (LM "
        "weight, word penalty) setting from it: ([(word ids, graph cost, acoustic cost, word "
        "start frames)], reached a final state, stats).");
}
