// model_config.h
//
// ModelConfig: the model moesim-real builds, resolved from the simulator's ModelSpec (the same
// scenario files) plus the few training-only constants a scenario does not state (RoPE base,
// RMSNorm epsilon, init scale, auxiliary-loss coefficients; defaults from Du et al. 2024:
// load-balancing 0.01, router z-loss 0.001).
//
// Supported: LLaMA-style blocks (RMSNorm, RoPE, SwiGLU, no linear biases), grouped-query
// attention, MoE with top-k routing, capacity factor, shared experts, EVERY_K / LAST_K
// placement, tied or untied embeddings. Anything else (GELU, LayerNorm, learned positions,
// biases) is rejected with a message naming the field, and so are sizes above real/limits.h's
// (kMaxLayers layers, kMaxDimension for every other size).
// Thread safety: values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/scenario.h"

namespace moesim::real {

struct ModelConfig {
  std::string name;
  int64_t num_layers = 0;
  int64_t d_model = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t d_ff = 0;
  int64_t vocab_size = 0;
  int64_t seq_len = 0;
  bool tie_embeddings = false;
  std::vector<bool> moe_layer;  // [num_layers]
  int64_t num_experts = 0;      // 0 = dense
  int64_t top_k = 0;
  double capacity_factor = 0;
  int64_t expert_d_ff = 0;
  int64_t num_shared_experts = 0;
  int64_t group_size = 0;  // routing group, tokens
  int64_t capacity = 0;    // per expert per group (costmodel's ExpertCapacity)
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;
  double aux_loss_coef = 0.01;
  double z_loss_coef = 0.001;

  bool is_moe() const { return num_experts > 0; }
  // Parameters of the whole model (all experts), and activated per token.
  int64_t NumParams() const;
  int64_t NumActivatedParams() const;
  // Model FLOPs per token of a training step (forward + backward = 3x forward matmuls,
  // attention scores and context included), as the simulator counts them.
  double TrainFlopsPerToken() const;
};

// REQUIRES: spec validated by LoadScenario. Errors name the unsupported field.
Expected<ModelConfig> ModelConfigFromSpec(const ModelSpec& spec);

}  // namespace moesim::real
