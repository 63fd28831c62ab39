// params.h
//
// ParamSet: every trainable tensor of a model in one flat device buffer, with gradients and the
// two AdamW moments in buffers of the same layout. Dense tensors (replicated on every rank)
// come first, expert tensors (sharded over the Expert axis, replicated over Data) after them,
// so gradient synchronization is two contiguous all-reduces: dense over the world, experts over
// the Data group.
//
// Layers Add() their tensors while being built, then the model calls Allocate() once and
// Initialize(seed). A tensor's initial values depend only on (seed, name, global expert index):
// a rank holding experts 4..7 gets exactly the values a single rank holding all experts has for
// them, which is what makes 1-rank and N-rank runs comparable.
// Thread safety: one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "real/device.h"

namespace moesim::real {

enum class ParamKind { kDense, kExpert };
enum class ParamInit { kNormal, kOnes };

struct ParamEntry {
  std::string name;  // "layers.3.moe.w1"
  ParamKind kind = ParamKind::kDense;
  int64_t count = 0;              // elements on this rank (all local experts)
  int64_t num_local_experts = 1;  // expert tensors: [num_local_experts, ...]
  int64_t first_expert = 0;       // global index of the first local expert
  bool decay = true;              // AdamW weight decay applies (matrices, not norm gains)
  ParamInit init = ParamInit::kNormal;
  double std = 0.02;
  int64_t offset = -1;  // into the flat buffers; set by Allocate()
};

template <typename T>
class ParamSet {
 public:
  // Registers a tensor; returns its handle. REQUIRES: before Allocate().
  int Add(ParamEntry e);
  // Lays out dense tensors then expert tensors and allocates parameters, gradients, moments.
  Status Allocate(DeviceBase* dev);
  // Fills parameters from `seed` (see above); zeroes gradients and moments.
  void Initialize(Device<T>* dev, uint64_t seed);

  T* param(int h) { return params_.data() + entries_[static_cast<size_t>(h)].offset; }
  T* grad(int h) { return grads_.data() + entries_[static_cast<size_t>(h)].offset; }
  const ParamEntry& entry(int h) const { return entries_[static_cast<size_t>(h)]; }
  const std::vector<ParamEntry>& entries() const { return entries_; }

  Tensor<T>& params() { return params_; }
  Tensor<T>& grads() { return grads_; }
  Tensor<T>& moment1() { return m_; }
  Tensor<T>& moment2() { return v_; }
  int64_t dense_count() const { return dense_count_; }    // elements [0, dense_count)
  int64_t expert_count() const { return expert_count_; }  // elements after the dense ones
  int64_t total_count() const { return dense_count_ + expert_count_; }

 private:
  std::vector<ParamEntry> entries_;
  Tensor<T> params_, grads_, m_, v_;
  int64_t dense_count_ = 0, expert_count_ = 0;
};

extern template class ParamSet<float>;
extern template class ParamSet<double>;

}  // namespace moesim::real
