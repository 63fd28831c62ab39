// ffn.h
//
// SwiGLU feed-forward block (Shazeer 2020, as in LLaMA): out = (silu(x W1) * (x W3)) W2 with
// W1, W3 [d_model, hidden] and W2 [hidden, d_model]. Used for the dense FFN (op names
// "ffn.w1", "ffn.w3", "ffn.act", "ffn.w2") and for MoE shared experts ("moe.shared_w1" ...):
// `op_names` picks the names. Saved for backward: x W1, x W3 and the activation; the input is
// the caller's and must stay unchanged until Backward.
// Thread safety: one thread.
#pragma once

#include <cstdint>
#include <string>

#include "real/layers/context.h"
#include "real/layers/params.h"

namespace moesim::real {

struct FfnShape {
  int64_t tokens = 0;
  int64_t d_model = 0;
  int64_t hidden = 0;
};

template <typename T>
class SwiGluFfn {
 public:
  // Registers `param_prefix`.w1/.w3/.w2 (e.g. "layers.0.ffn"). op_names are the event names
  // of {w1, w3, act, w2}: kDenseFfnOps or kSharedExpertOps (static storage).
  SwiGluFfn(const FfnShape& s, const std::string& param_prefix, const char* op_names[4],
            int64_t layer, double std, double out_std, ParamSet<T>* params);
  Status AllocateActivations(DeviceBase* dev);
  int64_t ScratchElems() const;

  void Forward(Context<T>& ctx, const T* x, T* out);
  // dx (+)= d/dx (overwrites unless `accumulate`); adds weight gradients.
  void Backward(Context<T>& ctx, const T* dout, T* dx, bool accumulate);

 private:
  FfnShape s_;
  const char** names_;        // w1, w3, act, w2
  std::string bwd_names_[7];  // w2.dgrad, w2.wgrad, act.bwd, w1.wgrad, w1.dgrad, w3.wgrad, w3.dgrad
  int64_t layer_;
  ParamSet<T>* params_;
  int w1_, w3_, w2_;
  const T* input_ = nullptr;
  Tensor<T> h1_, h3_, act_;
};

inline const char* kDenseFfnOps[4] = {"ffn.w1", "ffn.w3", "ffn.act", "ffn.w2"};
inline const char* kSharedExpertOps[4] = {"moe.shared_w1", "moe.shared_w3", "moe.shared_act",
                                          "moe.shared_w2"};

extern template class SwiGluFfn<float>;
extern template class SwiGluFfn<double>;

}  // namespace moesim::real
