// `moesim plan` on a scenario in the megatron form, as a user runs it: it prints the winner's
// Megatron-LM arguments, and `--megatron-args` with that line gives the same configuration and
// step time; the same output at one and two jobs; a bad argument exits 2 naming the flag.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/run_command.h"

namespace {

using moesim::test_cli::Moesim;
using moesim::test_cli::RunResult;

const char* const kMixtral = "scenarios/mixtral/mixtral-8x22b-128xh100.textproto";

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

TEST(MegatronCli, PlanPrintsArgumentsThatSimulateBackToTheSameStep) {
  // NeMo's layout with expert tensor 2 or 1 and micro-batch 1 or 2, no recomputation: 4 points.
  const std::string plan = std::string("plan ") + kMixtral +
                           " --tp 2 --cp 2 --pp 4 --vpp 14 --ep 8 --max-micro-batch 2 "
                           "--recompute NONE --top 4";
  const RunResult one = Moesim(plan + " --jobs 1");
  ASSERT_EQ(one.exit_code, 0) << one.out;
  EXPECT_EQ(Moesim(plan + " --jobs 2").out, one.out);
  EXPECT_NE(one.out.find("explored 4 Megatron-LM configurations"), std::string::npos) << one.out;
  // The winner's row: its step time as printed.
  const size_t row = one.out.find("\n1    ");
  ASSERT_NE(row, std::string::npos) << one.out;
  double step = 0;
  ASSERT_EQ(std::sscanf(one.out.c_str() + row + 1, "1 %*s %*s %*s %*s %*s %*s %*s %*s %lf", &step),
            1)
      << one.out;
  // The arguments: the line after the heading.
  const size_t head = one.out.find("Megatron-LM arguments of rank 1");
  ASSERT_NE(head, std::string::npos);
  const size_t start = one.out.find('\n', head) + 1;
  const std::string args = one.out.substr(start, one.out.find('\n', start) - start);
  EXPECT_NE(args.find("--context-parallel-size 2"), std::string::npos) << args;
  const RunResult sim =
      Moesim(std::string("simulate ") + kMixtral + " --megatron-args=" + Quote(args) + " --json -");
  ASSERT_EQ(sim.exit_code, 0) << sim.out;
  const auto j = nlohmann::json::parse(sim.out);
  char printed[32];
  std::snprintf(printed, sizeof(printed), "%.4f", j["step_time_s"].get<double>());
  char planned[32];
  std::snprintf(planned, sizeof(planned), "%.4f", step);
  EXPECT_STREQ(printed, planned);
}

TEST(MegatronCli, SimulatePrintsDeepSeekV3sArgumentsWhichReadBackToTheSameStep) {
  // MLA, 3 dense layers then MoE ('([0]*3+[1]*58)'), a shared expert, one MTP module,
  // first/last stage layers 3 and 2, full recomputation: all of it through the argument line.
  const std::string ds = "scenarios/deepseek/deepseek-v3.textproto";
  const RunResult text = Moesim("simulate " + ds);
  ASSERT_EQ(text.exit_code, 0) << text.out;
  const size_t at = text.out.find("\nmegatron     ");
  ASSERT_NE(at, std::string::npos) << text.out;
  const size_t start = at + 14;
  const std::string args = text.out.substr(start, text.out.find('\n', start) - start);
  EXPECT_NE(args.find("--moe-layer-freq '([0]*3+[1]*58)'"), std::string::npos) << args;
  EXPECT_NE(args.find("--decoder-first-pipeline-num-layers 3"), std::string::npos) << args;
  const RunResult own = Moesim("simulate " + ds + " --json -");
  const RunResult back = Moesim("simulate " + ds + " --megatron-args=" + Quote(args) + " --json -");
  ASSERT_EQ(back.exit_code, 0) << back.out;
  EXPECT_EQ(nlohmann::json::parse(back.out)["step_time_s"].get<double>(),
            nlohmann::json::parse(own.out)["step_time_s"].get<double>());
}

TEST(MegatronCli, BadArgumentsExitTwoNamingTheFlag) {
  const RunResult r = Moesim(std::string("cost ") + kMixtral +
                             " --megatron-args='--pipeline-model-parallel-size four' 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--pipeline-model-parallel-size \"four\" is not a count"), std::string::npos)
      << r.out;
  const RunResult nest =
      Moesim(std::string("cost ") + kMixtral + " --set sharding.megatron.expert=3 2>&1");
  EXPECT_EQ(nest.exit_code, 2);
  EXPECT_NE(nest.out.find("sharding.megatron.expert=3 does not divide model.moe.num_experts=8"),
            std::string::npos)
      << nest.out;
}

}  // namespace
