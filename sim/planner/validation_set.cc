#include "sim/planner/validation_set.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

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
  if (!line.empty() && line.back() == '\r') line.pop_back();
  size_t fields = 0;
  if (line == header) {
    fields = 6;
  } else if (line == header + ",baseline") {
    fields = 7;
  } else {
    return Status::InvalidInput(path + ":1: header must be \"" + header + "\" or \"" + header +
                                ",baseline\"");
  }
  std::vector<ValidationRow> rows;
  std::map<std::string, size_t> by_id;
  int n = 1;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files (spreadsheets)
    if (line.empty() || line[0] == '#') continue;
    const auto f = SplitCsvLine(line);
    const std::string where = path + ":" + std::to_string(n) + ": ";
    if (f.size() != fields) {
      return Status::InvalidInput(where + "expected " + std::to_string(fields) + " fields, got " +
                                  std::to_string(f.size()));
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
    if (fields == 7) r.baseline = f[6];
    if (!by_id.emplace(r.id, rows.size()).second) {
      return Status::InvalidInput(where + "id \"" + r.id + "\" is already the id of line " +
                                  std::to_string(rows[by_id[r.id]].line));
    }
    rows.push_back(r);
  }
  for (const ValidationRow& r : rows) {
    if (r.baseline.empty()) continue;
    const std::string where = path + ":" + std::to_string(r.line) + ": ";
    auto it = by_id.find(r.baseline);
    if (it == by_id.end()) {
      return Status::InvalidInput(where + "baseline=\"" + r.baseline + "\" is no row's id");
    }
    const ValidationRow& b = rows[it->second];
    if (b.id == r.id) {
      return Status::InvalidInput(where + "baseline=\"" + r.baseline + "\" is the row itself");
    }
    if (b.metric != r.metric) {
      return Status::InvalidInput(where + "baseline=\"" + r.baseline + "\" measures " + b.metric +
                                  ", this row " + r.metric);
    }
  }
  return rows;
}

Expected<Scenario> LoadValidationRowScenario(const std::string& set_path, const ValidationRow& row,
                                             const std::vector<std::string>& extra) {
  const std::filesystem::path dir = std::filesystem::path(set_path).parent_path();
  std::string path;
  if (row.scenario != "default") {
    // The CSV's folder, then the repository root above it (validation/..), then as given.
    path = row.scenario;
    for (const auto& base : {dir, dir / ".."}) {
      std::error_code ec;  // a name the file system refuses (too long) is not a file
      if (std::filesystem::exists(base / row.scenario, ec)) {
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
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  auto sc = LoadScenario({path, overrides});
  if (!sc.ok()) {
    return sc.status().WithPrefix(set_path + ":" + std::to_string(row.line) + ": row " + row.id +
                                  ": ");
  }
  return sc;
}

double ValidationMetric(const ValidationRow& row, const SimReport& r, const Scenario& sc) {
  return Metric(row, r, sc);
}

Expected<ValidationResult> EvaluateValidationRow(const std::string& set_path,
                                                 const ValidationRow& row, NetworkLevel network) {
  auto sc = LoadValidationRowScenario(set_path, row);
  if (!sc.ok()) return sc.status();
  SimulateOptions opts;
  opts.network = network;
  auto r = SimulateScenario(*sc, opts);
  if (!r.ok()) {
    return r.status().WithPrefix(set_path + ":" + std::to_string(row.line) + ": row " + row.id +
                                 ": ");
  }
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

std::vector<RelativeResult> RelativeChanges(const std::vector<ValidationResult>& results) {
  std::map<std::string, const ValidationResult*> by_id;
  for (const auto& r : results) by_id[r.row.id] = &r;
  std::vector<RelativeResult> out;
  for (const auto& r : results) {
    if (r.row.baseline.empty()) continue;
    auto it = by_id.find(r.row.baseline);
    if (it == by_id.end()) continue;
    const ValidationResult& b = *it->second;
    RelativeResult rel;
    rel.id = r.row.id;
    rel.baseline = b.row.id;
    rel.simulated_pct = 100 * (r.simulated / b.simulated - 1);
    rel.measured_pct = 100 * (r.row.measured / b.row.measured - 1);
    rel.diff_pp = rel.simulated_pct - rel.measured_pct;
    out.push_back(rel);
  }
  return out;
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
  report.relatives = RelativeChanges(report.results);
  return report;
}

}  // namespace moesim
