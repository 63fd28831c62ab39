// `moesim validate-real CONFIGS.csv --profile PROFILE [--backend cpu|cuda] [--ranks N]
// [--repeats R] [--steps S] [--out DIR] [--json FILE|-]`: trains each configuration for real
// with moesim-real (found next to this binary), simulates it with the calibrated profile, and
// prints per configuration the simulated and measured step time, the error, the spread of the
// repeats, and per op class simulated vs measured; then the MAPE. Everything measured lands in
// DIR (default validation/measurements/DATE-HOST): traces, metrics, logs, results.json with the
// machine, date and commit. calib/validation.h has the CSV format and the method. Large errors
// are results, not failures: exit 0.
#include <unistd.h>
#include <algorithm>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "calib/validation.h"
#include "cli/command.h"
#include "schema/calib_schema.h"

namespace moesim::cli {
namespace {

namespace fs = std::filesystem;

std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  std::string p = path;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    const fs::path cand = fs::path(p.substr(start, end - start)) / name;
    if (!cand.parent_path().empty() && access(cand.c_str(), X_OK) == 0) return cand.string();
    start = end + 1;
  }
  return "";
}

void PrintResult(const calib::ValidationResult& r, int top_ops) {
  std::printf("machine: %s, %s, %lld cores; %s; commit %s; profile %s\n",
              r.machine.hostname.c_str(), r.machine.cpu_model.c_str(),
              static_cast<long long>(r.machine.cores), r.machine.date_utc.c_str(),
              r.machine.git_commit.c_str(), r.profile.c_str());
  std::printf("%-22s %5s %3s %12s %12s %8s %8s\n", "config", "ranks", "EP", "simulated", "measured",
              "error", "spread");
  for (const auto& c : r.configs) {
    std::printf("%-22s %5lld %3lld %10.2f ms %10.2f ms %+7.1f%% %7.1f%%%s\n", c.config.id.c_str(),
                static_cast<long long>(c.config.ranks),
                static_cast<long long>(c.config.expert_parallel), 1e3 * c.simulated_step_s,
                1e3 * c.MeasuredStepS(), c.ErrorPct(), c.SpreadPct(),
                c.core_share < 1 ? "  (ranks share cores)" : "");
  }
  bool moe = false;
  for (const auto& c : r.configs) moe = moe || c.measured_dropped_fraction >= 0;
  if (moe) {
    // Routing differs from the scenario's assumption: the dropped tokens show by how much.
    std::printf("MoE tokens dropped at capacity (simulated routing vs moesim-real's router):");
    for (const auto& c : r.configs) {
      if (c.measured_dropped_fraction < 0) continue;
      std::printf(" %s %.0f%% vs %.0f%%;", c.config.id.c_str(),
                  100 * std::max(0.0, c.simulated_dropped_fraction),
                  100 * c.measured_dropped_fraction);
    }
    std::printf("\n");
  }
  std::printf(
      "MAPE %.1f%% over %zu configurations (spread = (max - min) / median of %zu "
      "repeats)\n",
      r.MapePct(), r.configs.size(),
      r.configs.empty() ? size_t{0} : r.configs.front().measured_step_s.size());
  for (const auto& c : r.configs) {
    std::printf("\n%s: per op class, ms per step (largest %d)\n", c.config.id.c_str(), top_ops);
    std::printf("  %-26s %10s %10s %8s\n", "op", "simulated", "measured", "error");
    int shown = 0;
    for (const auto& op : c.ops) {
      if (shown++ == top_ops) break;
      if (op.measured_s > 0 && op.simulated_s <= 0) {
        std::printf("  %-26s %10s %10.3f %8s\n", op.op.c_str(), "-", 1e3 * op.measured_s,
                    "(not simulated)");
      } else if (op.measured_s > 0) {
        std::printf("  %-26s %10.3f %10.3f %+7.1f%%\n", op.op.c_str(), 1e3 * op.simulated_s,
                    1e3 * op.measured_s, op.ErrorPct());
      } else {
        std::printf("  %-26s %10.3f %10s %8s\n", op.op.c_str(), 1e3 * op.simulated_s, "-",
                    "(not measured)");
      }
    }
  }
}

// What results.json and --json hold (schema/calib_schema.h).
RealValidationReport ReportOf(const calib::ValidationResult& r) {
  RealValidationReport out;
  out.machine = {r.machine.hostname, r.machine.cpu_model, r.machine.cores, r.machine.date_utc,
                 r.machine.git_commit};
  out.backend = r.backend;
  out.profile = r.profile;
  out.mape_pct = r.MapePct();
  for (const calib::ConfigResult& c : r.configs) {
    RealValidationConfig rc;
    rc.id = c.config.id;
    rc.scenario = c.config.scenario;
    rc.overrides = c.config.overrides;
    rc.ranks = c.config.ranks;
    rc.expert_parallel = c.config.expert_parallel;
    rc.core_share = c.core_share;
    rc.link_group = c.link_group;
    rc.simulated_step_s = c.simulated_step_s;
    rc.measured_step_s = c.MeasuredStepS();
    rc.measured_step_s_repeats = c.measured_step_s;
    rc.spread_pct = c.SpreadPct();
    rc.error_pct = c.ErrorPct();
    rc.simulated_dropped_fraction = c.simulated_dropped_fraction;
    rc.measured_dropped_fraction = c.measured_dropped_fraction;
    for (const calib::OpComparison& op : c.ops) {
      rc.ops.push_back({op.op, op.simulated_s, op.measured_s,
                        op.measured_s > 0 && op.simulated_s > 0
                            ? std::optional<double>(op.ErrorPct())
                            : std::nullopt});
    }
    out.configs.push_back(std::move(rc));
  }
  return out;
}

RunFn Setup(CLI::App* sub) {
  struct Args {
    std::string configs, json;
    calib::ValidateRealOptions o;
    int top_ops = 12;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("configs", a->configs,
                  "Validation set CSV (id,scenario,ranks,"
                  "expert_parallel,overrides)")
      ->required();
  sub->add_option("--profile", a->o.profile, "Calibrated profile (moesim calibrate --out)")
      ->required();
  sub->add_option("--backend", a->o.backend, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--ranks", a->o.ranks, "Run every configuration on N ranks (default: its own)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--repeats", a->o.repeats, "Launches per configuration (default 3)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--steps", a->o.steps,
                  "Training steps per launch (default 10: 2 warm-up, "
                  "2 traced, the rest timed)");
  sub->add_option("--out", a->o.out_dir,
                  "Directory for traces, metrics and results.json (default "
                  "validation/measurements/DATE-HOST)");
  sub->add_option("--json", a->json, "Also write the results JSON to FILE, or stdout with -");
  sub->add_option("--top-ops", a->top_ops, "Op classes printed per configuration");
  return [a]() -> Status {
    Expected<std::vector<calib::RealConfig>> configs = calib::ReadRealConfigs(a->configs);
    if (!configs.ok()) return configs.status();
    calib::ValidateRealOptions o = a->o;
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    o.moesim_real = ((ec ? fs::path(".") : self.parent_path()) / "moesim-real").string();
    if (const char* env = std::getenv("MOESIM_MPIEXEC"); env != nullptr && *env != '\0') {
      o.mpiexec = env;
    } else {
      o.mpiexec = FindOnPath("mpirun");
    }
#ifdef MOESIM_SOURCE_DIR
    o.source_dir = MOESIM_SOURCE_DIR;
#else
    o.source_dir = ".";
#endif
    o.quiet = a->json == "-";
    const calib::MachineInfo m = calib::DetectMachine(o.source_dir);
    if (o.out_dir.empty()) {
      o.out_dir = (fs::path(o.source_dir) / "validation" / "measurements" /
                   (m.date_utc.substr(0, 10) + "-" + m.hostname))
                      .string();
    }
    Expected<calib::ValidationResult> r = calib::RunRealValidation(*configs, o);
    if (!r.ok()) return r.status();
    const nlohmann::json j = RealValidationJson(ReportOf(*r));
    MOESIM_RETURN_IF_ERROR(WriteJson(j, (fs::path(o.out_dir) / "results.json").string()));
    if (a->json != "-") {
      PrintResult(*r, a->top_ops);
      std::printf("\nresults: %s\n", (fs::path(o.out_dir) / "results.json").c_str());
    }
    if (!a->json.empty()) return WriteJson(j, a->json);
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("validate-real",
                        "Train configurations for real, simulate them, compare step and op times",
                        61, Setup);

}  // namespace moesim::cli
