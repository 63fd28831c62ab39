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

}  // namespace
}  // namespace moesim
