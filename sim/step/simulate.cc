#include "sim/step/simulate.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "common/limits.h"
#include "common/system_memory.h"
#include "sim/step/analytical_network.h"
#include "sim/step/flow_level.h"

namespace moesim {

const char* NetworkLevelName(NetworkLevel n) {
  return n == NetworkLevel::kFlow ? "flow" : "analytical";
}

std::vector<std::string> MeshAxisOrder() { return {"pipeline", "data", "expert", "model"}; }

Expected<MeshPlacement> PlaceScenarioMesh(const Topology& topo, const Mesh& mesh) {
  std::vector<std::string> names;
  std::vector<int64_t> sizes;
  for (MeshAxis a : mesh.placement_order) {
    names.push_back(mesh.Name(a));
    sizes.push_back(mesh[a]);
  }
  auto placed = PlaceMesh(topo, names, sizes);
  if (!placed.ok()) return placed;
  // An axis marked dcn (across the fast domain, MaxText's dcn_* axes) must land on the slow
  // dimensions only (nodes, slices): placed on NVLink or ICI links, the mark would mean nothing.
  const auto& dims = topo.physical_dims();
  for (size_t i = 0; i < mesh.placement_order.size(); ++i) {
    const MeshAxis a = mesh.placement_order[i];
    if (!mesh.dcn[static_cast<size_t>(a)] || mesh[a] <= 1) continue;
    const auto group = placed->Groups(static_cast<int>(i)).front();
    std::vector<int64_t> first;
    for (DeviceId d : group) {
      std::vector<int64_t> c(dims.size());
      int64_t rest = d;
      for (size_t k = dims.size(); k-- > 0;) {
        c[k] = rest % dims[k].size;
        rest /= dims[k].size;
      }
      if (first.empty()) first = c;
      for (size_t k = 0; k < dims.size(); ++k) {
        if (c[k] != first[k] && dims[k].speed_class == 0) {
          return Status::InvalidInput("sharding.mesh axis \"" + mesh.Name(a) +
                                      "\" is dcn: true (across the fast domain) "
                                      "but is placed on " +
                                      placed->axis_spans[i] + " of " + topo.name() +
                                      ", inside it (" + dims[k].name +
                                      " links); mark it dcn only if the axes inside it "
                                      "fill the fast domain, or drop the mark");
        }
      }
    }
  }
  return placed;
}

namespace {

// Breakdown labels ("all_to_all axis4 model") name axes by MeshAxisName(), the legacy names by
// index: the mesh's own names instead.
std::string RenameAxes(const std::string& label, const Mesh& mesh) {
  std::string out, word;
  std::istringstream in(label);
  bool first = true;
  while (in >> word) {
    for (int a = 0; a < mesh.num_axes && !first; ++a) {
      if (word == MeshAxisName(static_cast<MeshAxis>(a))) {
        word = mesh.Name(static_cast<MeshAxis>(a));
        break;
      }
    }
    out += (first ? "" : " ") + word;
    first = false;
  }
  return out;
}

// Memory per op of a step program: peak RSS over the op count was 265 B (analytical) and 330 B
// (flow) at 3.9M ops (docs/limits.md); the Op with its name and dependencies, its timing and the
// flow level's per-op state. 512 leaves headroom for longer names and dependency lists.
constexpr double kBytesPerOp = 512;

std::string Bytes(double b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g GiB", b / (1024.0 * 1024 * 1024));
  return buf;
}

// A compact program (costmodel/compact_graph.h) is not held op by op: its replay's time follows
// the ops it expands to, bounded by limits::kMaxLayerMicroBatches where the scenario is read
// (up to ~60 ops per layer and micro-batch), so only its memory is checked.
Status CheckSize(const Scenario& sc, const SimulateOptions& options, bool compact) {
  const double ops = StepGraphOpBound(sc);
  const std::string what =
      sc.source + ": the step program (model.num_layers=" + std::to_string(sc.model.num_layers) +
      " x " + std::to_string(sc.training.num_micro_batches) +
      " micro-batches of training.micro_batch_size=" +
      std::to_string(sc.training.micro_batch_size) + ") would have up to ";
  char count[32];
  std::snprintf(count, sizeof(count), "%.4g", ops);
  if (!compact && ops > static_cast<double>(limits::kMaxStepOps)) {
    return Status::InvalidInput(what + count + " ops, past the limit of " +
                                std::to_string(limits::kMaxStepOps) +
                                " (docs/limits.md): use larger micro-batches or fewer layers");
  }
  const double need = EstimateSimulationBytes(sc, compact);
  const double budget =
      options.max_memory_bytes > 0 ? options.max_memory_bytes : PhysicalMemoryBytes();
  if (budget > 0 && need > budget) {
    return Status::InvalidInput(
        what + count + " ops, estimated to need " + Bytes(need) + " to simulate, more than the " +
        Bytes(budget) + (options.max_memory_bytes > 0 ? " of --max-memory" : " of this machine") +
        " (docs/limits.md)");
  }
  return Status::Ok();
}

// What a report takes from the program, full or compact.
struct GraphFigures {
  double tokens_per_step = 0, model_flops_per_step = 0, hardware_flops_per_step = 0;
  double dropped_token_fraction = 0;
  int64_t num_ops = 0;
  void Take(const OpGraph& g) {
    tokens_per_step = g.tokens_per_step;
    model_flops_per_step = g.model_flops_per_step;
    hardware_flops_per_step = g.hardware_flops_per_step;
    dropped_token_fraction = g.dropped_token_fraction;
    num_ops = static_cast<int64_t>(g.ops.size());
  }
  void Take(const CompactGraph& g) {  // hardware_flops_per_step: from the replay
    tokens_per_step = g.tokens_per_step;
    model_flops_per_step = g.model_flops_per_step;
    dropped_token_fraction = g.dropped_token_fraction;
    num_ops = g.num_ops;
  }
};

}  // namespace

double EstimateSimulationBytes(const Scenario& scenario, bool compact) {
  const double ops = StepGraphOpBound(scenario);
  if (!compact) return ops * kBytesPerOp;
  // Units: at most 8 tasks' worth of ops per (stage, chunk, direction) (last micro-batch or not,
  // first on its stage or not, ops carried in), of the micro-batches' ops; instances: one per
  // task with its bindings and exported end times, ~128 bytes.
  const double mb = static_cast<double>(std::max<int64_t>(scenario.training.num_micro_batches, 1));
  const PipelineLayout layout = ScenarioPipelineLayout(scenario);
  const double tasks =
      2 * mb * static_cast<double>(layout.stages.size()) + static_cast<double>(layout.ranks);
  return ops * std::min(1.0, 8 / mb) * kBytesPerOp + tasks * 128;
}

bool UseCompactGraph(const Scenario& sc, const SimulateOptions& options) {
  return !options.keep_program && options.network == NetworkLevel::kAnalytical &&
         sc.hardware.comm_sm_fraction <= 0 && HasCompactStepGraph(sc);
}

Expected<SimReport> SimulateScenario(const Scenario& sc, const SimulateOptions& options) {
  const bool compact = UseCompactGraph(sc, options);
  MOESIM_RETURN_IF_ERROR(CheckSize(sc, options, compact));
  std::shared_ptr<const Topology> topo = options.topology;
  if (topo == nullptr) {
    auto built = BuildTopology(sc.cluster.topology, sc.hardware);
    if (!built.ok()) return built.status();
    topo = *built;
  }
  const Mesh& mesh = sc.sharding.mesh;
  auto placement = PlaceScenarioMesh(*topo, mesh);
  if (!placement.ok()) return placement.status();

  SimReport r;
  r.network = NetworkLevelName(options.network);
  std::shared_ptr<const AnalyticalNetwork> shared = options.analytical;
  if (shared == nullptr) {
    shared =
        std::make_shared<AnalyticalNetwork>(topo, *placement, sc.hardware.link_efficiency, mesh);
  }
  const AnalyticalNetwork& net = *shared;
  // MoE token exchanges by another dispatcher are lowered from the routing; their errors (a
  // group past the dispatch limits) are the scenario's.
  auto check_exchanges = [&](const std::vector<Op>& ops) -> Status {
    for (const Op& op : ops) {
      if (op.is_collective && op.collective.exchange.dispatcher != TokenDispatcher::kAllToAll) {
        auto t = net.ExchangeTime(op.collective);
        if (!t.ok()) {
          return Status::InvalidInput(sc.source +
                                      ": model.moe.token_dispatcher: " + t.status().message());
        }
      }
    }
    return Status::Ok();
  };
  const CollectiveTimer timer = [&net](const CollectiveWork& w, int32_t) { return net.Time(w); };
  // One graph per thread is reused unless the caller keeps the program (see BuildStepGraph).
  thread_local OpGraph scratch;
  thread_local CompactGraph compact_scratch;
  std::shared_ptr<OpGraph> kept;
  OpGraph* graph = nullptr;
  ScheduleResult s;
  GraphFigures fig;
  if (compact) {
    BuildCompactStepGraph(sc, &compact_scratch, /*names=*/false);
    for (const GraphUnit& u : compact_scratch.units) MOESIM_RETURN_IF_ERROR(check_exchanges(u.ops));
    s = SimulateCompactSchedule(compact_scratch, timer, sc.hardware, &fig.hardware_flops_per_step,
                                options.breakdown);
    fig.Take(compact_scratch);
  } else {
    if (options.keep_program) kept = std::make_shared<OpGraph>();
    graph = kept != nullptr ? kept.get() : &scratch;
    BuildStepGraph(sc, graph);
    MOESIM_RETURN_IF_ERROR(check_exchanges(graph->ops));
    if (options.network == NetworkLevel::kFlow) {
      auto flow = SimulateScheduleFlow(*graph, sc.hardware, net, &r.flow);
      if (!flow.ok()) return flow.status();
      s = std::move(*flow);
    } else {
      s = SimulateSchedule(*graph, sc.hardware, timer);
    }
    fig.Take(*graph);
  }

  if (!(s.step_time_s < limits::kMaxSimulatedS)) {
    char t[32];
    std::snprintf(t, sizeof(t), "%.4g", s.step_time_s);
    return Status::InvalidInput(sc.source + ": the simulated step takes " + t +
                                " s, past the limit of " +
                                std::to_string(static_cast<int64_t>(limits::kMaxSimulatedS)) +
                                " s (docs/limits.md): check the hardware figures and sizes");
  }
  const double devices = static_cast<double>(mesh.NumDevices());
  r.step_time_s = s.step_time_s;
  r.breakdown = s.breakdown;
  r.breakdown.exposed_by_collective.clear();
  for (const auto& [label, t] : s.breakdown.exposed_by_collective) {
    r.breakdown.exposed_by_collective[RenameAxes(label, mesh)] += t;
  }
  r.critical_program = s.critical_program;
  r.model_flops_per_step = fig.model_flops_per_step;
  r.hardware_flops_per_step = fig.hardware_flops_per_step;
  r.dropped_token_fraction = fig.dropped_token_fraction;
  r.mfu = fig.model_flops_per_step / (s.step_time_s * devices * sc.hardware.peak_flops_per_s);
  r.tokens_per_s = fig.tokens_per_step / s.step_time_s;
  r.tflops_per_device = fig.hardware_flops_per_step / s.step_time_s / devices / 1e12;
  r.cost = ComputeScenarioCost(sc);
  r.memory = options.memory != nullptr ? *options.memory : ComputeMemory(sc);
  r.num_ops = fig.num_ops;
  for (size_t i = 0; i < mesh.placement_order.size(); ++i) {
    const MeshAxis ax = mesh.placement_order[i];
    if (mesh.Name(ax).rfind('_', 0) == 0) continue;  // a named mesh's size-1 placeholder
    AxisReport a;
    a.name = mesh.Name(ax);
    a.size = mesh[ax];
    a.span = i < placement->axis_spans.size() ? placement->axis_spans[i] : "";
    a.ring_bytes_per_s = a.size > 1 && ax != mesh.pipeline_axis ? net.RingBytesPerS({ax}) : 0;
    r.axes.push_back(a);
  }
  if (options.keep_program) {
    r.program = kept;
    r.timing = s.timing;
  } else if (graph != nullptr) {
    scratch.ops.clear();  // the ops' names and dependency lists; the storage stays
  }
  return r;
}

}  // namespace moesim
