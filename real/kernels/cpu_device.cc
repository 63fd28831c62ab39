#include "real/kernels/cpu_device.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/system_memory.h"

namespace moesim::real {
namespace {

template <typename T>
using MatR = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const MatR<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using MutMap = Eigen::Map<MatR<T>, 0, Eigen::OuterStride<>>;

template <typename T>
void EigenGemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
               const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  MutMap<T> cm(c, m, n, Eigen::OuterStride<>(ldc));
  if (beta == T(0)) {
    cm.setZero();
  } else if (beta != T(1)) {
    cm *= beta;
  }
  if (k == 0) return;
  ConstMap<T> am(a, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
  ConstMap<T> bm(b, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
  if (!ta && !tb) {
    cm.noalias() += alpha * am * bm;
  } else if (ta && !tb) {
    cm.noalias() += alpha * am.transpose() * bm;
  } else if (!ta && tb) {
    cm.noalias() += alpha * am * bm.transpose();
  } else {
    cm.noalias() += alpha * am.transpose() * bm.transpose();
  }
}

template <typename T>
T Sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

}  // namespace

template <typename T>
std::string CpuDevice<T>::Name() const {
  return std::string("cpu (Eigen ") + std::to_string(EIGEN_WORLD_VERSION) + "." +
         std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION) +
         (sizeof(T) == 4 ? ", fp32)" : ", fp64)");
}

template <typename T>
Expected<void*> CpuDevice<T>::AllocateBytes(const std::string& tensor, int64_t bytes) {
  const auto rounded = static_cast<size_t>((std::max<int64_t>(bytes, 1) + 63) / 64 * 64);
  const double physical = PhysicalMemoryBytes();
  const double total = static_cast<double>(allocated_bytes_) + static_cast<double>(rounded);
  void* p = physical > 0 && total > physical ? nullptr : std::aligned_alloc(64, rounded);
  if (p == nullptr) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), " (%.1f MiB); %.1f MiB already allocated, %.1f MiB physical",
                  static_cast<double>(bytes) / (1 << 20),
                  static_cast<double>(allocated_bytes_) / (1 << 20), physical / (1 << 20));
    return Status::Internal("out of host memory allocating " + tensor + ": " +
                            std::to_string(bytes) + " bytes" + buf);
  }
  std::memset(p, 0, rounded);
  allocated_bytes_ += static_cast<int64_t>(rounded);
  sizes_.emplace_back(p, static_cast<int64_t>(rounded));
  return p;
}

template <typename T>
void CpuDevice<T>::FreeBytes(void* p) {
  for (size_t i = sizes_.size(); i-- > 0;) {
    if (sizes_[i].first == p) {
      allocated_bytes_ -= sizes_[i].second;
      sizes_[i] = sizes_.back();
      sizes_.pop_back();
      break;
    }
  }
  std::free(p);
}

template <typename T>
void CpuDevice<T>::UploadBytes(const void* host, void* device, int64_t bytes) {
  std::memcpy(device, host, static_cast<size_t>(bytes));
}

template <typename T>
void CpuDevice<T>::DownloadBytes(const void* device, void* host, int64_t bytes) {
  std::memcpy(host, device, static_cast<size_t>(bytes));
}

template <typename T>
void CpuDevice<T>::CopyBytes(const void* src, void* dst, int64_t bytes) {
  std::memmove(dst, src, static_cast<size_t>(bytes));
}

template <typename T>
void CpuDevice<T>::RecordTimestamp(int64_t slot) {
  if (static_cast<size_t>(slot) >= stamps_.size()) stamps_.resize(static_cast<size_t>(slot) + 1);
  stamps_[static_cast<size_t>(slot)] = std::chrono::steady_clock::now();
}

template <typename T>
Expected<std::vector<double>> CpuDevice<T>::ReadTimestamps(int64_t count) {
  if (count < 0 || static_cast<size_t>(count) > stamps_.size()) {
    return Status::Internal("ReadTimestamps: " + std::to_string(count) + " slots asked, " +
                            std::to_string(stamps_.size()) + " recorded");
  }
  std::vector<double> out(static_cast<size_t>(count));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = std::chrono::duration<double>(stamps_[i] - stamps_[0]).count();
  }
  return out;
}

template <typename T>
void CpuDevice<T>::Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                        const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
                        int64_t ldc) {
  if (m == 0 || n == 0) return;
  EigenGemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <typename T>
void CpuDevice<T>::GemmStridedBatched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                      T alpha, const T* a, int64_t lda, int64_t stride_a,
                                      const T* b, int64_t ldb, int64_t stride_b, T beta, T* c,
                                      int64_t ldc, int64_t stride_c, int64_t batch) {
  if (m == 0 || n == 0) return;
  for (int64_t i = 0; i < batch; ++i) {
    EigenGemm(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta,
              c + i * stride_c, ldc);
  }
}

template <typename T>
void CpuDevice<T>::Fill(T* x, int64_t n, T value) {
  std::fill(x, x + n, value);
}

template <typename T>
void CpuDevice<T>::Scale(T* x, int64_t n, T alpha) {
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}

template <typename T>
void CpuDevice<T>::Axpy(const T* x, T* y, int64_t n, T alpha) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <typename T>
void CpuDevice<T>::Add(const T* a, const T* b, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename T>
double CpuDevice<T>::SumSquares(const T* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}

template <typename T>
void CpuDevice<T>::Permute0213(const T* in, T* out, int64_t d0, int64_t d1, int64_t d2,
                               int64_t d3) {
  for (int64_t a = 0; a < d0; ++a) {
    for (int64_t b = 0; b < d1; ++b) {
      for (int64_t c = 0; c < d2; ++c) {
        const T* src = in + ((a * d1 + b) * d2 + c) * d3;
        T* dst = out + ((a * d2 + c) * d1 + b) * d3;
        std::copy(src, src + d3, dst);
      }
    }
  }
}

template <typename T>
void CpuDevice<T>::RmsNormForward(const T* x, const T* gain, T* y, T* rstd, int64_t rows,
                                  int64_t cols, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += static_cast<double>(xr[c]) * xr[c];
    const T rs = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(cols) + eps));
    rstd[r] = rs;
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = xr[c] * rs * gain[c];
  }
}

template <typename T>
void CpuDevice<T>::RmsNormBackward(const T* x, const T* gain, const T* rstd, const T* dy, T* dx,
                                   T* dgain, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    const T rs = rstd[r];
    double dot = 0;  // sum_j dy_j g_j x_j
    for (int64_t c = 0; c < cols; ++c) {
      dot += static_cast<double>(dyr[c]) * gain[c] * xr[c];
      dgain[c] += dyr[c] * xr[c] * rs;
    }
    const T coef = static_cast<T>(dot * rs * rs * rs / static_cast<double>(cols));
    for (int64_t c = 0; c < cols; ++c) dx[r * cols + c] += rs * gain[c] * dyr[c] - coef * xr[c];
  }
}

template <typename T>
void CpuDevice<T>::Rope(T* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t seq_len,
                        double theta, bool inverse) {
  const int64_t half = head_dim / 2;
  const int64_t positions = std::min(rows, seq_len);
  // cos/sin per (position, pair), computed in double.
  std::vector<T> cs(static_cast<size_t>(positions * half)), sn(cs.size());
  for (int64_t i = 0; i < half; ++i) {
    const double freq =
        std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    for (int64_t p = 0; p < positions; ++p) {
      const double angle = static_cast<double>(p) * freq;
      cs[static_cast<size_t>(p * half + i)] = static_cast<T>(std::cos(angle));
      sn[static_cast<size_t>(p * half + i)] =
          static_cast<T>(inverse ? -std::sin(angle) : std::sin(angle));
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const T* c = cs.data() + (r % seq_len) * half;
    const T* s = sn.data() + (r % seq_len) * half;
    for (int64_t h = 0; h < heads; ++h) {
      T* v = x + (r * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const T a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c[i] - b * s[i];
        v[2 * i + 1] = a * s[i] + b * c[i];
      }
    }
  }
}

template <typename T>
void CpuDevice<T>::Softmax(T* x, int64_t rows, int64_t cols, bool causal) {
  for (int64_t r = 0; r < rows; ++r) {
    T* xr = x + r * cols;
    const int64_t valid = causal ? (r % cols) + 1 : cols;
    T mx = xr[0];
    for (int64_t c = 1; c < valid; ++c) mx = std::max(mx, xr[c]);
    double sum = 0;
    for (int64_t c = 0; c < valid; ++c) {
      xr[c] = std::exp(xr[c] - mx);
      sum += xr[c];
    }
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t c = 0; c < valid; ++c) xr[c] *= inv;
    for (int64_t c = valid; c < cols; ++c) xr[c] = T(0);
  }
}

template <typename T>
void CpuDevice<T>::SoftmaxBackward(const T* p, const T* dp, T* dx, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* pr = p + r * cols;
    const T* dpr = dp + r * cols;
    double dot = 0;
    for (int64_t c = 0; c < cols; ++c) dot += static_cast<double>(pr[c]) * dpr[c];
    const T d = static_cast<T>(dot);
    for (int64_t c = 0; c < cols; ++c) dx[r * cols + c] = pr[c] * (dpr[c] - d);
  }
}

template <typename T>
void CpuDevice<T>::SwiGluForward(const T* h1, const T* h3, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = h1[i] * Sigmoid(h1[i]) * h3[i];
}

template <typename T>
void CpuDevice<T>::SwiGluBackward(const T* h1, const T* h3, const T* dout, T* dh1, T* dh3,
                                  int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T s = Sigmoid(h1[i]);
    const T silu = h1[i] * s;
    const T d = dout[i];
    dh1[i] = d * h3[i] * s * (T(1) + h1[i] * (T(1) - s));
    dh3[i] = d * silu;
  }
}

template <typename T>
void CpuDevice<T>::GatherRows(const T* src, const int32_t* idx, const T* scale, T* out,
                              int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    T* o = out + r * cols;
    if (idx[r] < 0) {
      std::fill(o, o + cols, T(0));
      continue;
    }
    const T* s = src + static_cast<int64_t>(idx[r]) * cols;
    const T w = scale != nullptr ? scale[r] : T(1);
    for (int64_t c = 0; c < cols; ++c) o[c] = w * s[c];
  }
}

template <typename T>
void CpuDevice<T>::CombineRows(const T* src, const int32_t* pos, const T* w, T* out, int64_t rows,
                               int64_t k, int64_t cols, bool accumulate) {
  for (int64_t r = 0; r < rows; ++r) {
    T* o = out + r * cols;
    if (!accumulate) std::fill(o, o + cols, T(0));
    for (int64_t j = 0; j < k; ++j) {
      const int32_t p = pos[r * k + j];
      if (p < 0) continue;
      const T* s = src + static_cast<int64_t>(p) * cols;
      const T wj = w != nullptr ? w[r * k + j] : T(1);
      for (int64_t c = 0; c < cols; ++c) o[c] += wj * s[c];
    }
  }
}

template <typename T>
void CpuDevice<T>::GatherDot(const T* a, const int32_t* idx, const T* b, T* out, int64_t rows,
                             int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* ar = a + static_cast<int64_t>(idx[r]) * cols;
    const T* br = b + r * cols;
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) s += static_cast<double>(ar[c]) * br[c];
    out[r] = static_cast<T>(s);
  }
}

template <typename T>
void CpuDevice<T>::ScatterAddRows(const T* src, const int32_t* ids, const int32_t* offsets,
                                  const int32_t* pos, int64_t num_unique, T* table, int64_t cols) {
  for (int64_t u = 0; u < num_unique; ++u) {
    T* dst = table + static_cast<int64_t>(ids[u]) * cols;
    for (int32_t o = offsets[u]; o < offsets[u + 1]; ++o) {
      const T* s = src + static_cast<int64_t>(pos[o]) * cols;
      for (int64_t c = 0; c < cols; ++c) dst[c] += s[c];
    }
  }
}

template <typename T>
void CpuDevice<T>::CrossEntropy(const T* logits, const int32_t* target, T* loss, T* dlogits,
                                int64_t rows, int64_t cols, double grad_scale) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* lr = logits + r * cols;
    T* dr = dlogits + r * cols;  // may alias lr: each element is read before it is written
    const int32_t t = target[r];
    if (t < 0) {
      loss[r] = T(0);
      std::fill(dr, dr + cols, T(0));
      continue;
    }
    const double target_logit = static_cast<double>(lr[t]);
    T mx = lr[0];
    for (int64_t c = 1; c < cols; ++c) mx = std::max(mx, lr[c]);
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double e = std::exp(static_cast<double>(lr[c] - mx));
      dr[c] = static_cast<T>(e);
      sum += e;
    }
    loss[r] = static_cast<T>(static_cast<double>(mx) + std::log(sum) - target_logit);
    const double scale = grad_scale / sum;
    for (int64_t c = 0; c < cols; ++c) dr[c] = static_cast<T>(scale * static_cast<double>(dr[c]));
    dr[t] = static_cast<T>(static_cast<double>(dr[t]) - grad_scale);
  }
}

template <typename T>
void CpuDevice<T>::AdamW(T* p, const T* g, T* m, T* v, int64_t n, double lr, double beta1,
                         double beta2, double eps, double weight_decay, double bias_correction1,
                         double bias_correction2, double grad_scale) {
  for (int64_t i = 0; i < n; ++i) {
    const double gi = static_cast<double>(g[i]) * grad_scale;
    const double mi = beta1 * static_cast<double>(m[i]) + (1 - beta1) * gi;
    const double vi = beta2 * static_cast<double>(v[i]) + (1 - beta2) * gi * gi;
    m[i] = static_cast<T>(mi);
    v[i] = static_cast<T>(vi);
    const double update = (mi / bias_correction1) / (std::sqrt(vi / bias_correction2) + eps) +
                          weight_decay * static_cast<double>(p[i]);
    p[i] = static_cast<T>(static_cast<double>(p[i]) - lr * update);
  }
}

template class CpuDevice<float>;
template class CpuDevice<double>;

}  // namespace moesim::real
