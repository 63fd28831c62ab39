// CudaDevice: cuBLAS GEMMs and the kernels of every other Device op (see cuda_device.h).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>

#include "real/kernels/cuda_device.h"

namespace moesim::real {
namespace {

constexpr int kThreads = 256;
constexpr int kSumParts = 256;  // SumSquares: fixed partial count, so the sum order is fixed

int64_t Blocks(int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 20));
}

#define GRID_STRIDE(i, n)                                                                \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// Block-wide reductions over blockDim.x threads (a multiple of 32): a fixed shuffle tree, so
// the result does not depend on timing.
template <typename V>
__device__ V WarpSum(V v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <typename V>
__device__ V BlockSum(V v) {
  __shared__ V part[32];
  __shared__ V total;
  v = WarpSum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    V w = lane < static_cast<int>(blockDim.x >> 5) ? part[lane] : V(0);
    w = WarpSum(w);
    if (lane == 0) total = w;
  }
  __syncthreads();
  return total;
}
__device__ float BlockMax(float v) {
  __shared__ float part[32];
  __shared__ float total;
  v = WarpMax(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < static_cast<int>(blockDim.x >> 5) ? part[lane] : -INFINITY;
    w = WarpMax(w);
    if (lane == 0) total = w;
  }
  __syncthreads();
  return total;
}

__device__ float Sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void FillK(float* x, int64_t n, float v) { GRID_STRIDE(i, n) x[i] = v; }
__global__ void ScaleK(float* x, int64_t n, float a) { GRID_STRIDE(i, n) x[i] *= a; }
__global__ void ScaleMatrixK(float* c, int64_t m, int64_t n, int64_t ldc, float beta) {
  GRID_STRIDE(i, m * n) {
    float& v = c[(i / n) * ldc + i % n];
    v = beta == 0.0f ? 0.0f : v * beta;
  }
}
__global__ void AxpyK(const float* x, float* y, int64_t n, float a) {
  GRID_STRIDE(i, n) y[i] += a * x[i];
}
__global__ void AddK(const float* a, const float* b, float* o, int64_t n) {
  GRID_STRIDE(i, n) o[i] = a[i] + b[i];
}
__global__ void SumSquaresPartialK(const float* x, int64_t n, double* partial) {
  double s = 0;
  GRID_STRIDE(i, n) s += static_cast<double>(x[i]) * x[i];
  s = BlockSum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}
__global__ void SumPartialsK(const double* partial, int parts, double* out) {
  double s = 0;
  for (int i = threadIdx.x; i < parts; i += blockDim.x) s += partial[i];
  s = BlockSum(s);
  if (threadIdx.x == 0) *out = s;
}
__global__ void Permute0213K(const float* in, float* out, int64_t d0, int64_t d1, int64_t d2,
                             int64_t d3) {
  // out is [d0][d2][d1][d3].
  GRID_STRIDE(i, d0 * d1 * d2 * d3) {
    const int64_t d = i % d3, b = (i / d3) % d1, c = (i / (d3 * d1)) % d2, a = i / (d3 * d1 * d2);
    out[i] = in[((a * d1 + b) * d2 + c) * d3 + d];
  }
}
__global__ void RmsNormForwardK(const float* x, const float* g, float* y, float* rstd, int64_t cols,
                                float eps) {
  const float* xr = x + blockIdx.x * cols;
  float ss = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) ss += xr[c] * xr[c];
  ss = BlockSum(ss);
  const float rs = rsqrtf(ss / static_cast<float>(cols) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = rs;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    y[blockIdx.x * cols + c] = xr[c] * rs * g[c];
}
__global__ void RmsNormBackwardDxK(const float* x, const float* g, const float* rstd,
                                   const float* dy, float* dx, int64_t cols) {
  const int64_t base = blockIdx.x * cols;
  const float rs = rstd[blockIdx.x];
  float dot = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dot += dy[base + c] * g[c] * x[base + c];
  dot = BlockSum(dot);
  const float coef = dot * rs * rs * rs / static_cast<float>(cols);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    dx[base + c] += rs * g[c] * dy[base + c] - coef * x[base + c];
  }
}
// dgain, stage 1: partial[chunk][c] = sum over the chunk's rows of dy x rstd.
__global__ void RmsNormGainPartialK(const float* x, const float* rstd, const float* dy,
                                    float* partial, int64_t rows, int64_t cols,
                                    int64_t chunk_rows) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  const int64_t r0 = blockIdx.y * chunk_rows, r1 = min(rows, r0 + chunk_rows);
  float s = 0;
  for (int64_t r = r0; r < r1; ++r) s += dy[r * cols + c] * x[r * cols + c] * rstd[r];
  partial[blockIdx.y * cols + c] = s;
}
__global__ void RmsNormGainFinalK(const float* partial, float* dgain, int64_t chunks,
                                  int64_t cols) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  float s = 0;
  for (int64_t j = 0; j < chunks; ++j) s += partial[j * cols + c];
  dgain[c] += s;
}
__global__ void RopeK(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t seq_len,
                      double theta, bool inverse) {
  const int64_t half = head_dim / 2;
  GRID_STRIDE(i, rows * heads * half) {
    const int64_t p = i % half, row = i / (half * heads);
    const double freq = pow(theta, -2.0 * static_cast<double>(p) / static_cast<double>(head_dim));
    double s, c;
    sincos(static_cast<double>(row % seq_len) * freq, &s, &c);
    if (inverse) s = -s;
    float* v = x + (i / half) * head_dim + 2 * p;
    const float a = v[0], b = v[1];
    v[0] = a * static_cast<float>(c) - b * static_cast<float>(s);
    v[1] = a * static_cast<float>(s) + b * static_cast<float>(c);
  }
}
__global__ void SoftmaxK(float* x, int64_t cols, bool causal) {
  float* xr = x + blockIdx.x * cols;
  const int64_t valid = causal ? static_cast<int64_t>(blockIdx.x) % cols + 1 : cols;
  float mx = -INFINITY;
  for (int64_t c = threadIdx.x; c < valid; c += blockDim.x) mx = fmaxf(mx, xr[c]);
  mx = BlockMax(mx);
  float sum = 0;
  for (int64_t c = threadIdx.x; c < valid; c += blockDim.x) sum += expf(xr[c] - mx);
  sum = BlockSum(sum);
  const float inv = 1.0f / sum;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    xr[c] = c < valid ? expf(xr[c] - mx) * inv : 0.0f;
  }
}
__global__ void SoftmaxBackwardK(const float* p, const float* dp, float* dx, int64_t cols) {
  const int64_t base = blockIdx.x * cols;
  float dot = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dot += p[base + c] * dp[base + c];
  dot = BlockSum(dot);  // every read of dp is done before any write of dx (dx may alias dp)
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    dx[base + c] = p[base + c] * (dp[base + c] - dot);
  }
}
__global__ void SwiGluForwardK(const float* h1, const float* h3, float* out, int64_t n) {
  GRID_STRIDE(i, n) out[i] = h1[i] * Sigmoid(h1[i]) * h3[i];
}
__global__ void SwiGluBackwardK(const float* h1, const float* h3, const float* dout, float* dh1,
                                float* dh3, int64_t n) {
  GRID_STRIDE(i, n) {
    const float s = Sigmoid(h1[i]), d = dout[i];
    dh1[i] = d * h3[i] * s * (1.0f + h1[i] * (1.0f - s));
    dh3[i] = d * h1[i] * s;
  }
}
__global__ void GatherRowsK(const float* src, const int32_t* idx, const float* scale, float* out,
                            int64_t rows, int64_t cols) {
  GRID_STRIDE(i, rows * cols) {
    const int64_t r = i / cols, c = i % cols;
    const int32_t s = idx[r];
    out[i] = s < 0 ? 0.0f : (scale != nullptr ? scale[r] : 1.0f) * src[s * cols + c];
  }
}
__global__ void CombineRowsK(const float* src, const int32_t* pos, const float* w, float* out,
                             int64_t rows, int64_t k, int64_t cols, bool accumulate) {
  GRID_STRIDE(i, rows * cols) {
    const int64_t r = i / cols, c = i % cols;
    float acc = accumulate ? out[i] : 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const int32_t p = pos[r * k + j];
      if (p >= 0) acc += (w != nullptr ? w[r * k + j] : 1.0f) * src[p * cols + c];
    }
    out[i] = acc;
  }
}
__global__ void GatherDotK(const float* a, const int32_t* idx, const float* b, float* out,
                           int64_t cols) {
  const float* ar = a + static_cast<int64_t>(idx[blockIdx.x]) * cols;
  const float* br = b + blockIdx.x * cols;
  float s = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += ar[c] * br[c];
  s = BlockSum(s);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}
__global__ void ScatterAddRowsK(const float* src, const int32_t* ids, const int32_t* offsets,
                                const int32_t* pos, int64_t num_unique, float* table,
                                int64_t cols) {
  GRID_STRIDE(i, num_unique * cols) {
    const int64_t u = i / cols, c = i % cols;
    float s = 0;
    for (int32_t o = offsets[u]; o < offsets[u + 1]; ++o) s += src[pos[o] * cols + c];
    table[ids[u] * cols + c] += s;
  }
}
__global__ void CrossEntropyK(const float* logits, const int32_t* target, float* loss,
                              float* dlogits, int64_t cols, float grad_scale) {
  const float* lr = logits + blockIdx.x * cols;
  float* dr = dlogits + blockIdx.x * cols;  // may alias lr
  const int32_t t = target[blockIdx.x];
  __shared__ float target_logit;
  if (threadIdx.x == 0) target_logit = t >= 0 ? lr[t] : 0.0f;
  float mx = -INFINITY;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, lr[c]);
  mx = BlockMax(mx);  // also orders the read of target_logit before any write below
  float sum = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += expf(lr[c] - mx);
  sum = BlockSum(sum);
  if (t < 0) {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dr[c] = 0.0f;
    if (threadIdx.x == 0) loss[blockIdx.x] = 0.0f;
    return;
  }
  if (threadIdx.x == 0) loss[blockIdx.x] = mx + logf(sum) - target_logit;
  const float scale = grad_scale / sum;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    dr[c] = scale * expf(lr[c] - mx) - (c == t ? grad_scale : 0.0f);
  }
}
__global__ void AdamWK(float* p, const float* g, float* m, float* v, int64_t n, double lr,
                       double b1, double b2, double eps, double wd, double bc1, double bc2,
                       double gs) {
  GRID_STRIDE(i, n) {
    const double gi = static_cast<double>(g[i]) * gs;
    const double mi = b1 * m[i] + (1 - b1) * gi;
    const double vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
    const double upd = (mi / bc1) / (sqrt(vi / bc2) + eps) + wd * static_cast<double>(p[i]);
    p[i] = static_cast<float>(static_cast<double>(p[i]) - lr * upd);
  }
}

std::string Mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

struct CudaDevice::Impl {
  int index = 0;
  bool bf16 = true;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  std::vector<cudaEvent_t> events;
  Status error;
  std::string name;
  std::string gpu;
  double* sum_partials = nullptr;  // [kSumParts + 1]
  float* scratch = nullptr;        // RMSNorm gain partials
  int64_t scratch_elems = 0;

  void Check(cudaError_t e, const char* what) {
    if (e != cudaSuccess && error.ok()) {
      error = Status::Internal("cuda:" + std::to_string(index) + ": " + what + ": " +
                               cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
    }
  }
  void CheckBlas(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS && error.ok()) {
      error = Status::Internal("cuda:" + std::to_string(index) + ": " + what + ": " +
                               cublasGetStatusString(s));
    }
  }
  void Launched(const char* kernel) { Check(cudaGetLastError(), kernel); }
  bool Fits(int64_t v, const char* what) {
    if (v <= INT_MAX) return true;
    if (error.ok()) {
      error = Status::Internal(std::string(what) + ": dimension " + std::to_string(v) +
                               " exceeds cuBLAS's int range");
    }
    return false;
  }
};

int CudaDevice::DeviceCount(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    cudaGetLastError();  // clear
    return 0;
  }
  if (n == 0 && why) *why = "cudaGetDeviceCount returned 0 devices";
  return n;
}

Expected<std::unique_ptr<CudaDevice>> CudaDevice::Create(int index, bool bf16) {
  std::string why;
  const int n = DeviceCount(&why);
  if (n == 0) return Status::InvalidInput("--backend cuda: no CUDA device (" + why + ")");
  if (index < 0 || index >= n) {
    return Status::InvalidInput("cuda:" + std::to_string(index) + " does not exist (" +
                                std::to_string(n) + " device(s))");
  }
  auto impl = std::make_unique<Impl>();
  impl->index = index;
  impl->bf16 = bf16;
  impl->Check(cudaSetDevice(index), "cudaSetDevice");
  cudaDeviceProp prop{};
  impl->Check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
  impl->Check(cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  impl->CheckBlas(cublasCreate(&impl->blas), "cublasCreate");
  if (impl->blas != nullptr)
    impl->CheckBlas(cublasSetStream(impl->blas, impl->stream), "cublasSetStream");
  impl->Check(cudaMalloc(&impl->sum_partials, (kSumParts + 1) * sizeof(double)), "cudaMalloc");
  impl->scratch_elems = int64_t{1} << 22;  // 16 MiB
  impl->Check(cudaMalloc(&impl->scratch, impl->scratch_elems * sizeof(float)), "cudaMalloc");
  if (!impl->error.ok()) return impl->error;
  impl->gpu = prop.name;
  impl->name = "cuda:" + std::to_string(index) + " " + prop.name + " (cuBLAS, " +
               (bf16 ? "bf16 compute, fp32 accumulation" : "fp32") + ")";
  return std::unique_ptr<CudaDevice>(new CudaDevice(std::move(impl)));
}

CudaDevice::CudaDevice(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CudaDevice::~CudaDevice() {
  if (impl_->stream != nullptr) cudaStreamSynchronize(impl_->stream);
  for (cudaEvent_t e : impl_->events) cudaEventDestroy(e);
  if (impl_->blas != nullptr) cublasDestroy(impl_->blas);
  if (impl_->sum_partials != nullptr) cudaFree(impl_->sum_partials);
  if (impl_->scratch != nullptr) cudaFree(impl_->scratch);
  if (impl_->stream != nullptr) cudaStreamDestroy(impl_->stream);
}

std::string CudaDevice::Name() const { return impl_->name; }
int CudaDevice::index() const { return impl_->index; }
void* CudaDevice::stream() const { return impl_->stream; }

double CudaDevice::PeakFlopsPerS() const {
  const std::string& g = impl_->gpu;
  if (g.find("H100") != std::string::npos || g.find("H200") != std::string::npos) return 989e12;
  if (g.find("B200") != std::string::npos) return 2250e12;
  if (g.find("A100") != std::string::npos) return 312e12;
  return 0;
}

Expected<void*> CudaDevice::AllocateBytes(const std::string& tensor, int64_t bytes) {
  void* p = nullptr;
  const size_t n = static_cast<size_t>(std::max<int64_t>(bytes, 1));
  const cudaError_t e = cudaMalloc(&p, n);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: the caller reports it
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    return Status::Internal(
        "CUDA out of memory allocating " + tensor + ": " + std::to_string(bytes) + " bytes (" +
        Mib(static_cast<double>(bytes)) + "); " + Mib(static_cast<double>(free_b)) + " free of " +
        Mib(static_cast<double>(total_b)) + " on cuda:" + std::to_string(impl_->index));
  }
  if (e != cudaSuccess) {
    return Status::Internal("cudaMalloc of " + tensor + " (" + std::to_string(bytes) +
                            " bytes): " + cudaGetErrorString(e));
  }
  impl_->Check(cudaMemsetAsync(p, 0, n, impl_->stream), "cudaMemsetAsync");
  return p;
}

void CudaDevice::FreeBytes(void* p) { impl_->Check(cudaFree(p), "cudaFree"); }

void CudaDevice::UploadBytes(const void* host, void* device, int64_t bytes) {
  impl_->Check(cudaMemcpyAsync(device, host, static_cast<size_t>(bytes), cudaMemcpyHostToDevice,
                               impl_->stream),
               "cudaMemcpyAsync (upload)");
  // The host buffer may be pageable and freed on return: wait until the copy has it.
  impl_->Check(cudaStreamSynchronize(impl_->stream), "cudaStreamSynchronize");
}

void CudaDevice::DownloadBytes(const void* device, void* host, int64_t bytes) {
  impl_->Check(cudaMemcpyAsync(host, device, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost,
                               impl_->stream),
               "cudaMemcpyAsync (download)");
  impl_->Check(cudaStreamSynchronize(impl_->stream), "cudaStreamSynchronize");
}

void CudaDevice::CopyBytes(const void* src, void* dst, int64_t bytes) {
  impl_->Check(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice,
                               impl_->stream),
               "cudaMemcpyAsync (device)");
}

void CudaDevice::RecordTimestamp(int64_t slot) {
  while (static_cast<int64_t>(impl_->events.size()) <= slot) {
    cudaEvent_t e = nullptr;
    impl_->Check(cudaEventCreate(&e), "cudaEventCreate");
    impl_->events.push_back(e);
  }
  impl_->Check(cudaEventRecord(impl_->events[static_cast<size_t>(slot)], impl_->stream),
               "cudaEventRecord");
}

Expected<std::vector<double>> CudaDevice::ReadTimestamps(int64_t count) {
  if (count <= 0 || count > static_cast<int64_t>(impl_->events.size())) {
    return Status::Internal("ReadTimestamps: " + std::to_string(count) + " slots asked");
  }
  impl_->Check(cudaEventSynchronize(impl_->events[static_cast<size_t>(count - 1)]),
               "cudaEventSynchronize");
  std::vector<double> out(static_cast<size_t>(count), 0.0);
  for (int64_t i = 1; i < count; ++i) {
    float ms = 0;
    impl_->Check(cudaEventElapsedTime(&ms, impl_->events[0], impl_->events[static_cast<size_t>(i)]),
                 "cudaEventElapsedTime");
    out[static_cast<size_t>(i)] = ms * 1e-3;
  }
  if (!impl_->error.ok()) return impl_->error;
  return out;
}

Status CudaDevice::Synchronize() {
  impl_->Check(cudaStreamSynchronize(impl_->stream), "cudaStreamSynchronize");
  return impl_->error;
}

void CudaDevice::Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                      float* c, int64_t ldc) {
  GemmStridedBatched(ta, tb, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}

void CudaDevice::GemmStridedBatched(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                                    const float* a, int64_t lda, int64_t stride_a, const float* b,
                                    int64_t ldb, int64_t stride_b, float beta, float* c,
                                    int64_t ldc, int64_t stride_c, int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) {  // C = beta C
    if (beta == 1.0f) return;
    for (int64_t i = 0; i < batch; ++i) {
      ScaleMatrixK<<<Blocks(m * n), kThreads, 0, impl_->stream>>>(c + i * stride_c, m, n, ldc,
                                                                  beta);
    }
    impl_->Launched("ScaleMatrixK");
    return;
  }
  for (int64_t v : {m, n, k, lda, ldb, ldc, batch}) {
    if (!impl_->Fits(v, "cublasGemmStridedBatchedEx")) return;
  }
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  const cublasComputeType_t compute =
      impl_->bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
  const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  impl_->CheckBlas(
      cublasGemmStridedBatchedEx(impl_->blas, op_b, op_a, static_cast<int>(n), static_cast<int>(m),
                                 static_cast<int>(k), &alpha, b, CUDA_R_32F, static_cast<int>(ldb),
                                 stride_b, a, CUDA_R_32F, static_cast<int>(lda), stride_a, &beta, c,
                                 CUDA_R_32F, static_cast<int>(ldc), stride_c,
                                 static_cast<int>(batch), compute, CUBLAS_GEMM_DEFAULT),
      "cublasGemmStridedBatchedEx");
}

#define LAUNCH(kernel, grid, block, ...)                        \
  do {                                                          \
    kernel<<<(grid), (block), 0, impl_->stream>>>(__VA_ARGS__); \
    impl_->Launched(#kernel);                                   \
  } while (0)

void CudaDevice::Fill(float* x, int64_t n, float value) {
  if (n > 0) LAUNCH(FillK, Blocks(n), kThreads, x, n, value);
}
void CudaDevice::Scale(float* x, int64_t n, float alpha) {
  if (n > 0) LAUNCH(ScaleK, Blocks(n), kThreads, x, n, alpha);
}
void CudaDevice::Axpy(const float* x, float* y, int64_t n, float alpha) {
  if (n > 0) LAUNCH(AxpyK, Blocks(n), kThreads, x, y, n, alpha);
}
void CudaDevice::Add(const float* a, const float* b, float* out, int64_t n) {
  if (n > 0) LAUNCH(AddK, Blocks(n), kThreads, a, b, out, n);
}

double CudaDevice::SumSquares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  LAUNCH(SumSquaresPartialK, kSumParts, kThreads, x, n, impl_->sum_partials);
  LAUNCH(SumPartialsK, 1, kThreads, impl_->sum_partials, kSumParts,
         impl_->sum_partials + kSumParts);
  double s = 0;
  DownloadBytes(impl_->sum_partials + kSumParts, &s, sizeof(double));
  return s;
}

void CudaDevice::Permute0213(const float* in, float* out, int64_t d0, int64_t d1, int64_t d2,
                             int64_t d3) {
  const int64_t n = d0 * d1 * d2 * d3;
  if (n > 0) LAUNCH(Permute0213K, Blocks(n), kThreads, in, out, d0, d1, d2, d3);
}

void CudaDevice::RmsNormForward(const float* x, const float* gain, float* y, float* rstd,
                                int64_t rows, int64_t cols, double eps) {
  if (rows > 0) {
    LAUNCH(RmsNormForwardK, rows, kThreads, x, gain, y, rstd, cols, static_cast<float>(eps));
  }
}

void CudaDevice::RmsNormBackward(const float* x, const float* gain, const float* rstd,
                                 const float* dy, float* dx, float* dgain, int64_t rows,
                                 int64_t cols) {
  if (rows == 0) return;
  LAUNCH(RmsNormBackwardDxK, rows, kThreads, x, gain, rstd, dy, dx, cols);
  // Gain gradient in two fixed-order stages over chunks of rows.
  const int64_t max_chunks = std::max<int64_t>(1, impl_->scratch_elems / cols);
  const int64_t chunks = std::min<int64_t>({max_chunks, (rows + 31) / 32, int64_t{65535}});
  const int64_t chunk_rows = (rows + chunks - 1) / chunks;
  const int64_t col_blocks = (cols + kThreads - 1) / kThreads;
  LAUNCH(RmsNormGainPartialK,
         dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks)), kThreads, x, rstd,
         dy, impl_->scratch, rows, cols, chunk_rows);
  LAUNCH(RmsNormGainFinalK, col_blocks, kThreads, impl_->scratch, dgain, chunks, cols);
}

void CudaDevice::Rope(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t seq_len,
                      double theta, bool inverse) {
  const int64_t n = rows * heads * (head_dim / 2);
  if (n > 0) LAUNCH(RopeK, Blocks(n), kThreads, x, rows, heads, head_dim, seq_len, theta, inverse);
}

void CudaDevice::Softmax(float* x, int64_t rows, int64_t cols, bool causal) {
  if (rows > 0) LAUNCH(SoftmaxK, rows, kThreads, x, cols, causal);
}

void CudaDevice::SoftmaxBackward(const float* p, const float* dp, float* dx, int64_t rows,
                                 int64_t cols) {
  if (rows > 0) LAUNCH(SoftmaxBackwardK, rows, kThreads, p, dp, dx, cols);
}

void CudaDevice::SwiGluForward(const float* h1, const float* h3, float* out, int64_t n) {
  if (n > 0) LAUNCH(SwiGluForwardK, Blocks(n), kThreads, h1, h3, out, n);
}

void CudaDevice::SwiGluBackward(const float* h1, const float* h3, const float* dout, float* dh1,
                                float* dh3, int64_t n) {
  if (n > 0) LAUNCH(SwiGluBackwardK, Blocks(n), kThreads, h1, h3, dout, dh1, dh3, n);
}

void CudaDevice::GatherRows(const float* src, const int32_t* idx, const float* scale, float* out,
                            int64_t rows, int64_t cols) {
  if (rows * cols > 0)
    LAUNCH(GatherRowsK, Blocks(rows * cols), kThreads, src, idx, scale, out, rows, cols);
}

void CudaDevice::CombineRows(const float* src, const int32_t* pos, const float* w, float* out,
                             int64_t rows, int64_t k, int64_t cols, bool accumulate) {
  if (rows * cols > 0) {
    LAUNCH(CombineRowsK, Blocks(rows * cols), kThreads, src, pos, w, out, rows, k, cols,
           accumulate);
  }
}

void CudaDevice::GatherDot(const float* a, const int32_t* idx, const float* b, float* out,
                           int64_t rows, int64_t cols) {
  if (rows > 0) LAUNCH(GatherDotK, rows, 128, a, idx, b, out, cols);
}

void CudaDevice::ScatterAddRows(const float* src, const int32_t* ids, const int32_t* offsets,
                                const int32_t* pos, int64_t num_unique, float* table,
                                int64_t cols) {
  if (num_unique * cols > 0) {
    LAUNCH(ScatterAddRowsK, Blocks(num_unique * cols), kThreads, src, ids, offsets, pos, num_unique,
           table, cols);
  }
}

void CudaDevice::CrossEntropy(const float* logits, const int32_t* target, float* loss,
                              float* dlogits, int64_t rows, int64_t cols, double grad_scale) {
  if (rows > 0) {
    LAUNCH(CrossEntropyK, rows, kThreads, logits, target, loss, dlogits, cols,
           static_cast<float>(grad_scale));
  }
}

void CudaDevice::AdamW(float* p, const float* g, float* m, float* v, int64_t n, double lr,
                       double beta1, double beta2, double eps, double weight_decay,
                       double bias_correction1, double bias_correction2, double grad_scale) {
  if (n > 0) {
    LAUNCH(AdamWK, Blocks(n), kThreads, p, g, m, v, n, lr, beta1, beta2, eps, weight_decay,
           bias_correction1, bias_correction2, grad_scale);
  }
}

}  // namespace moesim::real
