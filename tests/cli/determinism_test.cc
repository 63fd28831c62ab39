// Same input, same output, bit for bit: every shipped scenario and validation set, run twice, and
// the parallel commands at --jobs 1 against --jobs 2, give byte-identical stdout and JSON.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/run_command.h"
#include "tests/shipped_files.h"

namespace moesim::test_cli {
namespace {

// `moesim ARGS` run from the source root, as the shipped files name their paths.
RunResult RunFromSource(const std::string& args) {
  return RunCommand("cd " + std::string(MOESIM_SOURCE_DIR) + " && " +
                    std::string(MOESIM_BINARY_DIR) + "/moesim " + args);
}

// Reads a whole file ("" when it cannot be read).
std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs `args --json FILE` twice from the source root (one run prints the table and writes the
// JSON); both must succeed with identical table and identical JSON.
void ExpectSameTwice(const std::string& args) {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  for (char& c : name) c = c == '/' ? '_' : c;
  const std::string base = ::testing::TempDir() + "/determinism_" + name;
  std::array<RunResult, 2> run;
  std::array<std::string, 2> json;
  for (size_t i = 0; i < 2; ++i) {
    const std::string path = base + "_" + std::to_string(i) + ".json";
    std::remove(path.c_str());
    run[i] = RunFromSource(args + " --json " + path);
    json[i] = ReadAll(path);
    ASSERT_EQ(run[i].exit_code, 0) << args << "\n" << run[i].out;
  }
  EXPECT_FALSE(run[0].out.empty()) << args;
  EXPECT_FALSE(json[0].empty()) << args;
  EXPECT_EQ(run[0].out, run[1].out) << args;
  EXPECT_EQ(json[0], json[1]) << args;
}

// Runs `args` with --jobs 1 and with --jobs 2; both must succeed with identical output, which is
// returned for further checks.
std::string ExpectSameAtOneAndTwoJobs(const std::string& args) {
  const RunResult one = RunFromSource(args + " --jobs 1");
  const RunResult two = RunFromSource(args + " --jobs 2");
  EXPECT_EQ(one.exit_code, 0) << one.out;
  EXPECT_EQ(two.exit_code, 0) << two.out;
  EXPECT_EQ(one.out, two.out);
  return one.out;
}

class ScenarioDeterminism : public testing::TestWithParam<std::string> {};

TEST_P(ScenarioDeterminism, SimulateTableAndJsonTwice) {
  ExpectSameTwice("simulate " + GetParam());
}

TEST_P(ScenarioDeterminism, SweepAtOneAndTwoJobs) {
  // Two points per scenario, simulated on one thread and on two: the same table and CSV.
  const std::string out = ExpectSameAtOneAndTwoJobs(
      "sweep " + GetParam() + " --vary training.flash_attention=true,false --csv - 2>/dev/null");
  EXPECT_NE(out.find("flash_attention"), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(Shipped, ScenarioDeterminism, testing::ValuesIn(ShippedScenarios()),
                         PathTestName);

class ValidationDeterminism : public testing::TestWithParam<std::string> {};

TEST_P(ValidationDeterminism, ValidateTableAndJsonTwice) {
  ExpectSameTwice("validate " + GetParam());
}

INSTANTIATE_TEST_SUITE_P(Shipped, ValidationDeterminism, testing::ValuesIn(ShippedValidationSets()),
                         PathTestName);

TEST(PlanDeterminism, SameOutputAtOneAndTwoJobs) {
  // The wall-clock time goes to stderr: stdout is identical run to run and across job counts.
  const std::string out = ExpectSameAtOneAndTwoJobs(
      "plan scenarios/apple2024/moe-1.6b-64e.textproto --top 5 --strategies APPLE_3D,NAIVE_2D "
      "--max-pipeline 1 2>/dev/null");
  EXPECT_NE(out.find("explored "), std::string::npos) << out;
  EXPECT_EQ(out.find(" s\n\n"), std::string::npos) << "a timing on stdout:\n" << out;
}

}  // namespace
}  // namespace moesim::test_cli
