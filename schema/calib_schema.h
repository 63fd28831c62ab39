// calib_schema.h
//
// The one owner of the calibration reports moesim writes: typed results and one JSON writer
// each, for `moesim calibrate --json` (a profile fitted to `moesim-real bench` files, the GEMM
// kernel model fitted to a GEMM table, `--gemm-table`, and the step-level fit over published
// rows, `--published`) and for `moesim validate-real` (its results.json and `--json`). Every field,
// its type and its unit are documented in docs/schema.md; tests/schema checks the CLI's output
// against that document.
//
// The structs hold what is written, already computed (a median, an error): the writers only lay
// the fields out. Callers fill them from calib/ and sim/planner/ results (cli/).
//
// ParseCalibrationJson and ParseRealValidationJson read that JSON back into the same structs
// (report/, `moesim report`): writer -> reader -> writer gives the same bytes. They are lenient
// where older files lack a field (each struct field's reader default is listed at the reader)
// and strict on type: a field present with another type is an error naming the file and the
// field ("FILE: configs[2].ranks: not a number").
//
// Units as in report_schema.h: times in seconds (suffix _s), percentages with a _pct or _pp
// suffix, relative errors and fractions as ratios. Objects are written with their keys sorted
// (nlohmann::json), numbers as the shortest text that reads back to the same double; a NaN is
// written as null.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace moesim {

// ---- profile fit (`moesim calibrate BENCH.json ... --json`) ----
// One benchmark point of a fit: measured and modelled time, rel_error = model / measured - 1.
struct CalibrationPoint {
  std::string label;
  double measured_s = 0, model_s = 0, rel_error = 0;
};
// One fit ("memory", "gemm", "all_reduce/SHM", ...): the profile fields it set, its formula,
// notes, and its RMS relative residual over `points` (0 without points).
struct CalibrationFit {
  std::string name;
  bool fitted = true;
  std::string model;
  std::map<std::string, double> params;  // profile field -> fitted value, in the field's unit
  std::vector<std::string> notes;
  double rms_rel_error = 0;
  std::vector<CalibrationPoint> points;
};
struct CalibrationReport {
  std::string chip;  // the fitted profile's chip
  std::vector<CalibrationFit> fits;
};
nlohmann::json CalibrationJson(const CalibrationReport& report);
// REQUIRES nothing of `j`; "fits" must be an array (else "fits: missing (not `moesim calibrate
// --json` output)"). Absent fields read as: chip "", name "?", fitted true, model "", params {},
// notes [], rms_rel_error 0, points []; a point's label "", measured_s, model_s, rel_error 0.
Expected<CalibrationReport> ParseCalibrationJson(const nlohmann::json& j, const std::string& file);

// ---- GEMM kernel model fit (`moesim calibrate --gemm-table CHIP.csv --json`) ----
// One data type's fit; the fitted figures are absent (fitted = false) when the profile has no
// peak for that type.
struct GemmTableDtypeFit {
  std::string dtype;  // "bf16" | "fp8"
  int64_t rows = 0;
  bool fitted = false;
  double peak_flops_per_s = 0;  // the profile's peak of this type (a fact, not fitted)
  double max_fraction = 0, k_half = 0, overhead_s = 0;
  double rms_log_error = 0;  // sqrt(mean(ln(model / measured)^2)) over the rows
  int64_t held_out_points = 0;
  double held_out_median_abs_rel = 0, held_out_p90_abs_rel = 0;  // |model / measured - 1|
};
struct GemmTableFitReport {
  std::string chip, table, source;  // table: the CSV as given; source: its provenance line
  int64_t rows = 0, folds = 0;
  int64_t gemm_compute_units = 0;  // facts of the profile the fit used
  double hbm_bytes_per_s = 0, memory_efficiency = 0;
  std::vector<GemmTableDtypeFit> dtypes;
};
nlohmann::json GemmTableFitJson(const GemmTableFitReport& report);

// ---- step-level fit over published rows (`moesim calibrate --published SET.csv ... --json`) ----
struct PublishedFitRowRecord {
  std::string set, id, metric;
  double measured = 0;            // in the metric's unit
  double in_sample = 0;           // simulated at the chip's fitted value
  double held_out = 0;            // simulated at the value fitted without this row's fold
  double error_in_pct = 0;        // 100 (in_sample / measured - 1)
  double error_held_out_pct = 0;  // the same, held out
  int fold = 0;
};
// A second Hardware field fitted over a list of values (`--scan`).
struct PublishedFitScan {
  std::string param;
  double value = 0;            // the chosen value
  std::vector<double> values;  // the values tried
  std::vector<double> losses;  // the rule's loss at each; NaN (null) with too few rows
};
struct PublishedFitRecord {
  std::string chip, param, rule;  // rule: "mean" | "median"
  double value = 0;
  bool at_bound = false;
  double mape_in_pct = 0, spread_in_pp = 0;
  bool held_out_valid = false;
  int folds = 0;
  double mape_held_out_pct = 0;
  std::vector<PublishedFitRowRecord> rows;
  std::optional<PublishedFitScan> scan;
};
// A JSON array, one object per chip.
nlohmann::json PublishedFitJson(const std::vector<PublishedFitRecord>& fits);

// ---- real validation (`moesim validate-real`: results.json and --json) ----
struct RealValidationOp {
  std::string op;  // op class ("moe.w1", "grads.all_reduce")
  double simulated_s = 0, measured_s = 0;
  std::optional<double> error_pct;  // null unless both simulated and measured
};
struct RealValidationConfig {
  std::string id, scenario;
  std::vector<std::string> overrides;
  int64_t ranks = 1, expert_parallel = 1;
  double core_share = 1;
  std::string link_group;
  double simulated_step_s = 0, measured_step_s = 0;
  std::vector<double> measured_step_s_repeats;
  double spread_pct = 0, error_pct = 0;
  double simulated_dropped_fraction = -1, measured_dropped_fraction = -1;  // -1: dense
  std::vector<RealValidationOp> ops;
};
struct RealValidationMachine {
  std::string hostname, cpu_model;
  int64_t cores = 0;
  std::string date_utc, git_commit;
};
struct RealValidationReport {
  RealValidationMachine machine;
  std::string backend, profile;
  std::vector<RealValidationConfig> configs;
  double mape_pct = 0;
};
// Also writes "tool": "moesim validate-real".
nlohmann::json RealValidationJson(const RealValidationReport& report);
// "configs" must be a non-empty array, and each config must have simulated_step_s,
// measured_step_s and spread_pct as numbers. Absent fields read as: machine's strings "?" and
// cores 0, backend and profile "?", mape_pct 0; a config's id "configs[I]", scenario "",
// overrides [], ranks 0, expert_parallel 0 (unknown), core_share 1, link_group "",
// measured_step_s_repeats [], error_pct 0, the dropped fractions -1 (files from before they were
// written), ops []; an op's op "?", simulated_s and measured_s 0, error_pct null.
Expected<RealValidationReport> ParseRealValidationJson(const nlohmann::json& j,
                                                       const std::string& file);

}  // namespace moesim
