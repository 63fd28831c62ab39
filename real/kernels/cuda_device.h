// cuda_device.h
//
// CudaDevice: Device<float> on one NVIDIA GPU. Storage is fp32 (weights, master weights,
// gradients, moments and activations); GEMMs go through cuBLAS (cublasGemmEx /
// cublasGemmStridedBatchedEx) with compute type CUBLAS_COMPUTE_32F_FAST_16BF in bf16 mode:
// operands are rounded to bf16 for the tensor cores and products accumulate in fp32 — bf16
// compute with fp32 master weights and fp32 accumulation, without keeping bf16 copies. In fp32
// mode (training.precision FP32) GEMMs use CUBLAS_COMPUTE_32F (no TF32). Every other op is a
// kernel of cuda_device.cu; reductions use fixed-shape trees and no floating-point atomics, so
// results are bit-reproducible on one GPU model.
//
// All work is enqueued on one stream in order; Download and Synchronize wait for it. Errors:
// AllocateBytes reports "CUDA out of memory allocating <tensor>: <bytes> bytes (<MiB>); <free>
// of <total> MiB free on cuda:<i>"; a failing launch or cuBLAS call is recorded (the first one
// wins) and returned by Synchronize(). Timestamps are CUDA events on the stream.
// This header needs no CUDA headers (the implementation is behind a pointer).
// Thread safety: one host thread per device.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "real/device.h"

namespace moesim::real {

class CudaDevice final : public Device<float> {
 public:
  // GPUs visible to this process; 0 with `why` set when there is no usable device or driver.
  static int DeviceCount(std::string* why);
  // Opens GPU `index`; bf16 = bf16 GEMM compute (else strict fp32).
  static Expected<std::unique_ptr<CudaDevice>> Create(int index, bool bf16);
  ~CudaDevice() override;

  std::string Name() const override;
  bool IsGpu() const override { return true; }
  int index() const;
  void* stream() const;  // cudaStream_t
  // Peak dense bf16 FLOP/s of known parts (H100/H200 SXM ...), 0 if unknown; for MFU.
  double PeakFlopsPerS() const override;

  Expected<void*> AllocateBytes(const std::string& tensor, int64_t bytes) override;
  void FreeBytes(void* p) override;
  void UploadBytes(const void* host, void* device, int64_t bytes) override;
  void DownloadBytes(const void* device, void* host, int64_t bytes) override;
  void CopyBytes(const void* src, void* dst, int64_t bytes) override;
  void RecordTimestamp(int64_t slot) override;
  Expected<std::vector<double>> ReadTimestamps(int64_t count) override;
  Status Synchronize() override;

  void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
            int64_t ldc) override;
  void GemmStridedBatched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, int64_t stride_a, const float* b,
                          int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc,
                          int64_t stride_c, int64_t batch) override;
  void Fill(float* x, int64_t n, float value) override;
  void Scale(float* x, int64_t n, float alpha) override;
  void Axpy(const float* x, float* y, int64_t n, float alpha) override;
  void Add(const float* a, const float* b, float* out, int64_t n) override;
  double SumSquares(const float* x, int64_t n) override;
  void Permute0213(const float* in, float* out, int64_t d0, int64_t d1, int64_t d2,
                   int64_t d3) override;
  void RmsNormForward(const float* x, const float* gain, float* y, float* rstd, int64_t rows,
                      int64_t cols, double eps) override;
  void RmsNormBackward(const float* x, const float* gain, const float* rstd, const float* dy,
                       float* dx, float* dgain, int64_t rows, int64_t cols) override;
  void Rope(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t seq_len, double theta,
            bool inverse) override;
  void Softmax(float* x, int64_t rows, int64_t cols, bool causal) override;
  void SoftmaxBackward(const float* p, const float* dp, float* dx, int64_t rows,
                       int64_t cols) override;
  void SwiGluForward(const float* h1, const float* h3, float* out, int64_t n) override;
  void SwiGluBackward(const float* h1, const float* h3, const float* dout, float* dh1, float* dh3,
                      int64_t n) override;
  void GatherRows(const float* src, const int32_t* idx, const float* scale, float* out,
                  int64_t rows, int64_t cols) override;
  void CombineRows(const float* src, const int32_t* pos, const float* w, float* out, int64_t rows,
                   int64_t k, int64_t cols, bool accumulate) override;
  void GatherDot(const float* a, const int32_t* idx, const float* b, float* out, int64_t rows,
                 int64_t cols) override;
  void ScatterAddRows(const float* src, const int32_t* ids, const int32_t* offsets,
                      const int32_t* pos, int64_t num_unique, float* table, int64_t cols) override;
  void CrossEntropy(const float* logits, const int32_t* target, float* loss, float* dlogits,
                    int64_t rows, int64_t cols, double grad_scale) override;
  void AdamW(float* p, const float* g, float* m, float* v, int64_t n, double lr, double beta1,
             double beta2, double eps, double weight_decay, double bias_correction1,
             double bias_correction2, double grad_scale) override;

  struct Impl;

 private:
  explicit CudaDevice(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moesim::real
