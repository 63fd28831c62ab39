#include "sim/step/simulate.h"

#include "sim/step/analytical_network.h"
#include "sim/step/flow_level.h"

namespace moesim {

const char* NetworkLevelName(NetworkLevel n) {
  return n == NetworkLevel::kFlow ? "flow" : "analytical";
}

std::vector<std::string> MeshAxisOrder() { return {"pipeline", "data", "expert", "model"}; }

Expected<SimReport> SimulateScenario(const Scenario& sc, const SimulateOptions& options) {
  std::shared_ptr<const Topology> topo = options.topology;
  if (topo == nullptr) {
    auto built = BuildTopology(sc.cluster.topology, sc.hardware);
    if (!built.ok()) return built.status();
    topo = *built;
  }
  const Mesh& mesh = sc.sharding.mesh;
  const std::vector<int64_t> sizes = {mesh[MeshAxis::kPipeline], mesh[MeshAxis::kData],
                                      mesh[MeshAxis::kExpert], mesh[MeshAxis::kModel]};
  auto placement = PlaceMesh(*topo, MeshAxisOrder(), sizes);
  if (!placement.ok()) return placement.status();

  SimReport r;
  r.network = NetworkLevelName(options.network);
  // One graph per thread is reused unless the caller keeps the program (see BuildStepGraph).
  thread_local OpGraph scratch;
  std::shared_ptr<OpGraph> kept;
  if (options.keep_program) kept = std::make_shared<OpGraph>();
  OpGraph* graph = kept != nullptr ? kept.get() : &scratch;
  BuildStepGraph(sc, graph);
  std::shared_ptr<const AnalyticalNetwork> shared = options.analytical;
  if (shared == nullptr) {
    shared = std::make_shared<AnalyticalNetwork>(topo, *placement, sc.hardware.link_efficiency);
  }
  const AnalyticalNetwork& net = *shared;
  ScheduleResult s;
  if (options.network == NetworkLevel::kFlow) {
    auto flow = SimulateScheduleFlow(*graph, sc.hardware, net, &r.flow);
    if (!flow.ok()) return flow.status();
    s = std::move(*flow);
  } else {
    s = SimulateSchedule(*graph, sc.hardware,
                         [&net](const CollectiveWork& w, int32_t) { return net.Time(w); });
  }

  const double devices = static_cast<double>(mesh.NumDevices());
  r.step_time_s = s.step_time_s;
  r.breakdown = s.breakdown;
  r.critical_program = s.critical_program;
  r.model_flops_per_step = graph->model_flops_per_step;
  r.hardware_flops_per_step = graph->hardware_flops_per_step;
  r.dropped_token_fraction = graph->dropped_token_fraction;
  r.mfu = graph->model_flops_per_step / (s.step_time_s * devices * sc.hardware.peak_flops_per_s);
  r.tokens_per_s = graph->tokens_per_step / s.step_time_s;
  r.tflops_per_device = graph->hardware_flops_per_step / s.step_time_s / devices / 1e12;
  r.cost = ComputeScenarioCost(sc);
  r.memory = ComputeMemory(sc);
  r.num_ops = static_cast<int64_t>(graph->ops.size());
  const MeshAxis order[] = {MeshAxis::kPipeline, MeshAxis::kData, MeshAxis::kExpert,
                            MeshAxis::kModel};
  for (size_t i = 0; i < 4; ++i) {
    AxisReport a;
    a.name = MeshAxisName(order[i]);
    a.size = sizes[i];
    a.span = i < placement->axis_spans.size() ? placement->axis_spans[i] : "";
    a.ring_bytes_per_s =
        sizes[i] > 1 && order[i] != MeshAxis::kPipeline ? net.RingBytesPerS({order[i]}) : 0;
    r.axes.push_back(a);
  }
  if (options.keep_program) {
    r.program = kept;
    r.timing = s.timing;
  } else {
    scratch.ops.clear();  // the ops' names and dependency lists; the storage stays
  }
  return r;
}

}  // namespace moesim
