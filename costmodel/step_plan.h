// step_plan.h (internal to costmodel/)
//
// StepPlan: what a sharding means for one device's step, derived once from the Scenario: which
// mesh axes are tensor-parallel, FSDP, gradient-replica and expert-parallel axes, the local
// sizes of every einsum label, and the forward ops of each layer kind as OpDescs (compute or
// collective, not yet placed on a stream). opgraph_builder.cc schedules them into an OpGraph.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "costmodel/layers.h"
#include "costmodel/opgraph.h"

namespace moesim {

struct RingAttention;

// Which passes of the step run an op: tensor parallelism without sequence parallelism all-reduces
// the block's output in forward only and its input's gradient in backward only.
enum class Passes { kBoth, kForwardOnly, kBackwardOnly };

// A tensor-parallel collective run alongside the GEMMs next to it (training.tp_comm_overlap): in
// forward order, the input all-gather alongside the run of GEMMs after it, the output
// reduce-scatter alongside the run of GEMMs before it; in backward the sides swap (the gradient
// GEMMs of that run come before the mirrored reduce-scatter, after the mirrored all-gather).
enum class GemmOverlap { kNone, kWithNextGemms, kWithPreviousGemms };

struct OpDesc {
  std::string name;  // "attn.q"
  bool is_collective = false;
  Passes passes = Passes::kBoth;
  GemmOverlap overlap = GemmOverlap::kNone;  // collectives only
  // Collectives whose backward mirror moves other bytes than the forward (FP8 dispatch, whose
  // gradient goes back in the activations' precision); < 0 = the forward's.
  double backward_bytes = -1;
  // The op waits for the collectives running beside the GEMMs before it (GemmOverlap), though
  // those GEMMs are not its inputs: the routed experts after the shared experts that overlapped
  // the dispatch.
  bool waits_beside = false;
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
  // Set: this op is the attention core under context parallelism, a ring of `steps` chunks
  // (RingAttention); its own compute and collective fields are unused.
  std::shared_ptr<const RingAttention> ring;
};

// Attention over a sequence split C ways over the context-parallel axes, as Megatron-Core runs
// it with Transformer Engine's P2P ring (cp_comm_type "p2p"; Liu et al. 2023, Ring Attention):
// each rank holds 1/C of the queries, keys and values (Megatron's load-balanced causal split:
// 2C chunks, rank r holding chunks r and 2C-1-r, so every rank has the same work), and computes
// blockwise attention against its own K,V chunk while the ring brings the next one; C-1 ring
// steps in forward. Backward runs the ring again carrying K,V and the accumulating dK,dV (twice
// the bytes per step), then one last step returns each chunk's dK,dV to its owner.
struct RingAttention {
  int64_t steps = 1;          // C: the context-parallel group's size
  std::vector<OpDesc> chunk;  // one step's ops: local queries against one K,V chunk
  CollectiveWork shift;       // one forward step: a kRingShift of one K,V chunk
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
  bool tp_comm_overlap = false;  // training.tp_comm_overlap: TP collectives beside their GEMMs

  // Axes.
  std::vector<MeshAxis> batch_axes;      // dense activations' batch
  std::vector<MeshAxis> tp_axes;         // tensor parallel (heads / mlp / vocab)
  std::vector<MeshAxis> cp_axes;         // context parallel (ShardingSpec::ContextAxes)
  std::vector<MeshAxis> sp_axes;         // activations [b,s,m] sharded over these (SP / Apple)
  std::vector<MeshAxis> fsdp_axes;       // dense weights gathered over these
  std::vector<MeshAxis> grad_axes;       // dense gradients reduced over these (replicas, CP too)
  std::vector<MeshAxis> moe_batch_axes;  // MoE tokens (outer + groups)
  std::vector<MeshAxis> ep_axes;         // experts; all-to-all axes
  std::vector<MeshAxis> moe_tp_axes;     // expert hidden
  std::vector<MeshAxis> moe_fsdp_axes;   // expert weights gathered over these
  std::vector<MeshAxis> moe_grad_axes;   // expert gradients reduced over these

  // Local label sizes for one micro-batch on one device (labels of layers.h). 's' is this
  // device's share of the sequence (seq_len / context shards), 't' the whole sequence (keys).
  DimSizes local;
  int64_t act_bytes = 2;
  int64_t weight_bytes = 2;

  // MoE (per device, per micro-batch).
  double tokens = 0;          // tokens of this device: b x s / context shards
  double slots = 0;           // expert slots computed (padded for EINSUM)
  double routed = 0;          // useful expert slots (top_k x tokens, after drops)
  double a2a_bytes = 0;       // each all-to-all's size (activations' precision)
  double dispatch_bytes = 0;  // the forward dispatch's (model.moe.dispatch_precision)
  double a2a_max_over_mean = 1;
  double dropped_fraction = 0;
  double busiest_rank_load = 1;

  // Per layer kind, forward op descriptions.
  std::vector<OpDesc> dense_ops, moe_ops, embed_ops, head_ops;
  // Per-layer routing (MoeSpec::layer_expert_load): the i-th MoE layer's ops, built from its own
  // shares; empty: moe_ops for every MoE layer. moe_ops and the figures above are the first's.
  std::vector<std::vector<OpDesc>> moe_layer_ops;
  // The ops of model layer `layer`: dense_ops, moe_ops or its own (costmodel/layer_routing.cc).
  const std::vector<OpDesc>& LayerOps(const ModelSpec& md, int64_t layer) const;
  // Per layer kind, the weights' collectives and sizes.
  WeightSync dense_sync, moe_sync, embed_sync, head_sync;
};

StepPlan MakeStepPlan(const Scenario& sc);

// Axes helpers.
std::vector<MeshAxis> AxesMinus(const std::vector<MeshAxis>& a, const std::vector<MeshAxis>& b);
std::vector<MeshAxis> AxesIntersect(const std::vector<MeshAxis>& a, const std::vector<MeshAxis>& b);
int64_t AxesSize(const Mesh& mesh, const std::vector<MeshAxis>& axes);

}  // namespace moesim
