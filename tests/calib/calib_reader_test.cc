// schema/calib_schema.h's readers (ParseCalibrationJson, ParseRealValidationJson): writer ->
// reader -> writer gives the same bytes, on constructed reports and on every shipped
// calibration.json and results.json under validation/measurements/; older files' absent fields
// read as documented; a field of another type is an error naming the file and the field.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "schema/calib_schema.h"

namespace moesim {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The shipped files named `name` under validation/measurements/, sorted.
std::vector<fs::path> Shipped(const std::string& name) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(fs::path(MOESIM_SOURCE_DIR) / "validation" /
                                                        "measurements")) {
    if (e.is_regular_file() && e.path().filename() == name) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

RealValidationReport SampleRealValidation() {
  RealValidationReport r;
  r.machine = {"host", "cpu", 4, "2026-01-02T03:04:05Z", "abc1234"};
  r.backend = "cpu";
  r.profile = "cpu.textproto";
  r.mape_pct = 2.5;
  RealValidationConfig c;
  c.id = "c1";
  c.scenario = "moe.textproto";
  c.overrides = {"model.d_model=64", "parallelism.expert=2"};
  c.ranks = 2;
  c.expert_parallel = 2;
  c.core_share = 0.5;
  c.link_group = "SHM-timeshared";
  c.simulated_step_s = 0.1;
  c.measured_step_s = 0.3;
  c.measured_step_s_repeats = {0.3, 0.7, 1e-300};
  c.spread_pct = 1.0 / 3;
  c.error_pct = -66.66666666666667;
  c.simulated_dropped_fraction = 0;
  c.measured_dropped_fraction = 0.125;
  c.ops = {{"moe.w1", 0.25, 0.5, -50.0}, {"moe.dispatch_a2a.wait", 0, 0.125, std::nullopt}};
  RealValidationConfig dense = c;
  dense.id = "dense";
  dense.simulated_dropped_fraction = dense.measured_dropped_fraction = -1;
  dense.ops.clear();
  dense.overrides.clear();
  r.configs = {c, dense};
  return r;
}

CalibrationReport SampleCalibration() {
  CalibrationReport r;
  r.chip = "cpu";
  CalibrationFit f;
  f.name = "memory";
  f.model = "t = bytes / bw";
  f.params = {{"op_overhead_s", 1e-6}, {"memory_efficiency", 0.1}};
  f.rms_rel_error = 0.25;
  f.points = {{"copy 1 MiB", 1.0, 1.25, 0.25}, {"copy, 2 \"MiB\"", 2e-7, 1e-7, -0.5}};
  CalibrationFit none;
  none.name = "link/SHM";
  none.fitted = false;
  none.notes = {"one rank", "two"};
  r.fits = {f, none};
  return r;
}

TEST(CalibReader, RealValidationRoundTripsByteIdentical) {
  const std::string text = RealValidationJson(SampleRealValidation()).dump(2);
  Expected<RealValidationReport> r = ParseRealValidationJson(json::parse(text), "r.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(RealValidationJson(*r).dump(2), text);
  // Typed, not only echoed: the fields land where they belong.
  EXPECT_EQ(r->configs.size(), 2u);
  EXPECT_EQ(r->configs[0].ranks, 2);
  EXPECT_EQ(r->configs[0].measured_step_s_repeats[2], 1e-300);
  EXPECT_FALSE(r->configs[0].ops[1].error_pct.has_value());
  EXPECT_EQ(*r->configs[0].ops[0].error_pct, -50.0);
  EXPECT_EQ(r->configs[1].measured_dropped_fraction, -1);
  EXPECT_EQ(r->machine.cores, 4);
}

TEST(CalibReader, CalibrationRoundTripsByteIdentical) {
  const std::string text = CalibrationJson(SampleCalibration()).dump(2);
  Expected<CalibrationReport> r = ParseCalibrationJson(json::parse(text), "c.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(CalibrationJson(*r).dump(2), text);
  EXPECT_FALSE(r->fits[1].fitted);
  EXPECT_EQ(r->fits[0].params.at("op_overhead_s"), 1e-6);
  EXPECT_EQ(r->fits[0].points[1].label, "copy, 2 \"MiB\"");
}

// Every shipped calibration.json is the writer's output of what the reader reads from it.
TEST(CalibReader, ShippedCalibrationRoundTripsByteIdentical) {
  const std::vector<fs::path> files = Shipped("calibration.json");
  ASSERT_FALSE(files.empty());
  for (const fs::path& p : files) {
    const std::string text = ReadFile(p);
    Expected<CalibrationReport> r = ParseCalibrationJson(json::parse(text), p.string());
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(CalibrationJson(*r).dump(2) + "\n", text) << p;
  }
}

// The shipped results.json predate the dropped-token fields: they read as -1 (dense) and are
// the only difference; a second round trip is byte-identical.
TEST(CalibReader, ShippedRealValidationRoundTrips) {
  const std::vector<fs::path> files = Shipped("results.json");
  ASSERT_FALSE(files.empty());
  for (const fs::path& p : files) {
    const std::string text = ReadFile(p);
    Expected<RealValidationReport> r = ParseRealValidationJson(json::parse(text), p.string());
    ASSERT_TRUE(r.ok()) << r.status().message();
    json written = RealValidationJson(*r);
    for (json& c : written.at("configs")) {
      EXPECT_EQ(c.at("simulated_dropped_fraction"), -1.0) << p;
      EXPECT_EQ(c.at("measured_dropped_fraction"), -1.0) << p;
      c.erase("simulated_dropped_fraction");
      c.erase("measured_dropped_fraction");
    }
    EXPECT_EQ(written.dump(2) + "\n", text) << p;
    const std::string once = RealValidationJson(*r).dump(2);
    Expected<RealValidationReport> again = ParseRealValidationJson(json::parse(once), p.string());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(RealValidationJson(*again).dump(2), once) << p;
  }
}

// What `moesim report` relied on for older or partial files.
TEST(CalibReader, AbsentFieldsReadAsDocumented) {
  Expected<RealValidationReport> r = ParseRealValidationJson(
      json::parse(R"({"configs":[{"simulated_step_s":1,"measured_step_s":2,"spread_pct":3,)"
                  R"("ops":[{}]}]})"),
      "r.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->machine.hostname, "?");
  EXPECT_EQ(r->machine.cpu_model, "?");
  EXPECT_EQ(r->machine.date_utc, "?");
  EXPECT_EQ(r->machine.git_commit, "?");
  EXPECT_EQ(r->machine.cores, 0);
  EXPECT_EQ(r->backend, "?");
  EXPECT_EQ(r->profile, "?");
  const RealValidationConfig& c = r->configs[0];
  EXPECT_EQ(c.id, "configs[0]");
  EXPECT_EQ(c.ranks, 0);
  EXPECT_EQ(c.expert_parallel, 0);
  EXPECT_EQ(c.core_share, 1.0);
  EXPECT_EQ(c.simulated_step_s, 1.0);
  EXPECT_EQ(c.measured_step_s, 2.0);
  EXPECT_EQ(c.spread_pct, 3.0);
  EXPECT_TRUE(c.measured_step_s_repeats.empty());
  EXPECT_EQ(c.simulated_dropped_fraction, -1.0);
  EXPECT_EQ(c.measured_dropped_fraction, -1.0);
  ASSERT_EQ(c.ops.size(), 1u);
  EXPECT_EQ(c.ops[0].op, "?");
  EXPECT_EQ(c.ops[0].measured_s, 0.0);
  EXPECT_FALSE(c.ops[0].error_pct.has_value());

  Expected<CalibrationReport> cal =
      ParseCalibrationJson(json::parse(R"({"fits":[{"points":[{}]}]})"), "c.json");
  ASSERT_TRUE(cal.ok()) << cal.status().message();
  EXPECT_EQ(cal->fits[0].name, "?");
  EXPECT_TRUE(cal->fits[0].fitted);
  EXPECT_TRUE(cal->fits[0].params.empty());
  EXPECT_EQ(cal->fits[0].rms_rel_error, 0.0);
  EXPECT_EQ(cal->fits[0].points[0].label, "");
  EXPECT_EQ(cal->fits[0].points[0].rel_error, 0.0);
}

std::string RealError(const std::string& text) {
  Expected<RealValidationReport> r = ParseRealValidationJson(json::parse(text), "r.json");
  return r.ok() ? "ok" : r.status().message();
}
std::string CalError(const std::string& text) {
  Expected<CalibrationReport> r = ParseCalibrationJson(json::parse(text), "c.json");
  return r.ok() ? "ok" : r.status().message();
}

TEST(CalibReader, WrongTypeNamesFileAndField) {
  const std::string ok = R"("simulated_step_s":1,"measured_step_s":2,"spread_pct":3)";
  EXPECT_EQ(RealError(R"({"configs":[{)" + ok + "}]}"), "ok");
  EXPECT_EQ(RealError(R"({"configs":[]})"),
            "r.json: configs: missing or empty (neither validate-real results nor moesim "
            "validate --json output)");
  EXPECT_EQ(RealError(R"({"configs":[{"simulated_step_s":1,"spread_pct":3}]})"),
            "r.json: configs[0].measured_step_s: missing or not a number");
  EXPECT_EQ(RealError(R"({"configs":[{)" + ok + R"(},{)" + ok + R"(,"ranks":"2"}]})"),
            "r.json: configs[1].ranks: not a number");
  EXPECT_EQ(RealError(R"({"configs":[{)" + ok + R"(,"id":7}]})"),
            "r.json: configs[0].id: not a string");
  EXPECT_EQ(RealError(R"({"configs":[{)" + ok + R"(,"measured_step_s_repeats":[1,"x"]}]})"),
            "r.json: configs[0].measured_step_s_repeats[1]: not a number");
  EXPECT_EQ(RealError(R"({"configs":[{)" + ok + R"(,"ops":[{"measured_s":null}]}]})"),
            "r.json: configs[0].ops[0].measured_s: not a number");
  EXPECT_EQ(RealError(R"({"configs":[{)" + ok + R"(,"ops":{}}]})"),
            "r.json: configs[0].ops: not an array");
  EXPECT_EQ(RealError(R"({"machine":{"cores":"4"},"configs":[{)" + ok + "}]}"),
            "r.json: machine.cores: not a number");
  EXPECT_EQ(RealError(R"({"configs":[3]})"), "r.json: configs[0]: not an object");

  EXPECT_EQ(CalError(R"({"fits":{}})"),
            "c.json: fits: missing (not `moesim calibrate --json` output)");
  EXPECT_EQ(CalError(R"({"fits":[{"params":{"a":1,"b":"x"}}]})"),
            "c.json: fits[0].params.b: not a number");
  EXPECT_EQ(CalError(R"({"fits":[{},{"points":[{"model_s":"1"}]}]})"),
            "c.json: fits[1].points[0].model_s: not a number");
  EXPECT_EQ(CalError(R"({"fits":[{"fitted":1}]})"), "c.json: fits[0].fitted: not true or false");
  EXPECT_EQ(CalError(R"({"fits":[{"notes":[1]}]})"), "c.json: fits[0].notes[0]: not a string");
}

}  // namespace
}  // namespace moesim
