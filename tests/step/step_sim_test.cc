// The step executor on hand-made programs whose timelines are worked out by hand.
#include <gtest/gtest.h>

#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"
#include "sim/step/step_sim.h"

namespace moesim {
namespace {

// 1 GB/s HBM, no overhead: a compute op of B bytes takes B / 1e9 seconds.
HardwareProfile Hw() {
  HardwareProfile hw;
  hw.peak_flops_per_s = 1e12;
  hw.hbm_bytes_per_s = 1e9;
  hw.memory_efficiency = 1;
  hw.matmul_efficiency = 1;
  hw.op_overhead_s = 0;
  return hw;
}

// Collectives take bytes / 1e9 seconds.
double Timer(const CollectiveWork& w, int32_t) { return w.bytes / 1e9; }

struct GraphBuilder {
  OpGraph g;
  int32_t Compute(double seconds, std::vector<int32_t> deps = {}, int32_t program = 0) {
    Op op;
    op.id = static_cast<int32_t>(g.ops.size());
    op.name = "c" + std::to_string(op.id);
    op.program = program;
    op.compute.bytes = seconds * 1e9;
    op.deps = std::move(deps);
    g.ops.push_back(op);
    return op.id;
  }
  int32_t Coll(double seconds, int32_t stream, std::vector<int32_t> deps, int32_t program = 0,
               CollectiveKind kind = CollectiveKind::kAllReduce) {
    Op op;
    op.id = static_cast<int32_t>(g.ops.size());
    op.name = "x" + std::to_string(op.id);
    op.program = program;
    op.stream = stream;
    op.is_collective = true;
    op.collective.kind = kind;
    op.collective.axes = {MeshAxis::kData};
    op.collective.bytes = seconds * 1e9;
    op.deps = std::move(deps);
    g.ops.push_back(op);
    return op.id;
  }
};

TEST(StepSim, ComputeOpsOnOneStreamRunInOrder) {
  GraphBuilder b;
  b.Compute(1);
  b.Compute(2);
  const auto r = SimulateSchedule(b.g, Hw(), Timer);
  EXPECT_DOUBLE_EQ(r.step_time_s, 3);
  EXPECT_DOUBLE_EQ(r.timing[1].start_s, 1);
  EXPECT_DOUBLE_EQ(r.breakdown.compute_s, 3);
}

TEST(StepSim, CollectiveOnTheCriticalPathIsExposed) {
  // c0 (1 s) -> all-reduce (2 s) -> c2 (1 s): step 4 s, 2 s exposed.
  GraphBuilder b;
  const int32_t c0 = b.Compute(1);
  const int32_t x = b.Coll(2, kCommStream, {c0});
  b.Compute(1, {x});
  const auto r = SimulateSchedule(b.g, Hw(), Timer);
  EXPECT_DOUBLE_EQ(r.step_time_s, 4);
  EXPECT_DOUBLE_EQ(r.breakdown.exposed_comm_s, 2);
  EXPECT_DOUBLE_EQ(r.breakdown.comm_total_s, 2);
  EXPECT_DOUBLE_EQ(r.breakdown.exposed_by_collective.at("all_reduce data"), 2);
}

TEST(StepSim, OverlappedCollectiveHidesBehindCompute) {
  // c0 (1 s); a gradient all-reduce (2 s) after c0 on the grad stream, while c1 (3 s) runs;
  // c2 (1 s) waits for both: the all-reduce ends at 3, c1 at 4, c2 runs 4..5. Nothing exposed.
  GraphBuilder b;
  const int32_t c0 = b.Compute(1);
  const int32_t x = b.Coll(2, kGradStream, {c0});
  b.Compute(3);
  b.Compute(1, {x});
  const auto r = SimulateSchedule(b.g, Hw(), Timer);
  EXPECT_DOUBLE_EQ(r.step_time_s, 5);
  EXPECT_DOUBLE_EQ(r.breakdown.exposed_comm_s, 0);
  EXPECT_DOUBLE_EQ(r.breakdown.comm_total_s, 2);
  EXPECT_DOUBLE_EQ(r.breakdown.compute_s, 5);
}

TEST(StepSim, CollectivesOnOneStreamQueue) {
  // Two 2 s collectives issued at t=0 on the same stream finish at 2 and 4.
  GraphBuilder b;
  b.Coll(2, kPrefetchStream, {});
  const int32_t x1 = b.Coll(2, kPrefetchStream, {});
  b.Compute(1, {x1});
  const auto r = SimulateSchedule(b.g, Hw(), Timer);
  EXPECT_DOUBLE_EQ(r.timing[1].start_s, 2);
  EXPECT_DOUBLE_EQ(r.step_time_s, 5);
  EXPECT_DOUBLE_EQ(r.breakdown.exposed_comm_s, 4);
}

TEST(StepSim, PipelineWaitIsBubble) {
  // Stage 0: c0 (2 s), send (1 s). Stage 1: c2 (2 s) after the send; stage 1 idles 3 s first.
  GraphBuilder b;
  b.g.num_programs = 2;
  const int32_t c0 = b.Compute(2);
  const int32_t s = b.Coll(1, kP2pStream, {c0}, 0, CollectiveKind::kSendRecv);
  b.Compute(2.5, {s}, 1);
  const auto r = SimulateSchedule(b.g, Hw(), Timer);
  EXPECT_DOUBLE_EQ(r.step_time_s, 5.5);
  // The critical stage is the one with more compute: stage 1 (2.5 s), which waited 3 s.
  EXPECT_EQ(r.critical_program, 1);
  EXPECT_DOUBLE_EQ(r.breakdown.bubble_s, 3);
  EXPECT_DOUBLE_EQ(r.breakdown.compute_s, 2.5);
}

TEST(StepSim, BreakdownAddsUpToStepTimeOnARealProgram) {
  for (const char* set : {"training.recompute=FULL", "sharding.mesh.data=4"}) {
    auto sc = LoadScenario({"", {set}});
    ASSERT_TRUE(sc.ok()) << sc.status().message();
    const OpGraph g = BuildStepGraph(*sc);
    const auto r = SimulateSchedule(g, sc->hardware, [](const CollectiveWork& w, int32_t) {
      return w.bytes / 50e9;  // any deterministic timer
    });
    const Breakdown& b = r.breakdown;
    EXPECT_NEAR(b.compute_s + b.exposed_comm_s + b.bubble_s + b.idle_s, r.step_time_s,
                1e-9 * r.step_time_s);
    EXPECT_GT(b.compute_s, 0);
  }
}

}  // namespace
}  // namespace moesim
