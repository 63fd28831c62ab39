// profile_fit.h
//
// The step-level fit of a chip profile over public measurements (`moesim calibrate --published
// SET.csv ...`): one hardware parameter per chip (default Hardware.matmul_efficiency, the
// fraction of the kernel model's GEMM speed a training step reaches), fitted once over every row
// of every given validation set whose scenario runs on that chip, never per row or per scenario,
// and its k-fold held-out error.
//
// Rule (FitRule; validation/calibration.md states the one used): the value at which the
// geometric mean (or the median) of simulated over measured speed is 1, i.e. the mean (median)
// of log rho_i(x) is 0, rho_i = simulated /
// measured for throughputs (tflops_per_device, mfu, tokens_per_s_per_device) and measured /
// simulated for step_time_s. Each row is simulated at `grid` values of x spaced geometrically
// over [lo, hi] and log rho_i is interpolated linearly in log x between them, so one fit and
// all its folds cost rows x grid simulations. A chip whose rows cannot reach 1 inside [lo, hi]
// gets the nearer bound (ChipFit::at_bound).
//
// k-fold: rows of a chip in file order are dealt to min(folds, rows) folds round-robin; each
// fold's rows are predicted with the value (and, with a scan, the scan value) fitted on the
// other folds alone. A chip with one row has
// no held-out error (held_out_valid false).
//
// Rows are identified by id; an id met again in a later set is skipped (first one wins).
// Thread safety: pure function of its inputs (simulations run one at a time).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "sim/step/simulate.h"

namespace moesim {

// kGeometricMean: the value where the mean of log rho is 0 (the geometric mean of simulated /
// measured speed is 1); a scan compares sums of squared log rho. kMedian: where the median of
// log rho is 0; a scan compares sums of |log rho|. The median keeps a few rows that another
// part of the model gets wrong (e.g. a communication-bound run) from moving a compute fit.
enum class FitRule { kGeometricMean, kMedian };

struct PublishedFitOptions {
  std::string param = "matmul_efficiency";  // a Hardware field (PATH hardware.<param>)
  double lo = 0.2, hi = 1.0;                // searched range, 0 < lo < hi
  int grid = 15;                            // simulated points per row, >= 2
  int folds = 5;                            // >= 2
  FitRule rule = FitRule::kGeometricMean;
  NetworkLevel network = NetworkLevel::kAnalytical;
  std::vector<std::string> chips;  // fit only these built-in chips; empty = every chip met
  // A second Hardware field fitted with `param` (`--scan FIELD=v1,v2,...`): the 1-D fit runs at
  // each value, and each chip takes the value whose fit leaves the least sum of squared log
  // residuals over its rows (the rule's loss; the first listed on ties: list the prior first).
  // Empty = no scan.
  std::string scan_param;
  std::vector<double> scan_values;
  // A chip with fewer rows keeps the first scan value (two parameters need rows to spare for
  // their held-out error).
  int scan_min_rows = 5;
};

struct PublishedFitRow {
  std::string set, id, metric;
  double measured = 0;
  double in_sample = 0;       // simulated at the chip's fitted value
  double held_out = 0;        // simulated at the value fitted without this row's fold
  double error_in_pct = 0;    // 100 (simulated - measured) / measured
  double error_held_pct = 0;  // the same, held out
  int fold = 0;
};

struct ChipFit {
  std::string chip;
  double value = 0;
  bool at_bound = false;
  double scan_value = 0;            // the chosen scan value (with a scan)
  std::vector<double> scan_losses;  // the rule's loss at each scan value
  std::vector<PublishedFitRow> rows;
  double mape_in_pct = 0, mape_held_pct = 0;
  double spread_in_pp = 0;  // max - min of the in-sample errors
  bool held_out_valid = false;
  int folds = 0;
};

// Errors: an unreadable set, a row whose scenario fails to load or simulate (the row named),
// options out of range (kInvalidInput). `progress` (may be empty) gets (simulations done,
// simulations) after each.
Expected<std::vector<ChipFit>> FitPublished(
    const std::vector<std::string>& sets, const PublishedFitOptions& options,
    const std::function<void(size_t, size_t)>& progress = {});

}  // namespace moesim
