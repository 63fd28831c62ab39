// Simulator core speed (goals): event queue >= 10 M events/s on one core; the max-min
// solver re-solving 10,000 active flows in < 10 ms; an all-to-all over the 256 chips of a 16x16
// v5e torus in `flow` mode in < 50 ms.
#include <benchmark/benchmark.h>

#include <numeric>
#include <vector>

#include "sim/collectives/algorithms.h"
#include "sim/collectives/runner.h"
#include "sim/engine/engine.h"
#include "sim/net/maxmin.h"
#include "sim/topology/topology_network.h"
#include "topologies/topology.h"

namespace moesim::sim {
namespace {

// Engine throughput: a steady population of `range(0)` pending events; each event schedules its
// successor a pseudo-random delay later (the common pattern of a simulation).
struct Ticker {
  Engine* engine;
  int64_t left;
  uint64_t x;
  void Tick() {
    if (--left <= 0) return;
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    engine->ScheduleAfter(SimTime::FromPicoseconds(static_cast<int64_t>(1 + (x >> 44))),
                          [this] { Tick(); });
  }
};

void BM_EngineEvents(benchmark::State& state) {
  const int64_t population = state.range(0);
  const int64_t total = 2'000'000;
  for (auto _ : state) {
    Engine e;
    Ticker ticker{&e, total, 1};
    for (int64_t i = 0; i < population; ++i) {
      e.ScheduleAt(SimTime::FromPicoseconds(i), [&ticker] { ticker.Tick(); });
    }
    benchmark::DoNotOptimize(e.Run().ok());
    benchmark::DoNotOptimize(e.events_run());
  }
  state.SetItemsProcessed(state.iterations() * total);
}
BENCHMARK(BM_EngineEvents)->Arg(1000)->Arg(100000)->Unit(benchmark::kMillisecond);

// Max-min: 10,000 flows of 8 hops over the 1,024 directed links of a 16x16 torus-sized system;
// one flow leaves and one joins, then Solve() (one connected component: a full re-solve).
void BM_MaxMinResolve(benchmark::State& state) {
  const int flows = static_cast<int>(state.range(0));
  MaxMinSystem s;
  for (int l = 0; l < 1024; ++l) s.AddConstraint(45e9);
  std::vector<MaxMinSystem::VariableId> vars;
  auto route = [](int f) {
    std::vector<MaxMinSystem::ConstraintId> r;
    for (int h = 0; h < 8; ++h) r.push_back((f * 7 + h * 131) % 1024);
    return r;
  };
  for (int f = 0; f < flows; ++f) vars.push_back(s.AddVariable(route(f)));
  s.Solve();
  int next = flows;
  for (auto _ : state) {
    s.RemoveVariable(vars[static_cast<size_t>(next % flows)]);
    vars[static_cast<size_t>(next % flows)] = s.AddVariable(route(next));
    ++next;
    s.Solve();
    benchmark::DoNotOptimize(s.last_solved_variables());
  }
  state.counters["solved_flows"] = static_cast<double>(s.last_solved_variables());
}
BENCHMARK(BM_MaxMinResolve)->Arg(10000)->Unit(benchmark::kMillisecond);

struct V5e {
  V5e() {
    hw = *DefaultHardwareFor("tpu-v5e:16x16");
    net = TopologyNetwork::Make(*BuildTopology("tpu-v5e:16x16", hw), hw);
    group.resize(256);
    std::iota(group.begin(), group.end(), 0);
  }
  HardwareProfile hw;
  TopologyNetwork net;
  std::vector<DeviceId> group;
};

void BM_AllToAll256Flow(benchmark::State& state) {
  static const V5e v;
  CollectiveSpec spec;
  spec.op = CollectiveOp::kAllToAll;
  spec.group = v.group;
  spec.bytes = static_cast<double>(state.range(0));
  const auto plan = *BuildCollectivePlan(spec, Algorithm::kDirect);
  double t = 0;
  for (auto _ : state) t = *FlowCollectiveSeconds(plan, v.net.links, v.net.route);
  state.counters["simulated_us"] = t * 1e6;
  state.counters["flows"] = static_cast<double>(plan.TotalTransfers());
}
BENCHMARK(BM_AllToAll256Flow)->Arg(1 << 20)->Arg(1 << 26)->Unit(benchmark::kMillisecond);

void BM_AllReduce256(benchmark::State& state) {
  static const V5e v;
  CollectiveSpec spec;
  spec.op = CollectiveOp::kAllReduce;
  spec.group = v.group;
  spec.bytes = 1 << 28;
  const GroupShape shape = GroupShapeOf(*v.net.topology, v.group);
  const auto plan = *BuildCollectivePlan(spec, Algorithm::kTorus, shape);
  AnalyticalCollectiveTimer analytical(&v.net.links, v.net.route);
  const bool flow = state.range(0) == 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(flow ? *FlowCollectiveSeconds(plan, v.net.links, v.net.route)
                                  : analytical.Seconds(plan));
  }
  state.SetLabel(flow ? "flow" : "analytical");
}
BENCHMARK(BM_AllReduce256)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace moesim::sim

BENCHMARK_MAIN();
