// topologies_bench: building a TPU v4 pod (16x16x16, 4096 chips) and computing everything
// `moesim topo tpu-v4:16x16x16 --placement data,expert,model=16,16,16` reports must take well
// under a second. Run: build/bench/topologies_bench
#include <benchmark/benchmark.h>

#include "proto/hardware_profiles.h"
#include "topologies/analysis.h"
#include "topologies/placement.h"
#include "topologies/topology.h"

namespace moesim {
namespace {

HardwareProfile V4() { return BuiltinHardwareProfile("tpu-v4").value(); }

void BM_BuildV4Pod(benchmark::State& state) {
  const HardwareProfile hw = V4();
  for (auto _ : state) {
    auto topo = BuildTopology("tpu-v4:16x16x16", hw);
    benchmark::DoNotOptimize(topo);
  }
}
BENCHMARK(BM_BuildV4Pod)->Unit(benchmark::kMillisecond);

void BM_V4PodBisection(benchmark::State& state) {
  auto topo = BuildTopology("tpu-v4:16x16x16", V4()).value();
  for (auto _ : state) benchmark::DoNotOptimize(BisectionBytesPerS(*topo));
}
BENCHMARK(BM_V4PodBisection)->Unit(benchmark::kMillisecond);

void BM_V4PodDiameter(benchmark::State& state) {
  auto topo = BuildTopology("tpu-v4:16x16x16", V4()).value();
  for (auto _ : state) benchmark::DoNotOptimize(DiameterHops(*topo));
}
BENCHMARK(BM_V4PodDiameter)->Unit(benchmark::kMillisecond);

// One uncached route (dimension-order, ~12 hops on average) on the v4 pod.
void BM_V4PodComputeRoute(benchmark::State& state) {
  auto topo = BuildTopology("tpu-v4:16x16x16", V4()).value();
  std::vector<LinkId> route;
  DeviceId b = 1;
  for (auto _ : state) {
    topo->ComputeRoute(0, b, &route);
    benchmark::DoNotOptimize(route.data());
    b = b % 4095 + 1;
  }
}
BENCHMARK(BM_V4PodComputeRoute);

// One cached route lookup.
void BM_V4PodCachedRoute(benchmark::State& state) {
  auto topo = BuildTopology("tpu-v4:16x16x16", V4()).value();
  for (DeviceId b = 1; b < 4096; ++b) topo->Route(0, b);
  DeviceId b = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(topo->Route(0, b).data());
    b = b % 4095 + 1;
  }
}
BENCHMARK(BM_V4PodCachedRoute);

// Everything `moesim topo` does, from the name to the per-axis figures.
void BM_V4PodTopoCommand(benchmark::State& state) {
  const HardwareProfile hw = V4();
  for (auto _ : state) {
    auto topo = BuildTopology("tpu-v4:16x16x16", hw).value();
    const TopologySummary s = Summarize(*topo);
    auto p = PlaceMesh(*topo, {"data", "expert", "model"}, {16, 16, 16}).value();
    auto rings = AxisRings(*topo, p);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(rings);
  }
}
BENCHMARK(BM_V4PodTopoCommand)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace moesim

BENCHMARK_MAIN();
