// StepGraphOpBound (opgraph.h): the ops BuildStepGraph emits at most, from the per-layer op lists
// and the micro-batch count, without building the graph.
#include <algorithm>

#include "costmodel/opgraph.h"
#include "costmodel/step_plan.h"

namespace moesim {
namespace {

// Ops one micro-batch of a layer kind emits at most: forward, recomputation, backward (two
// GEMMs per forward GEMM, one op per other op), FSDP gathers both ways and gradient syncs.
double OpsPerMicroBatch(const std::vector<OpDesc>& ops, const WeightSync& sync,
                        Recompute recompute) {
  double n = static_cast<double>(2 * sync.gathers.size() + sync.grad_syncs.size());
  for (const OpDesc& d : ops) {
    if (d.ring) {
      // Steps: C - 1 forward (and recomputed), C backward; every chunk's ops each time.
      const double steps = static_cast<double>(d.ring->steps);
      const double recomputed = recompute == Recompute::kNone ? 0 : 1;
      n += (steps - 1) * (1 + recomputed) + steps;
      n += steps * OpsPerMicroBatch(d.ring->chunk, WeightSync{}, recompute);
      continue;
    }
    n += 1;                                             // forward
    n += recompute == Recompute::kNone ? 0 : 1;         // recomputation
    n += !d.is_collective && d.compute.matmul ? 2 : 1;  // backward
  }
  return n;
}

}  // namespace

double StepGraphOpBound(const Scenario& sc) {
  const StepPlan plan = MakeStepPlan(sc);
  const Recompute rc = sc.training.recompute;
  const double moe_layers = static_cast<double>(sc.model.NumMoeLayers());
  const double dense_layers = static_cast<double>(sc.model.num_layers) - moe_layers;
  const double stages = static_cast<double>(sc.sharding.mesh[MeshAxis::kPipeline]);
  const double chunks = static_cast<double>(sc.training.virtual_stages);
  // training.batch_split_factor: every sub-batch runs a MoE layer's ops (batch_split.h).
  const double splits = static_cast<double>(std::max<int64_t>(1, sc.training.batch_split_factor));
  const double per_mb = dense_layers * OpsPerMicroBatch(plan.dense_ops, plan.dense_sync, rc) +
                        moe_layers * splits * OpsPerMicroBatch(plan.moe_ops, plan.moe_sync, rc) +
                        OpsPerMicroBatch(plan.embed_ops, plan.embed_sync, rc) +
                        OpsPerMicroBatch(plan.head_ops, plan.head_sync, rc) +
                        2 * stages * chunks;  // sends of activations and gradients
  // The optimizer: one step and at most one parameter gather per set of mesh axes (2^4).
  // DualPipe adds one exchange of gradients with the mirror rank per stage.
  const double mirror = sc.training.pipeline_schedule == PipelineSchedule::kDualPipe ? 1 : 0;
  return static_cast<double>(sc.training.num_micro_batches) * per_mb + stages * (17 + mirror);
}

}  // namespace moesim
