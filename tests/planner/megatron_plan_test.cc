// `moesim plan` over Megatron-LM's space (sim/planner/megatron_space.h): uneven pipeline splits
// and the enumeration counted by hand, and the acceptance check on Mixtral 8x22B over 128 H100s:
// the search explores the folded space and its winner's printed Megatron-LM arguments, read back,
// give the same scenario and the same step.
#include <gtest/gtest.h>

#include <algorithm>

#include "proto/megatron_args.h"
#include "proto/scenario_loader.h"
#include "sim/planner/megatron_space.h"
#include "sim/planner/planner.h"

namespace moesim {
namespace {

const std::string kMixtral =
    std::string(MOESIM_SOURCE_DIR) + "/scenarios/mixtral/mixtral-8x22b-128xh100.textproto";

TEST(UnevenPipelineSplit, WorkedByHand) {
  int64_t first = 0, last = 0;
  // 56 layers on 8 ranks x 2 chunks (16 does not divide 56): middle ranks q in {2, 4, 6, 8};
  // q = 8 leaves 56 - 48 = 8 = 4 + 4 for the ends, busiest rank 8 (q = 6: 10 + 10).
  ASSERT_TRUE(UnevenPipelineSplit(56, 8, 2, &first, &last));
  EXPECT_EQ(first, 4);
  EXPECT_EQ(last, 4);
  // DeepSeek-V3's 61 layers on 16 ranks: q = 4 leaves 61 - 56 = 5 = 3 + 2 (busiest 4), the
  // smaller half on the last rank, which runs the head: DeepSeek's own 3 and 2.
  ASSERT_TRUE(UnevenPipelineSplit(61, 16, 1, &first, &last));
  EXPECT_EQ(first, 3);
  EXPECT_EQ(last, 2);
  // Two ranks: the last gets half rounded down.
  ASSERT_TRUE(UnevenPipelineSplit(7, 2, 1, &first, &last));
  EXPECT_EQ(first, 4);
  EXPECT_EQ(last, 3);
  // 7 layers on 3 ranks x 2 chunks: every remainder 7 - 2q is odd, no split in chunks of 2.
  EXPECT_FALSE(UnevenPipelineSplit(7, 3, 2, &first, &last));
  EXPECT_FALSE(UnevenPipelineSplit(8, 1, 1, &first, &last));
  // The layout string instead: 56 layers over 16 stages are 3 each and 8 left over, one more on
  // stages 1 to 8 (3 + 8 x 4 + 7 x 3 = 56); 7 over 3: 2 each, stage 1 one more.
  EXPECT_EQ(BalancedPipelineLayout(56, 16),
            "Et*3|t*4|t*4|t*4|t*4|t*4|t*4|t*4|t*4|t*3|t*3|t*3|t*3|t*3|t*3|t*3L");
  EXPECT_EQ(BalancedPipelineLayout(7, 3), "Et*2|t*3|t*2L");
  EXPECT_EQ(BalancedPipelineLayout(7, 3, 1), "Et*2|t*3|t*2m*1L");  // MTP before the loss
}

TEST(MegatronPoints, CountedByHand) {
  auto sc = LoadScenario({kMixtral, {}});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  // 128 GPUs, 8 per node; 512 sequences; 56 layers; 8 experts.
  MegatronSpace space;
  space.pipeline = {1, 16};
  space.virtual_stages = {1, 2};
  space.tensor = {8};
  space.expert = {8};
  space.max_micro_batch = 4;
  space.recompute = {"FULL"};
  // PP 1 (VPP 1 only): dp 16, 32 sequences each: micro-batches 1, 2, 4; ETP 8 (breakpoints 8,
  // 64, 128) and ETP 1 (1, 8, 128) both nest: 2 x 3 = 6 points. PP 16: a stage has 8 ranks, dp 1,
  // 512 sequences; ETP 8 x EP 8 = 64 does not divide 8 ranks: skipped; ETP 1 does. VPP 1: 56 % 16
  // != 0; middle ranks of q = 4 would leave 56 - 14 x 4 = 0 layers for the end ranks (refused by
  // Megatron-LM), q = 3 leaves 14 = 7 + 7 (busiest 7; q = 2: 14 + 14); with the balanced layout
  // string too, 2 x 3 points. VPP 2: 32 stages, q a multiple of 2: q = 4 leaves 0, q = 2 leaves
  // 28 = 14 + 14, and the layout; micro-batch counts 512, 256, 128 are multiples of 16: 2 x 3
  // points. 18 points; ETP 8 skipped once per placement: 4.
  const MegatronPoints p = EnumerateMegatronPoints(*sc, space, {});
  EXPECT_EQ(p.points.size(), 18u);
  EXPECT_EQ(p.skipped, 4u);
  EXPECT_EQ(DescribeMegatronPoint(p.points[0]), "TP8 CP1 PP1 VPP1 EP8 ETP8 mb1 FULL");
  EXPECT_EQ(DescribeMegatronPoint(p.points[14]),
            "TP8 CP1 PP16 VPP2 EP8 ETP1 mb4 FULL first14/last14");
  EXPECT_EQ(DescribeMegatronPoint(p.points[17]), "TP8 CP1 PP16 VPP2 EP8 ETP1 mb4 FULL layout");
  // TP 8 x CP 3 does not divide 128: both expert tensor choices skipped.
  space.pipeline = {1};
  space.context = {3};
  EXPECT_EQ(EnumerateMegatronPoints(*sc, space, {}).points.size(), 0u);
  EXPECT_EQ(EnumerateMegatronPoints(*sc, space, {}).skipped, 2u);
}

// The acceptance check: a small folded space around NeMo's layout (seconds to simulate).
TEST(MegatronPlan, Mixtral8x22bWinnerArgumentsReadBackIntoTheSameScenario) {
  auto sc = LoadScenario({kMixtral, {}});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  MegatronSpace space;
  space.tensor = {2, 4};
  space.context = {1, 2};
  space.pipeline = {4};
  space.virtual_stages = {14};
  space.expert = {4, 8};
  space.max_micro_batch = 2;
  space.recompute = {"NONE", "FULL"};
  const MegatronPoints points = EnumerateMegatronPoints(*sc, space, {});
  // TP 2 and 4, each with ETP = TP and ETP 1: 4 tensor pairs, x CP 2 x EP 2 x mb 2 x recompute
  // 2 = 64 combinations; the fewest sequences per data-parallel rank, 512 / (128 / (2 x 1 x 4)) =
  // 32, make 32 or 16 micro-batches, multiples of PP 4: every combination is a point.
  EXPECT_EQ(points.points.size(), 64u);
  RunOptions opts;
  opts.jobs = 2;
  opts.simulate_unfit = false;
  const auto results = RunPoints(kMixtral, points.points, opts);
  // The folded space is explored: feasible points where the expert axis spans tensor ranks.
  const PointResult* best = nullptr;
  size_t folded = 0;
  for (const auto& r : results) {
    if (r.outcome != PointResult::Outcome::kOk) continue;
    if (DescribeMegatronPoint(r.overrides).find("ETP1") != std::string::npos) ++folded;
    if (best == nullptr || r.report.step_time_s < best->report.step_time_s) best = &r;
  }
  EXPECT_GT(folded, 0u);
  ASSERT_NE(best, nullptr);
  // The same search on one thread: the same winner, to the bit.
  opts.jobs = 1;
  const auto again = RunPoints(kMixtral, points.points, opts);
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(again[i].report.step_time_s, results[i].report.step_time_s) << i;
  }

  // Its arguments, as `moesim plan` prints them, read back onto the scenario file.
  auto args = MegatronArgs(best->scenario);
  ASSERT_TRUE(args.ok()) << args.status().message();
  auto parsed = ParseMegatronArgs(JoinShellArgs(*args));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_TRUE(parsed->ignored.empty());
  EXPECT_TRUE(parsed->notes.empty());
  const auto back = RunPoints(kMixtral, {parsed->overrides}, opts);
  ASSERT_EQ(back[0].outcome, PointResult::Outcome::kOk) << back[0].message;
  const Scenario& a = best->scenario;
  const Scenario& b = back[0].scenario;
  EXPECT_EQ(b.sharding.mesh.Key(), a.sharding.mesh.Key());
  EXPECT_EQ(b.sharding.rules, a.sharding.rules);  // the roles, as the rules they make
  EXPECT_EQ(b.sharding.shard_optimizer_over_data, a.sharding.shard_optimizer_over_data);
  EXPECT_EQ(b.training.micro_batch_size, a.training.micro_batch_size);
  EXPECT_EQ(b.training.num_micro_batches, a.training.num_micro_batches);
  EXPECT_EQ(b.training.recompute, a.training.recompute);
  EXPECT_EQ(b.training.virtual_stages, a.training.virtual_stages);
  EXPECT_EQ(b.training.pipeline_schedule, a.training.pipeline_schedule);
  EXPECT_EQ(back[0].report.step_time_s, best->report.step_time_s);
}

}  // namespace
}  // namespace moesim
