// model_cost.h
//
// Parameters and training FLOPs per token of a model, derived from the layer catalogue
// (layers.h). FLOPs count matmuls only (2 per multiply-add), with attention over the full
// sequence (no causal halving), as Narayanan et al. (2021) and Artetxe et al. (2021) count:
//   model    = forward + backward = 3 x forward (backward = 2 x forward: input and weight grads)
//   hardware = model + what recomputation repeats: FULL adds one forward of every layer (not the
//              output head), SELECTIVE adds the attention scores and context einsums.
// MoE layers count top_k experts per token; capacity padding and dispatch einsums are costs of
// an implementation and are counted by the step simulation, not here.
// Multi-token prediction (model.mtp_depth D): FLOPs per token include every module's projection,
// transformer layer and output head pass (forward, and so model = 3 x forward), as Megatron-LM
// counts the MTP layers' work in its per-step FLOPs; they run with the head, so recomputation
// repeats none of it. Their parameters are counted apart (ParamCount::mtp), as DeepSeek reports
// V3: 671B main model plus the MTP module.
// Every module runs on the full sequence (module k has in fact T - k targets).
#pragma once

#include <map>
#include <string>

#include "proto/scenario.h"

namespace moesim {

struct ParamCount {
  double total = 0;      // every parameter, embeddings included
  double activated = 0;  // used per token: top_k routed + shared experts in MoE layers
  double embedding = 0;  // token + position embeddings and the untied output projection
  double per_dense_layer = 0;
  double per_moe_layer = 0;  // with all experts
  double per_expert = 0;     // one expert's FFN
  // Multi-token prediction modules' own weights (their norms, projections and transformer
  // layers; the embedding and head they share are not counted again), not part of total.
  double mtp = 0;
};

struct FlopsPerToken {
  double forward = 0;
  double model = 0;
  double hardware = 0;
  std::map<std::string, double> forward_by_op;  // "attn.q" -> FLOPs per token, all layers
};

struct ModelCost {
  int64_t num_layers = 0;
  int64_t num_moe_layers = 0;
  ParamCount params;
  FlopsPerToken flops_per_token;
};

ModelCost ComputeModelCost(const ModelSpec& model, const TrainingSpec& training);

// The model's cost as a scenario shards it. Under PADDED_2D the experts padded up to the mesh are
// allocated (never routed to) parameters, so params.total and per_moe_layer count them, as Du et
// al. 2024 do (1.6B/64E: 23.8B, padded: 46.6B); FLOPs and activated parameters are the model's.
ModelCost ComputeScenarioCost(const Scenario& scenario);

}  // namespace moesim
