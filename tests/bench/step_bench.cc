// Speed of the step simulation: one analytical simulate of the 1.1T MoE on
// 1,024 TPU-v4 chips with 3D sharding, cold (graph, placement and network built) and warm (as in
// a sweep, topology and analytical network shared); the default scenario; and Megatron-Core's
// GPT 177B (TP 8 x PP 6) with the data axis grown with the cluster, 2,304 and 9,216 H100, cold
// (scripts/bench-scale.sh times the larger clusters end to end); and one configuration of
// Megatron-1T's deep pipeline inside a process, compact program against full.
// Run: build/bench/step_bench
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "proto/scenario_loader.h"
#include "sim/planner/planner.h"
#include "sim/step/simulate.h"

namespace moesim {
namespace {

// Artetxe et al.'s 1.1T MoE, 3D sharding with expert 512, on `chips` TPU-v4 (1,024: 8x8x16;
// 4,096: 16x16x16), 2,048 tokens per chip.
Scenario Moe11T(int64_t chips = 1024) {
  const std::string shape = chips == 4096 ? "16x16x16" : "8x8x16";
  auto sc = LoadScenario(
      {std::string(MOESIM_SOURCE_DIR) + "/scenarios/artetxe2021/moe-1.1t.textproto",
       {"cluster.topology=tpu-v4:" + shape, "sharding.strategy=APPLE_3D",
        "sharding.mesh.data=" + std::to_string(chips / 512), "sharding.mesh.expert=512",
        "training.global_batch_tokens=" + std::to_string(chips * 2048)}});
  if (!sc.ok()) std::abort();
  return *sc;
}

void BM_Simulate11TCold(benchmark::State& state) {
  const Scenario sc = Moe11T(state.range(0));
  for (auto _ : state) {
    auto r = SimulateScenario(sc, {});
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Simulate11TCold)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond);

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

// The congestion-aware level, cold (goal: <= 1 s wall for this scenario).
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

// scenarios/published/megatron-h100-177b.textproto on `gpus` H100: DP = gpus / 48, the global
// batch grown with DP (98,304 tokens per replica, as shipped).
Scenario Megatron177B(int64_t gpus) {
  const int64_t dp = gpus / 48;
  auto sc = LoadScenario(
      {std::string(MOESIM_SOURCE_DIR) + "/scenarios/published/megatron-h100-177b.textproto",
       {"cluster.topology=dgx-h100:" + std::to_string(gpus / 8),
        "sharding.mesh.data=" + std::to_string(dp),
        "training.global_batch_tokens=" + std::to_string(dp * 98304)}});
  if (!sc.ok()) std::abort();
  return *sc;
}

void BM_Simulate177BCold(benchmark::State& state) {
  const Scenario sc = Megatron177B(state.range(0));
  for (auto _ : state) {
    auto r = SimulateScenario(sc, {});
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Simulate177BCold)->Arg(2304)->Arg(9216)->Unit(benchmark::kMillisecond);

// Narayanan et al. 2021's 1T GPT (128 layers, d_model 25,600, 160 heads) on 3,072 A100 as SC21
// ran it: TP 8 x PP 64 x DP 6, micro-batches of one sequence, `micro_batches` per step (SC21:
// 512), 1F1B.
Scenario Megatron1T(int64_t micro_batches = 512) {
  auto sc = LoadScenario(
      {std::string(MOESIM_SOURCE_DIR) + "/scenarios/published/megatron-a100-145.6b.textproto",
       {"model.num_layers=128", "model.d_model=25600", "model.num_heads=160", "model.d_ff=102400",
        "cluster.topology=dgx-a100:384", "sharding.mesh.data=6", "sharding.mesh.pipeline=64",
        "training.global_batch_tokens=" + std::to_string(6 * 2048 * micro_batches),
        "training.micro_batch_size=1", "training.pipeline_schedule=ONE_F_ONE_B",
        "training.virtual_stages=1"}});
  if (!sc.ok()) std::abort();
  return *sc;
}

// One configuration inside a process, as the planner runs it (topology and analytical network
// shared), with (micro-batches, full): the compact program (full 0), or the program op by op
// (full 1, keep_program; 512 micro-batches are past its op limit, 128 are not).
void BM_SimulateMegatron1TWarm(benchmark::State& state) {
  const Scenario sc = Megatron1T(state.range(0));
  TopologyCache cache;
  SimulateOptions opts;
  opts.topology = *cache.Get(sc);
  opts.analytical = *cache.Network(sc);
  opts.keep_program = state.range(1) == 1;
  (void)SimulateScenario(sc, opts);
  for (auto _ : state) {
    auto r = SimulateScenario(sc, opts);
    if (!r.ok()) std::abort();
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_SimulateMegatron1TWarm)
    ->Args({512, 0})
    ->Args({128, 0})
    ->Args({128, 1})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace moesim

BENCHMARK_MAIN();
