// The `moesim` binary as a user runs it: exit codes, stderr messages, JSON fields (docs/schema.md).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "tests/run_command.h"

namespace {

using moesim::test_cli::Moesim;
using moesim::test_cli::RunResult;

TEST(Cli, CostJsonHasTheContractFields) {
  const RunResult r = Moesim("cost --json -");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"params", "flops_per_token", "memory", "scenario"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  EXPECT_TRUE(j["params"].contains("total") && j["params"].contains("activated"));
  EXPECT_TRUE(j["flops_per_token"].contains("model") && j["flops_per_token"].contains("hardware"));
  EXPECT_TRUE(j["memory"]["fits"].is_boolean());
  EXPECT_EQ(j["memory"]["capacity_bytes"].get<double>(), 16.0 * (1 << 30));  // one v5e
  // Recompute FULL in the default scenario: hardware = model + one more forward of the layers.
  EXPECT_GT(j["flops_per_token"]["hardware"].get<double>(),
            j["flops_per_token"]["model"].get<double>());
}

TEST(Cli, SetOverridesReachTheJson) {
  const RunResult base = Moesim("cost --json -");
  const RunResult half = Moesim(
      "cost --set model.moe.num_experts=32 --set sharding.mesh.data=8 "
      "--set sharding.mesh.expert=32 --json -");
  ASSERT_EQ(half.exit_code, 0) << half.out;
  const auto a = nlohmann::json::parse(base.out), b = nlohmann::json::parse(half.out);
  // Halving the experts removes 32 experts x 6 MoE layers x 3 x 2048 x 8192 parameters, and
  // 32 router columns of 2048 in each of the 6 MoE layers.
  EXPECT_DOUBLE_EQ(a["params"]["total"].get<double>() - b["params"]["total"].get<double>(),
                   32.0 * 6 * 3 * 2048 * 8192 + 6.0 * 2048 * 32);
  // Activated parameters do not depend on the expert count except through the router
  // (2048 x 32 fewer router weights per MoE layer).
  EXPECT_DOUBLE_EQ(a["params"]["activated"].get<double>() - b["params"]["activated"].get<double>(),
                   6.0 * 2048 * 32);
}

TEST(Cli, BadInputExitsTwoWithTheMessage) {
  const RunResult r = Moesim("cost --set sharding.mesh.expert=12 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out,
            "moesim cost: <default> (--set sharding.mesh.expert=12): sharding.mesh data x expert "
            "x model x pipeline = 4 x 12 x 1 x 1 = 48 does not equal the 256 devices of the "
            "cluster\n");
}

TEST(Cli, MissingScenarioFileExitsTwo) {
  const RunResult r = Moesim("cost /nonexistent.textproto 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "moesim cost: /nonexistent.textproto: cannot open scenario file\n");
}

TEST(Cli, UnknownCommandOrOptionExitsTwo) {
  EXPECT_EQ(Moesim("frobnicate 2>&1").exit_code, 2);
  EXPECT_EQ(Moesim("cost --no-such-option 2>&1").exit_code, 2);
}

TEST(Cli, HelpExitsZero) {
  const RunResult r = Moesim("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("cost"), std::string::npos);
}

TEST(Cli, UnwritableJsonTargetExitsTwo) {
  const RunResult r = Moesim("cost --json /nonexistent/dir/out.json 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("/nonexistent/dir/out.json: cannot open for writing"), std::string::npos);
}

TEST(Cli, SimulateJsonHasTheContractFields) {
  const RunResult r = Moesim("simulate --json -");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"step_time_s", "breakdown_s", "mfu", "tokens_per_s", "params",
                        "flops_per_token", "memory", "network", "scenario"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  for (const char* k : {"compute", "exposed_comm", "comm_total", "bubble", "idle"}) {
    EXPECT_TRUE(j["breakdown_s"].contains(k)) << k;
  }
  EXPECT_EQ(j["network"], "analytical");
  EXPECT_GT(j["step_time_s"].get<double>(), 0);
}

TEST(Cli, SimulateTraceIsChromeTraceJson) {
  const std::string path = ::testing::TempDir() + "/moesim_trace.json";
  ASSERT_EQ(Moesim("simulate --trace " + path + " > /dev/null").exit_code, 0);
  FILE* f = std::fopen(path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string text;
  std::array<char, 65536> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) text.append(buf.data(), n);
  std::fclose(f);
  const auto j = nlohmann::json::parse(text);
  ASSERT_TRUE(j["traceEvents"].is_array());
  int complete = 0;
  for (const auto& e : j["traceEvents"]) complete += e["ph"] == "X";
  EXPECT_GT(complete, 100);
  EXPECT_NE(j["otherData"]["note"].get<std::string>().find("representative"), std::string::npos);
}

TEST(Cli, ValidateReportsRowsAndMape) {
  const RunResult r =
      Moesim("validate " + std::string(MOESIM_SOURCE_DIR) + "/validation/published.csv --json -");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rows"].size(), 9u);
  double sum = 0;
  for (const auto& row : j["rows"]) {
    const double sim = row["simulated"], meas = row["measured"];
    EXPECT_DOUBLE_EQ(row["error_pct"].get<double>(), 100 * (sim - meas) / meas);
    sum += std::abs(row["error_pct"].get<double>());
  }
  EXPECT_DOUBLE_EQ(j["mape_pct"].get<double>(), sum / 9);
}

TEST(Cli, ValidateBadSetExitsTwo) {
  const std::string path = ::testing::TempDir() + "/bad_set.csv";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("id,scenario,overrides,metric,measured,source\nx,default,,speed,1,me\n", f);
  std::fclose(f);
  const RunResult r = Moesim("validate " + path + " 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find(path + ":2: metric=\"speed\" is not one of"), std::string::npos) << r.out;
}

// Writes `text` to a temporary CSV and returns its path.
std::string TempSet(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs(text.c_str(), f);
  std::fclose(f);
  return path;
}

TEST(Cli, ValidateComparesRowsWithTheirBaseline) {
  // The default scenario (3D, 1.6B/64E) against itself with its experts at 4 per device: the
  // measured change is (1.2 / 1.0 - 1) = +20%; the simulated one is worked out from the two
  // rows' own simulated values. The same set with \r\n line ends, as a spreadsheet saves it.
  for (const std::string eol : {"\n", "\r\n"}) {
    const std::string path = TempSet(
        "rel_set.csv", "id,scenario,overrides,metric,measured,source,baseline" + eol +
                           "base,default,,step_time_s,1.0,me," + eol +
                           "more,default,model.moe.num_experts=256,step_time_s,1.2,me,base" + eol);
    const RunResult r = Moesim("validate " + path + " --json -");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["relative"].size(), 1u);
    const auto& rel = j["relative"][0];
    const double base = j["rows"][0]["simulated"], more = j["rows"][1]["simulated"];
    EXPECT_EQ(rel["id"], "more");
    EXPECT_EQ(rel["baseline"], "base");
    EXPECT_NEAR(rel["measured_pct"].get<double>(), 20.0, 1e-9);
    EXPECT_DOUBLE_EQ(rel["simulated_pct"].get<double>(), 100 * (more / base - 1));
    EXPECT_DOUBLE_EQ(rel["diff_pp"].get<double>(), 100 * (more / base - 1) - 100 * (1.2 / 1.0 - 1));
    const RunResult text = Moesim("validate " + path);
    EXPECT_NE(text.out.find("change of"), std::string::npos) << text.out;
  }
}

TEST(Cli, ValidateBaselineErrorsNameTheLine) {
  const std::string h = "id,scenario,overrides,metric,measured,source,baseline\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {h + "a,default,,step_time_s,1,me,\nb,default,,step_time_s,1,me,c\n",
       ":3: baseline=\"c\" is no row's id"},
      {h + "a,default,,step_time_s,1,me,a\n", ":2: baseline=\"a\" is the row itself"},
      {h + "a,default,,mfu,0.4,me,\nb,default,,step_time_s,1,me,a\n",
       ":3: baseline=\"a\" measures mfu, this row step_time_s"},
      {h + "a,default,,step_time_s,1,me,\na,default,,step_time_s,2,me,\n",
       ":3: id \"a\" is already the id of line 2"},
      {h + "a,default,,step_time_s,1,me\n", ":2: expected 7 fields, got 6"},
      {"id,scenario,overrides,metric,measured,source,base\n",
       ":1: header must be \"id,scenario,overrides,metric,measured,source\" or "
       "\"id,scenario,overrides,metric,measured,source,baseline\""},
  };
  int i = 0;
  for (const auto& [text, want] : cases) {
    const std::string path = TempSet("bad_rel_" + std::to_string(i++) + ".csv", text);
    const RunResult r = Moesim("validate " + path + " 2>&1");
    EXPECT_EQ(r.exit_code, 2) << text;
    EXPECT_NE(r.out.find(path + want), std::string::npos) << r.out;
  }
}

TEST(Cli, SameInputSameOutputBitForBit) {
  EXPECT_EQ(Moesim("cost --json -").out, Moesim("cost --json -").out);
  EXPECT_EQ(Moesim("simulate --json -").out, Moesim("simulate --json -").out);
  EXPECT_EQ(Moesim("simulate --network flow --json -").out,
            Moesim("simulate --network flow --json -").out);
}

TEST(Cli, SimulateFlowLevelReportsItsWork) {
  const auto r = Moesim("simulate --network flow --json -");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["network"], "flow");
  // The default scenario's step has collectives, some of them in flight together (the gradient
  // reduce under the backward pass), so both kinds of run must appear.
  EXPECT_GT(j["flow"]["collectives"].get<int64_t>(), 0);
  EXPECT_GT(j["flow"]["flow_runs"].get<int64_t>(), 0);
  EXPECT_GT(j["flow"]["replayed"].get<int64_t>(), 0);
  EXPECT_EQ(j["flow"]["collectives"].get<int64_t>(),
            j["flow"]["flow_runs"].get<int64_t>() + j["flow"]["replayed"].get<int64_t>());
  const auto a = nlohmann::json::parse(Moesim("simulate --json -").out);
  EXPECT_EQ(a["flow"]["collectives"].get<int64_t>(), 0);
  // Contention can only slow a step down; here by little (overlapping collectives mostly use
  // different links).
  const double tf = j["step_time_s"].get<double>(), ta = a["step_time_s"].get<double>();
  EXPECT_GE(tf, ta * 0.999);
  EXPECT_LT(tf, ta * 1.05);
}

std::string ReadFile(const std::string& path) {
  std::string text;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) text.append(buf.data(), n);
    std::fclose(f);
  }
  return text;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

TEST(Cli, SweepWritesOneCsvRowPerPointAndProgressLinesToALog) {
  const std::string err = std::string(MOESIM_BINARY_DIR) + "/sweep_progress.txt";
  const auto r = Moesim(std::string("sweep ") + MOESIM_SOURCE_DIR +
                        "/scenarios/apple2024/moe-1.6b-64e.textproto --vary "
                        "model.moe.num_experts=16,32,64,128 --csv - --jobs 2 2>" +
                        err);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::vector<std::string> rows = Lines(r.out);
  ASSERT_EQ(rows.size(), 5u) << r.out;  // header + 4 points
  EXPECT_EQ(rows[1].rfind("16,", 0), 0u) << rows[1];
  EXPECT_EQ(rows[4].rfind("128,", 0), 0u) << rows[4];
  // stderr is a file here, not a terminal: one line per tenth of the work (4 points cross the
  // tenths 2, 5, 7 and 10), no carriage returns.
  const std::string progress = ReadFile(err);
  EXPECT_EQ(progress.find('\r'), std::string::npos) << progress;
  const std::vector<std::string> lines = Lines(progress);
  ASSERT_EQ(lines.size(), 4u) << progress;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].rfind("sweep: " + std::to_string(i + 1) + "/4 points, ", 0), 0u) << lines[i];
  }
}

TEST(Cli, PlanProgressInALogIsAtMostElevenLines) {
  const std::string err = std::string(MOESIM_BINARY_DIR) + "/plan_progress.txt";
  const auto r = Moesim(std::string("plan ") + MOESIM_SOURCE_DIR +
                        "/scenarios/apple2024/dense-85m.textproto --top 3 --jobs 2 2>" + err);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("explored "), std::string::npos) << r.out;
  const std::string progress = ReadFile(err);
  EXPECT_EQ(progress.find('\r'), std::string::npos) << progress;
  // At most ten progress lines, then the run's wall-clock time (stderr: stdout stays the same
  // from run to run).
  const std::vector<std::string> lines = Lines(progress);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_LE(lines.size(), 11u) << progress;
  size_t done = 0, total = 0;
  const std::string& last = lines[lines.size() - 2];
  ASSERT_EQ(std::sscanf(last.c_str(), "plan: %zu/%zu configurations, ", &done, &total), 2) << last;
  EXPECT_EQ(done, total);
  EXPECT_GT(total, 10u);
  EXPECT_EQ(
      lines.back().rfind("plan: explored " + std::to_string(total) + " configurations in ", 0), 0u)
      << lines.back();
  EXPECT_EQ(r.out.find(" s\n"), std::string::npos) << "a timing on stdout:\n" << r.out;
}

TEST(Cli, BudgetPlanPrintsTheChinchillaBudgetAndTokensPerCandidate) {
  // 85M dense: 134,105,856 parameters (tests/planner, by hand) x 20 = 2.68 B tokens = 109,136
  // steps of 24,576 tokens.
  const auto r =
      Moesim(std::string("plan ") + MOESIM_SOURCE_DIR +
             "/scenarios/apple2024/dense-85m.textproto --objective tokens_in_budget "
             "--experts 8 16 --strategies APPLE_3D --max-pipeline 1 --jobs 2 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_GE(lines.size(), 1u);
  double dense_step = 0, budget_h = 0;
  ASSERT_EQ(std::sscanf(lines[0].c_str(),
                        "dense: 134.11 M parameters, Chinchilla 20 tokens/parameter = 2.68 B "
                        "tokens = 109136 steps of %lf s -> budget %lf h",
                        &dense_step, &budget_h),
            2)
      << lines[0];
  EXPECT_NEAR(budget_h, 109135.625 * dense_step / 3600, 0.006);
  // Experts {8, 16} x every {2, 4} (the default), each with its best sharding and the tokens
  // it trains on in the dense model's wall-clock budget: budget / step x 24,576.
  int rows = 0;
  for (const std::string& l : lines) {
    long long experts = 0, every = 0;
    double step = 0, tokens_b = 0;
    char sharding[64];
    if (std::sscanf(l.c_str(),
                    "%lld %lld APPLE_3D %63[^)]) recompute %*s mb %*d %lf %*f %*s %*f %*s %lf B",
                    &experts, &every, sharding, &step, &tokens_b) != 5) {
      continue;
    }
    ++rows;
    EXPECT_TRUE(experts == 8 || experts == 16) << l;
    EXPECT_TRUE(every == 2 || every == 4) << l;
    EXPECT_NEAR(tokens_b, 109135.625 * dense_step / step * 24576 / 1e9, 0.01 * tokens_b) << l;
  }
  EXPECT_EQ(rows, 4) << r.out;
}

TEST(Cli, PlanResetsAMeshTheClusterCannotHold) {
  // dense-85m's mesh (64, 1, 1) on a 16-chip slice: planned with the mesh reset, not refused.
  const auto r = Moesim(std::string("plan ") + MOESIM_SOURCE_DIR +
                        "/scenarios/apple2024/dense-85m.textproto --set "
                        "cluster.topology=tpu-v5e:4x4 --top 3 --jobs 2 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("explored "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(16,1,1,1)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("(64,1,1,1)"), std::string::npos) << r.out;
}

TEST(Cli, ReportOfAValidationSet) {
#ifndef MOESIM_WITH_REPORT
  GTEST_SKIP() << "moesim report is not built (Qt6 Charts not found at configure time)";
#else
  const std::string dir = std::string(MOESIM_BINARY_DIR) + "/set_report";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto v = Moesim(std::string("validate ") + MOESIM_SOURCE_DIR +
                        "/validation/apple2024.csv --json " + dir + "/apple.json");
  ASSERT_EQ(v.exit_code, 0) << v.out;
  const auto j = nlohmann::json::parse(ReadFile(dir + "/apple.json"));
  EXPECT_EQ(j["rows"][0]["source"].get<std::string>().rfind("Du et al. 2024", 0), 0u);
  EXPECT_EQ(j["rows"][1]["baseline"], "apple-85m-dense");
  const auto r = Moesim("report " + dir + "/apple.json --out " + dir + "/out 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string md = ReadFile(dir + "/out/report.md");
  char mape[32];
  std::snprintf(mape, sizeof(mape), "**MAPE %.1f%%** over 11 rows", j["mape_pct"].get<double>());
  EXPECT_NE(md.find(mape), std::string::npos) << md;
  for (const auto& row : j["rows"]) {
    EXPECT_NE(md.find("| " + row["id"].get<std::string>() + " | step_time_s | "), std::string::npos)
        << row["id"];
  }
  // One line per baseline row in the changes table: 7 in apple2024.csv.
  size_t changes = 0;
  const size_t table = md.find("| change of | against |");
  ASSERT_NE(table, std::string::npos) << md;
  for (const std::string& l : Lines(md.substr(table))) changes += l.rfind("| apple-", 0) == 0;
  EXPECT_EQ(changes, 7u);
  for (const char* png : {"errors.png", "changes.png", "scatter_step_time_s.png"}) {
    const std::string bytes = ReadFile(dir + "/out/" + png);
    EXPECT_GT(bytes.size(), 1000u) << png;
    EXPECT_EQ(bytes.substr(1, 3), "PNG") << png;
  }
  // A --calibration file belongs with validate-real results.
  const auto bad =
      Moesim("report " + dir + "/apple.json --calibration x.json --out " + dir + "/bad 2>&1");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.out.find("--calibration goes with validate-real results"), std::string::npos)
      << bad.out;
#endif
}

}  // namespace
