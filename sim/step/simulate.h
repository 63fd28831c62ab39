// simulate.h
//
// SimulateScenario: one training step of a validated Scenario, end to end: the cost model's
// program (BuildStepGraph), the cluster graph and the mesh placement (topologies/), the network
// level's collective times, the schedule, and the step's metrics (docs/architecture.md):
//   tflops_per_device = hardware FLOPs of the step / step time / devices
//   mfu               = model FLOPs / (step time x devices x peak)
// Limits: a program of more than limits::kMaxStepOps ops, one estimated to need more memory than
// SimulateOptions::max_memory_bytes, and a step longer than limits::kMaxSimulatedS are refused
// as bad input (docs/limits.md).
// Thread safety: pure function of its inputs; runs in parallel threads (sweep, plan).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "costmodel/costmodel.h"
#include "costmodel/opgraph.h"
#include "sim/step/flow_level.h"
#include "sim/step/step_sim.h"
#include "topologies/placement.h"
#include "topologies/topology.h"

namespace moesim {

enum class NetworkLevel { kAnalytical, kFlow };
const char* NetworkLevelName(NetworkLevel n);  // "analytical", "flow"

struct SimulateOptions {
  NetworkLevel network = NetworkLevel::kAnalytical;
  bool keep_program = false;  // keep the OpGraph and its timings in the report (for --trace)
  // A prebuilt graph of scenario.cluster.topology (sweeps reuse one); null = build it.
  std::shared_ptr<const Topology> topology;
  // Reused analytical network state for this topology and mesh (sweeps share one per mesh);
  // null = computed for this call. REQUIRES: built on `topology` with this scenario's mesh.
  std::shared_ptr<const class AnalyticalNetwork> analytical;
  // Memory this simulation may use, in bytes: a step program estimated to need more is refused
  // (kInvalidInput) before it is built. 0 = the machine's physical memory.
  double max_memory_bytes = 0;
  // ComputeMemory(scenario), when the caller has it already (the planner checks every point's
  // memory first); null = computed here.
  const MemoryReport* memory = nullptr;
  // Work out the breakdown (SimReport::breakdown, critical_program). A caller that needs only
  // the step time and the figures derived from it (the planner's search) turns it off: the
  // compact program is then replayed once instead of twice (twice the speed without a
  // pipeline). Off, the breakdown stays zero.
  bool breakdown = true;
};

// The memory a simulation of `scenario` is estimated to need, in bytes, from the bound on its
// program's ops (StepGraphOpBound) times the measured bytes per op (program, timings and the
// schedule's state); with `compact`, of its compact program (UseCompactGraph): a few tasks'
// ops per stage and ~128 bytes per task. Without building anything.
double EstimateSimulationBytes(const Scenario& scenario, bool compact);

// Whether SimulateScenario runs `scenario`'s compact program (costmodel/compact_graph.h; the
// same results to the bit, in a fraction of the time and memory): on the analytical network,
// without keep_program (a trace needs every op) or Hardware.comm_sm_fraction, for the schedules
// HasCompactStepGraph accepts. The full program's limits (limits::kMaxStepOps, memory) apply
// only when it does not.
bool UseCompactGraph(const Scenario& scenario, const SimulateOptions& options);

struct AxisReport {
  std::string name;
  int64_t size = 1;
  std::string span;             // what it occupies on the topology
  double ring_bytes_per_s = 0;  // effective reduce-scatter bandwidth over the axis
};

struct SimReport {
  std::string network;
  double step_time_s = 0;
  Breakdown breakdown;
  double mfu = 0;
  double tokens_per_s = 0;
  double tflops_per_device = 0;
  double model_flops_per_step = 0;
  double hardware_flops_per_step = 0;
  double dropped_token_fraction = 0;
  ModelCost cost;
  MemoryReport memory;
  std::vector<AxisReport> axes;
  int64_t num_ops = 0;
  int32_t critical_program = 0;
  FlowStats flow;  // the flow level's work (zeros on the analytical level)
  // With keep_program:
  std::shared_ptr<const OpGraph> program;
  std::vector<OpTiming> timing;
};

Expected<SimReport> SimulateScenario(const Scenario& scenario, const SimulateOptions& options);

// The legacy mesh's axes as placed: outermost first, pipeline, data, expert, model.
std::vector<std::string> MeshAxisOrder();

// Places `mesh` on `topo` with PlaceMesh: its axes in Mesh::placement_order, outermost first.
// Errors as PlaceMesh's, and (kInvalidInput) an axis marked dcn that lands, even in part, on the
// fastest links (speed class 0: NVLink, ICI) instead of across nodes or slices.
Expected<MeshPlacement> PlaceScenarioMesh(const Topology& topo, const Mesh& mesh);

}  // namespace moesim
