// opgraph.h
//
// The per-device program of one training step: compute ops (FLOPs, HBM bytes, GEMM shape) and
// collective ops (kind, mesh axes of the group, bytes), on in-order streams, with dependencies.
// Built from a validated Scenario by BuildStepGraph() using the same layer catalogue as the rest
// of costmodel/ (layers.h) and the collectives a sharding implies:
//   - a weight sharded over a mesh axis that also shards the batch (FSDP; Apple's Expert axis for
//     dense layers) is all-gathered before use, forward and backward, and its gradient
//     reduce-scattered after the backward;
//   - heads / FFN hidden / vocab sharded over an axis (tensor parallel) leave partial sums: the
//     block's output is reduce-scattered (when activations are sharded over that axis: sequence
//     parallel, or Apple's embed-over-Model) or all-reduced, and its input all-gathered (SP);
//   - MoE tokens move from group-sharded to expert-sharded: all-to-all over the expert-parallel
//     axes, there and back, forward and backward;
//   - weights replicated over batch axes get their gradients all-reduced over those axes
//     (reduce-scattered, and the parameters all-gathered after the optimizer, with
//     shard_optimizer_over_data);
//   - pipeline stages exchange activations and gradients with send/recv;
//   - a sequence split over context-parallel axes passes keys and values around the ring of each
//     context group (ring_shift steps), overlapped with blockwise attention on the chunk in hand.
// SPMD: every device of a pipeline stage runs the same program, so one program per stage is
// built ("program" = stage); a collective on axes A runs on every group of A at once.
//
// Collective sizes follow nccl-tests: all-reduce = buffer bytes, all-gather = output (gathered)
// bytes, reduce-scatter = input bytes, all-to-all = bytes each device sends in total (itself
// included), send/recv = message bytes, ring shift = bytes each device sends to its successor.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "costmodel/attention_model.h"
#include "proto/scenario.h"

namespace moesim {

enum class Phase { kForward, kBackward, kRecompute, kOptimizer };
const char* PhaseName(Phase p);

// kRingShift: one step of a ring within each group: every member sends `bytes` to the next
// member of its group (in mesh order, the last to the first) and receives as much from the one
// before (Megatron-Core / Transformer Engine context parallelism's P2P exchange of K and V).
enum class CollectiveKind {
  kAllReduce,
  kAllGather,
  kReduceScatter,
  kAllToAll,
  kSendRecv,
  kRingShift
};
const char* CollectiveKindName(CollectiveKind k);  // "all_reduce", ...

// In-order streams of every program. Compute runs on one; collectives on the critical path
// (tensor parallel, expert all-to-all) on "comm"; FSDP weight gathers on "prefetch"; gradient
// reductions on "grad"; pipeline transfers on "p2p"; with
// training.overlap_moe_expert_parallel_comm the expert all-to-alls on "ep" (Megatron-Core's
// communication stream of the combined 1F1B schedule), beside the other micro-batch's compute.
enum StreamId : int32_t {
  kComputeStream = 0,
  kCommStream = 1,
  kPrefetchStream = 2,
  kGradStream = 3,
  kP2pStream = 4,
  kEpStream = 5,
};
inline constexpr int32_t kNumStreams = 6;
const char* StreamName(int32_t stream);

struct ComputeWork {
  double flops = 0;  // FLOPs on this device (capacity padding and dispatch einsums included)
  double bytes = 0;  // HBM bytes read and written
  bool matmul = false;
  int64_t m = 0, n = 0, k = 0;  // GEMM shape (matmul only), for tile efficiency
  // The GEMM runs in FP8 (training.fp8_recipe): operands FP8 (e4m3, gradients e5m2 in the hybrid
  // format), output BF16, at the chip's FP8 peak.
  bool fp8 = false;
  // ... with block scales (BLOCKWISE, MXFP8): at Hardware.fp8_block_scaled_gemm_rate of the
  // per-tensor FP8 GEMM's speed.
  bool fp8_block_scaled = false;
  // Elementwise ops: the streaming kernel they are made of, for its bandwidth efficiency
  // (HardwareProfile::MemoryEfficiency); none = memory_efficiency.
  std::optional<MemoryKernel> kernel;
  // Attention's core under blockwise (flash) attention: its share of one FlashAttention call,
  // timed by the attention model (costmodel/attention_model.h) where the chip has one; the
  // GEMM fields above still describe it as einsums (FLOPs, the GEMM path without a model).
  std::optional<AttentionShape> attention;
};

// An MoE layer's token dispatch or combine by a dispatcher other than the flat all-to-all
// (moesim.proto Moe.token_dispatcher): the network lowers it with sim/collectives/dispatch.h from
// the routing below instead of from `bytes`. The busiest rank pacing it scales every transfer by
// CollectiveWork::max_over_mean.
enum class TokenDispatcher { kAllToAll, kAllGather, kHierarchical };
struct TokenExchange {
  TokenDispatcher dispatcher = TokenDispatcher::kAllToAll;  // kAllToAll: not used
  bool combine = false;  // from the experts back (the combine, or the dispatch's gradient)
  double tokens = 0;     // tokens per expert-parallel rank entering the exchange
  int64_t hidden = 0;    // elements per token row (d_model)
  double bytes_per_element = 2;
  double scale_bytes_per_block = 0;  // FP8 dispatch: one fp32 scale per 128 elements
  double backward_bytes_per_element = 2;
  int64_t num_experts = 0;
  int64_t top_k = 0;
  // Group-limited routing (moesim.proto Moe.router_num_groups, router_group_topk; 0 = none): the
  // network turns it into the nodes a token may reach.
  int64_t router_num_groups = 0;
  int64_t router_group_topk = 0;
  // The backward's mirror: the other direction, in backward_bytes_per_element, no scales.
  TokenExchange Backward() const {
    TokenExchange b = *this;
    b.combine = !combine;
    b.bytes_per_element = backward_bytes_per_element;
    b.scale_bytes_per_block = 0;
    return b;
  }
  auto operator<=>(const TokenExchange&) const = default;
};
const char* TokenDispatcherName(TokenDispatcher d);  // "alltoall", "allgather", "hierarchical"

struct CollectiveWork {
  CollectiveKind kind = CollectiveKind::kAllReduce;
  std::vector<MeshAxis> axes;  // the group: devices that differ only along these mesh axes
  double bytes = 0;            // nccl-tests size, per device
  double max_over_mean = 1;    // all-to-all-v: the busiest rank's bytes over the mean
  int32_t peer_program = -1;   // send/recv: the receiving stage
  TokenExchange exchange;      // all-to-all of an MoE layer with another dispatcher
};

struct Op {
  int32_t id = 0;
  std::string name;  // layer-qualified: "L3.attn.q", "L3.attn.q.dgrad", "L3.moe.dispatch_a2a"
  int32_t program = 0;
  int32_t stream = kComputeStream;
  Phase phase = Phase::kForward;
  int32_t layer = -1;  // -1: embedding/head/optimizer
  int32_t micro_batch = -1;
  bool is_collective = false;
  ComputeWork compute;
  CollectiveWork collective;
  std::vector<int32_t> deps;  // ids < id
};

struct OpGraph {
  int32_t num_programs = 1;
  int64_t devices_per_program = 1;
  std::vector<Op> ops;
  double tokens_per_step = 0;
  double model_flops_per_step = 0;      // all devices: forward + backward of the model
  double hardware_flops_per_step = 0;   // all devices: compute ops' FLOPs (a FlopSum)
  double dropped_token_fraction = 0;    // routed tokens over capacity (MoE)
  double busiest_expert_rank_load = 1;  // busiest EP rank's routed tokens over the mean
};

// An upper bound on the number of ops BuildStepGraph emits for `scenario`, from the per-layer op
// lists and the micro-batch count, without building the graph (microseconds): callers refuse a
// scenario past limits::kMaxStepOps, or one whose graph would not fit in memory, before
// building it. A double: the product of a scenario's counts may exceed int64.
double StepGraphOpBound(const Scenario& scenario);

OpGraph BuildStepGraph(const Scenario& scenario);
// The same graph, built into *out, whose op storage is reused: a caller that builds one graph
// after another (the planner, sweeps) keeps its pages instead of faulting in fresh ones for
// each, which took 45% of `moesim plan`'s time when the graph was returned by value.
void BuildStepGraph(const Scenario& scenario, OpGraph* out);

// Roofline time: max(FLOPs / (peak x efficiency(shape)), bytes / (HBM bandwidth x efficiency))
// plus the per-op overhead. A GEMM on a profile with the kernel model (gemm_compute_units or
// gemm_mxu_size: costmodel/gemm_model.h, the one owner of GEMM time) reaches the model's compute
// fraction (waves of tiles, split-K, k ramp; MXU padding on TPUs) x matmul_efficiency, at the FP8
// peak when ComputeWork::fp8, plus the model's launch overhead. Without it: matmul_efficiency x
// the fraction of each GEMM dimension that fills whole 128-wide tiles. A calibrated saturation
// model (gemm_max_efficiency > 0, proto/moesim.proto Hardware.gemm_*) takes precedence.
double ComputeTimeS(const ComputeWork& work, const HardwareProfile& hw);
// The fraction of peak a compute op reaches under `hw` (the first term of ComputeTimeS).
double MatmulEfficiency(const ComputeWork& work, const HardwareProfile& hw);

// The kernel class of a compute op, for the breakdown and the trace: "attention" (attention's
// core under blockwise attention), "gemm" (every other matmul, FP8 or not), "memory" (streaming,
// memory-bound ops: norms, activations, casts, the optimizer).
inline const char* KernelClassName(const ComputeWork& w) {
  if (w.attention) return "attention";
  return w.matmul ? "gemm" : "memory";
}

}  // namespace moesim
