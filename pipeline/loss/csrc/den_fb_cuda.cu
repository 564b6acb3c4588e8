// CUDA kernels of the fused den forward-backward (algorithm: see den_fb.cpp).
//
// One thread block per utterance runs all of its frames in one kernel launch (one launch for
// the forward pass, one for the backward pass of the whole batch, instead of several small
// kernels per frame): threads stride over the states, block reductions give the per-frame max
// of the log-probs and the rescaling sums, and __syncthreads separates the frames. Alphas live
// in global memory, (B, T+1, S) as on the CPU; betas in a (B, 2, S) ping-pong buffer.

#include <torch/extension.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>
#include <vector>

namespace {

constexpr int kThreads = 256;

// Sum (or max) of one double per thread over the block; every thread gets the result.
__device__ double block_sum(double v, double* red) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int step = blockDim.x / 2; step > 0; step >>= 1) {
    if (threadIdx.x < step) red[threadIdx.x] += red[threadIdx.x + step];
    __syncthreads();
  }
  double out = red[0];
  __syncthreads();
  return out;
}

__device__ double block_max(double v, double* red) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int step = blockDim.x / 2; step > 0; step >>= 1) {
    if (threadIdx.x < step) red[threadIdx.x] = fmax(red[threadIdx.x], red[threadIdx.x + step]);
    __syncthreads();
  }
  double out = red[0];
  __syncthreads();
  return out;
}

// y[k] = exp(lp[k] - max) into shared memory (max 0 when not finite, as the reference).
template <typename T>
__device__ void frame_probs(const T* lp, int64_t K, T* y, double* red) {
  double m = -INFINITY;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) m = fmax(m, (double)lp[k]);
  m = block_max(m, red);
  if (!isfinite(m)) m = 0.0;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) y[k] = (T)exp((double)lp[k] - m);
  if (threadIdx.x == 0) red[blockDim.x] = m;  // the max, for the caller's log scale
  __syncthreads();
}

template <typename T>
__global__ void forward_kernel(const T* __restrict__ log_probs, const int64_t* __restrict__ lens,
                               int64_t T_max, int64_t K, int64_t S,
                               const int32_t* __restrict__ in_ptr,
                               const int32_t* __restrict__ in_src, const T* __restrict__ in_w,
                               const int64_t* __restrict__ lab, const T* __restrict__ fin,
                               int64_t start, T* alphas, T* work, bool keep, double* logz) {
  extern __shared__ double shared[];
  double* red = shared;                    // blockDim.x + 1
  T* y = reinterpret_cast<T*>(red + blockDim.x + 1);  // K
  const int64_t b = blockIdx.x, frames = lens[b];
  const T* lp = log_probs + b * T_max * K;
  T* base = keep ? alphas + b * (T_max + 1) * S : work + b * 2 * S;
  for (int64_t s = threadIdx.x; s < S; s += blockDim.x) base[s] = (s == start) ? T(1) : T(0);
  __syncthreads();
  double log_scale = 0.0;
  const T* cur = base;
  for (int64_t t = 0; t < frames; ++t) {
    T* nxt = keep ? base + (t + 1) * S : base + ((t + 1) % 2) * S;
    frame_probs(lp + t * K, K, y, red);
    const double ymax = red[blockDim.x];
    double part = 0.0;
    for (int64_t d = threadIdx.x; d < S; d += blockDim.x) {
      T acc = 0;
      for (int32_t a = in_ptr[d]; a < in_ptr[d + 1]; ++a) acc += in_w[a] * cur[in_src[a]];
      acc *= y[lab[d]];
      nxt[d] = acc;
      part += (double)acc;
    }
    const double tot = block_sum(part, red);
    if (tot > 0) {
      const T inv = (T)(1.0 / tot);
      for (int64_t d = threadIdx.x; d < S; d += blockDim.x) nxt[d] *= inv;
      log_scale += log(tot) + ymax;
    } else {
      log_scale = -INFINITY;
    }
    __syncthreads();
    cur = nxt;
  }
  double part = 0.0;
  for (int64_t s = threadIdx.x; s < S; s += blockDim.x) part += (double)fin[s] * (double)cur[s];
  const double z = block_sum(part, red);
  if (threadIdx.x == 0) logz[b] = log_scale + log(z);
}

template <typename T>
__global__ void backward_kernel(const T* __restrict__ log_probs,
                                const int64_t* __restrict__ lens, int64_t T_max, int64_t K,
                                int64_t S, const int32_t* __restrict__ out_ptr,
                                const int32_t* __restrict__ out_dst,
                                const T* __restrict__ out_w, const int64_t* __restrict__ lab,
                                const T* __restrict__ fin, const T* __restrict__ alphas,
                                const double* __restrict__ logz,
                                const double* __restrict__ grad_logz, T* work, T* grad) {
  extern __shared__ double shared[];
  double* red = shared;                  // blockDim.x + 1
  double* occ = red + blockDim.x + 1;    // K
  T* y = reinterpret_cast<T*>(occ + K);  // K
  const int64_t b = blockIdx.x, frames = lens[b];
  if (!isfinite(logz[b])) return;  // the whole block returns: no barrier is left waiting
  const T* lp = log_probs + b * T_max * K;
  const T* al = alphas + b * (T_max + 1) * S;
  T* g = grad + b * T_max * K;
  T* beta = work + b * 2 * S;
  T* other = beta + S;
  for (int64_t s = threadIdx.x; s < S; s += blockDim.x) beta[s] = fin[s];
  __syncthreads();
  const double scale = grad_logz[b];
  for (int64_t t = frames; t >= 1; --t) {
    if (t < frames) {
      frame_probs(lp + t * K, K, y, red);
      for (int64_t s = threadIdx.x; s < S; s += blockDim.x) {
        T acc = 0;
        for (int32_t a = out_ptr[s]; a < out_ptr[s + 1]; ++a) {
          const int32_t d = out_dst[a];
          acc += out_w[a] * y[lab[d]] * beta[d];
        }
        other[s] = acc;
      }
      __syncthreads();
      T* tmp = beta; beta = other; other = tmp;
    }
    double part = 0.0;
    for (int64_t s = threadIdx.x; s < S; s += blockDim.x) part += (double)beta[s];
    const double tot = block_sum(part, red);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) occ[k] = 0.0;
    __syncthreads();
    const T* alpha = al + t * S;
    double occ_part = 0.0;
    for (int64_t s = threadIdx.x; s < S; s += blockDim.x) {
      if (tot > 0) beta[s] = (T)((double)beta[s] / tot);
      const double o = (double)alpha[s] * (double)beta[s];
      atomicAdd(&occ[lab[s]], o);
      occ_part += o;
    }
    const double occ_tot = block_sum(occ_part, red);  // also orders the atomics before reads
    if (occ_tot > 0) {
      for (int64_t k = threadIdx.x; k < K; k += blockDim.x)
        g[(t - 1) * K + k] = (T)(occ[k] * scale / occ_tot);
    }
    __syncthreads();
  }
}

void check_cuda(const std::vector<torch::Tensor>& ts) {
  for (const auto& t : ts)
    TORCH_CHECK(t.is_cuda(), "den_fb: all inputs must be on the same CUDA device");
}

}  // namespace

std::vector<torch::Tensor> den_forward_cuda(torch::Tensor log_probs, torch::Tensor lengths,
                                            torch::Tensor in_ptr, torch::Tensor in_src,
                                            torch::Tensor in_w, torch::Tensor state_label,
                                            torch::Tensor final_prob, int64_t start,
                                            bool keep) {
  check_cuda({log_probs, in_ptr, in_src, in_w, state_label, final_prob});
  const c10::cuda::CUDAGuard guard(log_probs.device());
  const int64_t B = log_probs.size(0), T = log_probs.size(1), K = log_probs.size(2);
  const int64_t S = state_label.numel();
  auto lens = lengths.to(log_probs.device(), torch::kInt64).contiguous();
  auto logz = torch::empty({B}, log_probs.options().dtype(torch::kFloat64));
  auto alphas = torch::empty({keep ? B : 0, T + 1, S}, log_probs.options());
  auto work = torch::empty({keep ? 0 : B, 2, S}, log_probs.options());
  if (B == 0) return {logz, alphas};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(log_probs.scalar_type(), "den_forward_cuda", [&] {
    const size_t shmem = (kThreads + 1) * sizeof(double) + K * sizeof(scalar_t);
    forward_kernel<scalar_t><<<B, kThreads, shmem, stream>>>(
        log_probs.data_ptr<scalar_t>(), lens.data_ptr<int64_t>(), T, K, S,
        in_ptr.data_ptr<int32_t>(), in_src.data_ptr<int32_t>(), in_w.data_ptr<scalar_t>(),
        state_label.data_ptr<int64_t>(), final_prob.data_ptr<scalar_t>(), start,
        keep ? alphas.data_ptr<scalar_t>() : nullptr,
        keep ? nullptr : work.data_ptr<scalar_t>(), keep, logz.data_ptr<double>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {logz, alphas};
}

torch::Tensor den_backward_cuda(torch::Tensor log_probs, torch::Tensor lengths,
                                torch::Tensor out_ptr, torch::Tensor out_dst, torch::Tensor out_w,
                                torch::Tensor state_label, torch::Tensor final_prob,
                                torch::Tensor alphas, torch::Tensor logz,
                                torch::Tensor grad_logz) {
  check_cuda({log_probs, out_ptr, out_dst, out_w, state_label, final_prob, alphas});
  const c10::cuda::CUDAGuard guard(log_probs.device());
  const int64_t B = log_probs.size(0), T = log_probs.size(1), K = log_probs.size(2);
  const int64_t S = state_label.numel();
  TORCH_CHECK(alphas.size(0) == B && alphas.size(1) == T + 1 && alphas.size(2) == S,
              "den_fb: alphas do not match (was the forward run with keep=false?)");
  auto lens = lengths.to(log_probs.device(), torch::kInt64).contiguous();
  auto lz = logz.to(log_probs.device(), torch::kFloat64).contiguous();
  auto gl = grad_logz.to(log_probs.device(), torch::kFloat64).contiguous();
  auto grad = torch::zeros_like(log_probs);
  auto work = torch::empty({B, 2, S}, log_probs.options());
  if (B == 0) return grad;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(log_probs.scalar_type(), "den_backward_cuda", [&] {
    const size_t shmem = (kThreads + 1 + K) * sizeof(double) + K * sizeof(scalar_t);
    backward_kernel<scalar_t><<<B, kThreads, shmem, stream>>>(
        log_probs.data_ptr<scalar_t>(), lens.data_ptr<int64_t>(), T, K, S,
        out_ptr.data_ptr<int32_t>(), out_dst.data_ptr<int32_t>(), out_w.data_ptr<scalar_t>(),
        state_label.data_ptr<int64_t>(), final_prob.data_ptr<scalar_t>(),
        alphas.data_ptr<scalar_t>(), lz.data_ptr<double>(), gl.data_ptr<double>(),
        work.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad;
}
