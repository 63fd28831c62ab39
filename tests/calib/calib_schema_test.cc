// schema/calib_schema.h: the writers of calibrate's and validate-real's JSON on constructed
// reports, field by field (validate-real's own output needs moesim-real and differs run to run;
// tests/schema checks the written files against docs/schema.md).
#include "schema/calib_schema.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace moesim {
namespace {

TEST(CalibSchema, RealValidationLayout) {
  RealValidationReport r;
  r.machine = {"host", "cpu", 4, "2026-01-02T03:04:05Z", "abc1234"};
  r.backend = "cpu";
  r.profile = "cpu.textproto";
  r.mape_pct = 2.5;
  RealValidationConfig c;
  c.id = "c1";
  c.scenario = "moe.textproto";
  c.overrides = {"model.d_model=64"};
  c.ranks = 2;
  c.expert_parallel = 2;
  c.core_share = 0.5;
  c.link_group = "SHM-timeshared";
  c.simulated_step_s = 0.25;
  c.measured_step_s = 0.5;
  c.measured_step_s_repeats = {0.5, 0.75};
  c.spread_pct = 50;
  c.error_pct = -50;
  c.simulated_dropped_fraction = 0;
  c.measured_dropped_fraction = 0.125;
  c.ops = {{"moe.w1", 0.25, 0.5, -50.0}, {"moe.dispatch_a2a.wait", 0, 0.125, std::nullopt}};
  r.configs = {c};
  EXPECT_EQ(
      RealValidationJson(r).dump(),
      R"({"backend":"cpu","configs":[{"core_share":0.5,"error_pct":-50.0,"expert_parallel":2,)"
      R"("id":"c1","link_group":"SHM-timeshared","measured_dropped_fraction":0.125,)"
      R"("measured_step_s":0.5,"measured_step_s_repeats":[0.5,0.75],"ops":[{"error_pct":-50.0,)"
      R"("measured_s":0.5,"op":"moe.w1","simulated_s":0.25},{"error_pct":null,)"
      R"("measured_s":0.125,"op":"moe.dispatch_a2a.wait","simulated_s":0.0}],)"
      R"("overrides":["model.d_model=64"],"ranks":2,"scenario":"moe.textproto",)"
      R"("simulated_dropped_fraction":0.0,"simulated_step_s":0.25,"spread_pct":50.0}],)"
      R"("machine":{"cores":4,"cpu_model":"cpu","date_utc":"2026-01-02T03:04:05Z",)"
      R"("git_commit":"abc1234","hostname":"host"},"mape_pct":2.5,"profile":"cpu.textproto",)"
      R"("tool":"moesim validate-real"})");
}

TEST(CalibSchema, CalibrationLayout) {
  CalibrationReport r;
  r.chip = "cpu";
  CalibrationFit f;
  f.name = "memory";
  f.model = "t = bytes / bw";
  f.params = {{"op_overhead_s", 1e-6}, {"memory_efficiency", 0.5}};
  f.rms_rel_error = 0.25;
  f.points = {{"copy", 1.0, 1.25, 0.25}};
  CalibrationFit none;
  none.name = "link/SHM";
  none.fitted = false;
  none.notes = {"one rank"};
  r.fits = {f, none};
  EXPECT_EQ(CalibrationJson(r).dump(),
            R"({"chip":"cpu","fits":[{"fitted":true,"model":"t = bytes / bw","name":"memory",)"
            R"("notes":[],"params":{"memory_efficiency":0.5,"op_overhead_s":1e-06},)"
            R"("points":[{"label":"copy","measured_s":1.0,"model_s":1.25,"rel_error":0.25}],)"
            R"("rms_rel_error":0.25},{"fitted":false,"model":"","name":"link/SHM",)"
            R"("notes":["one rank"],"params":{},"points":[],"rms_rel_error":0.0}]})");
}

TEST(CalibSchema, GemmTableFitOmitsWhatWasNotFitted) {
  GemmTableFitReport r;
  r.chip = "a100-sxm";
  r.table = "h100.csv";
  r.source = "s";
  r.rows = 3;
  r.folds = 2;
  r.gemm_compute_units = 108;
  r.hbm_bytes_per_s = 2e12;
  r.memory_efficiency = 0.75;
  GemmTableDtypeFit bf16{"bf16", 2, true, 3e14, 0.5, 128, 5e-6, 0.25, 2, 0.125, 0.5};
  GemmTableDtypeFit fp8{"fp8", 1, false, 0, 0, 0, 0, 0, 0, 0, 0};
  r.dtypes = {bf16, fp8};
  EXPECT_EQ(GemmTableFitJson(r).dump(),
            R"({"chip":"a100-sxm","dtypes":[{"dtype":"bf16","fitted":true,"held_out":)"
            R"({"median_abs_rel":0.125,"p90_abs_rel":0.5,"points":2},"k_half":128.0,)"
            R"("max_fraction":0.5,"overhead_s":5e-06,"peak_flops_per_s":300000000000000.0,)"
            R"("rms_log_error":0.25,"rows":2},{"dtype":"fp8","fitted":false,)"
            R"("peak_flops_per_s":0.0,"rows":1}],"folds":2,"gemm_compute_units":108,)"
            R"("hbm_bytes_per_s":2000000000000.0,"memory_efficiency":0.75,"rows":3,)"
            R"("source":"s","table":"h100.csv"})");
}

TEST(CalibSchema, PublishedFitScanLossOfTooFewRowsIsNull) {
  PublishedFitRecord f;
  f.chip = "tpu-v4";
  f.param = "matmul_efficiency";
  f.rule = "mean";
  f.value = 0.5;
  f.folds = 2;
  f.rows = {{"set.csv", "r1", "mfu", 0.5, 0.5, 0.25, 0, -50, 1}};
  f.scan = PublishedFitScan{
      "elementwise_efficiency", 1, {1, 0.5}, {0.125, std::numeric_limits<double>::quiet_NaN()}};
  PublishedFitRecord no_scan = f;
  no_scan.scan.reset();
  const nlohmann::json j = PublishedFitJson({f, no_scan});
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0].at("scan").dump(),
            R"({"losses":[0.125,null],"param":"elementwise_efficiency","value":1.0,)"
            R"("values":[1.0,0.5]})");
  EXPECT_FALSE(j[1].contains("scan"));
  EXPECT_EQ(j[1].dump(),
            R"({"at_bound":false,"chip":"tpu-v4","folds":2,"held_out_valid":false,)"
            R"("mape_held_out_pct":0.0,"mape_in_pct":0.0,"param":"matmul_efficiency",)"
            R"("rows":[{"error_held_out_pct":-50.0,"error_in_pct":0.0,"fold":1,"held_out":0.25,)"
            R"("id":"r1","in_sample":0.5,"measured":0.5,"metric":"mfu","set":"set.csv"}],)"
            R"("rule":"mean","spread_in_pp":0.0,"value":0.5})");
}

}  // namespace
}  // namespace moesim
