// step_plan.h (internal to costmodel/)
//
// StepPlan: what a sharding means for one device's step, derived once from the Scenario: which
// mesh axes are tensor-parallel, FSDP, gradient-replica and expert-parallel axes, the local
// sizes of every einsum label, and the forward ops of each layer kind as OpDescs (compute or
// collective, not yet placed on a stream). opgraph_builder.cc schedules them into an OpGraph.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "costmodel/layers.h"
#include "costmodel/opgraph.h"

namespace moesim {

struct OpDesc {
  std::string name;  // "attn.q"
  bool is_collective = false;
  ComputeWork compute;
  CollectiveWork collective;
  bool matmul_with_weight = false;   // backward has a weight gradient
  bool recompute_selective = false;  // repeated by SELECTIVE recomputation
  // An activation x activation einsum whose first operand takes no gradient: GShard's dispatch
  // mask is a 0/1 cast of the combine weights, so backward computes only the tokens' gradient.
  bool first_operand_constant = false;
  // Elementwise ops whose backward streams without the forward's transcendental: softmax's
  // y (dy - sum(y dy)) and cross-entropy's p - onehot reuse the forward's probabilities.
  std::optional<MemoryKernel> backward_kernel;
  // Elementwise ops: the backward's bytes over the forward's, from what each reads and writes
  // (RMSNorm: x, y -> x, dy, dx = 1.5; SwiGLU: a, b, h -> a, b, dh, da, db = 5/3).
  double backward_bytes_factor = 2;
};

// The collectives that keep one layer's weights usable and its gradients reduced.
struct WeightSync {
  std::vector<CollectiveWork> gathers;        // all-gathers before forward and backward (FSDP)
  std::vector<CollectiveWork> grad_syncs;     // after the last micro-batch's backward, in order
  std::vector<CollectiveWork> param_gathers;  // after the optimizer (sharded optimizer state)
  double params_local = 0;                    // parameters this device holds
  double optimizer_params = 0;  // parameters whose optimizer state this device updates
};

struct StepPlan {
  // Axes.
  std::vector<MeshAxis> batch_axes;      // dense activations' batch
  std::vector<MeshAxis> tp_axes;         // tensor parallel (heads / mlp / vocab)
  std::vector<MeshAxis> sp_axes;         // activations [b,s,m] sharded over these (SP / Apple)
  std::vector<MeshAxis> fsdp_axes;       // dense weights gathered over these
  std::vector<MeshAxis> grad_axes;       // dense gradients reduced over these (replicas)
  std::vector<MeshAxis> moe_batch_axes;  // MoE tokens (outer + groups)
  std::vector<MeshAxis> ep_axes;         // experts; all-to-all axes
  std::vector<MeshAxis> moe_tp_axes;     // expert hidden
  std::vector<MeshAxis> moe_fsdp_axes;   // expert weights gathered over these
  std::vector<MeshAxis> moe_grad_axes;   // expert gradients reduced over these

  // Local label sizes for one micro-batch on one device (labels of layers.h).
  DimSizes local;
  int64_t act_bytes = 2;
  int64_t weight_bytes = 2;

  // MoE (per device, per micro-batch).
  double tokens = 0;     // tokens of this device: b x s
  double slots = 0;      // expert slots computed (padded for EINSUM)
  double routed = 0;     // useful expert slots (top_k x tokens, after drops)
  double a2a_bytes = 0;  // each all-to-all's size
  double a2a_max_over_mean = 1;
  double dropped_fraction = 0;
  double busiest_rank_load = 1;

  // Per layer kind, forward op descriptions.
  std::vector<OpDesc> dense_ops, moe_ops, embed_ops, head_ops;
  // Per layer kind, the weights' collectives and sizes.
  WeightSync dense_sync, moe_sync, embed_sync, head_sync;
};

StepPlan MakeStepPlan(const Scenario& sc);

// Axes helpers.
std::vector<MeshAxis> AxesMinus(const std::vector<MeshAxis>& a, const std::vector<MeshAxis>& b);
std::vector<MeshAxis> AxesIntersect(const std::vector<MeshAxis>& a, const std::vector<MeshAxis>& b);
int64_t AxesSize(const Mesh& mesh, const std::vector<MeshAxis>& axes);

}  // namespace moesim
