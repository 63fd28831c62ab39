// Schedules the StepPlan's layer ops into an OpGraph: micro-batches, pipeline schedules,
// recomputation, FSDP prefetch, gradient reduction and the optimizer step
// (opgraph_builder_internal.h; the overlapped schedules are in opgraph_builder_overlap.cc).
#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <set>
#include <span>

#include "costmodel/batch_split.h"
#include "costmodel/flop_sum.h"
#include "costmodel/memory.h"
#include "costmodel/model_cost.h"
#include "costmodel/opgraph.h"
#include "costmodel/opgraph_builder_internal.h"
#include "costmodel/pipeline_schedule.h"
#include "costmodel/step_plan.h"

namespace moesim {
namespace opgraph_internal {

Builder::Builder(const Scenario& sc, OpGraph* out)
    : sc_(sc), plan_(MakeStepPlan(sc)), g_(*out), layout_(ScenarioPipelineLayout(sc)) {
  stages_ = static_cast<int32_t>(layout_.ranks);
  chunks_ = static_cast<int32_t>(layout_.chunks);
  n_mb_ = static_cast<int32_t>(sc.training.num_micro_batches);
  grad_ids_.resize(static_cast<size_t>(stages_));
  last_compute_.assign(static_cast<size_t>(stages_), -1);
  stage_carry_.resize(static_cast<size_t>(stages_));
  last_wgrad_.assign(static_cast<size_t>(stages_), -1);
  ep_overlap_ = sc.training.overlap_moe_expert_parallel_comm;
  dualpipe_ = sc.training.pipeline_schedule == PipelineSchedule::kDualPipe && stages_ > 1;
  zb_.resize(static_cast<size_t>(stages_));
  delay_wgrad_ = sc.training.delay_wgrad_compute;
  batch_split_ = static_cast<int32_t>(sc.training.batch_split_factor);
  if (batch_split_ > 1) {
    // A sub-batch: 1/F of the micro-batch's sequences on each device (validated to divide).
    Scenario sub = sc;
    sub.training.micro_batch_size /= batch_split_;
    sub_plan_ = MakeStepPlan(sub);
  }
  // The MoE layer's expert all-to-alls (dispatch, then combine) split it into five parts.
  for (size_t i = 0; i < plan_.moe_ops.size(); ++i) {
    const OpDesc& d = plan_.moe_ops[i];
    if (d.is_collective && !d.ring && d.collective.kind == CollectiveKind::kAllToAll) {
      (a2a_at_[0] == kNoSplit ? a2a_at_[0] : a2a_at_[1]) = i;
    }
  }
  if (a2a_at_[1] == kNoSplit) a2a_at_[0] = kNoSplit;
}

void Builder::Build() {
  g_.num_programs = stages_;
  g_.devices_per_program = sc_.sharding.mesh.NumDevices() / stages_;
  std::vector<std::vector<Task>> tasks(static_cast<size_t>(stages_));
  const PipelineShape shape{stages_, chunks_, n_mb_, sc_.training.pipeline_schedule, ep_overlap_};
  for (int32_t p = 0; p < stages_; ++p) tasks[static_cast<size_t>(p)] = PipelineTasks(shape, p);
  // Emit tasks in an order where every cross-stage dependency is emitted first.
  std::vector<size_t> next(static_cast<size_t>(stages_), 0);
  bool progress = true;
  while (progress) {
    progress = false;
    for (int32_t p = 0; p < stages_; ++p) {
      auto& list = tasks[static_cast<size_t>(p)];
      size_t& i = next[static_cast<size_t>(p)];
      while (i < list.size() && Ready(p, list[i])) {
        if (list[i].paired && !Ready(p, list[i + 1])) break;
        carry_ = std::move(stage_carry_[static_cast<size_t>(p)]);
        if (list[i].paired) {
          EmitPair(p, list[i], list[i + 1]);
          i += 2;
        } else if (list[i].weight) {
          EmitWeightTask(p);
          ++i;
        } else {
          EmitTask(p, list[i]);
          ++i;
        }
        stage_carry_[static_cast<size_t>(p)] = TakeCarry();
        progress = true;
      }
    }
    // A pair whose backward waits for a stage that waits for its forward: run the forward
    // alone (the extra warm-up forward makes this not happen in Megatron-LM's order).
    for (int32_t p = 0; p < stages_ && !progress; ++p) {
      auto& list = tasks[static_cast<size_t>(p)];
      const size_t i = next[static_cast<size_t>(p)];
      if (i < list.size() && list[i].paired && Ready(p, list[i])) {
        list[i].paired = false;
        progress = true;
      }
    }
  }
  if (dualpipe_) EmitMirrorGradExchange();
  for (int32_t p = 0; p < stages_; ++p) {
    carry_ = std::move(stage_carry_[static_cast<size_t>(p)]);
    EmitOptimizer(p);
  }
  const double tokens = static_cast<double>(sc_.training.global_batch_tokens);
  g_.tokens_per_step = tokens;
  g_.model_flops_per_step =
      ComputeModelCost(sc_.model, sc_.training).flops_per_token.model * tokens;
  FlopSum flops;
  for (const Op& op : g_.ops) flops.Add(op.compute.flops);
  g_.hardware_flops_per_step = flops.Value() * static_cast<double>(g_.devices_per_program);
  g_.dropped_token_fraction = plan_.dropped_fraction;
  g_.busiest_expert_rank_load = plan_.busiest_rank_load;
}

// The position of (program, chunk) on its micro-batches' way through the model: the index of
// its PipelineChunk in layout_.stages. DualPipe (pipeline_schedule.h): rank r's chunk 1 runs
// model stage P-1-r, on the way of the micro-batches fed from rank P-1.
int32_t Builder::VirtualStage(int32_t program, int32_t chunk) const {
  return dualpipe_ ? DualPipeStage(program, chunk, stages_) : chunk * stages_ + program;
}

// The program that runs virtual stage `vs` for the micro-batches of `chunk`.
int32_t Builder::ProgramOf(int32_t chunk, int32_t vs) const {
  return dualpipe_ ? DualPipeRank(vs, chunk, stages_) : vs % stages_;
}

// The last micro-batch through a chunk: its backward is followed by the gradient syncs.
int32_t Builder::LastMicroBatch(int32_t chunk) const {
  return dualpipe_ && chunk == 0 ? n_mb_ / 2 - 1 : n_mb_ - 1;
}

bool Builder::Ready(int32_t p, const Task& t) const {
  if (t.weight) return true;
  const int32_t vs = VirtualStage(p, t.chunk);
  if (t.forward) return vs == 0 || p2p_fwd_.count({t.mb, vs - 1}) != 0;
  return vs == LastVirtualStage() || p2p_bwd_.count({t.mb, vs + 1}) != 0;
}

int32_t Builder::Emit(Op op) {
  op.id = static_cast<int32_t>(g_.ops.size());
  if (!op.is_collective && op.stream == kComputeStream) {
    last_compute_[static_cast<size_t>(op.program)] = op.id;
  }
  g_.ops.push_back(std::move(op));
  return g_.ops.back().id;
}

Op Builder::Base(const std::string& name, int32_t program, int32_t layer, int32_t mb,
                 Phase phase) const {
  Op op;
  if (names_) op.name = (layer >= 0 ? "L" + std::to_string(layer) + "." : std::string()) + name;
  op.program = program;
  op.layer = layer;
  op.micro_batch = mb;
  op.phase = phase;
  return op;
}

// Emits `ops` forward (or, with backward, their gradients in reverse). `first_deps` gate the
// first compute op. Returns the id of the first compute op emitted.
int32_t Builder::EmitOps(std::span<const OpDesc> ops, int32_t program, int32_t layer, int32_t mb,
                         Phase phase, std::vector<int32_t> first_deps, bool selective_only) {
  const bool backward = phase == Phase::kBackward;
  std::vector<int32_t> pending = std::move(first_deps);
  int32_t first_compute = -1;
  // GEMM overlap (step_plan.h GemmOverlap): `beside` holds collectives running alongside the
  // current run of GEMMs, which the first op after the run waits for; a run's start is kept
  // so that a collective beside the run just emitted can start with it.
  std::vector<int32_t> beside, run_deps;
  bool in_run = false;
  int32_t run_before = -1;
  // `gemm`: a GEMM with a weight (or its gradient GEMMs), the ops a TP collective may overlap.
  auto compute = [&](const std::string& name, ComputeWork w, bool gemm) {
    const int32_t last = last_compute_[static_cast<size_t>(program)];
    if (gemm && !in_run) {
      in_run = true;
      run_deps = pending;
      run_before = last;
    } else if (!gemm) {
      in_run = false;
      pending.insert(pending.end(), beside.begin(), beside.end());
      beside.clear();
    }
    Op op = Base(name, program, layer, mb, phase);
    op.compute = w;
    op.deps = pending;  // the compute stream's order covers the previous compute op
    pending.clear();
    const int32_t id = Emit(std::move(op));
    if (first_compute < 0) first_compute = id;
  };
  auto collective = [&](const std::string& name, CollectiveWork w, GemmOverlap overlap) {
    Op op = Base(name, program, layer, mb, phase);
    op.is_collective = true;
    const bool ep =
        (ep_overlap_ || dualpipe_ || batch_split_ > 1) && w.kind == CollectiveKind::kAllToAll;
    op.stream = ep ? kEpStream : kCommStream;
    op.collective = std::move(w);
    const int32_t last = last_compute_[static_cast<size_t>(program)];
    if (overlap == GemmOverlap::kWithPreviousGemms && in_run) {
      // Starts with the run of GEMMs it overlaps; the next op waits for both.
      op.deps = run_deps;
      if (run_before >= 0) op.deps.push_back(run_before);
    } else {
      op.deps = pending;
      if (last >= 0) op.deps.push_back(last);
      op.deps.insert(op.deps.end(), beside.begin(), beside.end());
      beside.clear();
    }
    in_run = false;
    pending.clear();
    const int32_t id = Emit(std::move(op));
    if (overlap == GemmOverlap::kWithNextGemms) {
      beside.push_back(id);  // the GEMMs after it do not wait for it
    } else {
      pending.push_back(id);
    }
  };
  // A compute op forward, or its gradients backward.
  auto compute_op = [&](const OpDesc& d) {
    // An op that waits for the collectives beside the GEMMs before it also bounds the runs of
    // GEMMs on both sides (backward visits it in reverse, before those GEMMs' gradients).
    if (d.waits_beside) {
      in_run = false;
      pending.insert(pending.end(), beside.begin(), beside.end());
      beside.clear();
    }
    const bool gemm = d.compute.matmul && d.matmul_with_weight;
    if (!backward) {
      compute(d.name, d.compute, gemm);
    } else if (d.compute.matmul) {
      // Two GEMMs of the forward's size: the input gradient and the weight gradient (or, for
      // activation x activation einsums, the gradients of both inputs). Attention's core: each
      // of the four is a quarter of the FlashAttention backward call (attention_model.h).
      ComputeWork g = d.compute;
      if (g.attention) g.attention = g.attention->Backward();
      // Their true shapes (the kernel model times a GEMM by its shape, gemm_model.h): forward
      // C[m, n] = A[m, k] B[k, n]; dA[m, k] = dC[m, n] B^T (inner n); dB[k, n] = A^T dC
      // (inner m). FLOPs and bytes are the forward's.
      ComputeWork grad_a = g, grad_b = g;
      grad_a.n = d.compute.k;
      grad_a.k = d.compute.n;
      grad_b.m = d.compute.k;
      grad_b.k = d.compute.m;
      if (!d.first_operand_constant) {
        compute(d.name + (d.matmul_with_weight ? ".dgrad" : ".grad_a"), grad_a, gemm);
      }
      if (defer_ != nullptr && d.matmul_with_weight) {
        // training.delay_wgrad_compute: the weight gradient after the part's input gradients.
        Op w = Base(d.name + ".wgrad", program, layer, mb, phase);
        w.compute = grad_b;
        defer_->push_back(std::move(w));
      } else {
        compute(d.name + (d.matmul_with_weight ? ".wgrad" : ".grad_b"), grad_b, gemm);
      }
    } else {
      ComputeWork w = d.compute;
      w.bytes *= d.backward_bytes_factor;
      if (d.backward_kernel) w.kernel = d.backward_kernel;
      compute(d.name + ".bwd", w, false);
    }
    if (d.waits_beside) in_run = false;
  };
  // Context-parallel attention (step_plan.h RingAttention): the ring's steps go out on the
  // comm stream at once (in order on it); chunk j's compute waits for step j only, so each
  // step overlaps the compute of the chunk before it.
  auto ring = [&](const OpDesc& d) {
    const RingAttention& r = *d.ring;
    std::vector<int32_t> before = std::move(pending);
    before.insert(before.end(), beside.begin(), beside.end());
    beside.clear();
    in_run = false;
    auto shift = [&](const std::string& name, double bytes) {
      Op op = Base(name, program, layer, mb, phase);
      op.is_collective = true;
      op.stream = kCommStream;
      op.collective = r.shift;
      op.collective.bytes = bytes;
      op.deps = before;
      const int32_t last = last_compute_[static_cast<size_t>(program)];
      if (last >= 0) op.deps.push_back(last);
      return Emit(std::move(op));
    };
    // Backward carries K,V and the partial dK,dV of the chunk in hand.
    const double bytes = r.shift.bytes * (backward ? 2 : 1);
    std::vector<int32_t> steps;
    for (int64_t k = 1; k < r.steps; ++k) {
      steps.push_back(shift(d.name + (backward ? ".bwd" : ""), bytes));
    }
    const int64_t n_chunk = static_cast<int64_t>(r.chunk.size());
    for (int64_t k = 0; k < r.steps; ++k) {
      pending = k == 0 ? before : std::vector<int32_t>{steps[static_cast<size_t>(k - 1)]};
      for (int64_t i = 0; i < n_chunk; ++i) {
        compute_op(r.chunk[static_cast<size_t>(backward ? n_chunk - 1 - i : i)]);
      }
    }
    pending.clear();
    // The last chunk's dK,dV go home; the K,V projections' backward waits for them.
    if (backward) pending.push_back(shift(d.name + ".dkv", r.shift.bytes));
  };
  const int64_t n = static_cast<int64_t>(ops.size());
  for (int64_t j = 0; j < n; ++j) {
    const OpDesc& d = ops[static_cast<size_t>(backward ? n - 1 - j : j)];
    if (selective_only && (d.is_collective || !d.recompute_selective)) continue;
    if (d.ring) {
      ring(d);
      continue;
    }
    if (d.is_collective) {
      if (backward && d.passes == Passes::kForwardOnly) continue;
      if (!backward && d.passes == Passes::kBackwardOnly) continue;
      CollectiveWork w = d.collective;
      if (backward) w.kind = Mirror(w.kind);
      if (backward && d.backward_bytes >= 0) w.bytes = d.backward_bytes;
      if (backward) w.exchange = w.exchange.Backward();
      // Backward runs the ops in reverse: the GEMMs beside a collective swap sides.
      GemmOverlap overlap = d.overlap;
      if (backward && overlap != GemmOverlap::kNone) {
        overlap = overlap == GemmOverlap::kWithNextGemms ? GemmOverlap::kWithPreviousGemms
                                                         : GemmOverlap::kWithNextGemms;
      }
      collective(backward ? d.name + ".bwd" : d.name, w, overlap);
      continue;
    }
    if (backward && d.passes == Passes::kForwardOnly) continue;
    if (!backward && d.passes == Passes::kBackwardOnly) continue;
    compute_op(d);
  }
  pending.insert(pending.end(), beside.begin(), beside.end());
  if (!pending.empty()) {
    // A chunk ending in a collective: the next compute op on this program waits for it.
    carry_ = pending;
  }
  return first_compute;
}

// FSDP all-gathers of a layer's weights, on the prefetch stream.
std::vector<int32_t> Builder::EmitGathers(const WeightSync& sync, int32_t program, int32_t layer,
                                          int32_t mb, Phase phase, int32_t after) {
  std::vector<int32_t> ids;
  for (const CollectiveWork& c : sync.gathers) {
    Op op = Base(phase == Phase::kForward ? "weights.allgather" : "weights.allgather.bwd", program,
                 layer, mb, phase);
    op.is_collective = true;
    op.stream = kPrefetchStream;
    op.collective = c;
    if (after >= 0) op.deps.push_back(after);
    ids.push_back(Emit(std::move(op)));
  }
  return ids;
}

void Builder::EmitGradSyncs(const WeightSync& sync, int32_t program, int32_t layer, int32_t mb) {
  for (const CollectiveWork& c : sync.grad_syncs) {
    Op op = Base("grads." + std::string(CollectiveKindName(c.kind)), program, layer, mb,
                 Phase::kBackward);
    op.is_collective = true;
    op.stream = kGradStream;
    op.collective = c;
    op.deps.push_back(last_compute_[static_cast<size_t>(program)]);
    // Delayed weight gradients are not on the chain of last_compute_.
    const int32_t wgrad = last_wgrad_[static_cast<size_t>(program)];
    if (wgrad > op.deps.back()) op.deps.push_back(wgrad);
    const int32_t id = Emit(std::move(op));
    grad_ids_[static_cast<size_t>(program)].push_back(id);
    if (!sc_.training.overlap_grad_reduce) carry_.push_back(id);
  }
}

std::vector<int32_t> Builder::TakeCarry() {
  std::vector<int32_t> c;
  c.swap(carry_);
  return c;
}

void Builder::EmitTask(int32_t p, const Task& t) {
  const int32_t vs = VirtualStage(p, t.chunk);
  const PipelineChunk& chunk = layout_.stages[static_cast<size_t>(vs)];
  const int32_t first_layer = static_cast<int32_t>(chunk.first_layer);
  const int32_t end_layer = first_layer + static_cast<int32_t>(chunk.num_layers);
  const bool last_mb = t.mb == LastMicroBatch(t.chunk);
  std::vector<int32_t> deps = TakeCarry();
  if (t.forward && vs > 0) deps.push_back(p2p_fwd_.at({t.mb, vs - 1}));
  if (!t.forward && vs < LastVirtualStage()) deps.push_back(p2p_bwd_.at({t.mb, vs + 1}));
  const double act = ActBytes();
  const bool prefetch = sc_.training.prefetch_weights;
  if (t.forward) {
    int32_t prev_first = -1, prev_last = -1;
    auto gated = [&](const WeightSync& sync, int32_t layer) {
      const int32_t after = prefetch ? prev_first : prev_last;
      auto ids = EmitGathers(sync, p, layer, t.mb, Phase::kForward, after);
      ids.insert(ids.end(), deps.begin(), deps.end());
      deps.clear();
      for (int32_t c : TakeCarry()) ids.push_back(c);
      return ids;
    };
    if (chunk.embedding) {
      prev_first =
          EmitOps(plan_.embed_ops, p, -1, t.mb, Phase::kForward, gated(plan_.embed_sync, -1));
      prev_last = last_compute_[static_cast<size_t>(p)];
    }
    for (int32_t l = first_layer; l < end_layer; ++l) {
      const bool moe = sc_.model.IsMoeLayer(l);
      if (moe && batch_split_ > 1) {
        l = EmitSplitRun(p, t, l, end_layer, false, deps, prev_first, prev_last) - 1;
        continue;
      }
      prev_first = EmitOps(plan_.LayerOps(sc_.model, l), p, l, t.mb, Phase::kForward,
                           gated(moe ? plan_.moe_sync : plan_.dense_sync, l));
      prev_last = last_compute_[static_cast<size_t>(p)];
    }
    if (chunk.head) {
      EmitOps(plan_.head_ops, p, -1, t.mb, Phase::kForward, gated(plan_.head_sync, -1));
    } else {
      // An empty chunk forwards what it received: the send waits for the receive.
      p2p_fwd_[{t.mb, vs}] =
          EmitSend(p, t.mb, act, Phase::kForward, ProgramOf(t.chunk, vs + 1), deps);
    }
    return;
  }
  // Backward: head, layers in reverse (recomputing as configured), embedding. A zero-bubble
  // backward queues its weight gradients, and its gradient syncs after them, for a W task.
  ZeroBubbleSet* zb = nullptr;
  if (t.defer_wgrad) {
    zb_[static_cast<size_t>(p)].emplace_back();
    zb = &zb_[static_cast<size_t>(p)].back();
    defer_ = &zb->wgrads;
  }
  auto sync_grads = [&](const WeightSync& sync, int32_t layer) {
    if (!last_mb) return;
    if (zb != nullptr) {
      zb->syncs.push_back({&sync, layer, t.mb});
    } else {
      EmitGradSyncs(sync, p, layer, t.mb);
    }
  };
  int32_t prev_first = -1, prev_last = -1;
  auto gated = [&](const WeightSync& sync, int32_t layer) {
    const int32_t after = prefetch ? prev_first : prev_last;
    auto ids = EmitGathers(sync, p, layer, t.mb, Phase::kBackward, after);
    ids.insert(ids.end(), deps.begin(), deps.end());
    deps.clear();
    for (int32_t c : TakeCarry()) ids.push_back(c);
    return ids;
  };
  if (chunk.head) {
    prev_first = EmitOps(plan_.head_ops, p, -1, t.mb, Phase::kBackward, gated(plan_.head_sync, -1));
    prev_last = last_compute_[static_cast<size_t>(p)];
    sync_grads(plan_.head_sync, -1);
  }
  for (int32_t l = end_layer - 1; l >= first_layer; --l) {
    const bool moe = sc_.model.IsMoeLayer(l);
    if (moe && batch_split_ > 1) {
      l = EmitSplitRun(p, t, l, first_layer - 1, last_mb, deps, prev_first, prev_last) + 1;
      continue;
    }
    const auto& ops = plan_.LayerOps(sc_.model, l);
    const WeightSync& sync = moe ? plan_.moe_sync : plan_.dense_sync;
    auto gate = gated(sync, l);
    int32_t first = -1;
    if (sc_.training.recompute == Recompute::kFull) {
      first = EmitOps(ops, p, l, t.mb, Phase::kRecompute, gate);
      gate.clear();
    } else if (sc_.training.recompute == Recompute::kSelective) {
      first = EmitOps(ops, p, l, t.mb, Phase::kRecompute, gate, true);
      if (first >= 0) gate.clear();
    }
    const int32_t b = EmitOps(ops, p, l, t.mb, Phase::kBackward, gate);
    prev_first = first >= 0 ? first : b;
    prev_last = last_compute_[static_cast<size_t>(p)];
    sync_grads(sync, l);
  }
  if (chunk.embedding) {
    EmitOps(plan_.embed_ops, p, -1, t.mb, Phase::kBackward, gated(plan_.embed_sync, -1));
    sync_grads(plan_.embed_sync, -1);
  } else {
    p2p_bwd_[{t.mb, vs}] =
        EmitSend(p, t.mb, act, Phase::kBackward, ProgramOf(t.chunk, vs - 1), deps);
  }
  defer_ = nullptr;
}

// DualPipe's W: the oldest queued weight gradients on the compute stream, then the gradient
// syncs that waited for them (the last micro-batch's).
void Builder::EmitWeightTask(int32_t p) {
  auto& queue = zb_[static_cast<size_t>(p)];
  if (queue.empty()) return;
  ZeroBubbleSet set = std::move(queue.front());
  queue.pop_front();
  for (Op& w : set.wgrads) Emit(std::move(w));
  for (const QueuedSync& s : set.syncs) EmitGradSyncs(*s.sync, p, s.layer, s.mb);
}

// DualPipe: ranks r and P-1-r hold copies of the same two model stages; before the optimizer
// each sends the other its gradients of both (the sum over the pair: an all-reduce of two,
// each rank sending one copy's worth), on the gradient stream after its last backward.
void Builder::EmitMirrorGradExchange() {
  std::vector<int32_t> sent(static_cast<size_t>(stages_));
  for (int32_t p = 0; p < stages_; ++p) {
    Op op = Base("grads.dualpipe_mirror", p, -1, -1, Phase::kBackward);
    op.is_collective = true;
    op.stream = kGradStream;
    op.collective.kind = CollectiveKind::kSendRecv;
    op.collective.axes = {MeshAxis::kPipeline};
    op.collective.bytes = ProgramParams(p) * static_cast<double>(plan_.weight_bytes);
    op.collective.peer_program = stages_ - 1 - p;
    op.deps.push_back(last_compute_[static_cast<size_t>(p)]);
    for (int32_t id : grad_ids_[static_cast<size_t>(p)]) op.deps.push_back(id);
    sent[static_cast<size_t>(p)] = Emit(std::move(op));
  }
  for (int32_t p = 0; p < stages_; ++p) {
    grad_ids_[static_cast<size_t>(p)].push_back(sent[static_cast<size_t>(p)]);
    grad_ids_[static_cast<size_t>(p)].push_back(sent[static_cast<size_t>(stages_ - 1 - p)]);
  }
}

// Activations (or their gradients) one micro-batch sends to the next pipeline stage.
double Builder::ActBytes() const {
  return plan_.tokens * static_cast<double>(sc_.model.d_model) *
         static_cast<double>(plan_.act_bytes) /
         static_cast<double>(AxesSize(sc_.sharding.mesh, plan_.sp_axes));
}

// The weight syncs of every layer a program holds (DualPipe: both copies).
std::vector<const WeightSync*> Builder::ProgramSyncs(int32_t p) const {
  std::vector<const WeightSync*> syncs;
  for (int32_t c = 0; c < ChunksPerProgram(); ++c) {
    const PipelineChunk& chunk = layout_.stages[static_cast<size_t>(VirtualStage(p, c))];
    for (int64_t l = chunk.first_layer; l < chunk.first_layer + chunk.num_layers; ++l) {
      syncs.push_back(sc_.model.IsMoeLayer(l) ? &plan_.moe_sync : &plan_.dense_sync);
    }
    if (chunk.embedding) syncs.push_back(&plan_.embed_sync);
    if (chunk.head) syncs.push_back(&plan_.head_sync);
  }
  return syncs;
}

double Builder::ProgramParams(int32_t p) const {
  double params = 0;
  for (const WeightSync* s : ProgramSyncs(p)) params += s->optimizer_params;
  return params;
}

void Builder::EmitOptimizer(int32_t p) {
  const std::vector<const WeightSync*> syncs = ProgramSyncs(p);
  const double params = ProgramParams(p);
  Op op = Base("optimizer.step", p, -1, -1, Phase::kOptimizer);
  // Read gradient, state and weights, write state and weights: with mixed precision the
  // state holds the fp32 master weights (2 x (2 + 12) bytes per parameter); in fp32 the working
  // weights are the master and are read too (2 x 4 + 2 x 8 + 4 = 28).
  const double wb = static_cast<double>(plan_.weight_bytes);
  const bool fp32 = sc_.training.precision == Precision::kFp32;
  op.compute.bytes = params * (2 * wb + 2 * OptimizerBytesPerParam(sc_.training) + (fp32 ? wb : 0));
  op.compute.kernel = MemoryKernel::kAdamw;
  op.deps = grad_ids_[static_cast<size_t>(p)];
  for (int32_t c : TakeCarry()) op.deps.push_back(c);
  const int32_t opt = Emit(std::move(op));
  std::map<std::vector<MeshAxis>, double> gathers;
  for (const WeightSync* s : syncs) {
    for (const CollectiveWork& c : s->param_gathers) gathers[c.axes] += c.bytes;
  }
  for (const auto& [axes, bytes] : gathers) {
    Op g = Base("params.allgather", p, -1, -1, Phase::kOptimizer);
    g.is_collective = true;
    g.stream = kGradStream;
    g.collective.kind = CollectiveKind::kAllGather;
    g.collective.axes = axes;
    g.collective.bytes = bytes;
    g.deps.push_back(opt);
    Emit(std::move(g));
  }
}

}  // namespace opgraph_internal

OpGraph BuildStepGraph(const Scenario& scenario) {
  OpGraph g;
  BuildStepGraph(scenario, &g);
  return g;
}

void BuildStepGraph(const Scenario& scenario, OpGraph* out) {
  std::vector<Op> storage = std::move(out->ops);
  storage.clear();
  *out = OpGraph{};
  out->ops = std::move(storage);
  opgraph_internal::Builder(scenario, out).Build();
}

}  // namespace moesim
