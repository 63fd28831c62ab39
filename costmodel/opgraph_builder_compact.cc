// BuildCompactStepGraph (compact_graph.h): Build()'s emission loop over symbolic op
// references, each distinct task of a stage emitted once by the builder itself
// (opgraph_builder_internal.h), so that the compact graph expands to BuildStepGraph's op for op.
#include <functional>
#include <map>
#include <tuple>
#include <unordered_map>

#include "costmodel/compact_graph.h"
#include "costmodel/flop_sum.h"
#include "costmodel/model_cost.h"
#include "costmodel/opgraph_builder_internal.h"

namespace moesim {
namespace opgraph_internal {

int32_t Builder::MakeUnit(const UnitContext& ctx, const std::function<void()>& emit,
                          CompactGraph* out, UnitPorts* ports) {
  const int32_t p = ctx.program;
  g_.ops.clear();
  p2p_fwd_.clear();
  p2p_bwd_.clear();
  carry_.clear();
  std::fill(last_compute_.begin(), last_compute_.end(), -1);
  grad_ids_[static_cast<size_t>(p)].clear();
  auto placeholder = [&] {
    Op op;
    op.id = static_cast<int32_t>(g_.ops.size());
    op.program = p;
    g_.ops.push_back(std::move(op));
    return g_.ops.back().id;
  };
  if (ctx.has_last_compute) last_compute_[static_cast<size_t>(p)] = placeholder();
  for (size_t i = 0; i < ctx.carry; ++i) carry_.push_back(placeholder());
  if (ctx.recv) (ctx.forward ? p2p_fwd_ : p2p_bwd_)[*ctx.recv] = placeholder();
  for (size_t i = 0; i < ctx.grads; ++i) grad_ids_[static_cast<size_t>(p)].push_back(placeholder());
  const int32_t inputs = static_cast<int32_t>(g_.ops.size());
  emit();
  auto port = [&](int32_t id) { return id < 0 ? kNoPort : id >= inputs ? id - inputs : -1 - id; };
  GraphUnit unit;
  unit.program = p;
  unit.first_layer = ctx.first_layer;
  unit.micro_batch = ctx.mb;
  unit.num_inputs = inputs;
  unit.ops.reserve(g_.ops.size() - static_cast<size_t>(inputs));
  for (size_t i = static_cast<size_t>(inputs); i < g_.ops.size(); ++i) {
    Op op = std::move(g_.ops[i]);
    op.id -= inputs;
    for (int32_t& d : op.deps) d = port(d);
    unit.ops.push_back(std::move(op));
  }
  ports->last_compute = port(last_compute_[static_cast<size_t>(p)]);
  ports->carry.clear();
  for (int32_t c : TakeCarry()) ports->carry.push_back(port(c));
  ports->send = kNoPort;
  if (ctx.send) {
    const auto& sent = ctx.forward ? p2p_fwd_ : p2p_bwd_;
    auto it = sent.find(*ctx.send);
    if (it != sent.end()) ports->send = port(it->second);
  }
  ports->grads.clear();
  for (int32_t id : grad_ids_[static_cast<size_t>(p)]) {
    if (id >= inputs) ports->grads.push_back(port(id));
  }
  out->units.push_back(std::move(unit));
  g_.ops.clear();
  return static_cast<int32_t>(out->units.size()) - 1;
}

void Builder::BuildCompact(CompactGraph* out) {
  CompactGraph& cg = *out;
  cg.num_programs = stages_;
  cg.devices_per_program = sc_.sharding.mesh.NumDevices() / stages_;
  std::vector<std::vector<Task>> tasks(static_cast<size_t>(stages_));
  const PipelineShape shape{stages_, chunks_, n_mb_, sc_.training.pipeline_schedule, ep_overlap_};
  for (int32_t p = 0; p < stages_; ++p) tasks[static_cast<size_t>(p)] = PipelineTasks(shape, p);

  // The builder's state, as references to ops of instances.
  const size_t programs = static_cast<size_t>(stages_);
  std::vector<OpRef> last_compute(programs);  // instance -1: none
  std::vector<std::vector<OpRef>> carry(programs), grads(programs);
  const int32_t num_vs = LastVirtualStage() + 1;
  auto slot = [&](int32_t mb, int32_t vs) {
    return static_cast<size_t>(mb) * static_cast<size_t>(num_vs) + static_cast<size_t>(vs);
  };
  std::vector<OpRef> sent_fwd(slot(n_mb_, 0)), sent_bwd(slot(n_mb_, 0));
  // A unit by what decides its ops: (task or optimizer, where: the program and chunk, or without
  // names the chunk's content (ContentOf); forward, last micro-batch, whether the program has a
  // compute op before it, ops carried, gradient syncs).
  using Key = std::tuple<bool, int32_t, int32_t, bool, bool, bool, size_t, size_t>;
  struct KeyHash {
    size_t operator()(const Key& k) const {
      const auto [opt, p, chunk, fwd, last, lc, c, g] = k;
      size_t h = static_cast<size_t>(p) * 0x9E3779B97F4A7C15ull;
      h ^= (static_cast<size_t>(chunk) << 4) ^ (size_t{opt} << 1) ^ (size_t{fwd} << 2) ^
           (size_t{last} << 3) ^ size_t { lc };
      return h ^ (c * 0xC2B2AE3D27D4EB4Full) ^ (g * 0x165667B19E3779F9ull);
    }
  };
  std::unordered_map<Key, std::pair<int32_t, UnitPorts>, KeyHash> made;
  int64_t next_id = 0;

  // Adds an instance of the unit for `key` (built by `emit` in `ctx` the first time) bound to
  // `inputs`, and moves the state to where its ports point.
  auto instance = [&](const Key& key, const UnitContext& ctx, auto&& emit,
                      const std::vector<OpRef>& inputs) {
    auto it = made.find(key);
    if (it == made.end()) {
      UnitPorts ports;
      const int32_t u = MakeUnit(ctx, std::function<void()>(emit), out, &ports);
      it = made.emplace(key, std::make_pair(u, std::move(ports))).first;
    }
    const int32_t u = it->second.first;
    const UnitPorts& ports = it->second.second;
    const int32_t inst = static_cast<int32_t>(cg.instances.size());
    cg.instances.push_back({u, ctx.program,
                            ctx.first_layer - cg.units[static_cast<size_t>(u)].first_layer, ctx.mb,
                            next_id, static_cast<int64_t>(cg.bindings.size())});
    cg.bindings.insert(cg.bindings.end(), inputs.begin(), inputs.end());
    next_id += static_cast<int64_t>(cg.units[static_cast<size_t>(u)].ops.size());
    auto ref = [&](int32_t port) {
      return port >= 0 ? OpRef{inst, port} : inputs[static_cast<size_t>(-1 - port)];
    };
    const size_t p = static_cast<size_t>(ctx.program);
    last_compute[p] = ports.last_compute == kNoPort ? OpRef{} : ref(ports.last_compute);
    carry[p].clear();
    for (int32_t c : ports.carry) carry[p].push_back(ref(c));
    if (ports.send != kNoPort) {
      (ctx.forward ? sent_fwd : sent_bwd)[slot(ctx.send->first, ctx.send->second)] =
          ref(ports.send);
    }
    for (int32_t g : ports.grads) grads[p].push_back(ref(g));
  };

  auto ready = [&](int32_t p, const Task& t) {
    const int32_t vs = VirtualStage(p, t.chunk);
    if (t.forward) return vs == 0 || sent_fwd[slot(t.mb, vs - 1)].instance >= 0;
    return vs == LastVirtualStage() || sent_bwd[slot(t.mb, vs + 1)].instance >= 0;
  };
  // Without names: pipeline chunks with the same ops share an id (their units are shared).
  using Content = std::tuple<bool, bool, bool, bool, int32_t, int32_t,
                             std::vector<std::pair<const void*, bool>>>;
  std::map<Content, int32_t> contents;
  std::vector<int32_t> content_of(static_cast<size_t>(num_vs), -1);
  auto where = [&](int32_t p, int32_t chunk) {
    if (names_) return p * chunks_ + chunk;
    const int32_t vs = VirtualStage(p, chunk);
    int32_t& id = content_of[static_cast<size_t>(vs)];
    if (id < 0) {
      const PipelineChunk& c = layout_.stages[static_cast<size_t>(vs)];
      Content key{c.embedding,
                  c.head,
                  vs == 0,
                  vs == LastVirtualStage(),
                  vs < LastVirtualStage() ? ProgramOf(chunk, vs + 1) - p : 0,
                  vs > 0 ? ProgramOf(chunk, vs - 1) - p : 0,
                  {}};
      for (int64_t l = c.first_layer; l < c.first_layer + c.num_layers; ++l) {
        std::get<6>(key).emplace_back(plan_.LayerOps(sc_.model, l).data(), sc_.model.IsMoeLayer(l));
      }
      id = contents.emplace(std::move(key), static_cast<int32_t>(contents.size())).first->second;
    }
    return -1 - id;
  };
  std::vector<OpRef> inputs;
  auto task = [&](int32_t p, const Task& t) {
    const size_t pi = static_cast<size_t>(p);
    const int32_t vs = VirtualStage(p, t.chunk);
    UnitContext ctx;
    ctx.program = p;
    ctx.first_layer = static_cast<int32_t>(layout_.stages[static_cast<size_t>(vs)].first_layer);
    ctx.mb = t.mb;
    ctx.forward = t.forward;
    ctx.has_last_compute = last_compute[pi].instance >= 0;
    ctx.carry = carry[pi].size();
    inputs.clear();
    if (ctx.has_last_compute) inputs.push_back(last_compute[pi]);
    inputs.insert(inputs.end(), carry[pi].begin(), carry[pi].end());
    if (t.forward && vs > 0) {
      ctx.recv = std::make_pair(t.mb, vs - 1);
      inputs.push_back(sent_fwd[slot(t.mb, vs - 1)]);
    } else if (!t.forward && vs < LastVirtualStage()) {
      ctx.recv = std::make_pair(t.mb, vs + 1);
      inputs.push_back(sent_bwd[slot(t.mb, vs + 1)]);
    }
    ctx.send = std::make_pair(t.mb, vs);
    const Key key{true,
                  where(p, t.chunk),
                  0,
                  t.forward,
                  t.mb == LastMicroBatch(t.chunk),
                  ctx.has_last_compute,
                  ctx.carry,
                  0};
    instance(
        key, ctx, [&] { EmitTask(p, t); }, inputs);
  };

  size_t num_tasks = 0;
  for (const auto& list : tasks) num_tasks += list.size();
  cg.instances.reserve(num_tasks + programs);
  cg.bindings.reserve(2 * num_tasks + programs);
  std::vector<size_t> next(programs, 0);
  bool progress = true;
  while (progress) {
    progress = false;
    for (int32_t p = 0; p < stages_; ++p) {
      auto& list = tasks[static_cast<size_t>(p)];
      size_t& i = next[static_cast<size_t>(p)];
      while (i < list.size() && ready(p, list[i])) {
        task(p, list[i]);
        ++i;
        progress = true;
      }
    }
  }
  for (int32_t p = 0; p < stages_; ++p) {
    const size_t pi = static_cast<size_t>(p);
    UnitContext ctx;
    ctx.program = p;
    ctx.has_last_compute = last_compute[pi].instance >= 0;
    ctx.carry = carry[pi].size();
    ctx.grads = grads[pi].size();
    inputs.clear();
    if (ctx.has_last_compute) inputs.push_back(last_compute[pi]);
    inputs.insert(inputs.end(), carry[pi].begin(), carry[pi].end());
    inputs.insert(inputs.end(), grads[pi].begin(), grads[pi].end());
    const Key key{false, p, 0, false, false, ctx.has_last_compute, ctx.carry, ctx.grads};
    instance(
        key, ctx, [&] { EmitOptimizer(p); }, inputs);
  }
  cg.num_ops = next_id;
  const double tokens = static_cast<double>(sc_.training.global_batch_tokens);
  cg.tokens_per_step = tokens;
  cg.model_flops_per_step =
      ComputeModelCost(sc_.model, sc_.training).flops_per_token.model * tokens;
  cg.dropped_token_fraction = plan_.dropped_fraction;
  cg.busiest_expert_rank_load = plan_.busiest_rank_load;
}

}  // namespace opgraph_internal

bool HasCompactStepGraph(const Scenario& scenario) {
  return !(scenario.training.pipeline_schedule == PipelineSchedule::kDualPipe &&
           ScenarioPipelineLayout(scenario).ranks > 1) &&
         !scenario.training.overlap_moe_expert_parallel_comm;
}

void BuildCompactStepGraph(const Scenario& scenario, CompactGraph* out, bool names) {
  CompactGraph& cg = *out;
  cg.units.clear();
  cg.instances.clear();
  cg.bindings.clear();
  // The builder's scratch graph, one per thread: its op storage is reused unit after unit.
  thread_local OpGraph scratch;
  scratch.ops.clear();
  opgraph_internal::Builder builder(scenario, &scratch);
  if (!names) builder.OmitNames();
  builder.BuildCompact(out);
  scratch.ops.clear();
}

OpGraph ExpandCompactGraph(const CompactGraph& cg) {
  OpGraph g;
  g.num_programs = cg.num_programs;
  g.devices_per_program = cg.devices_per_program;
  g.ops.reserve(static_cast<size_t>(cg.num_ops));
  FlopSum flops;
  for (const UnitInstance& inst : cg.instances) {
    const GraphUnit& unit = cg.units[static_cast<size_t>(inst.unit)];
    for (const Op& u : unit.ops) {
      Op op = u;
      op.id = static_cast<int32_t>(inst.first_op_id + u.id);
      op.program = inst.program;
      if (op.layer >= 0) op.layer += inst.layer_offset;
      if (op.is_collective && op.collective.kind == CollectiveKind::kSendRecv) {
        op.collective.peer_program += inst.program - unit.program;
      }
      if (op.micro_batch == unit.micro_batch) op.micro_batch = inst.micro_batch;
      for (int32_t& d : op.deps) {
        if (d >= 0) {
          d = static_cast<int32_t>(inst.first_op_id + d);
        } else {
          const OpRef& r = cg.bindings[static_cast<size_t>(inst.first_binding - 1 - d)];
          d = static_cast<int32_t>(cg.instances[static_cast<size_t>(r.instance)].first_op_id +
                                   r.op);
        }
      }
      flops.Add(op.compute.flops);
      g.ops.push_back(std::move(op));
    }
  }
  g.tokens_per_step = cg.tokens_per_step;
  g.model_flops_per_step = cg.model_flops_per_step;
  g.hardware_flops_per_step = flops.Value() * static_cast<double>(cg.devices_per_program);
  g.dropped_token_fraction = cg.dropped_token_fraction;
  g.busiest_expert_rank_load = cg.busiest_expert_rank_load;
  return g;
}

}  // namespace moesim
