// `moesim import hf` as a user runs it: --out writes a scenario that `moesim simulate` runs, the
// listing names what was mapped and what was not; without --out the scenario goes to stdout;
// --json - gives the listing as JSON; bad input exits 2 naming the file and the key.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/run_command.h"

namespace {

using moesim::test_cli::Moesim;
using moesim::test_cli::RunResult;

std::string Data(const std::string& name) {
  return std::string(MOESIM_SOURCE_DIR) + "/tests/data/hf/" + name;
}

std::string TempPath(const std::string& name) {
  return std::string(MOESIM_BINARY_DIR) + "/import_cli_test_" + name;
}

TEST(ImportCli, OutWritesAScenarioThatSimulates) {
  const std::string out = TempPath("mixtral.textproto");
  std::remove(out.c_str());
  const RunResult r = Moesim("import hf " + Data("mixtral-8x7b.json") + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("num_local_experts -> model.moe.num_experts = 8"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("not mapped (0)"), std::string::npos) << r.out;
  std::ifstream f(out);
  ASSERT_TRUE(f.good()) << out;
  const RunResult sim = Moesim("simulate " + out + " --json -");
  ASSERT_EQ(sim.exit_code, 0) << sim.out;
  const auto j = nlohmann::json::parse(sim.out);
  EXPECT_GT(j["step_time_s"].get<double>(), 0);
  std::remove(out.c_str());
}

TEST(ImportCli, WithoutOutTheScenarioGoesToStdoutAndTheListingToStderr) {
  const RunResult r = Moesim("import hf " + Data("gpt-oss-120b.json") + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("model {"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\nmapped ("), std::string::npos) << r.out;
  const RunResult all = Moesim("import hf " + Data("gpt-oss-120b.json") + " 2>&1 >/dev/null");
  EXPECT_NE(all.out.find("layer_types:"), std::string::npos) << all.out;
}

TEST(ImportCli, JsonListsEveryKeyOnce) {
  // Without --out stdout would carry both: refused.
  EXPECT_EQ(Moesim("import hf " + Data("deepseek-v3.json") + " --json - 2>&1").exit_code, 2);
  const std::string out = TempPath("deepseek.textproto");
  const RunResult r =
      Moesim("import hf " + Data("deepseek-v3.json") + " --out " + out + " --json -");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::remove(out.c_str());
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model_type"], "deepseek_v3");
  std::ifstream in(Data("deepseek-v3.json"));
  std::stringstream s;
  s << in.rdbuf();
  const auto config = nlohmann::json::parse(s.str());
  const size_t listed = j["mapped"].size() + j["not_mapped"].size() + j["ignored"].size();
  EXPECT_EQ(listed, config.size());
}

TEST(ImportCli, BadInputExits2NamingTheFileAndTheKey) {
  const std::string bad = TempPath("bad.json");
  {
    std::ofstream f(bad);
    f << "{\n  \"model_type\": \"mixtral\",\n  \"hidden_size\": \"4096\"\n}\n";
  }
  RunResult r = Moesim("import hf " + bad + " 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find(bad + ":3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"hidden_size\""), std::string::npos) << r.out;
  {
    std::ofstream f(bad);
    f << "{\"model_type\": \"t5\"}";
  }
  r = Moesim("import hf " + bad + " 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("\"t5\""), std::string::npos) << r.out;
  r = Moesim("import hf " + TempPath("absent.json") + " 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = Moesim("import 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  std::remove(bad.c_str());
}

}  // namespace
