// Speed of the step simulation (issue 5's goals): one analytical simulate of the 1.1T MoE on
// 1,024 TPU-v4 chips with 3D sharding, cold (graph, placement and network built) and warm (as in
// a sweep, topology and analytical network shared); and the default scenario.
// Run: build/bench/step_bench
#include <benchmark/benchmark.h>

#include "proto/scenario_loader.h"
#include "sim/planner/planner.h"
#include "sim/step/simulate.h"

namespace moesim {
namespace {

Scenario Moe11T() {
  auto sc = LoadScenario(
      {std::string(MOESIM_SOURCE_DIR) + "/scenarios/artetxe2021/moe-1.1t.textproto",
       {"cluster.topology=tpu-v4:8x8x16", "sharding.strategy=APPLE_3D", "sharding.mesh.data=2",
        "sharding.mesh.expert=512", "training.global_batch_tokens=2097152"}});
  if (!sc.ok()) std::abort();
  return *sc;
}

void BM_Simulate11TCold(benchmark::State& state) {
  const Scenario sc = Moe11T();
  for (auto _ : state) {
    auto r = SimulateScenario(sc, {});
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Simulate11TCold)->Unit(benchmark::kMillisecond);

void BM_Simulate11TWarm(benchmark::State& state) {
  const Scenario sc = Moe11T();
  TopologyCache cache;
  SimulateOptions opts;
  opts.topology = *cache.Get(sc);
  opts.analytical = *cache.Network(sc);
  (void)SimulateScenario(sc, opts);  // compute the shared per-axis network state once
  for (auto _ : state) {
    auto r = SimulateScenario(sc, opts);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Simulate11TWarm)->Unit(benchmark::kMillisecond);

// The congestion-aware level, cold (issue 5's target: <= 1 s wall for this scenario).
void BM_Simulate11TFlowCold(benchmark::State& state) {
  const Scenario sc = Moe11T();
  SimulateOptions opts;
  opts.network = NetworkLevel::kFlow;
  for (auto _ : state) {
    auto r = SimulateScenario(sc, opts);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Simulate11TFlowCold)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_SimulateDefault(benchmark::State& state) {
  auto sc = LoadScenario({});
  for (auto _ : state) {
    auto r = SimulateScenario(*sc, {});
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_SimulateDefault)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace moesim

BENCHMARK_MAIN();
