// mla.h (internal to costmodel/)
//
// Multi-head Latent Attention (DeepSeek-V2, arXiv 2405.04434 sec 2.1; DeepSeek-V3, arXiv
// 2412.19437 sec 2.1): the attention block's entries of the layer catalogue (layers.h) when
// ModelSpec::mla is enabled. layers.cc calls these three functions and nothing else writes an
// MLA formula: parameters, FLOPs and memory all come from these lists.
//
// For one token x [d_model], with the sizes of ModelSpec::mla (the matrices are those of
// DeepSeek-V3's Hugging Face modeling_deepseek.py: q_a_proj, q_a_layernorm, q_b_proj,
// kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj):
//   c_q  = RMSNorm(x W_DQ)                      [q_lora_rank]       (W_DQ absent when rank 0)
//   q    = c_q W_UQ (or x W_Q), rope part rotated  [heads, qk_nope + qk_rope]
//   c_kv = RMSNorm(x W_DKV)                     [kv_lora_rank]
//   k_r  = RoPE(x W_KR)                         [qk_rope], one key part shared by every head
//   k    = [c_kv W_UK, k_r]                     [heads, qk_nope + qk_rope]
//   v    = c_kv W_UV                            [heads, v_head_dim]
//   out  = softmax(q k^T) v  [heads, v_head_dim] W_O -> [d_model]
// (HF stores W_DKV and W_KR as one matrix, kv_a_proj_with_mqa [d_model, kv_lora + qk_rope], and
// W_UK, W_UV as one, kv_b_proj; the parameters and FLOPs are the same either way.)
//
// Invariants: every projection weight has one forward einsum whose FLOPs per token are 2 x its
// elements; the scores and context einsums run over the full sequence (no causal halving, as
// layers.h counts); the latent norms are RMSNorm scales (DeepSeek's), whatever model.norm_kind.
// No attention biases.
//
// Einsum labels, besides layers.h's b, s, t, m: a heads, q q_lora_rank, c kv_lora_rank,
// p qk_rope_head_dim, n qk_nope_head_dim, j qk head dim (n + p), w v_head_dim.
// Logical dims for sharding: heads, head_dim, embed, and "latent" for both latent ranks. Tensor
// parallelism shards heads; the down projections W_DQ, W_DKV, W_KR and the latent norms have no
// heads dim, so they are replicated over it, as Megatron-Core builds them (plain duplicated
// linears for linear_q_down_proj / linear_kv_down_proj, megatron/core/models/gpt/
// gpt_layer_specs.py). The presets shard "latent" of weights like "embed" (FSDP), never over TP.
// Units: sizes in elements; bytes = elements x bytes_per_element.
#pragma once

#include <vector>

#include "costmodel/einsum.h"
#include "costmodel/layers.h"

namespace moesim {

// The attention weights after the block's input norm. REQUIRES: m.mla.enabled.
std::vector<TensorDesc> MlaWeights(const ModelSpec& m, int64_t bytes_per_element);
// Forward matmuls of the attention block, named attn.* (attn.scores and attn.context are the
// attention core, as for multi-head attention).
std::vector<Einsum> MlaForwardEinsums(const ModelSpec& m);
// Adds the MLA labels (a, q, c, p, n, j, w) at their full sizes.
void AddMlaLabelSizes(const ModelSpec& m, DimSizes* sizes);
// The attention block's saved activations after the block input and its norm: the latents (and
// their normed copies), q, k, v per head, the softmax statistics (or probabilities), the context.
void AddMlaSavedActivations(const ModelSpec& m, const ActivationShape& shape,
                            const TrainingSpec& training, std::vector<SavedTensor>* out);

}  // namespace moesim
