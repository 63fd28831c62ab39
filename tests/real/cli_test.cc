// `moesim-real` end to end: the binary is run as a user runs it (and under mpirun for the
// multi-rank cases), and its outputs are checked: the loss falls on synthetic tokens and on a
// text file, a resumed run reproduces the straight run's losses bit for bit, a NaN stops the
// run and keeps the last good checkpoint, a failing MPI call on one rank ends every rank with
// MPI's error text, the trace carries the simulator's op names, bench writes its four tables.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"
#include "tests/run_command.h"

namespace moesim::real {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kBin = std::string(MOESIM_BINARY_DIR) + "/moesim-real";
const std::string kScenario = std::string(MOESIM_SOURCE_DIR) + "/tests/real/tiny-moe.textproto";
const std::string kMpirun =
    std::string(MOESIM_MPIEXEC) + " --oversubscribe --allow-run-as-root -n 2 ";

struct Outcome {
  int code = -1;
  std::string output;  // stdout and stderr
};

Outcome Exec(const std::string& cmd) {
  const moesim::test_cli::RunResult r = moesim::test_cli::RunCommand(cmd + " 2>&1");
  return {r.exit_code, r.out};
}

std::string TempDir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("moesim_real_cli_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

std::vector<json> Metrics(const std::string& path) {
  std::vector<json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) rows.push_back(json::parse(line));
  return rows;
}

// The exact text of the "loss" field of every metrics line (17 significant digits).
std::vector<std::string> LossTexts(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  const std::regex re("\"loss\": ([^,]+),");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, re)) out.push_back(m[1]);
  }
  return out;
}

TEST(TrainCli, SyntheticLossFallsFromLogVocab) {
  const std::string d = TempDir("synthetic");
  const Outcome r = Exec(kBin + " train " + kScenario + " --steps 40 --metrics " + d + "/m.jsonl");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("tokens/s"), std::string::npos);
  const std::vector<json> m = Metrics(d + "/m.jsonl");
  ASSERT_EQ(m.size(), 40u);
  // Initial predictions are near uniform over 256 tokens: ce = ln 256 = 5.545.
  EXPECT_NEAR(m.front()["cross_entropy"].get<double>(), std::log(256.0), 0.05);
  EXPECT_LT(m.back()["loss"].get<double>(), 0.75 * m.front()["loss"].get<double>());
  EXPECT_GT(m.back()["tokens_per_s"].get<double>(), 0.0);
}

TEST(TrainCli, TinyMoeLossOnATextFileFallsBy30PercentIn200Steps) {
  const std::string d = TempDir("text");
  const Outcome r = Exec(kBin + " train " + kScenario +
                         " --steps 200 --lr 0.01 --warmup 10 --data " + MOESIM_SOURCE_DIR +
                         "/tests/real/data/design.txt --log-every 50 --metrics " + d + "/m.jsonl");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::vector<json> m = Metrics(d + "/m.jsonl");
  ASSERT_EQ(m.size(), 200u);
  const double first = m.front()["loss"].get<double>(), last = m.back()["loss"].get<double>();
  EXPECT_LT(last, 0.7 * first) << "first " << first << " last " << last;
}

TEST(TrainCli, ResumeReproducesTheNextTenLossesBitForBit) {
  const std::string d = TempDir("resume");
  const std::string base = kBin + " train " + kScenario + " --log-every 100 ";
  ASSERT_EQ(Exec(base + "--steps 20 --metrics " + d + "/straight.jsonl").code, 0);
  ASSERT_EQ(Exec(base + "--steps 10 --schedule-steps 20 --checkpoint " + d + "/ck").code, 0);
  const Outcome r =
      Exec(base + "--steps 20 --resume " + d + "/ck --metrics " + d + "/resumed.jsonl");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::vector<std::string> straight = LossTexts(d + "/straight.jsonl");
  const std::vector<std::string> resumed = LossTexts(d + "/resumed.jsonl");
  ASSERT_EQ(straight.size(), 20u);
  ASSERT_EQ(resumed.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(resumed[i], straight[10 + i]) << "step " << 11 + i;
}

TEST(TrainCli, ResumeRefusesADifferentModel) {
  const std::string d = TempDir("mismatch");
  ASSERT_EQ(Exec(kBin + " train " + kScenario + " --steps 2 --checkpoint " + d + "/ck").code, 0);
  const Outcome r = Exec(kBin + " train " + kScenario +
                         " --set model.d_model=32 --steps 4 --resume " + d + "/ck");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("does not match the model's"), std::string::npos) << r.output;
}

TEST(TrainCli, NanLossStopsAndKeepsTheLastGoodCheckpoint) {
  const std::string d = TempDir("nan");
  const Outcome r = Exec(kBin + " train " + kScenario + " --steps 10 --checkpoint " + d +
                         "/ck --checkpoint-every 4 --debug-poison-step 6");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("step 7: loss is NaN; stopping before the optimizer step (the last "
                          "good checkpoint in " +
                          d + "/ck is kept)"),
            std::string::npos)
      << r.output;
  std::ifstream meta(d + "/ck/meta.json");
  EXPECT_EQ(json::parse(meta)["step"].get<int>(), 4);
  // The kept checkpoint is whole: training resumes from it.
  const Outcome again = Exec(kBin + " train " + kScenario + " --steps 6 --resume " + d + "/ck");
  EXPECT_EQ(again.code, 0) << again.output;
}

TEST(TrainCli, MpiErrorOnOneRankEndsEveryRankWithTheErrorText) {
  const Outcome r = Exec(kMpirun + kBin + " train " + kScenario +
                         " --steps 10 --debug-comm-error-step 2 --log-every 100");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1: MPI_Allreduce (world group): MPI_ERR_COUNT"), std::string::npos)
      << r.output;
}

TEST(TrainCli, UnsupportedModelIsBadInput) {
  const Outcome r = Exec(kBin + " train " + kScenario + " --steps 1 --set model.ffn_kind=GELU");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("model.ffn_kind=GELU: moesim-real trains SWIGLU only"), std::string::npos)
      << r.output;
}

// Op names without the "L<layer>." prefix.
std::string BaseName(const std::string& name) {
  return std::regex_replace(name, std::regex("^L[0-9]+\\."), "");
}

TEST(TrainCli, TwoRankTraceUsesTheSimulatorsOpNames) {
  const std::string d = TempDir("trace");
  const Outcome r =
      Exec(kMpirun + kBin + " train " + kScenario +
           " --steps 4 --expert-parallel 2 --trace-warmup 2 --trace-steps 1 --trace " + d +
           "/trace.json --log-every 100");
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(d + "/trace.json");
  const json trace = json::parse(in);
  std::set<int> pids;
  std::set<std::string> measured;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] != "X") continue;
    pids.insert(e["pid"].get<int>());
    EXPECT_GE(e["dur"].get<double>(), 0.0);
    EXPECT_EQ(e["args"]["step"].get<int>(), 2);
    measured.insert(BaseName(e["name"].get<std::string>()));
  }
  EXPECT_EQ(pids, (std::set<int>{0, 1}));
  EXPECT_EQ(trace["otherData"]["generator"], "moesim-real train");
  // Every compute op the simulator schedules for this scenario, and every expert all-to-all,
  // is in the measured trace under the same name, but the two profiler.h says are fused away.
  const std::set<std::string> fused = {"head.loss.bwd", "ffn.residual.bwd", "moe.residual.bwd"};
  LoadOptions lo;
  lo.path = kScenario;
  Expected<Scenario> sc = LoadScenario(lo);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const OpGraph g = BuildStepGraph(*sc);
  int compared = 0;
  for (const Op& op : g.ops) {
    const std::string base = BaseName(op.name);
    if (op.is_collective && base.find("_a2a") == std::string::npos) continue;
    if (fused.count(base)) continue;
    EXPECT_TRUE(measured.count(base)) << "simulated op " << op.name << " not measured";
    ++compared;
  }
  EXPECT_GT(compared, 40);
  // Each collective of a traced step first waits for its group, timed on its own.
  for (const char* c : {"moe.dispatch_a2a", "moe.combine_a2a", "moe.dispatch_a2a.bwd",
                        "moe.combine_a2a.bwd", "grads.all_reduce"}) {
    EXPECT_TRUE(measured.count(std::string(c) + ".wait")) << c;
  }
}

TEST(BenchCli, QuickBenchWritesTheFourTablesOnTwoRanks) {
  const std::string d = TempDir("bench");
  const Outcome r =
      Exec(kMpirun + kBin + " bench --backend cpu --quick --repeats 2 --json " + d + "/bench.json");
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(d + "/bench.json");
  const json b = json::parse(in);
  EXPECT_EQ(b["backend"], "cpu");
  EXPECT_EQ(b["ranks"], 2);
  for (const char* table : {"gemm", "memory", "grouped_gemm", "collectives"}) {
    ASSERT_TRUE(b[table].is_array() && !b[table].empty()) << table;
  }
  // 3 sizes cubed; FLOPs = 2 m n k.
  EXPECT_EQ(b["gemm"].size(), 27u);
  for (const json& g : b["gemm"]) {
    EXPECT_EQ(g["flops"].get<double>(),
              2.0 * g["m"].get<double>() * g["n"].get<double>() * g["k"].get<double>());
    EXPECT_GT(g["flops_per_s"].get<double>(), 0.0);
  }
  std::set<std::string> ops;
  for (const json& c : b["collectives"]) {
    ops.insert(c["op"].get<std::string>());
    EXPECT_EQ(c["ranks"], 2);
    // nccl-tests bus bandwidth: all-reduce 2 (n-1)/n = 1x algbw, all-to-all (n-1)/n = 0.5x.
    const double ratio =
        c["busbw_bytes_per_s"].get<double>() / c["algbw_bytes_per_s"].get<double>();
    EXPECT_NEAR(ratio, c["op"] == "all_reduce" ? 1.0 : 0.5, 1e-12);
    // --quick times back to back (a full bench on ranks with cores of their own: cold).
    EXPECT_EQ(c["caches"], "warm");
  }
  EXPECT_EQ(ops, (std::set<std::string>{"all_reduce", "all_to_all"}));
}

}  // namespace
}  // namespace moesim::real
