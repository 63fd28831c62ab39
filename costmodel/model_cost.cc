#include "costmodel/model_cost.h"

#include "costmodel/layers.h"

namespace moesim {
namespace {

double Sum(const std::vector<TensorDesc>& ts) {
  double n = 0;
  for (const auto& t : ts) n += t.Elements();
  return n;
}

double ExpertParams(const std::vector<TensorDesc>& ts, int64_t num_experts) {
  double n = 0;
  for (const auto& t : ts) {
    if (!t.dims.empty() && t.dims[0].logical == "experts") n += t.Elements();
  }
  return num_experts > 0 ? n / static_cast<double>(num_experts) : 0;
}

}  // namespace

ModelCost ComputeModelCost(const ModelSpec& m, const TrainingSpec& training) {
  ModelCost c;
  c.num_layers = m.num_layers;
  c.num_moe_layers = m.NumMoeLayers();
  const int64_t n_dense = m.num_layers - c.num_moe_layers;
  const int64_t n_moe = c.num_moe_layers;

  ParamCount& p = c.params;
  p.per_dense_layer = Sum(LayerWeights(m, LayerKind::kDense, 0, 1));
  p.embedding = 0;
  for (const auto& t : EmbeddingWeights(m, 1)) {
    if (t.name.rfind("embed.", 0) == 0 || t.name == "head.w") p.embedding += t.Elements();
  }
  const double head_and_norm = Sum(EmbeddingWeights(m, 1));
  p.total = static_cast<double>(n_dense) * p.per_dense_layer + head_and_norm;
  p.activated = p.total;
  if (m.is_moe()) {
    const auto moe_weights = LayerWeights(m, LayerKind::kMoe, m.moe.num_experts, 1);
    p.per_moe_layer = Sum(moe_weights);
    p.per_expert = ExpertParams(moe_weights, m.moe.num_experts);
    p.total += static_cast<double>(n_moe) * p.per_moe_layer;
    const double idle_experts = static_cast<double>(m.moe.num_experts - m.moe.top_k);
    p.activated += static_cast<double>(n_moe) * (p.per_moe_layer - idle_experts * p.per_expert);
  }
  const bool mtp_moe = m.MtpLayerIsMoe();
  if (m.mtp_depth > 0) {
    const double layer = mtp_moe ? p.per_moe_layer : p.per_dense_layer;
    p.mtp = static_cast<double>(m.mtp_depth) * (Sum(MtpWeights(m, 1)) + layer);
  }

  // Forward FLOPs of one sequence, divided by its tokens.
  const double seq = static_cast<double>(m.seq_len);
  const double slots = m.is_moe() ? seq * static_cast<double>(m.moe.top_k) : 0;
  const DimSizes sizes = LabelSizes(m, 1, seq, slots);
  FlopsPerToken& f = c.flops_per_token;
  double layers_fwd = 0, core_fwd = 0;
  // `recomputed`: the work recomputation repeats (layers; not the head, nor the MTP modules that
  // run with it). `prefix` names the MTP modules' ops apart ("mtp.attn.q").
  auto add = [&](const std::vector<Einsum>& ops, int64_t layers, bool recomputed,
                 const std::string& prefix) {
    for (const Einsum& e : ops) {
      // The catalogue's specs are fixed strings checked by tests; a failure here is a bug.
      const double flops = EinsumFlops(e.spec, sizes).value() / seq * static_cast<double>(layers);
      f.forward_by_op[prefix + e.name] += flops;
      f.forward += flops;
      if (recomputed) layers_fwd += flops;
      if (recomputed && IsAttentionCore(e)) core_fwd += flops;
    }
  };
  auto count = [&](LayerKind kind, int64_t layers, bool is_head) {
    add(is_head ? HeadForwardEinsums() : LayerForwardEinsums(m, kind), layers, !is_head, "");
  };
  count(LayerKind::kDense, n_dense, false);
  if (n_moe > 0) count(LayerKind::kMoe, n_moe, false);
  count(LayerKind::kDense, 1, true);
  if (m.mtp_depth > 0) {
    add(MtpForwardEinsums(), m.mtp_depth, false, "");
    add(LayerForwardEinsums(m, mtp_moe ? LayerKind::kMoe : LayerKind::kDense), m.mtp_depth, false,
        "mtp.");
    add(HeadForwardEinsums(), m.mtp_depth, false, "mtp.");
  }
  f.model = 3 * f.forward;
  f.hardware = f.model;
  if (training.recompute == Recompute::kFull) f.hardware += layers_fwd;
  if (training.recompute == Recompute::kSelective) f.hardware += core_fwd;
  return c;
}

ModelCost ComputeScenarioCost(const Scenario& sc) {
  ModelCost cost = ComputeModelCost(sc.model, sc.training);
  if (sc.model.is_moe() && sc.sharding.padded_num_experts > sc.model.moe.num_experts) {
    ModelSpec padded = sc.model;
    padded.moe.num_experts = sc.sharding.padded_num_experts;
    const ModelCost p = ComputeModelCost(padded, sc.training);
    cost.params.total = p.params.total;
    cost.params.per_moe_layer = p.params.per_moe_layer;
  }
  return cost;
}

}  // namespace moesim
