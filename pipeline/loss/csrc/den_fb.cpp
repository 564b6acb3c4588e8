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
// that are not of that form). Each utterance runs only its own T_b frames (the batch shrinks as
// utterances end), and utterances run in parallel (at::parallel_for). Arrays:
//   in_ptr/in_src/in_w:   arcs grouped by destination (CSR over destinations), for alpha
//   out_ptr/out_dst/out_w: arcs grouped by source (CSR over sources), for beta
// w and final are probabilities (exp of the log weights), in the dtype of log_probs.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

namespace {

template <typename T>
T frame_probs(const T* lp, int64_t K, T* y) {
  // y[k] = exp(lp[k] - max); returns the max (0 when it is not finite, as the reference).
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t k = 0; k < K; ++k) m = lp[k] > m ? lp[k] : m;
  if (!std::isfinite(m)) m = 0;
  for (int64_t k = 0; k < K; ++k) y[k] = std::exp(lp[k] - m);
  return m;
}

template <typename T>
void forward_utt(const T* lp, int64_t frames, int64_t K, int64_t S, const int32_t* in_ptr,
                 const int32_t* in_src, const T* in_w, const int64_t* lab, const T* fin,
                 int64_t start, T* alphas, bool keep, double* logz) {
  std::vector<T> y(K), ping(keep ? 0 : 2 * S);
  T* alpha = keep ? alphas : ping.data();
  for (int64_t s = 0; s < S; ++s) alpha[s] = 0;
  alpha[start] = 1;
  double log_scale = 0.0;
  for (int64_t t = 0; t < frames; ++t) {
    T* next = keep ? alphas + (t + 1) * S : ping.data() + ((t + 1) % 2) * S;
    T ymax = frame_probs(lp + t * K, K, y.data());
    T tot = 0;
    for (int64_t d = 0; d < S; ++d) {
      T acc = 0;
      for (int32_t a = in_ptr[d]; a < in_ptr[d + 1]; ++a) acc += in_w[a] * alpha[in_src[a]];
      acc *= y[lab[d]];
      next[d] = acc;
      tot += acc;
    }
    if (tot > 0) {
      T inv = T(1) / tot;
      for (int64_t d = 0; d < S; ++d) next[d] *= inv;
      log_scale += std::log(static_cast<double>(tot)) + static_cast<double>(ymax);
    } else {
      log_scale = -std::numeric_limits<double>::infinity();
    }
    alpha = next;
  }
  double z = 0.0;
  for (int64_t s = 0; s < S; ++s) z += static_cast<double>(fin[s]) * alpha[s];
  *logz = log_scale + std::log(z);
}

template <typename T>
void backward_utt(const T* lp, int64_t frames, int64_t K, int64_t S, const int32_t* out_ptr,
                  const int32_t* out_dst, const T* out_w, const int64_t* lab, const T* fin,
                  const T* alphas, T scale, T* grad) {
  std::vector<T> y(K), beta(fin, fin + S), prev(S), occ(K);
  for (int64_t t = frames; t >= 1; --t) {
    if (t < frames) {  // beta_t from beta_{t+1} through frame t's probabilities
      frame_probs(lp + t * K, K, y.data());
      for (int64_t d = 0; d < S; ++d) beta[d] *= y[lab[d]];
      for (int64_t s = 0; s < S; ++s) {
        T acc = 0;
        for (int32_t a = out_ptr[s]; a < out_ptr[s + 1]; ++a) acc += out_w[a] * beta[out_dst[a]];
        prev[s] = acc;
      }
      beta.swap(prev);
    }
    T tot = 0;
    for (int64_t s = 0; s < S; ++s) tot += beta[s];
    if (tot > 0) {
      T inv = T(1) / tot;
      for (int64_t s = 0; s < S; ++s) beta[s] *= inv;
    }
    const T* alpha = alphas + t * S;
    std::fill(occ.begin(), occ.end(), T(0));
    T occ_tot = 0;
    for (int64_t s = 0; s < S; ++s) {
      T o = alpha[s] * beta[s];
      occ[lab[s]] += o;
      occ_tot += o;
    }
    if (occ_tot > 0) {
      T f = scale / occ_tot;
      T* g = grad + (t - 1) * K;
      for (int64_t k = 0; k < K; ++k) g[k] = occ[k] * f;
    }
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
  const int64_t B = log_probs.size(0), T = log_probs.size(1), K = log_probs.size(2);
  const int64_t S = state_label.numel();
  auto len = lengths.to(torch::kCPU, torch::kInt64).contiguous();
  auto logz = torch::empty({B}, log_probs.options().dtype(torch::kFloat64));
  auto alphas = torch::empty({keep ? B : 0, T + 1, S}, log_probs.options());
  const int64_t* lens = len.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    TORCH_CHECK(lens[b] >= 0 && lens[b] <= T, "den_fb: length out of range");
  AT_DISPATCH_FLOATING_TYPES(log_probs.scalar_type(), "den_forward", [&] {
    const scalar_t* lp = log_probs.data_ptr<scalar_t>();
    double* lz = logz.data_ptr<double>();
    scalar_t* al = keep ? alphas.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        forward_utt<scalar_t>(lp + b * T * K, lens[b], K, S, in_ptr.data_ptr<int32_t>(),
                              in_src.data_ptr<int32_t>(), in_w.data_ptr<scalar_t>(),
                              state_label.data_ptr<int64_t>(), final_prob.data_ptr<scalar_t>(),
                              start, keep ? al + b * (T + 1) * S : nullptr, keep, lz + b);
      }
    });
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
  const int64_t B = log_probs.size(0), T = log_probs.size(1), K = log_probs.size(2);
  const int64_t S = state_label.numel();
  TORCH_CHECK(alphas.size(0) == B && alphas.size(1) == T + 1 && alphas.size(2) == S,
              "den_fb: alphas do not match (was the forward run with keep=false?)");
  auto len = lengths.to(torch::kCPU, torch::kInt64).contiguous();
  auto lz = logz.to(torch::kCPU, torch::kFloat64).contiguous();
  auto gl = grad_logz.to(torch::kCPU, torch::kFloat64).contiguous();
  auto grad = torch::zeros_like(log_probs);
  AT_DISPATCH_FLOATING_TYPES(log_probs.scalar_type(), "den_backward", [&] {
    const scalar_t* lp = log_probs.data_ptr<scalar_t>();
    const scalar_t* al = alphas.data_ptr<scalar_t>();
    scalar_t* g = grad.data_ptr<scalar_t>();
    const int64_t* lens = len.data_ptr<int64_t>();
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        if (!std::isfinite(lz.data_ptr<double>()[b])) continue;
        backward_utt<scalar_t>(lp + b * T * K, lens[b], K, S, out_ptr.data_ptr<int32_t>(),
                               out_dst.data_ptr<int32_t>(), out_w.data_ptr<scalar_t>(),
                               state_label.data_ptr<int64_t>(), final_prob.data_ptr<scalar_t>(),
                               al + b * (T + 1) * S,
                               static_cast<scalar_t>(gl.data_ptr<double>()[b]),
                               g + b * T * K);
      }
    });
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &den_forward, "den graph log Z and alphas (fused forward)");
  m.def("backward", &den_backward, "den occupancies times grad log Z (fused backward)");
  m.def("built_with_cuda", &built_with_cuda, "whether the CUDA kernels were compiled in");
}
