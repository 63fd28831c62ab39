// The compact step program (costmodel/compact_graph.h) against the full one, its second
// method: expanded, it is BuildStepGraph's graph op for op; run directly
// (SimulateCompactSchedule), it gives the full schedule's step time, critical stage, breakdown
// and FLOPs to the bit, on every shipped scenario and on a grid of pipeline schedules,
// micro-batch counts, recomputation, FSDP, gradient-reduction overlap, MoE dispatchers, context
// parallelism and batch split; its size does not grow with the micro-batches; and the schedules
// it does not cover fall back to the full program.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "costmodel/compact_graph.h"
#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"
#include "sim/step/step_sim.h"
#include "tests/shipped_files.h"

namespace moesim {
namespace {

// 8 layers (every other one MoE: 8 experts, top-2, EP 2), TP 2, DP 2, PP 4; the
// pipeline, data axis and schedule come from each case's overrides; four DGX H100 nodes.
constexpr char kBase[] = R"(
name: "t/pipe"
model {
  name: "t" num_layers: 8 d_model: 1024 num_heads: 16 d_ff: 4096 vocab_size: 32000
  seq_len: 1024 ffn_kind: SWIGLU
  moe { num_experts: 8 top_k: 2 capacity_factor: 1.25 expert_d_ff: 2048
        placement: EVERY_K placement_k: 2 }
}
cluster { topology: "dgx-h100:4" }
sharding { strategy: MEGATRON mesh { data: 2 expert: 2 model: 2 pipeline: 4 } }
training { global_batch_tokens: 65536 micro_batch_size: 1 recompute: NONE }
)";

Scenario Load(const std::vector<std::string>& overrides) {
  auto sc = LoadScenarioFromText(kBase, "t", overrides);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return sc.ok() ? *sc : Scenario{};
}

void ExpectSameOp(const Op& a, const Op& b, bool names) {
  const std::string at = "op " + std::to_string(b.id) + " " + b.name;
  EXPECT_EQ(a.id, b.id) << at;
  EXPECT_EQ(a.name, names ? b.name : std::string()) << at;
  EXPECT_EQ(a.program, b.program) << at;
  EXPECT_EQ(a.stream, b.stream) << at;
  EXPECT_EQ(a.phase, b.phase) << at;
  EXPECT_EQ(a.layer, b.layer) << at;
  EXPECT_EQ(a.micro_batch, b.micro_batch) << at;
  EXPECT_EQ(a.is_collective, b.is_collective) << at;
  EXPECT_EQ(a.deps, b.deps) << at;
  EXPECT_EQ(a.compute.flops, b.compute.flops) << at;
  EXPECT_EQ(a.compute.bytes, b.compute.bytes) << at;
  EXPECT_EQ(a.compute.matmul, b.compute.matmul) << at;
  EXPECT_EQ(a.compute.m, b.compute.m) << at;
  EXPECT_EQ(a.compute.n, b.compute.n) << at;
  EXPECT_EQ(a.compute.k, b.compute.k) << at;
  EXPECT_EQ(a.compute.fp8, b.compute.fp8) << at;
  EXPECT_EQ(a.compute.kernel, b.compute.kernel) << at;
  EXPECT_EQ(a.compute.attention.has_value(), b.compute.attention.has_value()) << at;
  EXPECT_EQ(a.collective.kind, b.collective.kind) << at;
  EXPECT_EQ(a.collective.axes, b.collective.axes) << at;
  EXPECT_EQ(a.collective.bytes, b.collective.bytes) << at;
  EXPECT_EQ(a.collective.max_over_mean, b.collective.max_over_mean) << at;
  EXPECT_EQ(a.collective.peer_program, b.collective.peer_program) << at;
  EXPECT_EQ(a.collective.exchange, b.collective.exchange) << at;
}

// A collective timer that is not the network's (the schedule must not care): a latency plus
// bytes at 50 GB/s, slower across the pipeline.
double FakeCollective(const CollectiveWork& w, int32_t) {
  return 5e-6 + w.bytes / 50e9 * (w.kind == CollectiveKind::kSendRecv ? 4 : 1);
}

void ExpectSameBreakdown(const Breakdown& a, const Breakdown& b) {
  EXPECT_EQ(a.compute_s, b.compute_s);
  EXPECT_EQ(a.compute_by_class, b.compute_by_class);
  EXPECT_EQ(a.exposed_comm_s, b.exposed_comm_s);
  EXPECT_EQ(a.comm_total_s, b.comm_total_s);
  EXPECT_EQ(a.bubble_s, b.bubble_s);
  EXPECT_EQ(a.idle_s, b.idle_s);
  EXPECT_EQ(a.exposed_by_collective, b.exposed_by_collective);
}

// The compact program expands to the full one and runs to the same figures, to the bit; with
// names, and without (units shared between pipeline chunks that run the same ops).
void ExpectCompactEqualsFull(const Scenario& sc, bool names);
void ExpectCompactEqualsFull(const Scenario& sc) {
  for (bool names : {true, false}) {
    SCOPED_TRACE(names ? "with names" : "without names");
    ExpectCompactEqualsFull(sc, names);
    if (::testing::Test::HasFailure()) return;
  }
}

void ExpectCompactEqualsFull(const Scenario& sc, bool names) {
  ASSERT_TRUE(HasCompactStepGraph(sc));
  const OpGraph full = BuildStepGraph(sc);
  CompactGraph compact;
  BuildCompactStepGraph(sc, &compact, names);
  EXPECT_EQ(compact.num_ops, static_cast<int64_t>(full.ops.size()));
  const OpGraph expanded = ExpandCompactGraph(compact);
  ASSERT_EQ(expanded.ops.size(), full.ops.size());
  for (size_t i = 0; i < full.ops.size(); ++i) {
    ExpectSameOp(expanded.ops[i], full.ops[i], names);
    if (::testing::Test::HasFailure()) return;  // the first difference says it
  }
  EXPECT_EQ(expanded.num_programs, full.num_programs);
  EXPECT_EQ(expanded.devices_per_program, full.devices_per_program);
  EXPECT_EQ(expanded.hardware_flops_per_step, full.hardware_flops_per_step);
  EXPECT_EQ(expanded.model_flops_per_step, full.model_flops_per_step);
  EXPECT_EQ(expanded.tokens_per_step, full.tokens_per_step);

  const ScheduleResult want = SimulateSchedule(full, sc.hardware, FakeCollective);
  double flops = 0;
  const ScheduleResult got = SimulateCompactSchedule(compact, FakeCollective, sc.hardware, &flops);
  EXPECT_EQ(got.step_time_s, want.step_time_s);
  EXPECT_EQ(got.critical_program, want.critical_program);
  ExpectSameBreakdown(got.breakdown, want.breakdown);
  EXPECT_EQ(flops, full.hardware_flops_per_step);
}

class CompactGrid : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(CompactGrid, ExpandsAndRunsAsTheFullProgram) {
  const Scenario sc = Load(GetParam());
  ExpectCompactEqualsFull(sc);
}

INSTANTIATE_TEST_SUITE_P(
    Schedules, CompactGrid,
    ::testing::Values(
        // 1F1B over 4 stages with 16, 2 (fewer than the stages), 1 and 16 micro-batches.
        std::vector<std::string>{"training.pipeline_schedule=ONE_F_ONE_B"},
        std::vector<std::string>{"training.pipeline_schedule=ONE_F_ONE_B",
                                 "training.global_batch_tokens=8192"},
        std::vector<std::string>{"training.pipeline_schedule=ONE_F_ONE_B",
                                 "training.global_batch_tokens=4096"},
        std::vector<std::string>{"training.pipeline_schedule=ONE_F_ONE_B",
                                 "training.global_batch_tokens=65536", "training.recompute=FULL"},
        std::vector<std::string>{"training.pipeline_schedule=GPIPE"},
        std::vector<std::string>{"training.pipeline_schedule=GPIPE",
                                 "training.recompute=SELECTIVE"},
        // Interleaved: two chunks of one layer per stage, with and without overlapped reduction.
        std::vector<std::string>{"training.pipeline_schedule=INTERLEAVED",
                                 "training.virtual_stages=2"},
        std::vector<std::string>{"training.pipeline_schedule=INTERLEAVED",
                                 "training.virtual_stages=2", "training.overlap_grad_reduce=false"},
        std::vector<std::string>{"training.pipeline_schedule=INTERLEAVED",
                                 "training.virtual_stages=2", "training.overlap_grad_reduce=true",
                                 "training.global_batch_tokens=16384"},
        // An uneven layout: embedding and head on stages of their own.
        std::vector<std::string>{"training.pipeline_schedule=ONE_F_ONE_B",
                                 "training.pipeline_layout=E|t*3|t*3|t*2L"},
        // FSDP weight gathers (with and without prefetch), sharded optimizer.
        std::vector<std::string>{"sharding.strategy=FSDP", "sharding.mesh.model=1",
                                 "sharding.mesh.data=4"},
        std::vector<std::string>{"sharding.strategy=FSDP", "sharding.mesh.model=1",
                                 "sharding.mesh.data=4", "training.prefetch_weights=false"},
        std::vector<std::string>{"sharding.shard_optimizer_over_data=true",
                                 "training.overlap_grad_reduce=false"},
        // MoE dispatchers, FP8.
        std::vector<std::string>{"model.moe.dispatch=PERMUTE",
                                 "model.moe.token_dispatcher=ALLGATHER"},
        std::vector<std::string>{"training.fp8_recipe=BLOCKWISE"},
        // No pipeline: micro-batches one after another; context parallelism; batch split.
        std::vector<std::string>{"sharding.mesh.pipeline=1", "sharding.mesh.data=8"},
        std::vector<std::string>{"sharding.mesh.pipeline=1", "sharding.mesh.data=8",
                                 "training.micro_batch_size=2", "training.batch_split_factor=2"}));

TEST(CompactGraph, ContextParallelRingsInAPipeline) {
  // Named mesh: pipeline 2 x context 4 (ring shifts beside blockwise attention) x data 2.
  constexpr char kCp[] = R"(
name: "t/cp"
model {
  name: "t" num_layers: 4 d_model: 2048 num_heads: 16 num_kv_heads: 8 head_dim: 128 d_ff: 8192
  vocab_size: 32000 seq_len: 4096 ffn_kind: SWIGLU
}
cluster { topology: "dgx-h100:2" }
sharding {
  mesh {
    axes { name: "pp" size: 2 role: PIPELINE }
    axes { name: "dp" size: 2 role: DATA }
    axes { name: "cp" size: 4 role: CONTEXT }
  }
}
training { global_batch_tokens: 65536 micro_batch_size: 1 recompute: SELECTIVE
           pipeline_schedule: ONE_F_ONE_B }
)";
  auto sc = LoadScenarioFromText(kCp, "cp", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(sc->training.num_micro_batches, 8);
  ExpectCompactEqualsFull(*sc);
}

TEST(CompactGraph, EveryShippedScenario) {
  for (const std::string& file : test_cli::ShippedScenarios()) {
    SCOPED_TRACE(file);
    auto sc = LoadScenario({std::string(MOESIM_SOURCE_DIR) + "/" + file, {}});
    ASSERT_TRUE(sc.ok()) << sc.status().message();
    if (!HasCompactStepGraph(*sc)) continue;  // DualPipe, the combined 1F1B step: below
    ExpectCompactEqualsFull(*sc);
    if (HasFailure()) return;
  }
}

TEST(CompactGraph, SizeDoesNotGrowWithMicroBatches) {
  // 1F1B on 4 stages: every stage's forward and backward are one unit each, plus the first
  // forward (nothing before it on the stage), the last backward (gradient reduction), and the
  // optimizer: about 5 units per stage whatever the micro-batches; an instance per task.
  CompactGraph few, many;
  BuildCompactStepGraph(
      Load({"training.pipeline_schedule=ONE_F_ONE_B", "training.global_batch_tokens=16384"}), &few);
  const Scenario big =
      Load({"training.pipeline_schedule=ONE_F_ONE_B", "training.global_batch_tokens=2097152"});
  BuildCompactStepGraph(big, &many);
  EXPECT_EQ(big.training.num_micro_batches, 512);
  EXPECT_EQ(many.units.size(), few.units.size());
  EXPECT_LE(many.units.size(), 4u * 6);
  EXPECT_EQ(many.instances.size(), 4u * 512 * 2 + 4);  // tasks, then the optimizer per stage
  EXPECT_GT(many.num_ops, 100 * static_cast<int64_t>(few.num_ops) / 40);
}

TEST(CompactGraph, PairedSchedulesUseTheFullProgram) {
  const Scenario dualpipe = Load({"training.pipeline_schedule=DUALPIPE"});
  EXPECT_FALSE(HasCompactStepGraph(dualpipe));
  const Scenario paired = Load({"sharding.mesh.pipeline=1", "sharding.mesh.data=8",
                                "training.overlap_moe_expert_parallel_comm=true"});
  EXPECT_FALSE(HasCompactStepGraph(paired));
  SimulateOptions opt;
  EXPECT_FALSE(UseCompactGraph(dualpipe, opt));
  const Scenario plain = Load({});
  EXPECT_TRUE(UseCompactGraph(plain, opt));
  opt.keep_program = true;  // a trace needs every op
  EXPECT_FALSE(UseCompactGraph(plain, opt));
  opt.keep_program = false;
  opt.network = NetworkLevel::kFlow;
  EXPECT_FALSE(UseCompactGraph(plain, opt));
  opt.network = NetworkLevel::kAnalytical;
  Scenario contended = plain;
  contended.hardware.comm_sm_fraction = 0.1;  // its fixed point needs every op's timing
  EXPECT_FALSE(UseCompactGraph(contended, opt));
}

TEST(CompactGraph, SimulateScenarioGivesTheTracedRunsFigures) {
  // End to end on the analytical network: without a trace SimulateScenario runs the compact
  // program, with one the full program; every figure of the report agrees to the bit.
  for (const std::vector<std::string>& o :
       {std::vector<std::string>{"training.pipeline_schedule=ONE_F_ONE_B"},
        std::vector<std::string>{"training.pipeline_schedule=INTERLEAVED",
                                 "training.virtual_stages=2", "training.overlap_grad_reduce=false"},
        std::vector<std::string>{"sharding.mesh.pipeline=1", "sharding.mesh.data=8"}}) {
    const Scenario sc = Load(o);
    SimulateOptions opt;
    ASSERT_TRUE(UseCompactGraph(sc, opt));
    auto compact = SimulateScenario(sc, opt);
    opt.keep_program = true;
    auto full = SimulateScenario(sc, opt);
    ASSERT_TRUE(compact.ok()) << compact.status().message();
    ASSERT_TRUE(full.ok()) << full.status().message();
    EXPECT_EQ(compact->step_time_s, full->step_time_s);
    EXPECT_EQ(compact->mfu, full->mfu);
    EXPECT_EQ(compact->tflops_per_device, full->tflops_per_device);
    EXPECT_EQ(compact->hardware_flops_per_step, full->hardware_flops_per_step);
    EXPECT_EQ(compact->num_ops, full->num_ops);
    EXPECT_EQ(compact->critical_program, full->critical_program);
    ExpectSameBreakdown(compact->breakdown, full->breakdown);
    EXPECT_GT(full->step_time_s, 0);
  }
}

}  // namespace
}  // namespace moesim
