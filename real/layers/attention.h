// attention.h
//
// Causal multi-head self-attention with rotary position embeddings (RoPE) and grouped-query
// heads (num_kv_heads divides num_heads; query head h reads kv head h / (heads / kv_heads)).
// Input: the normed activations a [tokens, d_model], tokens = batch x seq, sequence-major.
//
//   q = a Wq [tokens, heads*head_dim]   k = a Wk, v = a Wv [tokens, kv_heads*head_dim]
//   q, k rotated by RoPE; laid out head-major [batch, heads, seq, head_dim]
//   P = causal_softmax(q k^T / sqrt(head_dim))     [batch, heads, seq, seq]
//   out = concat_heads(P v) Wo                     [tokens, d_model]
//
// Grouped heads need no copies: in the head-major layout the r = heads/kv_heads query heads of
// one kv head are contiguous, so their scores are one GEMM of [(r seq) x head_dim] by
// [head_dim x seq], batched over (batch, kv head); the backward's dK and dV contract over the
// r seq rows and so sum the group's contributions for free.
// Saved for backward: q, k, v (head-major, rotated), P, the context; the input is the
// caller's (it must stay unchanged until Backward). Op names follow costmodel/layers.h.
// Thread safety: one thread.
#pragma once

#include <cstdint>

#include "real/layers/context.h"
#include "real/layers/params.h"

namespace moesim::real {

struct AttentionShape {
  int64_t batch = 0;  // sequences
  int64_t seq = 0;
  int64_t d_model = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  double rope_theta = 10000.0;
  int64_t tokens() const { return batch * seq; }
};

template <typename T>
class Attention {
 public:
  // Registers Wq, Wk, Wv, Wo under `prefix` ("layers.3.attn"). out_std: Wo's init std.
  Attention(const AttentionShape& s, const std::string& prefix, int64_t layer, double std,
            double out_std, ParamSet<T>* params);
  Status AllocateActivations(DeviceBase* dev);
  int64_t ScratchElems() const;

  // out = attention(a). REQUIRES: a stays unchanged until Backward.
  void Forward(Context<T>& ctx, const T* a, T* out);
  // da (+)= d/da given dout (overwrites da unless `accumulate`); adds weight gradients.
  void Backward(Context<T>& ctx, const T* dout, T* da, bool accumulate);

 private:
  AttentionShape s_;
  int64_t layer_;
  ParamSet<T>* params_;
  int wq_, wk_, wv_, wo_;
  const T* input_ = nullptr;
  Tensor<T> q_, k_, v_, probs_, context_;  // q/k/v/probs head-major; context token-major
};

extern template class Attention<float>;
extern template class Attention<double>;

}  // namespace moesim::real
