// context.h
//
// What every layer's forward and backward receive: the device that runs the ops, the
// communicator (null on one rank), the profiler (null when not timing) and a scratch
// Workspace for temporaries that do not outlive one layer's backward.
//
// Workspace is a bump allocator over one device buffer: Take() hands out the next `count`
// elements, Mark()/Release() return to an earlier point. Contents of taken memory are
// undefined. Layers report the most they Take() at once (ScratchElems) and the model sizes the
// workspace as the maximum, so Take() never fails in a well-formed model (it aborts via an
// Internal status kept in `overflow` when it would).
// Thread safety: one thread.
#pragma once

#include <cstdint>
#include <string>

#include "real/comm/comm.h"
#include "real/device.h"
#include "real/profiler.h"

namespace moesim::real {

template <typename T>
class Workspace {
 public:
  Status Allocate(DeviceBase* dev, int64_t elems) {
    Expected<Tensor<T>> t = Tensor<T>::Make(dev, "workspace", elems);
    if (!t.ok()) return t.status();
    buf_ = std::move(*t);
    used_ = 0;
    return Status::Ok();
  }
  // REQUIRES: the workspace was sized for it (see above).
  T* Take(int64_t count) {
    const int64_t aligned = (count + 15) / 16 * 16;  // 64-byte alignment for floats
    if (used_ + aligned > buf_.size()) {
      overflow_ = true;
      used_ = 0;  // keep going on garbage; the caller checks overflow() and fails the step
    }
    T* p = buf_.data() + used_;
    used_ += aligned;
    return p;
  }
  int64_t Mark() const { return used_; }
  void Release(int64_t mark) { used_ = mark; }
  bool overflow() const { return overflow_; }
  // Elements Take(count) uses, for sizing.
  static int64_t Footprint(int64_t count) { return (count + 15) / 16 * 16; }

 private:
  Tensor<T> buf_;
  int64_t used_ = 0;
  bool overflow_ = false;
};

template <typename T>
struct Context {
  Device<T>* dev = nullptr;
  Comm* comm = nullptr;      // null: one rank, no expert parallelism
  Profiler* prof = nullptr;  // null: no op timing
  Workspace<T>* ws = nullptr;
  double loss_scale = 1.0;  // multiplies the MoE auxiliary-loss gradients (micro-batching)
};

// 2 m n k: FLOPs of one GEMM.
inline double GemmFlops(int64_t m, int64_t n, int64_t k) {
  return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
}

}  // namespace moesim::real
