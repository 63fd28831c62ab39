// The step-level profile fit (sim/planner/profile_fit.h) checked by second methods: the fitted
// value, simulated directly, gives a geometric mean of simulated / measured speed of 1; each
// fold's held-out prediction equals a fit over the other rows alone; one row per chip has no
// held-out error; rows of other chips are not mixed in.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "sim/planner/profile_fit.h"
#include "sim/planner/validation_set.h"

namespace moesim {
namespace {

namespace fs = std::filesystem;

const char* const kScenario = R"(
model { num_layers: 2 d_model: 512 num_heads: 8 d_ff: 2048 vocab_size: 1000 seq_len: 256
        ffn_kind: SWIGLU }
cluster { topology: "tpu-v5e:2x4" }
sharding { strategy: DATA_PARALLEL mesh { data: 8 } }
training { global_batch_tokens: 16384 }
)";

// Each test writes under its own directory: ctest runs the tests of this file as parallel
// processes, and a shared scenario file would be rewritten while another test reads it.
std::string Write(const std::string& name, const std::string& text) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("profile_fit_" + std::string(info->name()));
  fs::create_directories(dir);
  const fs::path p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

// Four rows on v5e (one model at four batch sizes, "measured" throughputs chosen by hand) and
// one on v4.
std::string Set(const std::string& name, const std::string& rows) {
  Write("fit_small.textproto", kScenario);
  return Write(name, "id,scenario,overrides,metric,measured,source\n" + rows);
}

const std::string kRows =
    "a,fit_small.textproto,,tflops_per_device,60,hand\n"
    "b,fit_small.textproto,training.global_batch_tokens=32768,tflops_per_device,70,hand\n"
    "c,fit_small.textproto,training.global_batch_tokens=65536,step_time_s,0.007,hand\n"
    "d,fit_small.textproto,training.global_batch_tokens=8192,tflops_per_device,50,hand\n"
    "e,fit_small.textproto,cluster.topology=tpu-v4:2x2x2,tflops_per_device,90,hand\n";

double LogRho(const ValidationResult& r) {
  const double ratio = r.simulated / r.row.measured;
  return r.row.metric == "step_time_s" ? -std::log(ratio) : std::log(ratio);
}

TEST(ProfileFit, GeometricMeanOfFittedRowsIsOne) {
  const std::string set = Set("fit_set.csv", kRows);
  auto fits = FitPublished({set}, PublishedFitOptions{});
  ASSERT_TRUE(fits.ok()) << fits.status().message();
  ASSERT_EQ(fits->size(), 2u);
  const ChipFit& v5e = (*fits)[0];
  EXPECT_EQ(v5e.chip, "tpu-v5e");
  ASSERT_EQ(v5e.rows.size(), 4u);
  EXPECT_FALSE(v5e.at_bound);
  // Second method: simulate the rows at the fitted value directly.
  auto rows = ReadValidationSet(set);
  ASSERT_TRUE(rows.ok());
  double sum = 0;
  for (size_t i = 0; i < 4; ++i) {
    ValidationRow r = (*rows)[i];
    char v[64];
    std::snprintf(v, sizeof(v), "%.17g", v5e.value);
    r.overrides += std::string(r.overrides.empty() ? "" : ";") + "hardware.matmul_efficiency=" + v;
    auto res = EvaluateValidationRow(set, r, NetworkLevel::kAnalytical);
    ASSERT_TRUE(res.ok()) << res.status().message();
    sum += LogRho(*res);
    // The interpolated in-sample value is within 1% of the direct simulation.
    EXPECT_NEAR(v5e.rows[i].in_sample / res->simulated, 1, 0.01) << r.id;
  }
  EXPECT_NEAR(sum / 4, 0, 0.01);
  // v4 has one row: fitted exactly, no held-out error.
  const ChipFit& v4 = (*fits)[1];
  EXPECT_EQ(v4.chip, "tpu-v4");
  EXPECT_FALSE(v4.held_out_valid);
  EXPECT_NEAR(v4.rows[0].error_in_pct, 0, 0.5);
}

TEST(ProfileFit, HeldOutFoldEqualsAFitWithoutIt) {
  const std::string set = Set("fit_set2.csv", kRows);
  PublishedFitOptions o;
  o.chips = {"tpu-v5e"};
  o.folds = 2;  // folds {a, c} and {b, d}
  auto all = FitPublished({set}, o);
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ(all->size(), 1u);
  const ChipFit& f = (*all)[0];
  ASSERT_TRUE(f.held_out_valid);
  EXPECT_EQ(f.rows[0].fold, 0);
  EXPECT_EQ(f.rows[1].fold, 1);
  // Fold 0 (a, c) predicted from a fit over b, d alone.
  const std::string bd = Set("fit_bd.csv",
                             "b,fit_small.textproto,training.global_batch_tokens=32768,"
                             "tflops_per_device,70,hand\n"
                             "d,fit_small.textproto,training.global_batch_tokens=8192,"
                             "tflops_per_device,50,hand\n");
  auto only = FitPublished({bd}, o);
  ASSERT_TRUE(only.ok());
  auto rows = ReadValidationSet(set);
  ASSERT_TRUE(rows.ok());
  ValidationRow a = (*rows)[0];
  char v[64];
  std::snprintf(v, sizeof(v), "%.17g", (*only)[0].value);
  a.overrides = std::string("hardware.matmul_efficiency=") + v;
  auto direct = EvaluateValidationRow(set, a, NetworkLevel::kAnalytical);
  ASSERT_TRUE(direct.ok());
  EXPECT_NEAR(f.rows[0].held_out / direct->simulated, 1, 0.01);
}

TEST(ProfileFit, BadRangeIsRefused) {
  PublishedFitOptions o;
  o.lo = 0;
  auto r = FitPublished({Set("fit_set3.csv", kRows)}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("0 < lo < hi"), std::string::npos);
}

// Rows whose "measured" values are the simulation itself at matmul_efficiency 0.6 and
// elementwise_efficiency 0.5 on a GPU, for models of four widths (their elementwise share
// differs: GEMM FLOPs grow with d^2, elementwise bytes with d). A scan over {1, 0.5, 0.25} must
// find 0.5 and the fit 0.6 with no residual.
const char* const kGpuScenario = R"(
model { num_layers: 2 d_model: 512 num_heads: 8 d_ff: 2048 vocab_size: 1000 seq_len: 256
        ffn_kind: SWIGLU }
cluster { topology: "dgx-h100:1" }
sharding { strategy: DATA_PARALLEL mesh { data: 8 } }
training { global_batch_tokens: 16384 }
)";

double SimulatedAt(const std::string& set, const ValidationRow& row, const std::string& extra) {
  ValidationRow r = row;
  r.overrides += (r.overrides.empty() ? "" : ";") + extra;
  auto res = EvaluateValidationRow(set, r, NetworkLevel::kAnalytical);
  EXPECT_TRUE(res.ok()) << res.status().message();
  return res.ok() ? res->simulated : 0;
}

// Writes a set of the four widths with measured = simulated under `truth`; row `outlier` (if
// >= 0) gets twice its value.
std::string SyntheticSet(const std::string& name, const std::string& truth, int outlier) {
  Write("fit_gpu.textproto", kGpuScenario);
  const std::string widths[] = {
      "model.d_model=256;model.d_ff=1024", "model.d_model=512;model.d_ff=2048",
      "model.d_model=1024;model.d_ff=4096", "model.d_model=2048;model.d_ff=8192;model.num_heads=16",
      "model.d_model=768;model.d_ff=3072;model.num_heads=12"};
  std::string rows;
  for (int i = 0; i < 5; ++i) {
    rows += "w" + std::to_string(i) + ",fit_gpu.textproto," + widths[i] +
            ",tflops_per_device,1,synthetic\n";
  }
  const std::string draft = Write(name, "id,scenario,overrides,metric,measured,source\n" + rows);
  auto read = ReadValidationSet(draft);
  EXPECT_TRUE(read.ok());
  rows.clear();
  for (int i = 0; i < 5; ++i) {
    double m = SimulatedAt(draft, (*read)[static_cast<size_t>(i)], truth);
    if (i == outlier) m *= 2;
    char v[64];
    std::snprintf(v, sizeof(v), "%.17g", m);
    rows += "w" + std::to_string(i) + ",fit_gpu.textproto," + widths[i] + ",tflops_per_device," +
            v + ",synthetic\n";
  }
  return Write(name, "id,scenario,overrides,metric,measured,source\n" + rows);
}

TEST(ProfileFit, ScanRecoversTheSecondParameterOfSyntheticRows) {
  const std::string set = SyntheticSet(
      "fit_scan.csv", "hardware.matmul_efficiency=0.6;hardware.elementwise_efficiency=0.5", -1);
  PublishedFitOptions o;
  o.lo = 0.3;
  o.grid = 25;
  o.scan_param = "elementwise_efficiency";
  o.scan_values = {1, 0.5, 0.25};
  auto fits = FitPublished({set}, o);
  ASSERT_TRUE(fits.ok()) << fits.status().message();
  ASSERT_EQ(fits->size(), 1u);
  const ChipFit& f = (*fits)[0];
  EXPECT_EQ(f.scan_value, 0.5);
  EXPECT_NEAR(f.value, 0.6, 0.006);
  EXPECT_LT(f.mape_in_pct, 0.5);
  ASSERT_EQ(f.scan_losses.size(), 3u);
  EXPECT_GT(f.scan_losses[0], f.scan_losses[1]);
  EXPECT_GT(f.scan_losses[2], f.scan_losses[1]);
  // With too few rows for a scan, the first value is kept.
  o.scan_min_rows = 6;
  auto kept = FitPublished({set}, o);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ((*kept)[0].scan_value, 1);
}

TEST(ProfileFit, MedianRuleIgnoresOneOutlierTheMeanFollows) {
  const std::string set =
      SyntheticSet("fit_outlier.csv", "hardware.matmul_efficiency=0.6", /*outlier=*/2);
  PublishedFitOptions o;
  o.lo = 0.3;
  o.grid = 25;
  o.rule = FitRule::kMedian;
  auto median = FitPublished({set}, o);
  ASSERT_TRUE(median.ok()) << median.status().message();
  // Four of five rows are exact at 0.6: their median residual is 0 there.
  EXPECT_NEAR((*median)[0].value, 0.6, 0.006);
  o.rule = FitRule::kGeometricMean;
  auto mean = FitPublished({set}, o);
  ASSERT_TRUE(mean.ok());
  EXPECT_GT((*mean)[0].value / 0.6, 1.05);  // pulled toward the outlier's doubled speed
}

TEST(ProfileFit, ScanOfTheFittedFieldIsRefused) {
  PublishedFitOptions o;
  o.scan_param = "matmul_efficiency";
  o.scan_values = {1};
  auto r = FitPublished({Set("fit_set4.csv", kRows)}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--scan"), std::string::npos);
}

}  // namespace
}  // namespace moesim
