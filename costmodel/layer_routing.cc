// layer_routing.cc
//
// Which ops a model layer emits: the dense layer's, the shared MoE layer's, or, with one routing
// histogram per MoE layer (MoeSpec::layer_expert_load), that MoE layer's own (step_plan.cc
// PerLayerMoeOps, whose routing figures come from RouteOverExpertGroup like the shared ops').
#include "costmodel/step_plan.h"

namespace moesim {

const std::vector<OpDesc>& StepPlan::LayerOps(const ModelSpec& md, int64_t layer) const {
  if (!md.IsMoeLayer(layer)) return dense_ops;
  if (moe_layer_ops.empty()) return moe_ops;
  return moe_layer_ops[static_cast<size_t>(md.MoeLayerIndex(layer))];
}

}  // namespace moesim
