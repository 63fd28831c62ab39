#include "sim/planner/validation_set.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/csv.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

double Metric(const ValidationRow& row, const SimReport& r, const Scenario& sc) {
  if (row.metric == "step_time_s") return r.step_time_s;
  if (row.metric == "tflops_per_device") return r.tflops_per_device;
  if (row.metric == "mfu") return r.mfu;
  return r.tokens_per_s / static_cast<double>(sc.sharding.mesh.NumDevices());
}

}  // namespace

Expected<std::vector<ValidationRow>> ReadValidationSet(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidInput(path + ": cannot open validation set");
  std::string line;
  std::getline(in, line);
  const std::string header = "id,scenario,overrides,metric,measured,source";
  if (line.rfind(header, 0) != 0) {
    return Status::InvalidInput(path + ":1: header must be \"" + header + "\"");
  }
  std::vector<ValidationRow> rows;
  int n = 1;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    const auto f = SplitCsvLine(line);
    const std::string where = path + ":" + std::to_string(n) + ": ";
    if (f.size() != 6) {
      return Status::InvalidInput(where + "expected 6 fields, got " + std::to_string(f.size()));
    }
    ValidationRow r;
    r.line = n;
    r.id = f[0];
    r.scenario = f[1];
    r.overrides = f[2];
    r.metric = f[3];
    r.source = f[5];
    char* end = nullptr;
    r.measured = std::strtod(f[4].c_str(), &end);
    if (f[4].empty() || end != f[4].c_str() + f[4].size() || !(r.measured > 0)) {
      return Status::InvalidInput(where + "measured=\"" + f[4] + "\" is not a positive number");
    }
    if (r.metric != "step_time_s" && r.metric != "tflops_per_device" && r.metric != "mfu" &&
        r.metric != "tokens_per_s_per_device") {
      return Status::InvalidInput(where + "metric=\"" + r.metric +
                                  "\" is not one of step_time_s, tflops_per_device, mfu, "
                                  "tokens_per_s_per_device");
    }
    rows.push_back(r);
  }
  return rows;
}

Expected<ValidationResult> EvaluateValidationRow(const std::string& set_path,
                                                 const ValidationRow& row, NetworkLevel network) {
  const std::filesystem::path dir = std::filesystem::path(set_path).parent_path();
  std::string path;
  if (row.scenario != "default") {
    // The CSV's folder, then the repository root above it (validation/..), then as given.
    path = row.scenario;
    for (const auto& base : {dir, dir / ".."}) {
      if (std::filesystem::exists(base / row.scenario)) {
        path = (base / row.scenario).lexically_normal().string();
        break;
      }
    }
  }
  std::vector<std::string> overrides;
  std::stringstream ss(row.overrides);
  std::string o;
  while (std::getline(ss, o, ';')) {
    if (!o.empty()) overrides.push_back(o);
  }
  const std::string where = set_path + ":" + std::to_string(row.line) + ": row " + row.id + ": ";
  auto sc = LoadScenario({path, overrides});
  if (!sc.ok()) return sc.status().WithPrefix(where);
  SimulateOptions opts;
  opts.network = network;
  auto r = SimulateScenario(*sc, opts);
  if (!r.ok()) return r.status().WithPrefix(where);
  ValidationResult out;
  out.row = row;
  out.simulated = Metric(row, *r, *sc);
  out.error_pct = 100 * (out.simulated - row.measured) / row.measured;
  return out;
}

double MeanAbsolutePercentError(const std::vector<ValidationResult>& results) {
  double abs_err = 0;
  for (const auto& r : results) abs_err += std::abs(r.error_pct);
  return results.empty() ? 0 : abs_err / static_cast<double>(results.size());
}

Expected<ValidationReport> EvaluateValidationSet(
    const std::string& set_path, NetworkLevel network,
    const std::function<void(size_t, size_t)>& progress, const std::atomic<bool>* cancel) {
  auto rows = ReadValidationSet(set_path);
  if (!rows.ok()) return rows.status();
  ValidationReport report;
  for (const ValidationRow& row : *rows) {
    if (cancel != nullptr && cancel->load()) {
      report.cancelled = true;
      break;
    }
    auto r = EvaluateValidationRow(set_path, row, network);
    if (!r.ok()) return r.status();
    report.results.push_back(std::move(*r));
    if (progress) progress(report.results.size(), rows->size());
  }
  report.mape_pct = MeanAbsolutePercentError(report.results);
  return report;
}

}  // namespace moesim
