// `mpirun -np 2 moesim plan|sweep` (cli/mpi_share.h): the configurations drawn in chunks by two
// ranks (of one thread or two), rank 0 printing the bytes one process prints (tables, CSV), its
// progress counting both ranks' points, and bad input refused once with exit 2 and no rank left
// waiting. Skipped, with the reason, where mpirun is absent.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/run_command.h"

namespace moesim::test_cli {
namespace {

const std::string kMpiexec = MOESIM_MPIEXEC;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class MpiCli : public testing::Test {
 protected:
  void SetUp() override {
    if (kMpiexec.empty() || !std::filesystem::exists(kMpiexec)) {
      GTEST_SKIP() << "moesim built without MPI, or mpirun not found: the two-rank runs are not "
                      "tested";
    }
  }
  // `moesim ARGS` in the source tree, as one process and under mpirun -np 2.
  static RunResult One(const std::string& args) {
    return RunCommand("cd " + std::string(MOESIM_SOURCE_DIR) + " && " + MOESIM_BINARY_DIR +
                      "/moesim " + args);
  }
  static RunResult Two(const std::string& args) {
    return RunCommand("cd " + std::string(MOESIM_SOURCE_DIR) + " && " + kMpiexec +
                      " --allow-run-as-root --oversubscribe -np 2 " + MOESIM_BINARY_DIR +
                      "/moesim " + args);
  }
  static void ExpectSameBytes(const std::string& args) {
    const RunResult one = One(args);
    const RunResult two = Two(args);
    ASSERT_EQ(one.exit_code, 0) << one.out;
    EXPECT_EQ(two.exit_code, 0) << two.out;
    EXPECT_EQ(two.out, one.out);
    EXPECT_NE(one.out.find("explored "), std::string::npos) << one.out;
  }
};

TEST_F(MpiCli, PlanPrintsWhatOneProcessPrints) {
  ExpectSameBytes(
      "plan scenarios/apple2024/moe-1.6b-64e.textproto --top 20 --strategies APPLE_3D,NAIVE_2D "
      "--max-pipeline 1 --jobs 1 2>/dev/null");
}

TEST_F(MpiCli, MegatronPlanPrintsWhatOneProcessPrints) {
  // Megatron-LM's space: the ranks estimate the costs together (each loads every other point)
  // and keep only the points' figures; the winner's arguments come from its scenario loaded
  // again.
  ExpectSameBytes(
      "plan scenarios/mixtral/mixtral-8x22b-128xh100.textproto --top 8 --pp 4,8 --vpp 1,2 "
      "--recompute NONE --jobs 1 2>/dev/null");
}

TEST_F(MpiCli, BudgetPlanPrintsWhatOneProcessPrints) {
  // One RunPoints call for the dense run, then one per MoE candidate: every rank makes each.
  ExpectSameBytes(
      "plan scenarios/apple2024/dense-85m.textproto --objective tokens_in_budget --experts 8,16 "
      "--strategies APPLE_3D --max-pipeline 1 --jobs 1 2>/dev/null");
}

TEST_F(MpiCli, SweepTableAndCsvFileAreTheSameBytes) {
  const std::string dir = std::string(MOESIM_BINARY_DIR) + "/mpi_cli_test";
  std::filesystem::create_directories(dir);
  const std::string args =
      "sweep scenarios/apple2024/moe-1.6b-64e.textproto --vary "
      "training.micro_batch_size=1,2,4 --vary model.moe.num_experts=16,64,4096 --jobs 1";
  const RunResult one = One(args + " --csv " + dir + "/one.csv 2>/dev/null");
  const RunResult two = Two(args + " --csv " + dir + "/two.csv 2>/dev/null");
  ASSERT_EQ(one.exit_code, 0) << one.out;
  EXPECT_EQ(two.exit_code, 0) << two.out;
  EXPECT_EQ(two.out, one.out);
  const std::string csv = Slurp(dir + "/one.csv");
  EXPECT_NE(csv.find("\n"), std::string::npos);
  EXPECT_EQ(Slurp(dir + "/two.csv"), csv);
  // And the CSV on stdout.
  EXPECT_EQ(Two(args + " --csv - 2>/dev/null").out, One(args + " --csv - 2>/dev/null").out);
}

TEST_F(MpiCli, ChunksDrawnByThreadedRanksPrintWhatOneProcessPrints) {
  // Configurations of unequal cost (pipelines, experts, micro-batches), drawn in chunks by two
  // ranks of two threads each: which rank and thread evaluates which changes from run to run,
  // the bytes do not (one process with one thread is the reference).
  const std::string sweep =
      "sweep scenarios/apple2024/moe-1.6b-64e.textproto --vary sharding.mesh.pipeline=1,2,4 "
      "--vary training.micro_batch_size=1,2,4,8 --vary model.moe.num_experts=16,64 --csv - "
      "2>/dev/null --jobs ";
  const RunResult one = One(sweep + "1");
  ASSERT_EQ(one.exit_code, 0) << one.out;
  const RunResult two = Two(sweep + "2");
  EXPECT_EQ(two.exit_code, 0) << two.out;
  EXPECT_EQ(two.out, one.out);
  const std::string plan =
      "plan scenarios/mixtral/mixtral-8x22b-128xh100.textproto --top 30 --pp 2,4,8 --vpp 1,2 "
      "--recompute NONE,FULL 2>/dev/null --jobs ";
  const RunResult plan_one = One(plan + "1");
  ASSERT_EQ(plan_one.exit_code, 0) << plan_one.out;
  const RunResult plan_two = Two(plan + "2");
  EXPECT_EQ(plan_two.exit_code, 0) << plan_two.out;
  EXPECT_EQ(plan_two.out, plan_one.out);
}

TEST_F(MpiCli, ProgressCountsBothRanksPoints) {
  const std::string err = std::string(MOESIM_BINARY_DIR) + "/mpi_plan_progress.txt";
  const RunResult two =
      Two("plan scenarios/apple2024/moe-1.6b-64e.textproto --top 3 --strategies APPLE_3D "
          "--max-pipeline 2 --jobs 1 2>" +
          err);
  ASSERT_EQ(two.exit_code, 0) << two.out;
  std::istringstream lines(Slurp(err));
  std::string line, last_progress, explored;
  while (std::getline(lines, line)) {
    if (line.rfind("plan: explored ", 0) == 0) {
      explored = line;
    } else if (line.rfind("plan: ", 0) == 0) {
      last_progress = line;
    }
  }
  size_t done = 0, total = 0, explored_n = 0;
  ASSERT_EQ(std::sscanf(last_progress.c_str(), "plan: %zu/%zu configurations", &done, &total), 2)
      << Slurp(err);
  ASSERT_EQ(std::sscanf(explored.c_str(), "plan: explored %zu configurations", &explored_n), 1)
      << Slurp(err);
  EXPECT_EQ(done, total);
  EXPECT_EQ(total, explored_n);  // all points, not rank 0's share
  EXPECT_GT(total, 10u);
  // Rank 1 prints nothing: the summary line appears once.
  EXPECT_EQ(Slurp(err).find("plan: explored ", Slurp(err).find(explored) + 1), std::string::npos);
}

TEST_F(MpiCli, BadInputIsRefusedOnceWithExitTwo) {
  for (const std::string args :
       {"plan scenarios/no-such-file.textproto",
        "sweep scenarios/apple2024/dense-85m.textproto "
        "--vary model.no_such_field=1,2",
        // Refused after the first split run (the dense scenario does not simulate): every rank
        // reaches the same end.
        "plan scenarios/apple2024/dense-85m.textproto --objective tokens_in_budget --experts 8 "
        "--set training.micro_batch_size=100000 --max-pipeline 1"}) {
    const RunResult one = One(args + " 2>&1");
    const RunResult two = Two(args + " 2>&1");
    EXPECT_EQ(one.exit_code, 2) << args << "\n" << one.out;
    EXPECT_EQ(two.exit_code, 2) << args << "\n" << two.out;
    // The error's line (not a progress line before it, whose elapsed time may differ).
    const size_t from = one.out.rfind("moesim ", 0) == 0 ? 0 : one.out.find("\nmoesim ") + 1;
    const std::string message = one.out.substr(from, one.out.find('\n', from) - from);
    ASSERT_FALSE(message.empty());
    const size_t at = two.out.find(message);
    EXPECT_NE(at, std::string::npos) << two.out;
    EXPECT_EQ(two.out.find(message, at + 1), std::string::npos) << "printed twice:\n" << two.out;
  }
}

}  // namespace
}  // namespace moesim::test_cli
