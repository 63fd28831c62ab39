// device.h
//
// The one interface both compute backends implement. A layer (layers/) is written once against
// Device<T>: it allocates Tensors, calls the ops below in order, and never touches memory
// directly except through Download/Upload. CpuDevice<T> (kernels/cpu_device.h; T = float or
// double, Eigen GEMMs) and CudaDevice (kernels/cuda_device.h; T = float storage, cuBLAS GEMMs
// with bf16 compute and fp32 accumulation) implement it.
//
// Conventions:
//  - Matrices are row-major. Gemm computes C = alpha * op(A) * op(B) + beta * C with op(A)
//    m x k, op(B) k x n, C m x n; lda/ldb/ldc are row strides of the stored (untransposed)
//    matrices. beta == 0 overwrites C (NaN in C does not leak through).
//  - Every op is enqueued in order on one stream; ops may run asynchronously. Download and
//    Synchronize wait for everything enqueued before them.
//  - Index buffers are int32 on the device. A negative index means "no row" where an op says so.
//  - Errors: allocation returns an error Status that names the tensor and the bytes asked for.
//    An asynchronous failure (a kernel fault) is sticky and comes back from Synchronize().
//  - Ops are deterministic: the same inputs give the same bits on the same device (no atomics
//    on floating point; reductions have a fixed order).
// Thread safety: a Device is used by one thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace moesim::real {

// Memory, transfers, timing and errors: the part of a device that does not depend on the scalar.
class DeviceBase {
 public:
  virtual ~DeviceBase() = default;

  // "cpu (Eigen 3.4, fp32)" or "cuda:0 NVIDIA H100 80GB HBM3 (bf16 GEMM compute)".
  virtual std::string Name() const = 0;
  virtual bool IsGpu() const = 0;
  // Peak dense bf16 FLOP/s of the device if known (for MFU), else 0.
  virtual double PeakFlopsPerS() const { return 0; }

  // Zero-filled memory for `bytes` bytes. The error names `tensor` and the size.
  virtual Expected<void*> AllocateBytes(const std::string& tensor, int64_t bytes) = 0;
  virtual void FreeBytes(void* p) = 0;
  // Copies between host and device memory (both directions wait for earlier ops).
  virtual void UploadBytes(const void* host, void* device, int64_t bytes) = 0;
  virtual void DownloadBytes(const void* device, void* host, int64_t bytes) = 0;
  virtual void CopyBytes(const void* src, void* dst, int64_t bytes) = 0;

  // Records the time at which the ops enqueued so far have finished in timestamp `slot`.
  // ReadTimestamps(n) waits and returns slots 0..n-1 in seconds after slot 0.
  virtual void RecordTimestamp(int64_t slot) = 0;
  virtual Expected<std::vector<double>> ReadTimestamps(int64_t count) = 0;

  // Waits for every enqueued op; returns the first asynchronous error, if any.
  virtual Status Synchronize() = 0;
};

// A buffer of `size()` elements of E in one device's memory. Move-only; frees on destruction.
template <typename E>
class Tensor {
 public:
  Tensor() = default;
  static Expected<Tensor> Make(DeviceBase* dev, std::string name, int64_t count) {
    const int64_t n = count > 0 ? count : 1;
    Expected<void*> p = dev->AllocateBytes(name, n * static_cast<int64_t>(sizeof(E)));
    if (!p.ok()) return p.status();
    Tensor t;
    t.dev_ = dev;
    t.ptr_ = static_cast<E*>(*p);
    t.size_ = count;
    t.name_ = std::move(name);
    return t;
  }
  Tensor(Tensor&& o) noexcept { *this = std::move(o); }
  Tensor& operator=(Tensor&& o) noexcept {
    if (this != &o) {
      Reset();
      dev_ = std::exchange(o.dev_, nullptr);
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
      name_ = std::move(o.name_);
    }
    return *this;
  }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  ~Tensor() { Reset(); }

  E* data() { return ptr_; }
  const E* data() const { return ptr_; }
  int64_t size() const { return size_; }
  const std::string& name() const { return name_; }

  // REQUIRES: host.size() <= size().
  void Upload(const std::vector<E>& host) {
    if (!host.empty()) dev_->UploadBytes(host.data(), ptr_, Bytes(host.size()));
  }
  std::vector<E> Download() const { return Download(size_); }
  std::vector<E> Download(int64_t count) const {
    std::vector<E> host(static_cast<size_t>(count));
    if (count > 0) dev_->DownloadBytes(ptr_, host.data(), Bytes(host.size()));
    return host;
  }

 private:
  static int64_t Bytes(size_t n) { return static_cast<int64_t>(n * sizeof(E)); }
  void Reset() {
    if (ptr_ != nullptr) dev_->FreeBytes(ptr_);
    ptr_ = nullptr;
  }
  DeviceBase* dev_ = nullptr;
  E* ptr_ = nullptr;
  int64_t size_ = 0;
  std::string name_;
};

// The compute ops, on scalar T (the storage type of weights, activations and gradients).
template <typename T>
class Device : public DeviceBase {
 public:
  // C = alpha op(A) op(B) + beta C (see the conventions above).
  virtual void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                    const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
                    int64_t ldc) = 0;
  // `batch` independent GEMMs; matrix i of A starts at a + i * stride_a (likewise B, C).
  virtual void GemmStridedBatched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                  T alpha, const T* a, int64_t lda, int64_t stride_a, const T* b,
                                  int64_t ldb, int64_t stride_b, T beta, T* c, int64_t ldc,
                                  int64_t stride_c, int64_t batch) = 0;

  virtual void Fill(T* x, int64_t n, T value) = 0;
  virtual void Scale(T* x, int64_t n, T alpha) = 0;                 // x *= alpha
  virtual void Axpy(const T* x, T* y, int64_t n, T alpha) = 0;      // y += alpha x
  virtual void Add(const T* a, const T* b, T* out, int64_t n) = 0;  // out = a + b
  virtual double SumSquares(const T* x, int64_t n) = 0;             // waits; sum x^2
  virtual void Permute0213(const T* in, T* out, int64_t d0, int64_t d1, int64_t d2,
                           int64_t d3) = 0;  // out[a][c][b][d] = in[a][b][c][d]

  // y = x / rms(x) * gain per row; rstd[row] = 1 / sqrt(mean(x^2) + eps).
  virtual void RmsNormForward(const T* x, const T* gain, T* y, T* rstd, int64_t rows, int64_t cols,
                              double eps) = 0;
  // dx += d(norm)/dx . dy ; dgain += sum over rows of dy * x * rstd.
  virtual void RmsNormBackward(const T* x, const T* gain, const T* rstd, const T* dy, T* dx,
                               T* dgain, int64_t rows, int64_t cols) = 0;
  // Rotary position embedding in place on x [rows, heads * head_dim]; row r is at position
  // r % seq_len; pairs (2i, 2i+1) of each head rotate by pos * theta^(-2i/head_dim), or by
  // minus that angle when `inverse` (the backward of the forward rotation).
  virtual void Rope(T* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t seq_len,
                    double theta, bool inverse) = 0;
  // Row softmax in place. causal: row r may see columns 0..(r % cols); the rest become 0.
  virtual void Softmax(T* x, int64_t rows, int64_t cols, bool causal) = 0;
  // dx = p * (dp - sum(p * dp)) per row. dx may alias dp.
  virtual void SoftmaxBackward(const T* p, const T* dp, T* dx, int64_t rows, int64_t cols) = 0;
  // out = silu(h1) * h3.
  virtual void SwiGluForward(const T* h1, const T* h3, T* out, int64_t n) = 0;
  // dh1 = dout * h3 * silu'(h1); dh3 = dout * silu(h1). Outputs overwrite.
  virtual void SwiGluBackward(const T* h1, const T* h3, const T* dout, T* dh1, T* dh3,
                              int64_t n) = 0;

  // out[r] = scale[r] * src[idx[r]] (scale may be null = 1); idx[r] < 0 gives a zero row.
  virtual void GatherRows(const T* src, const int32_t* idx, const T* scale, T* out, int64_t rows,
                          int64_t cols) = 0;
  // out[n] (+)= sum_j w[n k + j] * src[pos[n k + j]] for j < k, skipping pos < 0 (w may be
  // null = 1). Overwrites out unless `accumulate`.
  virtual void CombineRows(const T* src, const int32_t* pos, const T* w, T* out, int64_t rows,
                           int64_t k, int64_t cols, bool accumulate) = 0;
  // out[r] = dot(a[idx[r]], b[r]) over `cols`.
  virtual void GatherDot(const T* a, const int32_t* idx, const T* b, T* out, int64_t rows,
                         int64_t cols) = 0;
  // Embedding gradient: for u < num_unique, table[ids[u]] += sum of src[pos[o]] over
  // o in [offsets[u], offsets[u+1]) in that order (deterministic, no atomics).
  virtual void ScatterAddRows(const T* src, const int32_t* ids, const int32_t* offsets,
                              const int32_t* pos, int64_t num_unique, T* table, int64_t cols) = 0;
  // Per row: loss[r] = logsumexp(logits[r]) - logits[r][target[r]]; dlogits = grad_scale *
  // (softmax - onehot). dlogits may alias logits. A target < 0 is ignored (loss 0, grad 0).
  virtual void CrossEntropy(const T* logits, const int32_t* target, T* loss, T* dlogits,
                            int64_t rows, int64_t cols, double grad_scale) = 0;
  // One AdamW step (decoupled weight decay) on n elements with the gradient multiplied by
  // grad_scale first: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
  // p -= lr * (m / bc1 / (sqrt(v / bc2) + eps) + wd p).
  virtual void AdamW(T* p, const T* g, T* m, T* v, int64_t n, double lr, double beta1, double beta2,
                     double eps, double weight_decay, double bias_correction1,
                     double bias_correction2, double grad_scale) = 0;
};

}  // namespace moesim::real
