// Validation inputs (configuration CSV, measured traces and metrics) and the cpu-host
// topology's collective times in the simulator against the formulas the calibration fits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "calib/fit.h"
#include "calib/measured_run.h"
#include "calib/validation.h"
#include "proto/hardware_profiles.h"
#include "sim/step/analytical_network.h"
#include "topologies/placement.h"
#include "topologies/topology.h"

namespace moesim::calib {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string TempFile(const std::string& name, const std::string& text) {
  const fs::path dir = fs::temp_directory_path() / "moesim_calib_test";
  fs::create_directories(dir);
  const fs::path p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

TEST(OpClass, DropsTheLayerPrefix) {
  EXPECT_EQ(OpClass("L12.attn.q.dgrad"), "attn.q.dgrad");
  EXPECT_EQ(OpClass("L0.moe.w1"), "moe.w1");
  EXPECT_EQ(OpClass("grads.all_reduce"), "grads.all_reduce");
  EXPECT_EQ(OpClass("Loss"), "Loss");
}

TEST(MeasuredRun, MediansAndPerOpMeans) {
  // Steps 1-4 are warm-up and traced; 5, 6, 7 are timed: median 0.2.
  const std::string metrics = TempFile("m.jsonl",
                                       "{\"step\": 4, \"step_time_s\": 9.0}\n"
                                       "{\"step\": 5, \"step_time_s\": 0.3}\n"
                                       "{\"step\": 6, \"step_time_s\": 0.1}\n"
                                       "{\"step\": 7, \"step_time_s\": 0.2}\n");
  // Two ranks, two traced steps: L0.attn.q + L1.attn.q = 1000 + 3000 us over 2 ranks x 2
  // steps -> 1 ms per step.
  const std::string trace = TempFile("t.json", R"({"traceEvents": [
    {"ph": "M", "name": "process_name", "pid": 0},
    {"ph": "X", "name": "L0.attn.q", "pid": 0, "tid": 0, "dur": 1000, "args": {"step": 2}},
    {"ph": "X", "name": "L1.attn.q", "pid": 1, "tid": 0, "dur": 3000, "args": {"step": 3}},
    {"ph": "X", "name": "optimizer.step", "pid": 1, "tid": 0, "dur": 400, "args": {"step": 3}}
  ]})");
  Expected<MeasuredRun> r = ReadMeasuredRun(trace, metrics, 4);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_DOUBLE_EQ(r->step_time_s, 0.2);
  EXPECT_EQ(r->ranks, 2);
  EXPECT_EQ(r->traced_steps, 2);
  EXPECT_DOUBLE_EQ(r->op_s.at("attn.q"), 1e-3);
  EXPECT_DOUBLE_EQ(r->op_s.at("optimizer.step"), 1e-4);
  EXPECT_EQ(r->dropped_fraction, -1);  // a dense model's metrics have none
}

TEST(MeasuredRun, MoeDroppedFractionIsTheSteadyStepsMean) {
  // Step 2 (traced) is left out; steps 3 and 4: (0.10 + 0.20) / 2.
  const std::string metrics =
      TempFile("md.jsonl",
               "{\"step\": 2, \"step_time_s\": 0.5, \"dropped_fraction\": 0.9}\n"
               "{\"step\": 3, \"step_time_s\": 0.1, \"dropped_fraction\": 0.10}\n"
               "{\"step\": 4, \"step_time_s\": 0.1, \"dropped_fraction\": 0.20}\n");
  const std::string trace = TempFile("td.json", R"({"traceEvents": [
    {"ph": "X", "name": "L0.moe.w1", "pid": 0, "tid": 0, "dur": 100, "args": {"step": 2}}]})");
  Expected<MeasuredRun> r = ReadMeasuredRun(trace, metrics, 2);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_DOUBLE_EQ(r->dropped_fraction, 0.15);
}

TEST(MeasuredRun, NoSteadyStepIsAnError) {
  const std::string metrics = TempFile("m2.jsonl", "{\"step\": 1, \"step_time_s\": 0.3}\n");
  const std::string trace = TempFile("t2.json", R"({"traceEvents": []})");
  Expected<MeasuredRun> r = ReadMeasuredRun(trace, metrics, 4);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("no step after step 4"));
}

TEST(MeasuredRun, BadMetricsLineIsNamed) {
  const std::string metrics = TempFile("m3.jsonl", "{\"step\": 5}\n");
  Expected<MeasuredRun> r = ReadMeasuredRun("unused", metrics, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("m3.jsonl:1: needs integer \"step\""));
}

TEST(MeasuredRun, FieldsOfAnotherTypeAreBadInputNotExceptions) {
  // Each of these threw nlohmann::json::type_error (get<>() or value() on another type).
  const std::string metrics = TempFile("m4.jsonl", "{\"step\": 3, \"step_time_s\": 0.5}\n");
  for (const char* event :
       {R"({"ph": "X", "name": "a", "dur": 1, "pid": "0"})",
        R"({"ph": "X", "name": 7, "dur": 1, "pid": 0})",
        R"({"ph": "X", "name": "a", "dur": 1, "pid": 0, "args": {"step": "2"}})"}) {
    const std::string trace =
        TempFile("t4.json", std::string(R"({"traceEvents": [)") + event + "]}");
    Expected<MeasuredRun> r = ReadMeasuredRun(trace, metrics, 2);
    ASSERT_FALSE(r.ok()) << event;
    EXPECT_THAT(r.status().message(), HasSubstr("t4.json: traceEvents[0]: ")) << event;
  }
  // An event whose ph is not a string is not an op event.
  const std::string trace = TempFile(
      "t5.json", R"({"traceEvents": [{"ph": 1}, {"ph": "X", "name": "a", "dur": 2, "pid": 0}]})");
  Expected<MeasuredRun> r = ReadMeasuredRun(trace, metrics, 2);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_DOUBLE_EQ(r->op_s.at("a"), 2e-6);
  // A metrics number past DBL_MAX (out_of_range, not parse_error).
  const std::string big = TempFile("m5.jsonl", "{\"step\": 3, \"step_time_s\": 1e999}\n");
  r = ReadMeasuredRun(trace, big, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("m5.jsonl:1: not valid JSON"));
}

TEST(RealConfigs, ReadsRowsAndResolvesScenarios) {
  const std::string csv = std::string(MOESIM_SOURCE_DIR) + "/validation/real/validation.csv";
  Expected<std::vector<RealConfig>> c = ReadRealConfigs(csv);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_GE(c->size(), 8u);
  bool r1 = false, r2 = false, r4 = false, ep = false, dp_ep = false;
  for (const RealConfig& x : *c) {
    EXPECT_TRUE(fs::exists(x.scenario)) << x.scenario;
    r1 |= x.ranks == 1;
    r2 |= x.ranks == 2;
    r4 |= x.ranks == 4;
    ep |= x.expert_parallel > 1;
    dp_ep |= x.expert_parallel > 1 && x.ranks > x.expert_parallel;
  }
  EXPECT_TRUE(r1 && r2 && r4 && ep && dp_ep);
}

TEST(RealConfigs, ValidationAndCalibrationSetsAreDisjoint) {
  const std::string dir = std::string(MOESIM_SOURCE_DIR) + "/validation/real/";
  auto v = ReadRealConfigs(dir + "validation.csv");
  auto c = ReadRealConfigs(dir + "calibration.csv");
  ASSERT_TRUE(v.ok() && c.ok());
  for (const auto& a : *v) {
    for (const auto& b : *c) {
      EXPECT_FALSE(a.scenario == b.scenario && a.overrides == b.overrides && a.ranks == b.ranks)
          << a.id << " = " << b.id;
    }
  }
}

TEST(RealConfigs, ErrorsNameFileAndLine) {
  const std::string bad_header = TempFile("h.csv", "id,scenario\n");
  EXPECT_THAT(ReadRealConfigs(bad_header).status().message(), HasSubstr("h.csv:1: header"));
  const std::string bad_ranks =
      TempFile("r.csv", "id,scenario,ranks,expert_parallel,overrides\nx,r.csv,zero,1,\n");
  EXPECT_THAT(ReadRealConfigs(bad_ranks).status().message(),
              HasSubstr("r.csv:2: ranks=\"zero\" is not a positive integer"));
  const std::string no_file =
      TempFile("f.csv", "id,scenario,ranks,expert_parallel,overrides\nx,nope.textproto,1,1,\n");
  EXPECT_THAT(ReadRealConfigs(no_file).status().message(),
              HasSubstr("f.csv:2: scenario=\"nope.textproto\" is not a file"));
  const std::string header = "id,scenario,ranks,expert_parallel,overrides\n";
  EXPECT_EQ(ReadRealConfigs(TempFile("n.csv", header + "x,n.csv,1,1\n")).status().message(),
            TempFile("n.csv", header + "x,n.csv,1,1\n") + ":2: expected 5 fields, got 4");
  const std::string bad_id = TempFile("i.csv", header + "\n# comment\na b,i.csv,1,1,\n");
  EXPECT_EQ(ReadRealConfigs(bad_id).status().message(),
            bad_id + ":4: id=\"a b\" must be non-empty, without spaces, quotes or '/'");
  const std::string twice = TempFile("t.csv", header + "x,t.csv,1,1,\nx,t.csv,2,1,\n");
  EXPECT_EQ(ReadRealConfigs(twice).status().message(), twice + ":3: id \"x\" repeats");
  const std::string bad_ep = TempFile("e.csv", header + "x,e.csv,2,-2,\n");
  EXPECT_EQ(ReadRealConfigs(bad_ep).status().message(),
            bad_ep + ":2: expert_parallel=\"-2\" is not a positive integer");
}

// The simulator's analytical network on cpu-host:N charges exactly what the calibration's
// collective formulas say, so a fitted (alpha, B) reproduces the bench inside the simulator.
TEST(CpuHost, AnalyticalNetworkMatchesTheFittedFormulas) {
  HardwareProfile hw = *BuiltinHardwareProfile("cpu");
  hw.link_bytes_per_s = 4e9;
  hw.link_latency_s = 2e-6;
  hw.link_efficiency = 1;
  for (int64_t n : {2, 4}) {
    auto topo = BuildTopology("cpu-host:" + std::to_string(n), hw);
    ASSERT_TRUE(topo.ok()) << topo.status().message();
    EXPECT_EQ((*topo)->num_devices(), n);
    auto placement = PlaceMesh(**topo, {"pipeline", "data", "expert", "model"}, {1, 1, n, 1});
    ASSERT_TRUE(placement.ok()) << placement.status().message();
    AnalyticalNetwork net(*topo, *placement, 1.0);
    for (double bytes : {1e3, 1e6}) {
      for (auto [kind, op] : {std::pair{CollectiveKind::kAllReduce, "all_reduce"},
                              {CollectiveKind::kAllToAll, "all_to_all"}}) {
        CollectiveWork w;
        w.kind = kind;
        w.axes = {MeshAxis::kExpert};
        w.bytes = bytes;
        EXPECT_NEAR(net.Time(w), CollectiveTimeS(op, n, bytes, {2e-6, 4e9}), 1e-15)
            << op << " n=" << n << " bytes=" << bytes;
      }
    }
  }
}

TEST(CpuHost, BadNameIsAnError) {
  HardwareProfile hw = *BuiltinHardwareProfile("cpu");
  auto topo = BuildTopology("cpu-host:0", hw);
  ASSERT_FALSE(topo.ok());
  EXPECT_THAT(topo.status().message(), HasSubstr("cpu-host:0"));
  auto opt = BuildTopology("cpu-host:2,cores=2", hw);
  ASSERT_FALSE(opt.ok());
  EXPECT_THAT(opt.status().message(), HasSubstr("unknown option \"cores\""));
}

}  // namespace
}  // namespace moesim::calib
