// Uneven pipeline stages in the simulated step: two stages with 3 and 1 layers, GPipe and 1F1B,
// against step times and bubbles worked out by hand from the per-layer times.
//
// Every compute op costs a fixed 1 ms overhead plus a roofline term made negligible (peak 1e18
// FLOP/s, 1e15 B/s) and collectives cost nothing, so the schedule alone sets the step. With
// f / b = one layer's forward / backward time, e_f / e_b the embedding's, h_f / h_b the head's
// (final norm, logits, loss) and o0 / o1 the optimizer step of stage 0 / 1, a stage's work per
// micro-batch is
//   F0 = e_f + (layers on stage 0) f,  B0 = (layers on stage 0) b + e_b,
//   F1 = (layers on stage 1) f + h_f,  B1 = h_b + (layers on stage 1) b,
// and with n micro-batches (worked out op by op in the comments below):
//   stage 1 heavier (F0 + B0 <= F1 + B1): GPipe and 1F1B both take
//       F0 + n (F1 + B1) + B0 + o0; stage 1's bubble is F0 (waiting for the first activation)
//       plus B0 + o0 - o1 (waiting, after its own optimizer step, for stage 0 to finish);
//   stage 0 heavier under GPipe (F0 >= F1, B0 >= B1):
//       n F0 + F1 + B1 + n B0 + o0, stage 0 waiting F1 + B1 between its forwards and backwards.
#include <gtest/gtest.h>

#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"
#include "sim/step/step_sim.h"

namespace moesim {
namespace {

// 4 dense layers on 8 chips: data 4 x pipeline 2; 16 sequences, micro-batches of one: n = 4.
const char* const kScenario = R"(
model { num_layers: 4 d_model: 64 num_heads: 2 d_ff: 256 vocab_size: 128 seq_len: 16
        ffn_kind: SWIGLU }
cluster { topology: "tpu-v5e:2x4" }
hardware { peak_flops_per_s: 1e18 hbm_bytes_per_s: 1e15 op_overhead_s: 0.001 }
sharding { strategy: DATA_PARALLEL mesh { data: 4 pipeline: 2 } }
training { global_batch_tokens: 256 micro_batch_size: 1 }
)";

struct Unit {
  double f = 0, b = 0, e_f = 0, e_b = 0, h_f = 0, h_b = 0, o0 = 0, o1 = 0;
};

// One micro-batch's unit times, from the roofline of the ops of layer 0, the embedding and the
// head (micro-batch 0) and the optimizer step of each stage.
Unit Units(const OpGraph& g, const HardwareProfile& hw) {
  Unit u;
  for (const Op& op : g.ops) {
    if (op.is_collective) continue;
    const double t = ComputeTimeS(op.compute, hw);
    const bool fwd = op.phase == Phase::kForward, bwd = op.phase == Phase::kBackward;
    if (op.phase == Phase::kOptimizer) {
      (op.program == 0 ? u.o0 : u.o1) += t;
      continue;
    }
    if (op.micro_batch != 0) continue;
    if (!fwd && !bwd) continue;
    if (op.layer == 0) {
      (fwd ? u.f : u.b) += t;
    } else if (op.layer < 0 && op.name.rfind("embed.", 0) == 0) {
      (fwd ? u.e_f : u.e_b) += t;
    } else if (op.layer < 0 &&
               (op.name.rfind("head.", 0) == 0 || op.name.rfind("final.", 0) == 0)) {
      (fwd ? u.h_f : u.h_b) += t;
    }
  }
  return u;
}

ScheduleResult Simulate(const std::vector<std::string>& overrides, Unit* unit) {
  auto sc = LoadScenarioFromText(kScenario, "uneven", overrides);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  if (!sc.ok()) return {};
  EXPECT_EQ(sc->training.num_micro_batches, 4);
  const OpGraph g = BuildStepGraph(*sc);
  *unit = Units(g, sc->hardware);
  return SimulateSchedule(g, sc->hardware, [](const CollectiveWork&, int32_t) { return 0.0; });
}

void ExpectAddsUp(const ScheduleResult& r) {
  const Breakdown& b = r.breakdown;
  EXPECT_NEAR(b.compute_s + b.exposed_comm_s + b.bubble_s + b.idle_s, r.step_time_s,
              1e-9 * r.step_time_s);
}

TEST(UnevenPipeline, HeavyLastStageUnderOneFOneBAndGpipe) {
  // Stage 0: embedding + 1 layer; stage 1: 3 layers + head ("Et|tttL", or first_stage_layers 1).
  // 1F1B, stage 1 = F(0) B(0) F(1) B(1) ...; it waits for stage 0's first forward (F0), then
  // never again: stage 0 sends F(i+1) by the time stage 1 ends B(i) because F0 + B0 <= F1 + B1.
  // Stage 1 ends at F0 + 4 (F1 + B1); stage 0 then runs the last B0 and its optimizer step.
  // GPipe: stage 1's forwards run back to back from F0 (F1 >= F0), its backwards right after;
  // stage 0's backward i follows stage 1's at once: the same F0 + n (F1 + B1) + B0 + o0.
  // Stage 1 ends at F0 + 4 (F1 + B1) + o1, stage 0 with its last B0 and optimizer step.
  for (const char* schedule : {"ONE_F_ONE_B", "GPIPE"}) {
    for (const char* layout :
         {"training.pipeline_layout=Et|tttL", "training.first_stage_layers=1"}) {
      Unit u;
      const ScheduleResult r =
          Simulate({layout, std::string("training.pipeline_schedule=") + schedule}, &u);
      const double F0 = u.e_f + u.f, B0 = u.b + u.e_b;
      const double F1 = 3 * u.f + u.h_f, B1 = u.h_b + 3 * u.b;
      ASSERT_LE(F0 + B0, F1 + B1);  // the case worked out above
      const double n = 4;
      EXPECT_NEAR(r.step_time_s, F0 + n * (F1 + B1) + B0 + u.o0, 1e-9) << schedule << " " << layout;
      EXPECT_EQ(r.critical_program, 1);
      EXPECT_NEAR(r.breakdown.bubble_s, F0 + B0 + u.o0 - u.o1, 1e-9) << schedule << " " << layout;
      ExpectAddsUp(r);
    }
  }
}

TEST(UnevenPipeline, HeavyFirstStageUnderGpipe) {
  // "Ettt|tL", GPipe: stage 0 runs its 4 forwards back to back (ends 4 F0); stage 1's forward i
  // ends (i + 1) F0 + F1 (F0 >= F1), its backwards start at 4 F0 + F1, B1 each; stage 0's first
  // backward waits for stage 1's (4 F0 + F1 + B1), then they run back to back (B0 >= B1):
  // 4 F0 + F1 + B1 + 4 B0, then the optimizer step. Stage 0's bubble is F1 + B1.
  Unit u;
  const ScheduleResult r =
      Simulate({"training.pipeline_layout=Ettt|tL", "training.pipeline_schedule=GPIPE"}, &u);
  const double F0 = u.e_f + 3 * u.f, B0 = 3 * u.b + u.e_b;
  const double F1 = u.f + u.h_f, B1 = u.h_b + u.b;
  ASSERT_GE(F0, F1);
  ASSERT_GE(B0, B1);
  EXPECT_NEAR(r.step_time_s, 4 * F0 + F1 + B1 + 4 * B0 + u.o0, 1e-9);
  EXPECT_EQ(r.critical_program, 0);
  EXPECT_NEAR(r.breakdown.bubble_s, F1 + B1, 1e-9);
  ExpectAddsUp(r);

  // The even split of the same layers (2 + 2) takes less: the imbalance shows in the step.
  Unit even_u;
  const ScheduleResult even = Simulate({"training.pipeline_schedule=GPIPE"}, &even_u);
  EXPECT_LT(even.step_time_s, r.step_time_s);
}

}  // namespace
}  // namespace moesim
