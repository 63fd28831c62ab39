// The planner behind `moesim sweep` and `moesim plan`: grids, mesh factorizations, parallel runs
// in input order, and the Chinchilla budget arithmetic of Du et al. 2024 (BRIEF section 4),
// checked against numbers worked out by hand and against direct simulations.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "proto/scenario_loader.h"
#include "sim/planner/budget.h"
#include "sim/planner/planner.h"
#include "sim/planner/validation_set.h"

namespace moesim {
namespace {

using ::testing::HasSubstr;

const std::string kDense85m =
    std::string(MOESIM_SOURCE_DIR) + "/scenarios/apple2024/dense-85m.textproto";

TEST(GridPoints, FirstSpecOutermostAfterTheBase) {
  auto g = GridPoints({"training.recompute=FULL"},
                      {"model.num_layers=12,24", "model.d_model=512,768,1024"});
  ASSERT_TRUE(g.ok()) << g.status().message();
  ASSERT_EQ(g->size(), 6u);
  EXPECT_EQ((*g)[0], (std::vector<std::string>{"training.recompute=FULL", "model.num_layers=12",
                                               "model.d_model=512"}));
  EXPECT_EQ((*g)[2][2], "model.d_model=1024");
  EXPECT_EQ((*g)[3][1], "model.num_layers=24");
  EXPECT_EQ((*g)[5], (std::vector<std::string>{"training.recompute=FULL", "model.num_layers=24",
                                               "model.d_model=1024"}));
}

TEST(GridPoints, MalformedSpecsAreErrors) {
  EXPECT_EQ(GridPoints({}, {"model.d_model"}).status().message(),
            "--vary \"model.d_model\": expected PATH=V1,V2,...");
  EXPECT_EQ(GridPoints({}, {"=1,2"}).status().message(),
            "--vary \"=1,2\": expected PATH=V1,V2,...");
  EXPECT_EQ(GridPoints({}, {"model.d_model=768,,1024"}).status().message(),
            "--vary \"model.d_model=768,,1024\": empty value");
}

// A path or value that no point could take is the user's typo, not a row per point.
TEST(GridPoints, UnknownFieldsAndUnparsableValuesAreErrors) {
  auto field = GridPoints({}, {"model.d_modl=512,768"});
  ASSERT_FALSE(field.ok());
  EXPECT_THAT(field.status().message(), HasSubstr("--vary \"model.d_modl=512,768\": "));
  EXPECT_THAT(field.status().message(), HasSubstr("model has no field \"d_modl\""));
  auto value = GridPoints({}, {"model.d_model=512,abc"});
  ASSERT_FALSE(value.ok());
  EXPECT_THAT(value.status().message(), HasSubstr("\"abc\" is not an integer"));
  // A value of the right type that the model rejects is a point's own result, not an error.
  EXPECT_TRUE(GridPoints({}, {"model.d_model=99999"}).ok());
}

TEST(MeshFactorizations, CountedByHand) {
  // 8 devices, 4 experts, 4 layers, pipeline <= 2. Pipeline 1: expert 1 (model 1, 2, 4, 8),
  // expert 2 (model 1, 2, 4), expert 4 (model 1, 2): 9. Pipeline 2 over 4 devices: 3 + 2 + 1 = 6.
  const auto m = MeshFactorizations(8, 4, 4, 2);
  EXPECT_EQ(m.size(), 15u);
  std::set<std::array<int64_t, 4>> distinct(m.begin(), m.end());
  EXPECT_EQ(distinct.size(), m.size());
  for (const auto& f : m) {
    EXPECT_EQ(f[0] * f[1] * f[2] * f[3], 8);
    EXPECT_EQ(4 % f[1], 0);
    EXPECT_LE(f[3], 2);
  }
  // Dense: no expert axis; 12 devices, 6 layers, pipeline <= 8: pipelines 1, 2, 3, 6 leave
  // 12, 6, 4, 2 devices split into (data, model): 6 + 4 + 3 + 2 divisor pairs.
  const auto d = MeshFactorizations(12, 0, 6, 8);
  EXPECT_EQ(d.size(), 15u);
  for (const auto& f : d) EXPECT_EQ(f[1], 1);
}

TEST(RunPoints, ResultsInInputOrderWithEveryOutcomeAndTheSameBitsOnAnyJobCount) {
  const std::vector<std::vector<std::string>> points = {
      {},
      {"model.d_model=99999"},    // 12 heads do not divide it: invalid
      {"model.num_layers=1200"},  // ~8.5B parameters replicated on 16 GiB chips: does not fit
      {"training.recompute=NONE"},
  };
  RunOptions one;
  RunOptions two;
  two.jobs = 2;
  const auto a = RunPoints(kDense85m, points, one);
  const auto b = RunPoints(kDense85m, points, two);
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a[0].outcome, PointResult::Outcome::kOk);
  EXPECT_EQ(a[1].outcome, PointResult::Outcome::kInvalid);
  EXPECT_THAT(a[1].message, HasSubstr("model.num_heads=12 does not divide model.d_model=99999"));
  EXPECT_EQ(a[2].outcome, PointResult::Outcome::kDoesNotFit);
  EXPECT_EQ(a[3].outcome, PointResult::Outcome::kOk);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].overrides, points[i]);
    EXPECT_EQ(a[i].outcome, b[i].outcome);
    EXPECT_EQ(a[i].report.step_time_s, b[i].report.step_time_s);  // bit for bit
  }
  // The first point is the scenario as given: the same step as a direct simulation.
  auto sc = LoadScenario({kDense85m, {}});
  ASSERT_TRUE(sc.ok());
  auto direct = SimulateScenario(*sc, {});
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(a[0].report.step_time_s, direct->step_time_s);
  // Without recomputation the hardware runs the model's FLOPs and no more; with FULL it runs
  // the layers' forward twice. (The step time of this comm-bound step does not move: its
  // gradient all-reduces, serialized behind the head's, set the pace.)
  EXPECT_EQ(a[3].report.hardware_flops_per_step, a[3].report.model_flops_per_step);
  EXPECT_GT(a[0].report.hardware_flops_per_step, 1.2 * a[0].report.model_flops_per_step);
}

TEST(Plan, TheSearchFindsNothingSlowerThanTheScenariosOwnSharding) {
  // dense-85m runs APPLE_3D (64, 1, 1) with recompute FULL, one of the points searched.
  auto sc = LoadScenario({kDense85m, {}});
  ASSERT_TRUE(sc.ok());
  SearchSpace space;
  const auto points = ShardingPoints(*sc, space, {});
  const std::vector<std::string> own = {"sharding.strategy=APPLE_3D", "sharding.mesh.data=64",
                                        "sharding.mesh.expert=1",     "sharding.mesh.model=1",
                                        "sharding.mesh.pipeline=1",   "training.recompute=FULL",
                                        "training.micro_batch_size=0"};
  EXPECT_NE(std::find(points.begin(), points.end(), own), points.end());
  RunOptions opts;
  opts.jobs = 2;
  const auto results = RunPoints(kDense85m, points, opts);
  const PointResult* best = FastestFeasible(results);
  ASSERT_NE(best, nullptr);
  auto direct = SimulateScenario(*sc, {});
  ASSERT_TRUE(direct.ok());
  EXPECT_LE(best->report.step_time_s, direct->step_time_s);
  const OutcomeCounts c = CountOutcomes(results);
  EXPECT_EQ(c.ok + c.invalid + c.unfit, results.size());
  EXPECT_GT(c.ok, 0u);
}

TEST(Budget, ChinchillaArithmeticWorkedOutByHand) {
  // 85M dense (12 layers, d_model 768, SwiGLU 2048, vocab 32,000, untied embeddings):
  // per layer 4 x 768^2 + 3 x 768 x 2048 + 2 x 768 = 7,079,424; x 12 = 84,953,088; embeddings
  // 2 x 32,000 x 768 = 49,152,000; final norm 768: 134,105,856 parameters. Chinchilla: 20 tokens
  // each = 2,682,117,120 tokens = 109,135.625 steps of 24,576 tokens.
  auto text = ReadScenarioText(kDense85m);
  ASSERT_TRUE(text.ok());
  auto sc = LoadScenario({kDense85m, {}});
  ASSERT_TRUE(sc.ok());
  SearchSpace space;
  space.experts = {8, 16};
  space.every_k = {2};
  space.strategies = {"APPLE_3D"};
  space.max_pipeline = 1;
  RunOptions opts;
  opts.jobs = 2;
  auto plan = PlanTokensInBudget(*text, {}, *sc, space, opts);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->params, 134105856.0);
  EXPECT_DOUBLE_EQ(plan->steps, 109135.625);
  auto direct = SimulateScenario(*sc, {});
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(plan->dense.report.step_time_s, direct->step_time_s);
  EXPECT_DOUBLE_EQ(plan->budget_s, 109135.625 * direct->step_time_s);
  ASSERT_EQ(plan->candidates.size(), 2u);
  for (const BudgetCandidate& c : plan->candidates) {
    ASSERT_TRUE(c.best.has_value()) << c.experts;
    EXPECT_DOUBLE_EQ(c.tokens, plan->budget_s / c.best->report.step_time_s * 24576);
    EXPECT_EQ(c.best->scenario.model.moe.num_experts, c.experts);
    EXPECT_EQ(c.best->scenario.model.moe.placement_k, 2);
  }
  // Most tokens first.
  EXPECT_GE(plan->candidates[0].tokens, plan->candidates[1].tokens);
  EXPECT_EQ(plan->explored, 1 + plan->candidates[0].counts.ok + plan->candidates[0].counts.invalid +
                                plan->candidates[0].counts.unfit + plan->candidates[1].counts.ok +
                                plan->candidates[1].counts.invalid +
                                plan->candidates[1].counts.unfit);
}

TEST(Budget, AnMoeBaseIsRefused) {
  const std::string moe =
      std::string(MOESIM_SOURCE_DIR) + "/scenarios/apple2024/moe-85m-32e.textproto";
  auto text = ReadScenarioText(moe);
  ASSERT_TRUE(text.ok());
  auto sc = LoadScenario({moe, {}});
  ASSERT_TRUE(sc.ok());
  auto plan = PlanTokensInBudget(*text, {}, *sc, SearchSpace{}, RunOptions{});
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.status().message(), HasSubstr("takes a dense scenario"));
}

// Every shipped validation set reads and every row simulates: a renamed scenario or field
// would otherwise surface only when a user runs the set.
TEST(ValidationSets, EveryShippedRowSimulates) {
  const std::string dir = std::string(MOESIM_SOURCE_DIR) + "/validation";
  int sets = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".csv") continue;
    ++sets;
    auto rows = ReadValidationSet(e.path().string());
    ASSERT_TRUE(rows.ok()) << rows.status().message();
    for (const ValidationRow& row : *rows) {
      auto r = EvaluateValidationRow(e.path().string(), row, NetworkLevel::kAnalytical);
      EXPECT_TRUE(r.ok()) << e.path() << " " << row.id << ": " << r.status().message();
    }
  }
  EXPECT_GE(sets, 3);
}

TEST(ValidationSets, HeldOutMaxTextMultiSliceSeriesWithin10Percent) {
  // google/maxtext's own series: the 22B on 1, 2, 4 and 8 v4-128 slices (165, 158, 157, 146
  // TFLOP/s per chip) and the 16B and 32B on 1 to 32 v5e-256 slices (README table). Only the
  // 16B on one v5e slice set an efficiency. The slowdown across slices (-2.5 to -11.5%) is not
  // reproduced (validation/calibration.md); the level is, across sizes and slice counts.
  for (const char* name : {"maxtext-v4-dcn.csv", "maxtext-v5e-slices.csv"}) {
    const std::string set = std::string(MOESIM_SOURCE_DIR) + "/validation/" + name;
    auto rows = ReadValidationSet(set);
    ASSERT_TRUE(rows.ok()) << rows.status().message();
    std::vector<ValidationResult> results;
    for (const ValidationRow& row : *rows) {
      auto r = EvaluateValidationRow(set, row, NetworkLevel::kAnalytical);
      ASSERT_TRUE(r.ok()) << r.status().message();
      results.push_back(*r);
    }
    EXPECT_GE(results.size(), 4u) << name;
    EXPECT_LE(MeanAbsolutePercentError(results), 10.0) << name;
  }
}

}  // namespace
}  // namespace moesim
