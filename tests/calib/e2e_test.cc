// bench -> calibrate -> validate-real (-> report) end to end, on the binaries as a user runs
// them, with a small bench grid and two tiny configurations (validation/real/ci.csv): that the
// loop works and what it writes, not how accurate it is (CI machines are noisy; the accuracy
// claim is the committed measurement run under validation/measurements/).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kBin = MOESIM_BINARY_DIR;
const std::string kSrc = MOESIM_SOURCE_DIR;

struct ShellResult {
  int code;
  std::string out;
};

ShellResult Sh(const std::string& cmd) {
  const fs::path log =
      fs::temp_directory_path() / "moesim_calib_e2e" /
      (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".log");
  const int rc = std::system((cmd + " > " + log.string() + " 2>&1").c_str());
  std::stringstream ss;
  ss << std::ifstream(log).rdbuf();
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ss.str()};
}

nlohmann::json ReadJson(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// Each test in a folder of its own: ctest may run them in parallel processes.
class EndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / "moesim_calib_e2e" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  fs::path dir_;
};

TEST_F(EndToEnd, BenchCalibrateValidate) {
  const std::string real = kBin + "/moesim-real", moesim = kBin + "/moesim";
  const std::string mpi = std::string(MOESIM_MPIEXEC) + " --allow-run-as-root --oversubscribe";
  const std::string b1 = (dir_ / "bench-1.json").string(), b2 = (dir_ / "bench-2.json").string();
  ShellResult r = Sh(real + " bench --backend cpu --quick --repeats 3 --json " + b1);
  ASSERT_EQ(r.code, 0) << r.out;
  r = Sh(mpi + " -n 2 " + real + " bench --backend cpu --quick --repeats 3 --json " + b2);
  ASSERT_EQ(r.code, 0) << r.out;

  const std::string profile = (dir_ / "cpu.textproto").string();
  const std::string cal = (dir_ / "calibration.json").string();
  r = Sh(moesim + " calibrate " + b1 + " " + b2 + " --out " + profile + " --json " + cal);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* param : {"memory_efficiency", "op_overhead_s", "gemm_max_efficiency",
                            "gemm_m_half", "link_latency_s", "link_bytes_per_s"}) {
    EXPECT_THAT(r.out, HasSubstr(param));
  }
  EXPECT_THAT(r.out, HasSubstr("residual: RMS"));
  std::stringstream text;
  text << std::ifstream(profile).rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("chip: \"cpu\""));
  EXPECT_THAT(text.str(), HasSubstr("gemm_max_efficiency:"));
  EXPECT_THAT(text.str(), HasSubstr("collective_fits {"));

  const fs::path out = dir_ / "validation";
  r = Sh(moesim + " validate-real " + kSrc + "/validation/real/ci.csv --profile " + profile +
         " --repeats 2 --steps 6 --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("MAPE"));
  const nlohmann::json res = ReadJson(out / "results.json");
  ASSERT_EQ(res.at("configs").size(), 2u);
  EXPECT_FALSE(res.at("machine").at("cpu_model").get<std::string>().empty());
  EXPECT_GE(res.at("machine").at("cores").get<int>(), 1);
  for (const auto& c : res.at("configs")) {
    EXPECT_GT(c.at("simulated_step_s").get<double>(), 0) << c.dump();
    EXPECT_GT(c.at("measured_step_s").get<double>(), 0) << c.dump();
    EXPECT_EQ(c.at("measured_step_s_repeats").size(), 2u);
    bool w1 = false;
    for (const auto& op : c.at("ops")) {
      if (op.at("op") == "moe.w1") {
        w1 = op.at("simulated_s").get<double>() > 0 && op.at("measured_s").get<double>() > 0;
      }
    }
    EXPECT_TRUE(w1) << "moe.w1 simulated and measured in " << c.at("id");
    // Two ranks: each all-to-all's wait for its group is measured, not simulated, no error.
    bool wait = false;
    for (const auto& op : c.at("ops")) {
      if (op.at("op") != "moe.dispatch_a2a.wait") continue;
      wait = true;
      EXPECT_EQ(op.at("simulated_s").get<double>(), 0);
      EXPECT_GT(op.at("measured_s").get<double>(), 0);
      EXPECT_TRUE(op.at("error_pct").is_null());
    }
    EXPECT_EQ(wait, c.at("ranks").get<int>() == 2) << c.at("id");
    // MoE configurations: routing's dropped share, simulated (uniform: none) and measured.
    EXPECT_EQ(c.at("simulated_dropped_fraction").get<double>(), 0) << c.at("id");
    const double dropped = c.at("measured_dropped_fraction");
    EXPECT_TRUE(dropped >= 0 && dropped < 1) << c.at("id");
    const std::string id = c.at("id");
    EXPECT_TRUE(fs::exists(out / id / "rep1.trace.json"));
    EXPECT_TRUE(fs::exists(out / id / "rep2.metrics.jsonl"));
  }
  EXPECT_EQ(res.at("configs")[1].at("ranks").get<int>(), 2);

#ifdef MOESIM_WITH_REPORT
  r = Sh("QT_QPA_PLATFORM=offscreen " + moesim + " report " + (out / "results.json").string() +
         " --calibration " + cal + " --out " + (dir_ / "report").string());
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* f : {"report.md", "step_scatter.png", "op_errors.png", "op_scatter.png",
                        "calibration_residuals.png"}) {
    EXPECT_GT(fs::file_size(dir_ / "report" / f), 1000u) << f;
  }
  std::stringstream md;
  md << std::ifstream(dir_ / "report" / "report.md").rdbuf();
  EXPECT_THAT(md.str(), HasSubstr("ci-moe-r2-ep2"));
  EXPECT_THAT(md.str(), HasSubstr("MAPE"));
#endif
}

TEST_F(EndToEnd, CalibrateRefusesTooFewPoints) {
  const fs::path b = dir_ / "few.json";
  std::ofstream(b) << R"({"backend": "cpu", "gemm": [
      {"m": 32, "n": 32, "k": 32, "time_s": 1e-5}, {"m": 64, "n": 64, "k": 64, "time_s": 8e-5}],
    "memory": [{"kernel": "copy", "elements": 4096, "bytes": 32768, "time_s": 1e-6},
               {"kernel": "copy", "elements": 16384, "bytes": 131072, "time_s": 3e-6},
               {"kernel": "copy", "elements": 65536, "bytes": 524288, "time_s": 9e-6},
               {"kernel": "copy", "elements": 262144, "bytes": 2097152, "time_s": 4e-5}]})";
  ShellResult r = Sh(kBin + "/moesim calibrate " + b.string() + " --out " + (dir_ / "x").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("calibrate: gemm: 2 point(s), need at least 8"));
}

TEST_F(EndToEnd, CalibrateNamesABadFile) {
  const fs::path b = dir_ / "bad.json";
  std::ofstream(b) << R"({"backend": "cpu", "gemm": [{"m": 32, "n": 32, "k": "x"}]})";
  ShellResult r = Sh(kBin + "/moesim calibrate " + b.string() + " --out " + (dir_ / "x").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr(b.string() + ": gemm[0].k: must be an integer > 0, got \"x\""));
}

TEST_F(EndToEnd, ValidateRealNamesABadProfile) {
  ShellResult r = Sh(kBin + "/moesim validate-real " + kSrc +
                     "/validation/real/ci.csv --profile /nonexistent.textproto --repeats 1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("profile \"/nonexistent.textproto\" is neither a built-in chip"));
}

}  // namespace
