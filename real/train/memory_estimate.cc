#include "real/train/memory_estimate.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iterator>

namespace moesim::real {
namespace {

// Host bookkeeping per layer (layer objects, parameter table entries, tensor names): measured
// well under 4 KiB on tiny-moe; counted generously.
constexpr double kHostBytesPerLayer = 8192;
// Alignment padding per parameter tensor (params.cc rounds every tensor up to 16 elements).
constexpr double kPadElems = 16;

double D(int64_t v) { return static_cast<double>(v); }

// costmodel's ExpertCapacity in double (a huge capacity factor must not overflow int64 here).
double ExpertCapacityD(const MoeSpec& moe, double group) {
  const double k = moe.capacity_per_routed_token ? D(moe.top_k) : 1.0;
  const double c = moe.capacity_factor * k * group / D(std::max<int64_t>(moe.num_experts, 1));
  return std::max(1.0, std::ceil(c - 1e-9));
}

}  // namespace

MemoryEstimate EstimateTrainMemory(const ModelSpec& m, const MemoryEstimateInput& in) {
  const double s = D(std::max<int64_t>(in.scalar_bytes, 1));
  const double layers = D(m.num_layers), dm = D(m.d_model), h = D(m.num_heads),
               kv = D(m.num_kv_heads), hd = D(m.head_dim), ff = D(m.d_ff), vocab = D(m.vocab_size),
               seq = D(m.seq_len);
  const double batch = D(std::max<int64_t>(in.micro_batch_seqs, 1));
  const double ep = D(std::max<int64_t>(in.expert_parallel, 1));
  const double n = batch * seq;  // tokens per micro-batch

  // MoE layers, in closed form (ModelSpec::IsMoeLayer): no loop over a huge layer count.
  double moe_layers = 0;
  if (m.is_moe() && m.moe.placement_k > 0) {
    moe_layers = m.moe.placement == MoePlacement::kEveryK
                     ? std::floor(layers / D(m.moe.placement_k))
                     : std::min(layers, D(m.moe.placement_k));
  }
  const double dense_layers = layers - moe_layers;

  // Parameters on this rank and in the whole model.
  const double attn_params = dm * (h + 2 * kv) * hd + h * hd * dm + 2 * dm;
  const double embed = vocab * dm * (m.tie_embeddings ? 1 : 2) + dm;
  double local = embed + layers * (attn_params + 8 * kPadElems) + dense_layers * 3 * dm * ff;
  double total = embed + layers * attn_params + dense_layers * 3 * dm * ff;
  double act_moe = 0, scratch_moe = 0, host_moe = 0;
  if (moe_layers > 0) {
    const double e = D(m.moe.num_experts), k = D(m.moe.top_k), f = D(m.moe.expert_d_ff),
                 shared = D(m.moe.num_shared_experts);
    const int64_t group_tokens = m.moe.group_size_tokens > 0 ? m.moe.group_size_tokens : m.seq_len;
    const double group = D(group_tokens);
    const double cap = ExpertCapacityD(m.moe, group);
    const double el = std::max(1.0, std::floor(e / ep));
    const double groups = std::floor(n / group);
    const double rows = std::min(n * k, groups * e * cap);
    const double recv = ep <= 1 ? rows : std::min(ep * n * k, ep * groups * el * cap);
    const double shared_ff = 3 * n * shared * f;
    local += moe_layers * (dm * e + el * 3 * dm * f + shared * 3 * dm * f);
    total += moe_layers * (dm * e + (e + shared) * 3 * dm * f);
    act_moe = n * e + rows * dm + 3 * recv * f + recv * dm + 2 * n * k + 2 * rows + shared_ff +
              (ep > 1 ? 2 * recv * dm + rows * dm + 2 * recv : 0);
    scratch_moe = rows + rows * dm + 3 * recv * f + recv * dm + n * e + shared_ff +
                  (ep > 1 ? 2 * recv * dm + rows * dm : 0);
    host_moe = n * e * 8 + n * 8 + n * k * 24 + rows * 24;  // routing tables, on the host
  }

  // Activations of one micro-batch (elements of T), then the largest layer's workspace.
  const double probs = batch * h * seq * seq;
  const double per_layer = 3 * n * dm + 2 * n + 2 * n * h * hd + 2 * n * kv * hd + probs;
  double act = layers * per_layer + dense_layers * 3 * n * ff + moe_layers * act_moe;
  act += (layers + 1) * n * dm + n * dm + n + n * vocab + n + 2 * n * dm;
  const double attn_scratch =
      std::max(n * h * hd + 2 * n * kv * hd, 3 * n * h * hd + 4 * n * kv * hd + probs);
  const double ffn_scratch = dense_layers > 0 ? 3 * n * ff : 0;
  act += n * dm + std::max({attn_scratch, ffn_scratch, scratch_moe});

  MemoryEstimate est;
  est.params_bytes = local * s;
  est.grads_bytes = local * s;
  est.optimizer_bytes = 2 * local * s;
  est.activations_bytes = act * s + 5 * n * 4;  // + int32 token, target and gradient indices
  const double batch_tokens = D(std::max<int64_t>(in.local_seqs, 1)) * seq;
  est.host_bytes = local * s + batch_tokens * 4 * 2 + n * 4 * 6 + moe_layers * host_moe +
                   layers * kHostBytesPerLayer +
                   (in.data_bytes > 0 ? D(in.data_bytes) : vocab * 4 * 4);
  est.total_params = total;
  est.shape = "model.num_layers=" + std::to_string(m.num_layers) +
              ", model.d_model=" + std::to_string(m.d_model) +
              (m.is_moe() ? ", model.moe.num_experts=" + std::to_string(m.moe.num_experts) : "") +
              ", micro-batch " + std::to_string(in.micro_batch_seqs) + " x " +
              std::to_string(m.seq_len) + " tokens";
  return est;
}

std::string FormatBytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = bytes;
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  char buf[64];
  if (u == 0) {
    std::snprintf(buf, sizeof(buf), "%.0f B", v);
  } else if (!std::isfinite(v) || v >= 1e6) {
    std::snprintf(buf, sizeof(buf), "%.3g %s", v, kUnits[u]);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", v, kUnits[u]);
  }
  return buf;
}

std::string MemoryEstimate::Describe() const {
  return FormatBytes(total_bytes()) + " (parameters " + FormatBytes(params_bytes) + ", gradients " +
         FormatBytes(grads_bytes) + ", AdamW moments " + FormatBytes(optimizer_bytes) +
         ", activations " + FormatBytes(activations_bytes) + ", host " + FormatBytes(host_bytes) +
         ")";
}

Status CheckMemoryEstimate(const MemoryEstimate& e, double needed_bytes, double limit_bytes,
                           const std::string& limit_name) {
  if (!(needed_bytes > limit_bytes)) return Status::Ok();
  char params[32];
  std::snprintf(params, sizeof(params), "%.3g", e.total_params);
  return Status::InvalidInput("the model (" + e.shape + ": " + std::string(params) +
                              " parameters) needs an estimated " + e.Describe() +
                              " per rank, more than " + limit_name +
                              "; use a smaller model or batch (--micro-batch), more ranks "
                              "(--expert-parallel), or raise --max-memory");
}

}  // namespace moesim::real
