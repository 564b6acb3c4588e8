// Fused forward-backward over the CTC-CRF den graph (CPU; CUDA in den_fb_cuda.cu).
//
// Same algorithm as the pure-torch reference in pipeline/loss/ctc_crf.py (DenLogZ), but one
// pass over the arcs per frame and per utterance, with the rescaling folded into that pass:
//
//   alpha_t(d) = y_{t-1}(label(d)) * sum_{arcs s->d} w(a) alpha_{t-1}(s),  renormalised to 1
//   beta_{t-1}(s) = sum_{arcs s->d} w(a) y_{t-1}(label(d)) beta_t(d),      renormalised to 1
//   occupancy at frame t-1 of label k = sum_{d: label(d)=k} alpha_t(d) beta_t(d) / (its sum)
//
// with y_t(k) = exp(log y_t(k) - max_k log y_t(k)) and log Z accumulated in double from the
// per-frame scales. Every arc entering a state reads the state's label (the loss splits graphs
// that are not of that form). Buffers are (S, B): each arc does one multiply-add over the
// utterances still running (contiguous, vectorised); utterances are taken longest first, so
// the batch shrinks as they end; the states of a frame are split over threads
// (at::parallel_for). Arrays:
//   in_ptr/in_src/in_w:   arcs grouped by destination (CSR over destinations), for alpha
//   out_ptr/out_dst/out_w: arcs grouped by source (CSR over sources), for beta
// w and final are probabilities (exp of the log weights), in the dtype of log_probs.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <vector>

namespace {

// Utterances are processed in order of decreasing length (perm), so the ones still running at
// frame t are the first active(t) columns of every (S, B) buffer: the batch shrinks as
// utterances end and the inner loops run over contiguous columns (vectorised).
constexpr int64_t W = 8;  // column granularity of the arc loops (see arc_sums)

// Row stride of the (S, B) buffers: B rounded up to the register block arc_sums uses for it.
inline int64_t padded_batch(int64_t B) {
  return B <= 8 ? 8 : B <= 16 ? 16 : B <= 32 ? 32 : (B + 63) / 64 * 64;
}

// Flush denormals to zero on this thread while in scope: the rescaled alphas and betas of
// unlikely states fall below 1e-38 all the time, and denormal arithmetic is many times slower
// (such values are below the float32 resolution of every sum they enter).
struct FlushDenormals {
#if defined(__SSE__)
  unsigned int saved;
  FlushDenormals() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040); }  // FTZ | DAZ
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};  // columns per register block of the arc loops

struct Batch {
  int64_t B, T, K, S, Bp;  // Bp: padded_batch(B), the row stride of every (S, B) buffer
  std::vector<int64_t> perm, len;  // len[j] = T of the utterance in column j (decreasing)
  int64_t active(int64_t t) const {  // how many columns have len >= t (a prefix: lengths decrease)
    int64_t n = 0;
    while (n < B && len[n] >= t) ++n;
    return n;
  }
};

Batch make_batch(const torch::Tensor& log_probs, const torch::Tensor& lengths, int64_t S) {
  const int64_t B = log_probs.size(0);
  Batch bt{B, log_probs.size(1), log_probs.size(2), S, padded_batch(B), {}, {}};
  auto len = lengths.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t* l = len.data_ptr<int64_t>();
  for (int64_t b = 0; b < bt.B; ++b)
    TORCH_CHECK(l[b] >= 0 && l[b] <= bt.T, "den_fb: length out of range");
  bt.perm.resize(bt.B);
  for (int64_t b = 0; b < bt.B; ++b) bt.perm[b] = b;
  std::stable_sort(bt.perm.begin(), bt.perm.end(),
                   [&](int64_t x, int64_t y) { return l[x] > l[y]; });
  for (int64_t j = 0; j < bt.B; ++j) bt.len.push_back(l[bt.perm[j]]);
  return bt;
}

// y[k * Bp + j] = exp(lp - max_k lp) of frame t for columns j < n, 0 for the other columns
// (so finished and padding columns become exact zeros); fills ymax.
template <typename T>
void frame_probs(const T* lp, const Batch& bt, int64_t t, int64_t n, T* y, double* ymax) {
  std::fill(y, y + bt.K * bt.Bp, T(0));
  for (int64_t j = 0; j < n; ++j) {
    const T* row = lp + (bt.perm[j] * bt.T + t) * bt.K;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t k = 0; k < bt.K; ++k) m = row[k] > m ? row[k] : m;
    if (!std::isfinite(m)) m = 0;  // as the reference: all -inf (or NaN) gives no path
    for (int64_t k = 0; k < bt.K; ++k) y[k * bt.Bp + j] = std::exp(row[k] - m);
    if (ymax) ymax[j] = static_cast<double>(m);
  }
}

// Scale columns j < n of an (S, B) buffer to sum 1; returns the sums (0: left as is).
// States split into `parts` ranges of about equal arc counts (one per thread).
std::vector<int64_t> split_by_arcs(const int32_t* ptr, int64_t S) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), S / 64 + 1));
  std::vector<int64_t> bounds{0};
  int64_t s = 0;
  for (int64_t p = 1; p < parts; ++p) {
    const int64_t target = static_cast<int64_t>(ptr[S]) * p / parts;
    while (s < S && ptr[s] < target) ++s;
    bounds.push_back(s);
  }
  bounds.push_back(S);
  return bounds;
}

// 32-byte vectors of T (GCC/Clang vector extension): the arc loops below are written over
// them explicitly, because compilers otherwise vectorise across arcs (a gather per column).
template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(32)));
  static constexpr int64_t L = 32 / sizeof(T);
};

// row[j] (j < n, in blocks of WB) = sum over the arcs a in ptr[d]..ptr[d+1] of
// w(a) * in[idx(a), j]; the WB accumulators stay in registers across the arcs.
template <typename T, int64_t WB>
inline void arc_sums_w(const int32_t* ptr, const int32_t* idx, const T* w, const T* in, T* row,
                       int64_t d, int64_t n, int64_t Bp) {
  using V = typename Vec<T>::type;
  constexpr int64_t L = Vec<T>::L, NV = WB / L;
  const int32_t a0 = ptr[d], a1 = ptr[d + 1];
  for (int64_t j0 = 0; j0 < n; j0 += WB) {
    V acc[NV];
    for (int64_t v = 0; v < NV; ++v) acc[v] = V{} ;
    for (int32_t a = a0; a < a1; ++a) {
      const V wa = V{} + w[a];
      const T* src = in + static_cast<int64_t>(idx[a]) * Bp + j0;
      for (int64_t v = 0; v < NV; ++v) {
        V x;
        std::memcpy(&x, src + v * L, sizeof(V));
        acc[v] += wa * x;
      }
    }
    std::memcpy(row + j0, acc, sizeof(acc));
  }
}

template <typename T>
inline typename Vec<T>::type vload(const T* p) {
  typename Vec<T>::type x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}

template <typename T>
inline void vstore(T* p, typename Vec<T>::type x) { std::memcpy(p, &x, sizeof(x)); }

// Forward, per state: row *= y(label); sum += row (nr columns, a multiple of W).
template <typename T>
inline void scale_and_sum(T* row, const T* yy, T* sum, int64_t nr) {
  constexpr int64_t L = Vec<T>::L;
  for (int64_t j = 0; j < nr; j += L) {
    const auto r = vload(row + j) * vload(yy + j);
    vstore(row + j, r);
    vstore(sum + j, vload(sum + j) + r);
  }
}

// Backward, per state: occupancy (label row and total) += alpha * beta, beta sum += beta,
// yb = y(label) * beta (nr columns, a multiple of W).
template <typename T>
inline void occupancy(const T* alpha, const T* beta, const T* yy, T* occ_label, T* occ_tot,
                      T* beta_sum, T* yb, int64_t nr) {
  constexpr int64_t L = Vec<T>::L;
  for (int64_t j = 0; j < nr; j += L) {
    const auto b = vload(beta + j), v = vload(alpha + j) * b;
    vstore(occ_label + j, vload(occ_label + j) + v);
    vstore(occ_tot + j, vload(occ_tot + j) + v);
    vstore(beta_sum + j, vload(beta_sum + j) + b);
    vstore(yb + j, vload(yy + j) * b);
  }
}

template <typename T>
inline void arc_sums(const int32_t* ptr, const int32_t* idx, const T* w, const T* in, T* row,
                     int64_t d, int64_t n, int64_t Bp) {
  if (n <= 8) arc_sums_w<T, 8>(ptr, idx, w, in, row, d, n, Bp);
  else if (n <= 16) arc_sums_w<T, 16>(ptr, idx, w, in, row, d, n, Bp);
  else if (n <= 32) arc_sums_w<T, 32>(ptr, idx, w, in, row, d, n, Bp);
  else arc_sums_w<T, 64>(ptr, idx, w, in, row, d, n, Bp);
}

inline int64_t round_up(int64_t n) { return (n + W - 1) / W * W; }

// Forward. The rescaling is folded into the arc pass: a_{t+1} = (W^T a_t) * y_t / c_t with
// c_t = sum_s a_t(s) (summed per thread during the pass that made a_t), so log alpha_{t+1} =
// log a_{t+1} + sum_{u<=t} (log c_u + ymax_u). The stored a_t sum to c_t, not to 1; the
// backward pass normalises the occupancies per frame, so that does not matter.
template <typename T>
void forward_all(const T* lp, const Batch& bt, const int32_t* in_ptr, const int32_t* in_src,
                 const T* in_w, const int64_t* lab, const T* fin, int64_t start, T* alphas,
                 bool keep, double* logz) {
  FlushDenormals ftz;
  const int64_t B = bt.B, S = bt.S, Bp = bt.Bp, K = bt.K, frames = B ? bt.len[0] : 0;
  const std::vector<int64_t> bounds = split_by_arcs(in_ptr, S);
  const int64_t parts = static_cast<int64_t>(bounds.size()) - 1;
  std::vector<T> ping(keep ? 0 : 2 * S * Bp), y(K * Bp), partial(parts * Bp);
  std::vector<double> log_scale(B, 0.0), ymax(B), csum(B, 1.0);
  T* cur = keep ? alphas : ping.data();
  std::fill(cur, cur + S * Bp, T(0));
  for (int64_t j = 0; j < B; ++j) cur[start * Bp + j] = 1;
  auto finish = [&](const T* alpha, int64_t j0, int64_t j1) {  // utterances ending here
    for (int64_t j = j0; j < j1; ++j) {
      double z = 0.0;
      for (int64_t s = 0; s < S; ++s) z += static_cast<double>(fin[s]) * alpha[s * Bp + j];
      logz[bt.perm[j]] = log_scale[j] + std::log(z);
    }
  };
  finish(cur, bt.active(1), B);  // zero-length utterances
  for (int64_t t = 0; t < frames; ++t) {
    const int64_t n = bt.active(t + 1), nr = round_up(n);
    T* next = keep ? alphas + (t + 1) * S * Bp : ping.data() + ((t + 1) % 2) * S * Bp;
    frame_probs(lp, bt, t, n, y.data(), ymax.data());
    for (int64_t j = 0; j < n; ++j) {  // fold 1/c_t into this frame's probabilities
      const double c = csum[j];
      if (c > 0 && std::isfinite(c)) {
        log_scale[j] += std::log(c) + ymax[j];
        const T inv = static_cast<T>(1.0 / c);
        for (int64_t k = 0; k < K; ++k) y[k * Bp + j] *= inv;
      } else {
        log_scale[j] = -std::numeric_limits<double>::infinity();
      }
    }
    at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
      FlushDenormals ftz_worker;
      for (int64_t p = p0; p < p1; ++p) {
        T* __restrict__ sum = partial.data() + p * Bp;
        std::fill(sum, sum + Bp, T(0));
        for (int64_t d = bounds[p]; d < bounds[p + 1]; ++d) {
          T* __restrict__ row = next + d * Bp;
          arc_sums(in_ptr, in_src, in_w, cur, row, d, n, Bp);
          scale_and_sum(row, y.data() + lab[d] * Bp, sum, nr);
        }
      }
    });
    for (int64_t j = 0; j < n; ++j) {
      double c = 0.0;
      for (int64_t p = 0; p < parts; ++p) c += static_cast<double>(partial[p * Bp + j]);
      csum[j] = c;
    }
    finish(next, bt.active(t + 2), n);
    cur = next;
  }
}

// Backward: for t = T..1, beta_t (columns of the utterances running at t) from
//   beta_t(s) = (1 / b_{t+1}) sum_{arcs s->d} w(a) yb_{t+1}(d),   yb_t(s) = y_{t-1}(label s) beta_t(s)
// (beta_t = final for utterances whose last frame is t; b_t = sum_s beta_t(s)), and in the same
// pass over the states the occupancy of each label at frame t-1 (alpha_t * beta_t, per thread,
// then summed and normalised per utterance).
template <typename T>
void backward_all(const T* lp, const Batch& bt, const int32_t* out_ptr, const int32_t* out_dst,
                  const T* out_w, const int64_t* lab, const T* fin, const T* alphas,
                  const double* logz, const double* grad_logz, T* grad) {
  FlushDenormals ftz;
  const int64_t S = bt.S, K = bt.K, Bp = bt.Bp, frames = bt.B ? bt.len[0] : 0;
  const std::vector<int64_t> bounds = split_by_arcs(out_ptr, S);
  const int64_t parts = static_cast<int64_t>(bounds.size()) - 1;
  std::vector<T> yb(S * Bp), yb_next(S * Bp), y(K * Bp), inv(Bp, T(1));
  std::vector<T> occ(parts * K * Bp), occ_tot(parts * Bp), bsum(parts * Bp);
  for (int64_t t = frames; t >= 1; --t) {
    const int64_t n = bt.active(t), n_next = bt.active(t + 1), nr = round_up(n);
    frame_probs(lp, bt, t - 1, n, y.data(), nullptr);
    const T* alpha = alphas + t * S * Bp;
    at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
      FlushDenormals ftz_worker;
      std::vector<T> beta(Bp);
      for (int64_t p = p0; p < p1; ++p) {
        T* __restrict__ o = occ.data() + p * K * Bp;
        T* __restrict__ ot = occ_tot.data() + p * Bp;
        T* __restrict__ bs = bsum.data() + p * Bp;
        std::fill(o, o + K * Bp, T(0));
        std::fill(ot, ot + Bp, T(0));
        std::fill(bs, bs + Bp, T(0));
        for (int64_t s = bounds[p]; s < bounds[p + 1]; ++s) {
          if (n_next > 0) {
            arc_sums(out_ptr, out_dst, out_w, yb.data(), beta.data(), s, n_next, Bp);
            for (int64_t j = 0; j < round_up(n_next); j += Vec<T>::L)
              vstore(beta.data() + j, vload(beta.data() + j) * vload(inv.data() + j));
          }
          for (int64_t j = n_next; j < nr; ++j) beta[j] = j < n ? fin[s] : T(0);
          occupancy(alpha + s * Bp, beta.data(), y.data() + lab[s] * Bp, o + lab[s] * Bp, ot,
                    bs, yb_next.data() + s * Bp, nr);
        }
      }
    });
    for (int64_t j = 0; j < n; ++j) {
      const int64_t b = bt.perm[j];
      double total = 0.0, bt_sum = 0.0;
      for (int64_t p = 0; p < parts; ++p) {
        total += static_cast<double>(occ_tot[p * Bp + j]);
        bt_sum += static_cast<double>(bsum[p * Bp + j]);
      }
      inv[j] = bt_sum > 0 ? static_cast<T>(1.0 / bt_sum) : T(1);
      if (!std::isfinite(logz[b]) || !(total > 0)) continue;
      const double f = grad_logz[b] / total;
      T* g = grad + (b * bt.T + t - 1) * K;
      for (int64_t k = 0; k < K; ++k) {
        double v = 0.0;
        for (int64_t p = 0; p < parts; ++p) v += static_cast<double>(occ[(p * K + k) * Bp + j]);
        g[k] = static_cast<T>(v * f);
      }
    }
    yb.swap(yb_next);
  }
}

void check_graph(const torch::Tensor& ptr, const torch::Tensor& idx, const torch::Tensor& w,
                 const torch::Tensor& lab, const torch::Tensor& fin, const torch::Tensor& lp) {
  TORCH_CHECK(ptr.scalar_type() == torch::kInt32 && idx.scalar_type() == torch::kInt32,
              "den_fb: CSR arrays must be int32");
  TORCH_CHECK(lab.scalar_type() == torch::kInt64, "den_fb: state labels must be int64");
  TORCH_CHECK(w.scalar_type() == lp.scalar_type() && fin.scalar_type() == lp.scalar_type(),
              "den_fb: graph weights must have the dtype of log_probs");
  TORCH_CHECK(ptr.is_contiguous() && idx.is_contiguous() && w.is_contiguous() &&
                  lab.is_contiguous() && fin.is_contiguous() && lp.is_contiguous(),
              "den_fb: inputs must be contiguous");
  TORCH_CHECK(ptr.numel() == lab.numel() + 1 && fin.numel() == lab.numel() &&
                  idx.numel() == w.numel(),
              "den_fb: graph array sizes do not match");
}

// The alphas of a batch (hundreds of MB at WSJ size) are allocated once and reused: a fresh
// allocation is page-faulted in on first touch, which cost as much as the forward pass itself.
// A pooled buffer is free when nothing but the pool refers to its storage (the autograd graph
// that saved it is gone); at most a few are kept, so the pool holds about one batch's alphas.
torch::Tensor pooled_empty(at::IntArrayRef shape, const torch::TensorOptions& options) {
  static std::mutex mu;
  static std::vector<torch::Tensor> pool;
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  std::lock_guard<std::mutex> lock(mu);
  for (auto& buf : pool) {
    if (buf.storage().use_count() == 1 && buf.dtype() == options.dtype() &&
        buf.device() == options.device() && buf.numel() >= numel)
      return buf.narrow(0, 0, numel).view(shape);
  }
  auto fresh = torch::empty({std::max<int64_t>(numel, 1)}, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (fresh.device().is_cpu()) {  // fewer TLB misses over hundreds of MB (THP "madvise" mode)
    const uintptr_t page = 2u << 20, begin = reinterpret_cast<uintptr_t>(fresh.data_ptr());
    const uintptr_t lo = (begin + page - 1) / page * page;
    const uintptr_t hi = (begin + fresh.nbytes()) / page * page;
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
  }
#endif
  if (pool.size() >= 3) {  // forget the smallest free buffer
    auto smallest = pool.end();
    for (auto it = pool.begin(); it != pool.end(); ++it)
      if (it->storage().use_count() == 1 &&
          (smallest == pool.end() || it->numel() < smallest->numel()))
        smallest = it;
    if (smallest != pool.end()) pool.erase(smallest);
  }
  pool.push_back(fresh);
  return fresh.narrow(0, 0, numel).view(shape);
}

}  // namespace

#ifdef WITH_CUDA
std::vector<torch::Tensor> den_forward_cuda(torch::Tensor, torch::Tensor, torch::Tensor,
                                            torch::Tensor, torch::Tensor, torch::Tensor,
                                            torch::Tensor, int64_t, bool);
torch::Tensor den_backward_cuda(torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor,
                                torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor,
                                torch::Tensor, torch::Tensor);
#endif

// Returns (log Z (B,) float64, alphas (B, T+1, S) or an empty tensor when keep is false).
std::vector<torch::Tensor> den_forward(torch::Tensor log_probs, torch::Tensor lengths,
                                       torch::Tensor in_ptr, torch::Tensor in_src,
                                       torch::Tensor in_w, torch::Tensor state_label,
                                       torch::Tensor final_prob, int64_t start, bool keep) {
  check_graph(in_ptr, in_src, in_w, state_label, final_prob, log_probs);
  TORCH_CHECK(log_probs.dim() == 3, "den_fb: log_probs must be (B, T, K)");
  if (log_probs.is_cuda()) {
#ifdef WITH_CUDA
    return den_forward_cuda(log_probs, lengths, in_ptr, in_src, in_w, state_label, final_prob,
                            start, keep);
#else
    TORCH_CHECK(false, "den_fb: built without CUDA");
#endif
  }
  const int64_t S = state_label.numel();
  const Batch bt = make_batch(log_probs, lengths, S);
  auto logz = torch::empty({bt.B}, log_probs.options().dtype(torch::kFloat64));
  // alphas (T+1, S, B) in the sorted column order; only what backward reads is written
  auto alphas = keep ? pooled_empty({bt.T + 1, S, bt.Bp}, log_probs.options())
                    : torch::empty({0, S, bt.Bp}, log_probs.options());
  AT_DISPATCH_FLOATING_TYPES(log_probs.scalar_type(), "den_forward", [&] {
    forward_all<scalar_t>(log_probs.data_ptr<scalar_t>(), bt, in_ptr.data_ptr<int32_t>(),
                          in_src.data_ptr<int32_t>(), in_w.data_ptr<scalar_t>(),
                          state_label.data_ptr<int64_t>(), final_prob.data_ptr<scalar_t>(),
                          start, keep ? alphas.data_ptr<scalar_t>() : nullptr, keep,
                          logz.data_ptr<double>());
  });
  return {logz, alphas};
}

// d(sum_b grad_logz[b] * log Z_b) / d log_probs, (B, T, K); 0 past T_b and where log Z is
// not finite.
torch::Tensor den_backward(torch::Tensor log_probs, torch::Tensor lengths, torch::Tensor out_ptr,
                           torch::Tensor out_dst, torch::Tensor out_w, torch::Tensor state_label,
                           torch::Tensor final_prob, torch::Tensor alphas, torch::Tensor logz,
                           torch::Tensor grad_logz) {
  check_graph(out_ptr, out_dst, out_w, state_label, final_prob, log_probs);
  if (log_probs.is_cuda()) {
#ifdef WITH_CUDA
    return den_backward_cuda(log_probs, lengths, out_ptr, out_dst, out_w, state_label,
                             final_prob, alphas, logz, grad_logz);
#else
    TORCH_CHECK(false, "den_fb: built without CUDA");
#endif
  }
  const int64_t S = state_label.numel();
  const Batch bt = make_batch(log_probs, lengths, S);
  TORCH_CHECK(alphas.dim() == 3 && alphas.size(0) == bt.T + 1 && alphas.size(1) == S &&
                  alphas.size(2) == bt.Bp,
              "den_fb: alphas do not match (was the forward run with keep=false?)");
  auto lz = logz.to(torch::kCPU, torch::kFloat64).contiguous();
  auto gl = grad_logz.to(torch::kCPU, torch::kFloat64).contiguous();
  auto grad = torch::zeros_like(log_probs);
  AT_DISPATCH_FLOATING_TYPES(log_probs.scalar_type(), "den_backward", [&] {
    backward_all<scalar_t>(log_probs.data_ptr<scalar_t>(), bt, out_ptr.data_ptr<int32_t>(),
                           out_dst.data_ptr<int32_t>(), out_w.data_ptr<scalar_t>(),
                           state_label.data_ptr<int64_t>(), final_prob.data_ptr<scalar_t>(),
                           alphas.data_ptr<scalar_t>(), lz.data_ptr<double>(),
                           gl.data_ptr<double>(), grad.data_ptr<scalar_t>());
  });
  return grad;
}

bool built_with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

// pipeline/decode/csrc/lattice_decoder.cpp
void register_lattice_decoder(pybind11::module& m);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  register_lattice_decoder(m);
  m.def("forward", &den_forward, "den graph log Z and alphas (fused forward)");
  m.def("backward", &den_backward, "den occupancies times grad log Z (fused backward)");
  m.def("built_with_cuda", &built_with_cuda, "whether the CUDA kernels were compiled in");
}
