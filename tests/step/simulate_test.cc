// End-to-end step simulations against the behaviour Du et al. 2024 measured (BRIEF section 3),
// on the shipped scenarios.
#include <gtest/gtest.h>

#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"

namespace moesim {
namespace {

double StepTime(const std::string& file, std::vector<std::string> overrides = {}) {
  auto sc = LoadScenario(
      {file.empty() ? "" : std::string(MOESIM_SOURCE_DIR) + "/scenarios/" + file, overrides});
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  if (!sc.ok()) return 0;
  auto r = SimulateScenario(*sc, {});
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->step_time_s : 0;
}

TEST(Simulate, Table6ShardingRatiosWithin15Percent) {
  // Du et al. 2024 Table 6, 1.6B/64E on 256 TPU-v5e: naive 2D 1.98 s, padded 2D 1.07 s, 3D
  // 1.05 s: naive/3D = 1.886, padded/3D = 1.019.
  const double t3d = StepTime("apple2024/moe-1.6b-64e.textproto");
  const double naive = StepTime("apple2024/moe-1.6b-64e-naive2d.textproto");
  const double padded = StepTime("apple2024/moe-1.6b-64e-padded2d.textproto");
  EXPECT_NEAR(naive / t3d / (1.98 / 1.05), 1.0, 0.15) << naive / t3d;
  EXPECT_NEAR(padded / t3d / (1.07 / 1.05), 1.0, 0.15) << padded / t3d;
}

TEST(Simulate, MoreExpertsOnePerChipBarelyMoveStepTime) {
  // 6.4B on 256 TPU-v4, 3D sharding with one expert per chip of the Expert axis:
  // 16 experts on (16, 16, 1) vs 256 experts on (1, 256, 1).
  const std::string f = "apple2024/moe-6.4b-256e.textproto";
  const double e16 =
      StepTime(f, {"model.moe.num_experts=16", "sharding.mesh.data=16", "sharding.mesh.expert=16"});
  const double e256 = StepTime(f);
  EXPECT_LT(std::abs(e256 / e16 - 1), 0.05) << e16 << " s -> " << e256 << " s";
}

TEST(Simulate, ForcingTheModelAxisRaisesTheMoeIncreaseSharply) {
  // 6.4B dense fits on (1, 256, 1); its 64-expert version on (4, 64, 1) vs forced onto the
  // Model axis (1, 64, 4): tensor parallelism adds activation all-gathers/reduce-scatters to
  // every layer.
  const double dense = StepTime("apple2024/dense-6.4b.textproto");
  const double moe3d = StepTime("apple2024/moe-6.4b-64e.textproto");
  const double forced = StepTime("apple2024/moe-6.4b-64e.textproto",
                                 {"sharding.mesh.data=1", "sharding.mesh.model=4"});
  const double inc3d = moe3d / dense - 1, inc_forced = forced / dense - 1;
  EXPECT_GT(inc_forced, 2 * inc3d) << inc3d << " vs " << inc_forced;
}

TEST(Simulate, MoeIncreaseIsNeverBelowItsFloorAtPeak) {
  // What an MoE step must add to its dense step, worked out by hand with every GEMM at the
  // chip's vendor peak and the optimizer at HBM peak (validation/calibration.md, "A floor"):
  // one more dense FFN per MoE layer run forward, recomputed and twice backward; 7 dispatch /
  // combine einsums of 2 x (E x C = 2S) x M FLOPs per token; 28 optimizer bytes per extra
  // parameter on each chip. 4096 tokens per chip, S = 4096 (one group per chip, O = 1).
  {  // 6.4B/256E on TPU v4 (275 TFLOP/s, 1200 GB/s): 8 MoE layers, M 4096, H 10240.
    const double experts = 8 * 4 * 6.0 * 4096 * 10240 * 4096 / 275e12;          // 0.1199 s
    const double einsums = 8 * 7 * 2.0 * 8192 * 4096 * 4096 / 275e12;           // 0.0560 s
    const double optimizer = 8 * 255 * 3.0 * 4096 * 10240 / 256 * 28 / 1200e9;  // 0.0234 s
    const double added =
        StepTime("apple2024/moe-6.4b-256e.textproto") - StepTime("apple2024/dense-6.4b.textproto");
    EXPECT_GE(added, experts + einsums + optimizer) << added;
  }
  {  // 1.2B/256E on TPU v5e (197 TFLOP/s, 819 GB/s): 6 MoE layers, M 2048, H 5632.
    const double experts = 6 * 4 * 6.0 * 2048 * 5632 * 4096 / 197e12;         // 0.0345 s
    const double einsums = 6 * 7 * 2.0 * 8192 * 2048 * 4096 / 197e12;         // 0.0293 s
    const double optimizer = 6 * 255 * 3.0 * 2048 * 5632 / 256 * 28 / 819e9;  // 0.0071 s
    const double added =
        StepTime("apple2024/moe-1.2b-256e.textproto") - StepTime("apple2024/dense-1.2b.textproto");
    EXPECT_GE(added, experts + einsums + optimizer) << added;
  }
}

TEST(Simulate, SkewedRoutingSlowsTheMoeLayerAsTheHottestExpertDictates) {
  // Permutation dispatch with room for skew (capacity 8): Zipf routing puts more tokens on the
  // busiest expert-parallel rank, and the layer waits for it.
  const std::vector<std::string> base = {"model.moe.dispatch=PERMUTE",
                                         "model.moe.capacity_factor=8"};
  auto skewed = base;
  skewed.push_back("model.moe.routing=ZIPF");
  skewed.push_back("model.moe.routing_zipf_exponent=0.5");
  EXPECT_GT(StepTime("", skewed), 1.3 * StepTime("", base));
}

TEST(Simulate, BreakdownAddsUpAndMetricsAgree) {
  auto sc = LoadScenario({});
  ASSERT_TRUE(sc.ok());
  auto r = SimulateScenario(*sc, {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Breakdown& b = r->breakdown;
  EXPECT_NEAR(b.compute_s + b.exposed_comm_s + b.bubble_s + b.idle_s, r->step_time_s,
              1e-9 * r->step_time_s);
  // tokens/s and MFU from their definitions.
  EXPECT_DOUBLE_EQ(r->tokens_per_s, (1 << 20) / r->step_time_s);
  EXPECT_DOUBLE_EQ(
      r->mfu, r->model_flops_per_step / (r->step_time_s * 256 * sc->hardware.peak_flops_per_s));
  EXPECT_EQ(r->network, "analytical");
}

}  // namespace
}  // namespace moesim
