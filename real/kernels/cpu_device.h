// cpu_device.h
//
// CpuDevice<T>: the Device<T> ops on the host, T = float (training) or double (the gradient
// checks of tests/real). GEMMs are Eigen products over row-major maps; everything else is plain
// loops in a fixed order, so results are bit-reproducible on one machine. Ops run synchronously;
// timestamps come from std::chrono::steady_clock. Memory is 64-byte aligned and zero-filled;
// an allocation that would take this device past the machine's physical memory fails with a
// message naming the tensor (rather than letting the kernel's OOM killer end the process).
// Thread safety: one thread per device (Eigen runs single-threaded unless built with OpenMP).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "real/device.h"

namespace moesim::real {

template <typename T>
class CpuDevice final : public Device<T> {
 public:
  CpuDevice() = default;

  std::string Name() const override;
  bool IsGpu() const override { return false; }
  Expected<void*> AllocateBytes(const std::string& tensor, int64_t bytes) override;
  void FreeBytes(void* p) override;
  void UploadBytes(const void* host, void* device, int64_t bytes) override;
  void DownloadBytes(const void* device, void* host, int64_t bytes) override;
  void CopyBytes(const void* src, void* dst, int64_t bytes) override;
  void RecordTimestamp(int64_t slot) override;
  Expected<std::vector<double>> ReadTimestamps(int64_t count) override;
  Status Synchronize() override { return Status::Ok(); }

  void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
            int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) override;
  void GemmStridedBatched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                          const T* a, int64_t lda, int64_t stride_a, const T* b, int64_t ldb,
                          int64_t stride_b, T beta, T* c, int64_t ldc, int64_t stride_c,
                          int64_t batch) override;
  void Fill(T* x, int64_t n, T value) override;
  void Scale(T* x, int64_t n, T alpha) override;
  void Axpy(const T* x, T* y, int64_t n, T alpha) override;
  void Add(const T* a, const T* b, T* out, int64_t n) override;
  double SumSquares(const T* x, int64_t n) override;
  void Permute0213(const T* in, T* out, int64_t d0, int64_t d1, int64_t d2, int64_t d3) override;
  void RmsNormForward(const T* x, const T* gain, T* y, T* rstd, int64_t rows, int64_t cols,
                      double eps) override;
  void RmsNormBackward(const T* x, const T* gain, const T* rstd, const T* dy, T* dx, T* dgain,
                       int64_t rows, int64_t cols) override;
  void Rope(T* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t seq_len, double theta,
            bool inverse) override;
  void Softmax(T* x, int64_t rows, int64_t cols, bool causal) override;
  void SoftmaxBackward(const T* p, const T* dp, T* dx, int64_t rows, int64_t cols) override;
  void SwiGluForward(const T* h1, const T* h3, T* out, int64_t n) override;
  void SwiGluBackward(const T* h1, const T* h3, const T* dout, T* dh1, T* dh3, int64_t n) override;
  void GatherRows(const T* src, const int32_t* idx, const T* scale, T* out, int64_t rows,
                  int64_t cols) override;
  void CombineRows(const T* src, const int32_t* pos, const T* w, T* out, int64_t rows, int64_t k,
                   int64_t cols, bool accumulate) override;
  void GatherDot(const T* a, const int32_t* idx, const T* b, T* out, int64_t rows,
                 int64_t cols) override;
  void ScatterAddRows(const T* src, const int32_t* ids, const int32_t* offsets, const int32_t* pos,
                      int64_t num_unique, T* table, int64_t cols) override;
  void CrossEntropy(const T* logits, const int32_t* target, T* loss, T* dlogits, int64_t rows,
                    int64_t cols, double grad_scale) override;
  void AdamW(T* p, const T* g, T* m, T* v, int64_t n, double lr, double beta1, double beta2,
             double eps, double weight_decay, double bias_correction1, double bias_correction2,
             double grad_scale) override;

  // Bytes of live allocations (each rounded up to 64).
  int64_t allocated_bytes() const { return allocated_bytes_; }

 private:
  std::vector<std::chrono::steady_clock::time_point> stamps_;
  int64_t allocated_bytes_ = 0;
  std::vector<std::pair<void*, int64_t>> sizes_;  // live allocations (few, long-lived)
};

extern template class CpuDevice<float>;
extern template class CpuDevice<double>;

}  // namespace moesim::real
