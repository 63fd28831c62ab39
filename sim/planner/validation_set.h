// validation_set.h
//
// Validation sets: measured step times and throughputs with the scenario that reproduces each,
// compared with the simulation (`moesim validate`, the GUI's Validation view). A set is a CSV
// with the header
//   id,scenario,overrides,metric,measured,source
// scenario: a path relative to the CSV's folder, to its parent (the repository root for
// validation/*.csv) or to the working directory, or `default`; overrides: PATH=VALUE joined by
// ';'; metric: step_time_s | tflops_per_device | mfu | tokens_per_s_per_device; measured > 0.
// and optionally a seventh column, baseline: the id of another row of the same metric that this
// row is compared with (a dense model for its MoE version: the paper's "step-time increase").
// Blank lines and lines starting with '#' are skipped; ids are unique.
//   error_pct = 100 x (simulated - measured) / measured;  MAPE = mean |error_pct|;
//   relative change = 100 x (value / baseline's value - 1), simulated and measured, and their
//   difference in percentage points.
// Thread safety: pure functions.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "sim/step/simulate.h"

namespace moesim {

struct ValidationRow {
  int line = 0;  // 1-based line in the CSV
  std::string id, scenario, overrides, metric, source;
  double measured = 0;
  std::string baseline;  // "" = none
};

// Errors (kInvalidInput) name the file and line: unreadable file, wrong header, wrong field
// count, a measured value that is not a positive number, an unknown metric, a repeated id, a
// baseline that is no row's id, the row itself, or a row of another metric.
Expected<std::vector<ValidationRow>> ReadValidationSet(const std::string& path);

struct ValidationResult {
  ValidationRow row;
  double simulated = 0;
  double error_pct = 0;
};

// The scenario of one row of the set at `set_path` with the row's overrides, then `extra`
// (PATH=VALUE, applied last). Errors are the scenario's, prefixed with "SET:LINE: row ID: ".
Expected<Scenario> LoadValidationRowScenario(const std::string& set_path, const ValidationRow& row,
                                             const std::vector<std::string>& extra = {});
// The row's metric of a simulated report (simulated value of the row's `metric`).
double ValidationMetric(const ValidationRow& row, const SimReport& report, const Scenario& sc);

// Simulates one row of the set at `set_path`. Errors are the scenario's, prefixed with
// "SET:LINE: row ID: ".
Expected<ValidationResult> EvaluateValidationRow(const std::string& set_path,
                                                 const ValidationRow& row, NetworkLevel network);

// Mean absolute error_pct (0 for no rows).
double MeanAbsolutePercentError(const std::vector<ValidationResult>& results);

struct RelativeResult {
  std::string id, baseline;
  double simulated_pct = 0;  // 100 x (simulated / baseline's simulated - 1)
  double measured_pct = 0;   // the same of the measured values
  double diff_pp = 0;        // simulated_pct - measured_pct
};
// One entry per result whose baseline is among `results`, in their order.
std::vector<RelativeResult> RelativeChanges(const std::vector<ValidationResult>& results);

struct ValidationReport {
  std::vector<ValidationResult> results;
  std::vector<RelativeResult> relatives;
  double mape_pct = 0;
  bool cancelled = false;  // stopped by `cancel` before the last row
};

// Reads and evaluates the whole set, rows in order; the first failing row is the error.
// `progress` (may be empty) gets (rows done, rows) after each row; `cancel` (may be null) stops
// before the next row.
Expected<ValidationReport> EvaluateValidationSet(
    const std::string& set_path, NetworkLevel network,
    const std::function<void(size_t, size_t)>& progress = {},
    const std::atomic<bool>* cancel = nullptr);

}  // namespace moesim
