// Same input, same output, bit for bit: every shipped scenario and validation set, run twice, and
// the parallel commands at --jobs 1 against --jobs 2, give byte-identical stdout and JSON.
#include <gtest/gtest.h>

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

// Runs `args` twice from the source root; both must succeed with identical output.
void ExpectSameTwice(const std::string& args) {
  const RunResult a = RunFromSource(args);
  const RunResult b = RunFromSource(args);
  ASSERT_EQ(a.exit_code, 0) << args << "\n" << a.out;
  ASSERT_EQ(b.exit_code, 0) << args << "\n" << b.out;
  EXPECT_FALSE(a.out.empty()) << args;
  EXPECT_EQ(a.out, b.out) << args;
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
  ExpectSameTwice("simulate " + GetParam() + " --json -");
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
  ExpectSameTwice("validate " + GetParam() + " --json -");
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
