// memory.h
//
// Per-device memory of one training step under a sharding, from the layer catalogue:
//   weights    local elements x (2 bytes bf16 | 4 fp32)
//   grads      as the weights (sharded like them: FSDP reduce-scatters, DP keeps them whole)
//   optimizer  AdamW: fp32 master + two fp32 moments = 12 bytes/param in BF16_MIXED, 8 in FP32
//              (moments only); SGD: master + momentum = 8 / 4. Sharded like the weights, and
//              with shard_optimizer_over_data (ZeRO-1) also over the devices holding replicas.
//   activations  what each layer saves for backward (recompute setting applied), times the
//              micro-batches in flight on the stage (1 without pipelining; the schedule's count
//              with it), plus the fp32 logits on the last stage. MoE layers' saved tensors
//              include their dispatch buffers sized by capacity.
// With pipeline stages every stage is evaluated with its own layers (training.pipeline_layout)
// and the largest is reported.
#pragma once

#include <string>
#include <vector>

#include "proto/scenario.h"

namespace moesim {

struct TensorReport {
  std::string group;  // "dense layer", "moe layer", "embeddings", "dense layer activations", ...
  std::string name;
  TensorClass tensor_class;
  std::vector<int64_t> global_shape;
  std::vector<int64_t> local_shape;
  std::vector<std::string> dims;  // logical names
  double local_bytes = 0;
};

struct MemoryReport {
  double weights_bytes = 0;
  double grads_bytes = 0;
  double optimizer_bytes = 0;
  double activations_bytes = 0;   // saved activations of all in-flight micro-batches
  double logits_bytes = 0;        // fp32 logits of one micro-batch (last stage)
  double moe_dispatch_bytes = 0;  // one MoE layer's dispatch buffers, one micro-batch
  // The most live at once: weights, grads, optimizer state, the saved activations and the
  // logits; with FULL recomputation the recomputed layer's set and the logits are not live
  // together, so only the larger counts (dispatch is inside activations).
  double peak_bytes = 0;
  int64_t capacity_bytes = 0;  // HBM of one device
  bool fits = false;
  int64_t stage = 0;  // the pipeline stage reported (the largest)
  int64_t layers_on_stage = 0;
  std::vector<double> stage_peak_bytes;  // peak_bytes of every pipeline stage, stage 0 first
  double micro_batches_in_flight = 1;
  std::vector<TensorReport> tensors;  // weights and one micro-batch's activations, per layer kind
};

MemoryReport ComputeMemory(const Scenario& scenario);

// The tokens of one MoE layer for one micro-batch, all batch shards together, as GShard and
// AXLearn lay them out: `outer` outer batches (model.moe.outer_batch) of `groups` routing groups
// of `group_size` tokens (model.moe.group_size_tokens), and each expert's capacity per group.
// The one place the capacity formula of every model.moe.capacity_convention lives (capacity
// factor cf, top_k k, experts E, per padded expert with PADDED_2D; c = the capacity group):
//   PER_ROUTED_TOKEN  ceil(cf x k x S / E)            c = a group of S = group_size tokens
//   PER_TOKEN         ceil(cf x S / E)                c = a group
//   MEGATRON          ceil(T x k / E x cf)            c = the T tokens one rank routes (its
//                     micro-batch over the sequence shards: context and sequence parallel)
//                     (Megatron-Core moe_utils.py apply_router_token_dropping / get_capacity)
//   MAXTEXT           int(max(ceil(L x k / E) x cf, cf))  c = one sequence of L = seq_len tokens
//                     (MaxText layers/moe.py generate_masks)
//   AXLEARN           max(1, int(S x cf / E))         c = a group (AXLearn mixture_of_experts.py
//                     _compute_expert_capacity)
// all at least 1. The step plan's dispatch, routing and drops and the memory of the dispatch
// buffers read them from here.
struct MoeGroups {
  int64_t outer = 1;
  int64_t groups = 0;      // per outer batch, >= 1
  int64_t group_size = 0;  // tokens
  // Slots per expert and group: einsum's [E, C] padding (the capacity groups' capacity spread
  // over the layout's groups where they differ: MAXTEXT with context parallelism).
  int64_t capacity = 0;
  // Slots per expert and group the dispatch buffers hold: `capacity` for einsum dispatch; for
  // permutation dispatch only the routed tokens, top_k x group_size / experts on average (with
  // pad_expert_input_to_capacity: `capacity`), and with RAGGED_ALL_TO_ALL over an
  // expert-parallel group MaxText's receive buffer: that times `receive_buffer_factor`.
  int64_t held = 0;
  // One device's share: outer batches and groups (rounded up), and its tokens.
  int64_t outer_local = 1;
  int64_t groups_local = 1;
  int64_t tokens_local = 0;    // outer_local x groups_local x group_size
  int64_t capacity_group = 0;  // tokens of one capacity group (see the table above)
  int64_t group_capacity = 0;  // the formula's C for one capacity group
  // Slots per expert for all of one device's tokens: the drop limit the routing applies.
  double rank_capacity = 0;
  // RAGGED_ALL_TO_ALL with expert parallelism: the receive buffer over the balanced size
  // tokens_local x top_k (ragged_buffer_factor, or min(EP ranks, E / top_k)); 0 otherwise.
  double receive_buffer_factor = 0;
};
// REQUIRES: scenario.model.is_moe(), a validated scenario.
MoeGroups MoeGroupsOf(const Scenario& scenario);

// Bytes per parameter of the working weights / gradients / optimizer state.
double WeightBytesPerParam(const TrainingSpec& t);
double OptimizerBytesPerParam(const TrainingSpec& t);

}  // namespace moesim
