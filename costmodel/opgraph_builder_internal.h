// opgraph_builder_internal.h (internal to costmodel/: opgraph_builder.cc and
// opgraph_builder_overlap.cc)
//
// The builder behind BuildStepGraph (opgraph.h): it schedules the StepPlan's layer ops into an
// OpGraph, program (pipeline rank) by program: micro-batches in the pipeline schedule's task order
// (costmodel/pipeline_schedule.h), recomputation, FSDP gathers and their prefetch, gradient
// reduction, pipeline sends, the optimizer step; and the overlapped schedules: Megatron-Core's
// combined 1F1B step (training.overlap_moe_expert_parallel_comm) and MaxText's batch split
// (training.batch_split_factor, costmodel/batch_split.h).
//
// Invariants: ops are emitted in an order where every dependency is emitted first (an op's deps
// hold smaller ids); each program's compute ops form one chain on the compute stream; the same
// scenario gives the same graph, op for op. Units: bytes, FLOPs, as OpGraph.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "costmodel/compact_graph.h"
#include "costmodel/opgraph.h"
#include "costmodel/pipeline_schedule.h"
#include "costmodel/step_plan.h"

namespace moesim::opgraph_internal {

using Task = PipelineTask;

// A collective's mirror in backward: an all-gather's gradient is a reduce-scatter and back.
inline CollectiveKind Mirror(CollectiveKind k) {
  switch (k) {
    case CollectiveKind::kAllGather:
      return CollectiveKind::kReduceScatter;
    case CollectiveKind::kReduceScatter:
      return CollectiveKind::kAllGather;
    default:
      return k;
  }
}

class Builder {
 public:
  Builder(const Scenario& sc, OpGraph* out);

  void Build();

  // compact_graph.h: the same program with each distinct task of a stage built once
  // (opgraph_builder_compact.cc). Compactable(): no paired tasks, queues or DualPipe.
  bool Compactable() const { return !dualpipe_ && !ep_overlap_; }
  void BuildCompact(CompactGraph* out);
  // Ops without names (Op::name empty): for a caller that only times the program.
  void OmitNames() { names_ = false; }

 private:
  // The position of (program, chunk) on its micro-batches' way through the model: the index of
  // its PipelineChunk in layout_.stages. DualPipe (pipeline_schedule.h): rank r's chunk 1 runs
  // model stage P-1-r, on the way of the micro-batches fed from rank P-1.
  int32_t VirtualStage(int32_t program, int32_t chunk) const;
  int32_t LastVirtualStage() const { return static_cast<int32_t>(layout_.stages.size()) - 1; }
  // The program that runs virtual stage `vs` for the micro-batches of `chunk`.
  int32_t ProgramOf(int32_t chunk, int32_t vs) const;
  // Model chunks a program holds: DualPipe's two copies, or the interleaved schedule's chunks.
  int32_t ChunksPerProgram() const { return dualpipe_ ? 2 : chunks_; }
  // The last micro-batch through a chunk: its backward is followed by the gradient syncs.
  int32_t LastMicroBatch(int32_t chunk) const;

  bool Ready(int32_t p, const Task& t) const;

  int32_t Emit(Op op);

  Op Base(const std::string& name, int32_t program, int32_t layer, int32_t mb, Phase phase) const;

  // Emits `ops` forward (or, with backward, their gradients in reverse). `first_deps` gate the
  // first compute op. Returns the id of the first compute op emitted.
  int32_t EmitOps(std::span<const OpDesc> ops, int32_t program, int32_t layer, int32_t mb,
                  Phase phase, std::vector<int32_t> first_deps, bool selective_only = false);

  // FSDP all-gathers of a layer's weights, on the prefetch stream.
  std::vector<int32_t> EmitGathers(const WeightSync& sync, int32_t program, int32_t layer,
                                   int32_t mb, Phase phase, int32_t after);

  void EmitGradSyncs(const WeightSync& sync, int32_t program, int32_t layer, int32_t mb);

  std::vector<int32_t> TakeCarry();

  void EmitTask(int32_t p, const Task& t);

  // DualPipe's W: the oldest queued weight gradients on the compute stream, then the gradient
  // syncs that waited for them (the last micro-batch's).
  void EmitWeightTask(int32_t p);

  // DualPipe: ranks r and P-1-r hold copies of the same two model stages; before the optimizer
  // each sends the other its gradients of both (the sum over the pair: an all-reduce of two,
  // each rank sending one copy's worth), on the gradient stream after its last backward.
  void EmitMirrorGradExchange();

  // Activations (or their gradients) one micro-batch sends to the next pipeline stage.
  double ActBytes() const;

  // --- training.overlap_moe_expert_parallel_comm: Megatron-Core's combined 1F1B step ---
  // A forward and a backward task of one stage emitted together, layer by layer, each as a
  // chain of its own (its last compute op and its pending dependencies), interleaved in the
  // order of Megatron-Core's TransformerLayerSchedulePlan.run: per pair of layers
  //   ep stream:      combine.bwd | dispatch.fwd  dispatch.bwd | combine.fwd
  //   compute stream: attn.fwd    | experts.bwd  experts.fwd   | attn.bwd
  // where each side's ops wait only for their own chain, so each all-to-all runs beside the
  // other chain's compute and only what outlasts that compute is exposed.
  struct Chain {
    Task t{};
    int32_t vs = 0;
    const PipelineChunk* chunk = nullptr;
    std::vector<int32_t> deps;  // the pipeline receive and what the stage carried, not yet taken
    int32_t prev_first = -1, prev_last = -1;  // the layer before: FSDP gathers start after it
    int32_t last_compute = -1;
    std::vector<int32_t> carry;
    std::vector<Op> wgrads;  // delayed weight gradients not yet emitted
  };

  Chain Open(int32_t p, const Task& t, const std::vector<int32_t>& carried);
  void Enter(int32_t p, Chain& c);
  void Leave(int32_t p, Chain& c);
  std::vector<int32_t> Gated(int32_t p, Chain& c, const WeightSync& sync, int32_t layer,
                             Phase phase);

  // Part `part` of layer l's ops: 0 up to the dispatch all-to-all (attention, router,
  // permutation), 1 the dispatch, 2 the experts, 3 the combine, 4 the rest; a layer without
  // expert all-to-alls is all part 0.
  bool Split(int32_t l) const { return sc_.model.IsMoeLayer(l) && a2a_at_[0] != kNoSplit; }
  std::span<const OpDesc> Part(int32_t l, int32_t part, const StepPlan* plan = nullptr) const;
  const WeightSync& SyncOf(int32_t l) const;

  void ForwardPart(int32_t p, Chain& c, int32_t l, int32_t part);

  // Backward parts run 4 down to 0; selective recomputation just before the part it serves.
  // With delay_wgrad_compute a part's weight gradients follow its input gradients, the experts'
  // after the dispatch's backward has been issued.
  void BackwardPart(int32_t p, Chain& c, int32_t l, int32_t part);

  void ForwardLayer(int32_t p, Chain& c, int32_t l);
  void BackwardLayer(int32_t p, Chain& c, int32_t l);

  void EmitPair(int32_t p, const Task& ft, const Task& bt);

  // training.batch_split_factor (costmodel/batch_split.h): the run of MoE layers from `l` up to
  // `end` (exclusive; down in backward) as F sub-batch chains of sub_plan_'s ops in
  // BatchSplitOrder's order, FSDP gathers before a layer's first step and its gradient reduction
  // after its last. Without prefetch a layer's gathers wait for the latest compute op emitted
  // (the previous layer's last sub-batch may still be running). Returns the layer after the run.
  int32_t EmitSplitRun(int32_t p, const Task& t, int32_t l, int32_t end, bool last_mb,
                       std::vector<int32_t>& deps, int32_t& prev_first, int32_t& prev_last);

  // `extra` = dependencies not yet taken by an op of the task (an empty chunk's receive).
  int32_t EmitSend(int32_t p, int32_t mb, double bytes, Phase phase, int32_t to,
                   const std::vector<int32_t>& extra);

  // The weight syncs of every layer a program holds (DualPipe: both copies).
  std::vector<const WeightSync*> ProgramSyncs(int32_t p) const;
  double ProgramParams(int32_t p) const;

  void EmitOptimizer(int32_t p);

  // BuildCompact's units. A unit is built by running its emission on an empty graph after
  // placeholder ops for what it may wait for (UnitContext); its ports say where the builder's
  // state points after it, as unit ops (>= 0) or inputs (-1 - slot); kNoPort: nowhere.
  static constexpr int32_t kNoPort = std::numeric_limits<int32_t>::min();
  struct UnitContext {
    int32_t program = 0;
    int32_t first_layer = 0;  // of the task's pipeline chunk
    int32_t mb = -1;
    bool has_last_compute = false;                    // input slot 0: the program's last compute op
    size_t carry = 0;                                 // then the ops carried from its previous task
    std::optional<std::pair<int32_t, int32_t>> recv;  // then this (mb, vs) receive: p2p map
    bool forward = true;                              // p2p_fwd_ (else p2p_bwd_)
    size_t grads = 0;  // then the program's gradient syncs (the optimizer)
    std::optional<std::pair<int32_t, int32_t>> send;  // the (mb, vs) send it emits
  };
  struct UnitPorts {
    int32_t last_compute = kNoPort;
    std::vector<int32_t> carry;
    int32_t send = kNoPort;
    std::vector<int32_t> grads;  // gradient syncs it adds
  };
  // Appends the unit to out->units and returns its index.
  int32_t MakeUnit(const UnitContext& ctx, const std::function<void()>& emit, CompactGraph* out,
                   UnitPorts* ports);

  const Scenario& sc_;
  StepPlan plan_;
  OpGraph& g_;
  PipelineLayout layout_;  // which layers each (rank, chunk) runs
  int32_t stages_ = 1, chunks_ = 1, n_mb_ = 1;
  std::map<std::pair<int32_t, int32_t>, int32_t> p2p_fwd_, p2p_bwd_;  // (mb, vs) -> send op
  std::vector<std::vector<int32_t>> grad_ids_;
  std::vector<int32_t> last_compute_;
  std::vector<int32_t> last_wgrad_;                // last delayed weight gradient per program
  std::vector<int32_t> carry_;                     // of the program being emitted
  std::vector<std::vector<int32_t>> stage_carry_;  // per program, between its tasks
  bool ep_overlap_ = false, delay_wgrad_ = false, dualpipe_ = false;
  int32_t batch_split_ = 1;  // training.batch_split_factor
  StepPlan sub_plan_;        // one sub-batch's ops (batch_split_ > 1)
  // DualPipe's zero-bubble queue per program: each entry one backward's weight gradients and the
  // gradient syncs that follow them.
  struct QueuedSync {
    const WeightSync* sync;
    int32_t layer, mb;
  };
  struct ZeroBubbleSet {
    std::vector<Op> wgrads;
    std::vector<QueuedSync> syncs;
  };
  std::vector<std::deque<ZeroBubbleSet>> zb_;
  static constexpr size_t kNoSplit = static_cast<size_t>(-1);
  std::array<size_t, 2> a2a_at_ = {kNoSplit, kNoSplit};  // moe_ops' dispatch and combine
  std::vector<Op>* defer_ = nullptr;  // EmitOps holds back weight gradients here when set
  bool names_ = true;
};

}  // namespace moesim::opgraph_internal
