#include "real/layers/model_config.h"

#include <cmath>
#include <cstdio>

#include "costmodel/layers.h"
#include "real/limits.h"

namespace moesim::real {

Expected<ModelConfig> ModelConfigFromSpec(const ModelSpec& m) {
  std::string errors;
  auto reject = [&](const std::string& msg) { errors += (errors.empty() ? "" : "\n") + msg; };
  if (m.ffn_kind != FfnKind::kSwiglu) reject("model.ffn_kind=GELU: moesim-real trains SWIGLU only");
  if (m.norm_kind != NormKind::kRmsNorm) {
    reject("model.norm_kind=LAYERNORM: moesim-real trains RMSNORM only");
  }
  if (m.position_kind != PositionKind::kRope) {
    reject("model.position_kind=LEARNED: moesim-real trains ROPE only");
  }
  if (m.linear_bias) reject("model.linear_bias=true: moesim-real has no linear biases");
  if (m.is_moe() && m.moe.dropless) {
    reject(
        "model.moe.dropless=true: moesim-real routes into fixed [experts, capacity] buffers; "
        "give model.moe.capacity_factor instead");
  }
  if (m.is_moe() && m.moe.fp8_dispatch) {
    reject(
        "model.moe.dispatch_precision=FP8: moesim-real dispatches in the activations' precision");
  }
  if (m.head_dim % 2 != 0) {
    reject("model.head_dim=" + std::to_string(m.head_dim) + " must be even for RoPE");
  }
  // Sizes moesim-real can build (limits.h): 32-bit token ids and kernel arguments.
  auto limit = [&](const char* field, int64_t v, int64_t max) {
    if (v > max) {
      reject(std::string(field) + "=" + std::to_string(v) + " exceeds moesim-real's limit of " +
             std::to_string(max));
    }
  };
  limit("model.num_layers", m.num_layers, kMaxLayers);
  limit("model.d_model", m.d_model, kMaxDimension);
  limit("model.num_heads", m.num_heads, kMaxDimension);
  limit("model.num_kv_heads", m.num_kv_heads, kMaxDimension);
  limit("model.head_dim", m.head_dim, kMaxDimension);
  limit("model.d_ff", m.d_ff, kMaxDimension);
  limit("model.vocab_size", m.vocab_size, kMaxDimension);
  limit("model.seq_len", m.seq_len, kMaxDimension);
  if (m.is_moe()) {
    limit("model.moe.num_experts", m.moe.num_experts, kMaxDimension);
    limit("model.moe.top_k", m.moe.top_k, kMaxDimension);
    limit("model.moe.expert_d_ff", m.moe.expert_d_ff, kMaxDimension);
    limit("model.moe.num_shared_experts", m.moe.num_shared_experts, kMaxDimension);
    limit("model.moe.group_size_tokens", m.moe.group_size_tokens, kMaxDimension);
    const double k = m.moe.capacity_per_routed_token ? static_cast<double>(m.moe.top_k) : 1.0;
    const double group =
        static_cast<double>(m.moe.group_size_tokens > 0 ? m.moe.group_size_tokens : m.seq_len);
    const double capacity =
        std::ceil(m.moe.capacity_factor * k * group / static_cast<double>(m.moe.num_experts));
    if (!(capacity <= static_cast<double>(kMaxDimension))) {
      char cf[32];
      std::snprintf(cf, sizeof(cf), "%g", m.moe.capacity_factor);
      reject("model.moe.capacity_factor=" + std::string(cf) +
             " gives an expert capacity above moesim-real's limit of " +
             std::to_string(kMaxDimension) + " tokens");
    }
  }
  if (!errors.empty()) return Status::InvalidInput(errors);

  ModelConfig c;
  c.name = m.name;
  c.num_layers = m.num_layers;
  c.d_model = m.d_model;
  c.num_heads = m.num_heads;
  c.num_kv_heads = m.num_kv_heads;
  c.head_dim = m.head_dim;
  c.d_ff = m.d_ff;
  c.vocab_size = m.vocab_size;
  c.seq_len = m.seq_len;
  c.tie_embeddings = m.tie_embeddings;
  c.moe_layer.resize(static_cast<size_t>(m.num_layers));
  for (int64_t l = 0; l < m.num_layers; ++l) c.moe_layer[static_cast<size_t>(l)] = m.IsMoeLayer(l);
  if (m.is_moe()) {
    c.num_experts = m.moe.num_experts;
    c.top_k = m.moe.top_k;
    c.capacity_factor = m.moe.capacity_factor;
    c.expert_d_ff = m.moe.expert_d_ff;
    c.num_shared_experts = m.moe.num_shared_experts;
    c.group_size = m.moe.group_size_tokens > 0 ? m.moe.group_size_tokens : m.seq_len;
    c.capacity = ExpertCapacity(m.moe, c.group_size);
  }
  return c;
}

int64_t ModelConfig::NumParams() const {
  const int64_t attn = d_model * (num_heads + 2 * num_kv_heads) * head_dim +
                       num_heads * head_dim * d_model + 2 * d_model;
  int64_t total = vocab_size * d_model * (tie_embeddings ? 1 : 2) + d_model;
  for (int64_t l = 0; l < num_layers; ++l) {
    total += attn;
    if (moe_layer[static_cast<size_t>(l)]) {
      total +=
          d_model * num_experts + (num_experts + num_shared_experts) * 3 * d_model * expert_d_ff;
    } else {
      total += 3 * d_model * d_ff;
    }
  }
  return total;
}

int64_t ModelConfig::NumActivatedParams() const {
  int64_t total = NumParams();
  for (int64_t l = 0; l < num_layers; ++l) {
    if (moe_layer[static_cast<size_t>(l)])
      total -= (num_experts - top_k) * 3 * d_model * expert_d_ff;
  }
  return total;
}

double ModelConfig::TrainFlopsPerToken() const {
  auto d = [](int64_t v) { return static_cast<double>(v); };
  const double attn_proj = 2 * d(d_model) * d((num_heads + 2 * num_kv_heads) * head_dim) +
                           2 * d(num_heads * head_dim) * d(d_model);
  const double attn_core = 2 * 2 * d(seq_len) * d(num_heads * head_dim);  // scores + context
  double fwd = 2 * d(d_model) * d(vocab_size);
  for (int64_t l = 0; l < num_layers; ++l) {
    fwd += attn_proj + attn_core;
    if (moe_layer[static_cast<size_t>(l)]) {
      fwd += 2 * d(d_model) * d(num_experts) +
             d(top_k + num_shared_experts) * 3 * 2 * d(d_model) * d(expert_d_ff);
    } else {
      fwd += 3 * 2 * d(d_model) * d(d_ff);
    }
  }
  return 3 * fwd;
}

}  // namespace moesim::real
