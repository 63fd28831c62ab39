// Schedules the StepPlan's layer ops into an OpGraph: micro-batches, pipeline schedules,
// recomputation, FSDP prefetch, gradient reduction and the optimizer step.
#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <span>

#include "costmodel/memory.h"
#include "costmodel/model_cost.h"
#include "costmodel/opgraph.h"
#include "costmodel/step_plan.h"

namespace moesim {
namespace {

struct Task {
  int32_t mb;
  int32_t chunk;
  bool forward;
  // training.overlap_moe_expert_parallel_comm: this forward runs together with the backward
  // after it in the list (Megatron-Core's combined 1F1B step).
  bool paired = false;
};

CollectiveKind Mirror(CollectiveKind k) {
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
  Builder(const Scenario& sc, OpGraph* out)
      : sc_(sc), plan_(MakeStepPlan(sc)), g_(*out), layout_(ScenarioPipelineLayout(sc)) {
    stages_ = static_cast<int32_t>(layout_.ranks);
    chunks_ = static_cast<int32_t>(layout_.chunks);
    n_mb_ = static_cast<int32_t>(sc.training.num_micro_batches);
    grad_ids_.resize(static_cast<size_t>(stages_));
    last_compute_.assign(static_cast<size_t>(stages_), -1);
    stage_carry_.resize(static_cast<size_t>(stages_));
    last_wgrad_.assign(static_cast<size_t>(stages_), -1);
    ep_overlap_ = sc.training.overlap_moe_expert_parallel_comm;
    delay_wgrad_ = sc.training.delay_wgrad_compute;
    // The MoE layer's expert all-to-alls (dispatch, then combine) split it into five parts.
    for (size_t i = 0; i < plan_.moe_ops.size(); ++i) {
      const OpDesc& d = plan_.moe_ops[i];
      if (d.is_collective && !d.ring && d.collective.kind == CollectiveKind::kAllToAll) {
        (a2a_at_[0] == kNoSplit ? a2a_at_[0] : a2a_at_[1]) = i;
      }
    }
    if (a2a_at_[1] == kNoSplit) a2a_at_[0] = kNoSplit;
  }

  void Build() {
    g_.num_programs = stages_;
    g_.devices_per_program = sc_.sharding.mesh.NumDevices() / stages_;
    std::vector<std::vector<Task>> tasks(static_cast<size_t>(stages_));
    for (int32_t p = 0; p < stages_; ++p) tasks[static_cast<size_t>(p)] = Schedule(p);
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
    for (int32_t p = 0; p < stages_; ++p) {
      carry_ = std::move(stage_carry_[static_cast<size_t>(p)]);
      EmitOptimizer(p);
    }
    const double tokens = static_cast<double>(sc_.training.global_batch_tokens);
    g_.tokens_per_step = tokens;
    g_.model_flops_per_step =
        ComputeModelCost(sc_.model, sc_.training).flops_per_token.model * tokens;
    double flops = 0;
    for (const Op& op : g_.ops) flops += op.compute.flops;
    g_.hardware_flops_per_step = flops * static_cast<double>(g_.devices_per_program);
    g_.dropped_token_fraction = plan_.dropped_fraction;
    g_.busiest_expert_rank_load = plan_.busiest_rank_load;
  }

 private:
  int32_t VirtualStage(int32_t program, int32_t chunk) const { return chunk * stages_ + program; }
  int32_t LastVirtualStage() const { return stages_ * chunks_ - 1; }

  std::vector<Task> Schedule(int32_t p) const {
    std::vector<Task> t;
    const int32_t n = n_mb_;
    if (stages_ == 1 && !ep_overlap_) {
      for (int32_t mb = 0; mb < n; ++mb) {
        t.push_back({mb, 0, true});
        t.push_back({mb, 0, false});
      }
      return t;
    }
    if (stages_ > 1 && sc_.training.pipeline_schedule == PipelineSchedule::kGpipe) {
      for (int32_t mb = 0; mb < n; ++mb) t.push_back({mb, 0, true});
      for (int32_t mb = 0; mb < n; ++mb) t.push_back({mb, 0, false});
      return t;
    }
    // 1F1B, and its interleaved form (Megatron-LM's order): warm-up forwards, then one forward
    // one backward, then the remaining backwards.
    const int32_t total = n * chunks_;
    const int32_t group = stages_ * chunks_;
    auto fwd = [&](int32_t k) {
      return Task{(k / group) * stages_ + k % stages_, (k % group) / stages_, true};
    };
    auto bwd = [&](int32_t k) {
      return Task{(k / group) * stages_ + k % stages_, chunks_ - 1 - (k % group) / stages_, false};
    };
    // With the all-to-all overlap one more forward runs first, so that the forward and the
    // backward of every steady-state pair are independent (Megatron-Core's
    // get_pp_rank_microbatches); without a pipeline that is the only warm-up forward.
    const int32_t extra = ep_overlap_ ? 1 : 0;
    const int32_t warmup =
        chunks_ == 1 ? std::min(stages_ - p - 1 + extra, total)
                     : std::min((stages_ - p - 1) * 2 + (chunks_ - 1) * stages_ + extra, total);
    for (int32_t k = 0; k < warmup; ++k) t.push_back(fwd(k));
    for (int32_t k = 0; k < total - warmup; ++k) {
      t.push_back(fwd(warmup + k));
      t.back().paired = ep_overlap_;
      t.push_back(bwd(k));
    }
    for (int32_t k = total - warmup; k < total; ++k) t.push_back(bwd(k));
    return t;
  }

  bool Ready(int32_t p, const Task& t) const {
    const int32_t vs = VirtualStage(p, t.chunk);
    if (t.forward) return vs == 0 || p2p_fwd_.count({t.mb, vs - 1}) != 0;
    return vs == LastVirtualStage() || p2p_bwd_.count({t.mb, vs + 1}) != 0;
  }

  int32_t Emit(Op op) {
    op.id = static_cast<int32_t>(g_.ops.size());
    if (!op.is_collective && op.stream == kComputeStream) {
      last_compute_[static_cast<size_t>(op.program)] = op.id;
    }
    g_.ops.push_back(std::move(op));
    return g_.ops.back().id;
  }

  Op Base(const std::string& name, int32_t program, int32_t layer, int32_t mb, Phase phase) const {
    Op op;
    op.name = (layer >= 0 ? "L" + std::to_string(layer) + "." : std::string()) + name;
    op.program = program;
    op.layer = layer;
    op.micro_batch = mb;
    op.phase = phase;
    return op;
  }

  // Emits `ops` forward (or, with backward, their gradients in reverse). `first_deps` gate the
  // first compute op. Returns the id of the first compute op emitted.
  int32_t EmitOps(std::span<const OpDesc> ops, int32_t program, int32_t layer, int32_t mb,
                  Phase phase, std::vector<int32_t> first_deps, bool selective_only = false) {
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
      const bool ep = ep_overlap_ && w.kind == CollectiveKind::kAllToAll;
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
        // activation x activation einsums, the gradients of both inputs).
        if (!d.first_operand_constant) {
          compute(d.name + (d.matmul_with_weight ? ".dgrad" : ".grad_a"), d.compute, gemm);
        }
        if (defer_ != nullptr && d.matmul_with_weight) {
          // training.delay_wgrad_compute: the weight gradient after the part's input gradients.
          Op w = Base(d.name + ".wgrad", program, layer, mb, phase);
          w.compute = d.compute;
          defer_->push_back(std::move(w));
        } else {
          compute(d.name + (d.matmul_with_weight ? ".wgrad" : ".grad_b"), d.compute, gemm);
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
  std::vector<int32_t> EmitGathers(const WeightSync& sync, int32_t program, int32_t layer,
                                   int32_t mb, Phase phase, int32_t after) {
    std::vector<int32_t> ids;
    for (const CollectiveWork& c : sync.gathers) {
      Op op = Base(phase == Phase::kForward ? "weights.allgather" : "weights.allgather.bwd",
                   program, layer, mb, phase);
      op.is_collective = true;
      op.stream = kPrefetchStream;
      op.collective = c;
      if (after >= 0) op.deps.push_back(after);
      ids.push_back(Emit(std::move(op)));
    }
    return ids;
  }

  void EmitGradSyncs(const WeightSync& sync, int32_t program, int32_t layer, int32_t mb) {
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

  std::vector<int32_t> TakeCarry() {
    std::vector<int32_t> c;
    c.swap(carry_);
    return c;
  }

  void EmitTask(int32_t p, const Task& t) {
    const int32_t vs = VirtualStage(p, t.chunk);
    const PipelineChunk& chunk = layout_.stages[static_cast<size_t>(vs)];
    const int32_t first_layer = static_cast<int32_t>(chunk.first_layer);
    const int32_t end_layer = first_layer + static_cast<int32_t>(chunk.num_layers);
    const bool last_mb = t.mb == n_mb_ - 1;
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
        prev_first = EmitOps(moe ? plan_.moe_ops : plan_.dense_ops, p, l, t.mb, Phase::kForward,
                             gated(moe ? plan_.moe_sync : plan_.dense_sync, l));
        prev_last = last_compute_[static_cast<size_t>(p)];
      }
      if (chunk.head) {
        EmitOps(plan_.head_ops, p, -1, t.mb, Phase::kForward, gated(plan_.head_sync, -1));
      } else {
        // An empty chunk forwards what it received: the send waits for the receive.
        p2p_fwd_[{t.mb, vs}] = EmitSend(p, t.mb, act, Phase::kForward, (vs + 1) % stages_, deps);
      }
      return;
    }
    // Backward: head, layers in reverse (recomputing as configured), embedding.
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
      prev_first =
          EmitOps(plan_.head_ops, p, -1, t.mb, Phase::kBackward, gated(plan_.head_sync, -1));
      prev_last = last_compute_[static_cast<size_t>(p)];
      if (last_mb) EmitGradSyncs(plan_.head_sync, p, -1, t.mb);
    }
    for (int32_t l = end_layer - 1; l >= first_layer; --l) {
      const bool moe = sc_.model.IsMoeLayer(l);
      const auto& ops = moe ? plan_.moe_ops : plan_.dense_ops;
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
      if (last_mb) EmitGradSyncs(sync, p, l, t.mb);
    }
    if (chunk.embedding) {
      EmitOps(plan_.embed_ops, p, -1, t.mb, Phase::kBackward, gated(plan_.embed_sync, -1));
      if (last_mb) EmitGradSyncs(plan_.embed_sync, p, -1, t.mb);
    } else {
      p2p_bwd_[{t.mb, vs}] =
          EmitSend(p, t.mb, act, Phase::kBackward, (vs - 1 + stages_) % stages_, deps);
    }
  }

  // Activations (or their gradients) one micro-batch sends to the next pipeline stage.
  double ActBytes() const {
    return plan_.tokens * static_cast<double>(sc_.model.d_model) *
           static_cast<double>(plan_.act_bytes) /
           static_cast<double>(AxesSize(sc_.sharding.mesh, plan_.sp_axes));
  }

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

  Chain Open(int32_t p, const Task& t, const std::vector<int32_t>& carried) {
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
  void Enter(int32_t p, Chain& c) {
    last_compute_[static_cast<size_t>(p)] = c.last_compute;
    carry_ = std::move(c.carry);
    c.carry.clear();
  }
  void Leave(int32_t p, Chain& c) {
    c.last_compute = last_compute_[static_cast<size_t>(p)];
    c.carry = TakeCarry();
  }
  std::vector<int32_t> Gated(int32_t p, Chain& c, const WeightSync& sync, int32_t layer,
                             Phase phase) {
    const int32_t after = sc_.training.prefetch_weights ? c.prev_first : c.prev_last;
    auto ids = EmitGathers(sync, p, layer, c.t.mb, phase, after);
    ids.insert(ids.end(), c.deps.begin(), c.deps.end());
    c.deps.clear();
    for (int32_t x : TakeCarry()) ids.push_back(x);
    return ids;
  }

  // Part `part` of layer l's ops: 0 up to the dispatch all-to-all (attention, router,
  // permutation), 1 the dispatch, 2 the experts, 3 the combine, 4 the rest; a layer without
  // expert all-to-alls is all part 0.
  bool Split(int32_t l) const { return sc_.model.IsMoeLayer(l) && a2a_at_[0] != kNoSplit; }
  std::span<const OpDesc> Part(int32_t l, int32_t part) const {
    const bool moe = sc_.model.IsMoeLayer(l);
    const std::vector<OpDesc>& ops = moe ? plan_.moe_ops : plan_.dense_ops;
    if (!Split(l)) return part == 0 ? std::span<const OpDesc>(ops) : std::span<const OpDesc>();
    const std::array<size_t, 6> at = {0,          a2a_at_[0],     a2a_at_[0] + 1,
                                      a2a_at_[1], a2a_at_[1] + 1, ops.size()};
    return std::span<const OpDesc>(ops).subspan(
        at[static_cast<size_t>(part)],
        at[static_cast<size_t>(part) + 1] - at[static_cast<size_t>(part)]);
  }
  const WeightSync& SyncOf(int32_t l) const {
    return sc_.model.IsMoeLayer(l) ? plan_.moe_sync : plan_.dense_sync;
  }

  void ForwardPart(int32_t p, Chain& c, int32_t l, int32_t part) {
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
  void BackwardPart(int32_t p, Chain& c, int32_t l, int32_t part) {
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
    if (part == 0 && c.t.mb == n_mb_ - 1) EmitGradSyncs(SyncOf(l), p, l, c.t.mb);
    Leave(p, c);
  }

  void ForwardLayer(int32_t p, Chain& c, int32_t l) {
    for (int32_t part = 0; part < 5; ++part) ForwardPart(p, c, l, part);
  }
  void BackwardLayer(int32_t p, Chain& c, int32_t l) {
    for (int32_t part = 4; part >= 0; --part) BackwardPart(p, c, l, part);
  }

  void EmitPair(int32_t p, const Task& ft, const Task& bt) {
    const std::vector<int32_t> carried = TakeCarry();
    Chain f = Open(p, ft, carried), b = Open(p, bt, carried);
    const PipelineChunk& fc = *f.chunk;
    const PipelineChunk& bc = *b.chunk;
    const bool last_mb = bt.mb == n_mb_ - 1;
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
      p2p_fwd_[{ft.mb, f.vs}] =
          EmitSend(p, ft.mb, ActBytes(), Phase::kForward, (f.vs + 1) % stages_, f.deps);
    }
    Leave(p, f);
    Enter(p, b);
    if (bc.embedding) {
      EmitOps(plan_.embed_ops, p, -1, bt.mb, Phase::kBackward,
              Gated(p, b, plan_.embed_sync, -1, Phase::kBackward));
      if (last_mb) EmitGradSyncs(plan_.embed_sync, p, -1, bt.mb);
    } else {
      p2p_bwd_[{bt.mb, b.vs}] =
          EmitSend(p, bt.mb, ActBytes(), Phase::kBackward, (b.vs - 1 + stages_) % stages_, b.deps);
    }
    Leave(p, b);
    last_compute_[static_cast<size_t>(p)] = std::max(f.last_compute, b.last_compute);
    carry_ = std::move(f.carry);
    carry_.insert(carry_.end(), b.carry.begin(), b.carry.end());
  }

  // `extra` = dependencies not yet taken by an op of the task (an empty chunk's receive).
  int32_t EmitSend(int32_t p, int32_t mb, double bytes, Phase phase, int32_t to,
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

  void EmitOptimizer(int32_t p) {
    double params = 0;
    std::vector<const WeightSync*> syncs;
    for (int32_t c = 0; c < chunks_; ++c) {
      const PipelineChunk& chunk = layout_.At(p, c);
      for (int64_t l = chunk.first_layer; l < chunk.first_layer + chunk.num_layers; ++l) {
        syncs.push_back(sc_.model.IsMoeLayer(l) ? &plan_.moe_sync : &plan_.dense_sync);
      }
      if (chunk.embedding) syncs.push_back(&plan_.embed_sync);
      if (chunk.head) syncs.push_back(&plan_.head_sync);
    }
    for (const WeightSync* s : syncs) params += s->optimizer_params;
    Op op = Base("optimizer.step", p, -1, -1, Phase::kOptimizer);
    // Read gradient, state and weights, write state and weights: with mixed precision the
    // state holds the fp32 master weights (2 x (2 + 12) bytes per parameter); in fp32 the working
    // weights are the master and are read too (2 x 4 + 2 x 8 + 4 = 28).
    const double wb = static_cast<double>(plan_.weight_bytes);
    const bool fp32 = sc_.training.precision == Precision::kFp32;
    op.compute.bytes =
        params * (2 * wb + 2 * OptimizerBytesPerParam(sc_.training) + (fp32 ? wb : 0));
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
  bool ep_overlap_ = false, delay_wgrad_ = false;
  static constexpr size_t kNoSplit = static_cast<size_t>(-1);
  std::array<size_t, 2> a2a_at_ = {kNoSplit, kNoSplit};  // moe_ops' dispatch and combine
  std::vector<Op>* defer_ = nullptr;  // EmitOps holds back weight gradients here when set
};

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
  const double per_mb = dense_layers * OpsPerMicroBatch(plan.dense_ops, plan.dense_sync, rc) +
                        moe_layers * OpsPerMicroBatch(plan.moe_ops, plan.moe_sync, rc) +
                        OpsPerMicroBatch(plan.embed_ops, plan.embed_sync, rc) +
                        OpsPerMicroBatch(plan.head_ops, plan.head_sync, rc) +
                        2 * stages * chunks;  // sends of activations and gradients
  // The optimizer: one step and at most one parameter gather per set of mesh axes (2^4).
  return static_cast<double>(sc.training.num_micro_batches) * per_mb + stages * 17;
}

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
  Builder(scenario, out).Build();
}

}  // namespace moesim
