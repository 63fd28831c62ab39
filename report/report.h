// report.h
//
// `moesim report`: a Markdown page with PNG plots from what `moesim validate-real` and
// `moesim calibrate --json` wrote:
//   step_scatter.png         simulated vs measured step time per configuration (y = x line)
//   op_errors.png            per op class, the error of its summed time over configurations
//   op_scatter.png           simulated vs measured time of every (configuration, op class)
//   calibration_residuals.png  model vs measured time of every benchmark point, per fit
// plus the tables behind them: per configuration, per op class, per fit (parameters, RMS
// residual, worst points). Errors name the input file and the field.
// Given `moesim validate --json` output instead (it has "rows" and "mape_pct"), the report is
// of that validation set: errors.png (error per row), scatter_METRIC.png (simulated vs measured
// per metric with two rows or more), changes.png (each baseline row's change, simulated and
// measured) and their tables.
// Thread safety: one call at a time (Qt).
#pragma once

#include <string>

#include "common/status.h"

namespace moesim::report {

struct ReportInputs {
  std::string results_json;      // validate-real's results.json, or moesim validate's JSON
  std::string calibration_json;  // calibrate --json output; empty = no calibration section
  std::string out_dir;           // report.md and the PNGs go here
  // Op classes below this share of the measured step time are left out of the per-op plot
  // (a 20 us op's error is mostly timer noise).
  double min_op_share = 0.01;
};

// Writes out_dir/report.md and the PNGs; returns the Markdown's path.
Expected<std::string> WriteReport(const ReportInputs& inputs);

}  // namespace moesim::report
