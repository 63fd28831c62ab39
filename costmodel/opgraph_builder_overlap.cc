// The overlapped schedules of the step graph builder (opgraph_builder_internal.h): Megatron-Core's
// combined 1F1B step (training.overlap_moe_expert_parallel_comm: a forward and a backward task
// emitted together, layer by layer), MaxText's batch split (training.batch_split_factor:
// sub-batch chains interleaved phase by phase, costmodel/batch_split.h), and pipeline sends.
#include <algorithm>
#include <array>
#include <map>
#include <span>

#include "costmodel/batch_split.h"
#include "costmodel/memory.h"
#include "costmodel/opgraph.h"
#include "costmodel/opgraph_builder_internal.h"
#include "costmodel/pipeline_schedule.h"
#include "costmodel/step_plan.h"

namespace moesim::opgraph_internal {

Builder::Chain Builder::Open(int32_t p, const Task& t, const std::vector<int32_t>& carried) {
  Chain c;
  c.t = t;
  c.vs = VirtualStage(p, t.chunk);
  c.chunk = &layout_.stages[static_cast<size_t>(c.vs)];
  c.deps = carried;
  if (t.forward && c.vs > 0) c.deps.push_back(p2p_fwd_.at({t.mb, c.vs - 1}));
  if (!t.forward && c.vs < LastVirtualStage()) c.deps.push_back(p2p_bwd_.at({t.mb, c.vs + 1}));
  c.last_compute = last_compute_[static_cast<size_t>(p)];
  return c;
}

void Builder::Enter(int32_t p, Chain& c) {
  last_compute_[static_cast<size_t>(p)] = c.last_compute;
  carry_ = std::move(c.carry);
  c.carry.clear();
}

void Builder::Leave(int32_t p, Chain& c) {
  c.last_compute = last_compute_[static_cast<size_t>(p)];
  c.carry = TakeCarry();
}

std::vector<int32_t> Builder::Gated(int32_t p, Chain& c, const WeightSync& sync, int32_t layer,
                                    Phase phase) {
  const int32_t after = sc_.training.prefetch_weights ? c.prev_first : c.prev_last;
  auto ids = EmitGathers(sync, p, layer, c.t.mb, phase, after);
  ids.insert(ids.end(), c.deps.begin(), c.deps.end());
  c.deps.clear();
  for (int32_t x : TakeCarry()) ids.push_back(x);
  return ids;
}

std::span<const OpDesc> Builder::Part(int32_t l, int32_t part, const StepPlan* plan) const {
  const std::vector<OpDesc>& ops = (plan != nullptr ? *plan : plan_).LayerOps(sc_.model, l);
  if (!Split(l)) return part == 0 ? std::span<const OpDesc>(ops) : std::span<const OpDesc>();
  const std::array<size_t, 6> at = {0,          a2a_at_[0],     a2a_at_[0] + 1,
                                    a2a_at_[1], a2a_at_[1] + 1, ops.size()};
  return std::span<const OpDesc>(ops).subspan(
      at[static_cast<size_t>(part)],
      at[static_cast<size_t>(part) + 1] - at[static_cast<size_t>(part)]);
}

const WeightSync& Builder::SyncOf(int32_t l) const {
  return sc_.model.IsMoeLayer(l) ? plan_.moe_sync : plan_.dense_sync;
}

void Builder::ForwardPart(int32_t p, Chain& c, int32_t l, int32_t part) {
  const auto ops = Part(l, part);
  if (ops.empty()) return;
  Enter(p, c);
  auto first = part == 0 ? Gated(p, c, SyncOf(l), l, Phase::kForward) : TakeCarry();
  const int32_t id = EmitOps(ops, p, l, c.t.mb, Phase::kForward, std::move(first));
  if (part == 0) c.prev_first = id;
  c.prev_last = last_compute_[static_cast<size_t>(p)];
  Leave(p, c);
}

// Backward parts run 4 down to 0; selective recomputation just before the part it serves.
// With delay_wgrad_compute a part's weight gradients follow its input gradients, the experts'
// after the dispatch's backward has been issued.
void Builder::BackwardPart(int32_t p, Chain& c, int32_t l, int32_t part) {
  const auto ops = Part(l, part);
  if (ops.empty()) return;
  Enter(p, c);
  const bool first_part = part == (Split(l) ? 4 : 0);
  auto first = first_part ? Gated(p, c, SyncOf(l), l, Phase::kBackward) : TakeCarry();
  int32_t r = -1;
  if (sc_.training.recompute == Recompute::kSelective) {
    r = EmitOps(ops, p, l, c.t.mb, Phase::kRecompute, first, true);
    if (r >= 0) first.clear();
    if (r < 0) carry_.clear();  // nothing emitted: `first` is still to be taken
  }
  defer_ = delay_wgrad_ ? &c.wgrads : nullptr;
  const int32_t b = EmitOps(ops, p, l, c.t.mb, Phase::kBackward, std::move(first));
  defer_ = nullptr;
  if (first_part) c.prev_first = r >= 0 ? r : b;
  c.prev_last = last_compute_[static_cast<size_t>(p)];
  if (part != 2) {
    // Weight gradients on the compute stream, off the chain: the chain's next op does not
    // wait for them (the gradient reduction does).
    const int32_t keep = last_compute_[static_cast<size_t>(p)];
    for (Op& w : c.wgrads) last_wgrad_[static_cast<size_t>(p)] = Emit(std::move(w));
    c.wgrads.clear();
    last_compute_[static_cast<size_t>(p)] = keep;
  }
  if (part == 0 && c.t.mb == LastMicroBatch(c.t.chunk)) EmitGradSyncs(SyncOf(l), p, l, c.t.mb);
  Leave(p, c);
}

void Builder::ForwardLayer(int32_t p, Chain& c, int32_t l) {
  for (int32_t part = 0; part < 5; ++part) ForwardPart(p, c, l, part);
}

void Builder::BackwardLayer(int32_t p, Chain& c, int32_t l) {
  for (int32_t part = 4; part >= 0; --part) BackwardPart(p, c, l, part);
}

void Builder::EmitPair(int32_t p, const Task& ft, const Task& bt) {
  const std::vector<int32_t> carried = TakeCarry();
  Chain f = Open(p, ft, carried), b = Open(p, bt, carried);
  if (dualpipe_) {
    // DualPipe's _forward_backward_chunk receives both, computes both, then sends both.
    f.deps.insert(f.deps.end(), b.deps.begin(), b.deps.end());
    std::sort(f.deps.begin(), f.deps.end());
    f.deps.erase(std::unique(f.deps.begin(), f.deps.end()), f.deps.end());
    b.deps = f.deps;
  }
  const PipelineChunk& fc = *f.chunk;
  const PipelineChunk& bc = *b.chunk;
  const bool last_mb = bt.mb == LastMicroBatch(bt.chunk);
  if (fc.embedding) {
    Enter(p, f);
    f.prev_first = EmitOps(plan_.embed_ops, p, -1, ft.mb, Phase::kForward,
                           Gated(p, f, plan_.embed_sync, -1, Phase::kForward));
    f.prev_last = last_compute_[static_cast<size_t>(p)];
    Leave(p, f);
  }
  if (bc.head) {
    Enter(p, b);
    b.prev_first = EmitOps(plan_.head_ops, p, -1, bt.mb, Phase::kBackward,
                           Gated(p, b, plan_.head_sync, -1, Phase::kBackward));
    b.prev_last = last_compute_[static_cast<size_t>(p)];
    if (last_mb) EmitGradSyncs(plan_.head_sync, p, -1, bt.mb);
    Leave(p, b);
  }
  const int32_t nf = static_cast<int32_t>(fc.num_layers);
  const int32_t nb = static_cast<int32_t>(bc.num_layers);
  const int32_t f0 = static_cast<int32_t>(fc.first_layer);
  const int32_t b_end = static_cast<int32_t>(bc.first_layer) + nb;
  const int32_t both = std::min(nf, nb);
  for (int32_t i = 0; i < both; ++i) {
    const int32_t lf = f0 + i, lb = b_end - 1 - i;
    BackwardPart(p, b, lb, 4);
    BackwardPart(p, b, lb, 3);  // combine.bwd beside attn.fwd
    ForwardPart(p, f, lf, 0);
    BackwardPart(p, b, lb, 2);  // experts.bwd beside dispatch.fwd
    ForwardPart(p, f, lf, 1);
    BackwardPart(p, b, lb, 1);  // dispatch.bwd beside experts.fwd (and delayed wgrads)
    ForwardPart(p, f, lf, 2);
    ForwardPart(p, f, lf, 3);  // combine.fwd beside attn.bwd
    BackwardPart(p, b, lb, 0);
    ForwardPart(p, f, lf, 4);
  }
  for (int32_t i = both; i < nb; ++i) BackwardLayer(p, b, b_end - 1 - i);
  for (int32_t i = both; i < nf; ++i) ForwardLayer(p, f, f0 + i);
  Enter(p, f);
  if (fc.head) {
    EmitOps(plan_.head_ops, p, -1, ft.mb, Phase::kForward,
            Gated(p, f, plan_.head_sync, -1, Phase::kForward));
  } else {
    if (dualpipe_ && b.last_compute >= 0) f.deps.push_back(b.last_compute);
    p2p_fwd_[{ft.mb, f.vs}] =
        EmitSend(p, ft.mb, ActBytes(), Phase::kForward, ProgramOf(ft.chunk, f.vs + 1), f.deps);
  }
  Leave(p, f);
  Enter(p, b);
  if (bc.embedding) {
    EmitOps(plan_.embed_ops, p, -1, bt.mb, Phase::kBackward,
            Gated(p, b, plan_.embed_sync, -1, Phase::kBackward));
    if (last_mb) EmitGradSyncs(plan_.embed_sync, p, -1, bt.mb);
  } else {
    p2p_bwd_[{bt.mb, b.vs}] =
        EmitSend(p, bt.mb, ActBytes(), Phase::kBackward, ProgramOf(bt.chunk, b.vs - 1), b.deps);
  }
  Leave(p, b);
  last_compute_[static_cast<size_t>(p)] = std::max(f.last_compute, b.last_compute);
  carry_ = std::move(f.carry);
  carry_.insert(carry_.end(), b.carry.begin(), b.carry.end());
}

// training.batch_split_factor (costmodel/batch_split.h): the run of MoE layers from `l` up to
// `end` (exclusive; down in backward) as F sub-batch chains of sub_plan_'s ops in
// BatchSplitOrder's order, FSDP gathers before a layer's first step and its gradient reduction
// after its last. Without prefetch a layer's gathers wait for the latest compute op emitted
// (the previous layer's last sub-batch may still be running). Returns the layer after the run.
int32_t Builder::EmitSplitRun(int32_t p, const Task& t, int32_t l, int32_t end, bool last_mb,
                              std::vector<int32_t>& deps, int32_t& prev_first, int32_t& prev_last) {
  const bool backward = !t.forward;
  const int32_t step = backward ? -1 : 1;
  std::vector<int32_t> run;
  for (int32_t i = l; i != end && sc_.model.IsMoeLayer(i); i += step) run.push_back(i);
  std::vector<Chain> subs(static_cast<size_t>(batch_split_));
  for (Chain& c : subs) c.last_compute = last_compute_[static_cast<size_t>(p)];
  subs[0].carry = TakeCarry();
  auto latest = [&] {
    int32_t x = -1;
    for (const Chain& c : subs) x = std::max(x, c.last_compute);
    return x;
  };
  const Recompute rc = sc_.training.recompute;
  for (const SplitStep& s : BatchSplitOrder(run, batch_split_, backward, rc == Recompute::kFull)) {
    Chain& c = subs[static_cast<size_t>(s.sub)];
    Enter(p, c);
    std::vector<int32_t> first = TakeCarry();
    if (s.opens) {
      const int32_t after = sc_.training.prefetch_weights ? prev_first : latest();
      auto ids = EmitGathers(SyncOf(s.layer), p, s.layer, t.mb,
                             backward ? Phase::kBackward : Phase::kForward, after);
      ids.insert(ids.end(), deps.begin(), deps.end());
      deps.clear();
      first.insert(first.begin(), ids.begin(), ids.end());
    }
    const Phase phase = s.recompute ? Phase::kRecompute
                        : backward  ? Phase::kBackward
                                    : Phase::kForward;
    const auto ops = Part(s.layer, s.part, &sub_plan_);
    int32_t r = -1, b = -1;
    if (ops.empty()) {
      carry_ = std::move(first);  // for the sub-batch's next part
    } else {
      if (phase == Phase::kBackward && rc == Recompute::kSelective) {
        r = EmitOps(ops, p, s.layer, t.mb, Phase::kRecompute, first, true);
        if (r >= 0) first.clear();
        if (r < 0) carry_.clear();  // nothing emitted: `first` is still to be taken
      }
      b = EmitOps(ops, p, s.layer, t.mb, phase, std::move(first));
    }
    if (s.opens) prev_first = r >= 0 ? r : b;
    if (s.closes && backward && last_mb) EmitGradSyncs(SyncOf(s.layer), p, s.layer, t.mb);
    Leave(p, c);
  }
  last_compute_[static_cast<size_t>(p)] = prev_last = latest();
  for (Chain& c : subs) carry_.insert(carry_.end(), c.carry.begin(), c.carry.end());
  return run.back() + step;
}

// `extra` = dependencies not yet taken by an op of the task (an empty chunk's receive).
int32_t Builder::EmitSend(int32_t p, int32_t mb, double bytes, Phase phase, int32_t to,
                          const std::vector<int32_t>& extra) {
  Op op = Base(phase == Phase::kForward ? "p2p.activations" : "p2p.gradients", p, -1, mb, phase);
  op.is_collective = true;
  op.stream = kP2pStream;
  op.collective.kind = CollectiveKind::kSendRecv;
  op.collective.axes = {MeshAxis::kPipeline};
  op.collective.bytes = bytes;
  op.collective.peer_program = to;
  const int32_t last = last_compute_[static_cast<size_t>(p)];
  if (last >= 0) op.deps.push_back(last);
  for (int32_t c : TakeCarry()) op.deps.push_back(c);
  op.deps.insert(op.deps.end(), extra.begin(), extra.end());
  return Emit(std::move(op));
}

}  // namespace moesim::opgraph_internal
