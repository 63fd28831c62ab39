// layers.h
//
// The transformer, written down once: for each layer kind, its weight tensors, its forward
// matmuls as einsums, and the activations it saves for backward. Dense GPT blocks (LayerNorm,
// GELU FFN, learned positions, biases) and LLaMA blocks (RMSNorm, SwiGLU, RoPE, grouped-query
// attention) differ only in the pieces selected by ModelSpec. Everything else in costmodel/
// (parameters, FLOPs, memory) is derived from these lists, never from separate formulas.
//
// Einsum labels: b batch (sequences), s query positions, t key positions, m d_model, k kv heads,
// r query heads per kv head, d head_dim, f d_ff, v vocab, e experts, x expert slots (tokens x
// top_k routed, or E x C padded), h expert d_ff, y shared-expert hidden (n_shared x h), i an MTP
// module's concatenated input (2 x d_model); MLA's labels are in mla.h.
#pragma once

#include <vector>

#include "costmodel/einsum.h"
#include "proto/scenario.h"

namespace moesim {

enum class LayerKind { kDense, kMoe };

// Weights of one transformer layer. `num_experts` may exceed the model's (padding).
std::vector<TensorDesc> LayerWeights(const ModelSpec& m, LayerKind kind, int64_t num_experts,
                                     int64_t bytes_per_element);
// Token/position embeddings, final norm and the output projection (absent when tied).
std::vector<TensorDesc> EmbeddingWeights(const ModelSpec& m, int64_t bytes_per_element);

// A multi-token prediction module's own weights besides its transformer layer (ModelSpec::
// MtpLayerIsMoe() says that layer's kind): the norms of the hidden state and of the embedding,
// the projection [2 x d_model -> d_model], the final norm. Embedding and head are shared.
std::vector<TensorDesc> MtpWeights(const ModelSpec& m, int64_t bytes_per_element);

// Forward matmuls of one layer / of the output head / of an MTP module's projection (its layer
// and head are LayerForwardEinsums and HeadForwardEinsums).
std::vector<Einsum> LayerForwardEinsums(const ModelSpec& m, LayerKind kind);
std::vector<Einsum> HeadForwardEinsums();
std::vector<Einsum> MtpForwardEinsums();
// Label sizes for `batch` sequences of `seq` tokens; `expert_slots` sizes label x.
DimSizes LabelSizes(const ModelSpec& m, double batch, double seq, double expert_slots);
// The einsums that recomputation of attention scores/softmax (SELECTIVE) repeats.
bool IsAttentionCore(const Einsum& e);

// Shape of one micro-batch's activations.
struct ActivationShape {
  int64_t batch = 0;       // sequences in the micro-batch, over all batch shards
  int64_t seq = 0;         // tokens per sequence
  int64_t outer = 1;       // MoE: outer batches O
  int64_t groups = 0;      // MoE: groups G per outer batch, in this micro-batch
  int64_t group_size = 0;  // MoE: tokens S per group
  int64_t capacity = 0;    // MoE: expert capacity C per group
};

// Why a saved activation is kept, which decides what recomputation drops.
enum class SavedKind {
  kLayerInput,     // kept under every recompute setting
  kAttentionCore,  // attention probabilities: dropped by SELECTIVE and FULL
  kOther,          // dropped by FULL
};

struct SavedTensor {
  TensorDesc tensor;
  SavedKind kind;
};

// Activations of one layer kept for backward (no recomputation), for one micro-batch.
std::vector<SavedTensor> LayerSavedActivations(const ModelSpec& m, LayerKind kind,
                                               const ActivationShape& shape,
                                               const TrainingSpec& training);
// One multi-token prediction module's saved activations: the inputs of its two norms, the
// projection's input [2 x d_model], its transformer layer's set (LayerSavedActivations of the
// kind ModelSpec::MtpLayerIsMoe() gives) and its final norm's input. Its logits are
// LogitsActivation's size.
std::vector<SavedTensor> MtpSavedActivations(const ModelSpec& m, const ActivationShape& shape,
                                             const TrainingSpec& training);
// The output head's fp32 logits, kept for the cross-entropy backward.
TensorDesc LogitsActivation(const ModelSpec& m, const ActivationShape& shape);

// Expert capacity C = ceil(capacity_factor x [top_k] x group_size / num_experts), top_k counted
// or not as moe.capacity_per_routed_token says.
int64_t ExpertCapacity(const MoeSpec& moe, int64_t group_size);

int64_t ActivationBytes(const TrainingSpec& t);  // 2 in BF16_MIXED, 4 in FP32

}  // namespace moesim
