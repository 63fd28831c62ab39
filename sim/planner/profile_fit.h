// profile_fit.h
//
// The step-level fit of a chip profile over public measurements (`moesim calibrate --published
// SET.csv ...`): one hardware parameter per chip (default Hardware.matmul_efficiency, the
// fraction of the kernel model's GEMM speed a training step reaches), fitted once over every row
// of every given validation set whose scenario runs on that chip, never per row or per scenario,
// and its k-fold held-out error.
//
// Rule (the one validation/calibration.md states): the value at which the geometric mean of
// simulated over measured speed is 1, i.e. sum_i log rho_i(x) = 0, rho_i = simulated /
// measured for throughputs (tflops_per_device, mfu, tokens_per_s_per_device) and measured /
// simulated for step_time_s. Each row is simulated at `grid` values of x spaced geometrically
// over [lo, hi] and log rho_i is interpolated linearly in log x between them, so one fit and
// all its folds cost rows x grid simulations. A chip whose rows cannot reach 1 inside [lo, hi]
// gets the nearer bound (ChipFit::at_bound).
//
// k-fold: rows of a chip in file order are dealt to min(folds, rows) folds round-robin; each
// fold's rows are predicted with the value fitted on the other folds. A chip with one row has
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

struct PublishedFitOptions {
  std::string param = "matmul_efficiency";  // a Hardware field (PATH hardware.<param>)
  double lo = 0.2, hi = 1.0;                // searched range, 0 < lo < hi
  int grid = 15;                            // simulated points per row, >= 2
  int folds = 5;                            // >= 2
  NetworkLevel network = NetworkLevel::kAnalytical;
  std::vector<std::string> chips;  // fit only these built-in chips; empty = every chip met
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
