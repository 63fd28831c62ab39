// gemm_table.h
//
// Fits the GEMM kernel model (costmodel/gemm_model.h) of one chip to a table of measured GEMM
// throughput (validation/data/gemm/<chip>.csv: `b,m,n,k,dtype,flops_per_s`, from OpenXLA's
// measured GEMM tables), once per chip and data type, never per scenario.
//   - facts, not fitted: peak FLOP/s of the data type, HBM bandwidth x memory_efficiency, the SM
//     count and the tile set (gemm_model.h kGpuTiles);
//   - fitted: max_fraction (0, 1], k_half >= 0 and overhead_s >= 0, by least squares on
//     ln(model time / measured time), every point weighted alike (a 5 us GEMM counts as much as
//     a 5 ms one). Measured time = 2 b m n k / flops_per_s. Nelder-Mead on (logit max_fraction,
//     ln k_half, ln overhead_s) from a few starts: the model's time is piecewise smooth in its
//     parameters (the waves of a shape do not depend on them).
//   - k-fold held-out error: the rows split into k folds by index (row i in fold i mod k); each
//     fold is predicted by the fit over the others; |model / measured - 1| over all held-out
//     predictions gives the median and the 90th percentile.
//   - a profile's error: the same statistics of given parameters over every row, unfitted.
// Errors are kInvalidInput naming file:line and the column.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "costmodel/gemm_model.h"

namespace moesim::calib {

struct GemmTableRow {
  GemmShape shape;
  double flops_per_s = 0;
  int line = 0;  // in the CSV file
  double MeasuredS() const;
};

struct GemmTable {
  std::string path;
  std::string source;  // the header comment line (repo, path, commit)
  std::vector<GemmTableRow> rows;
};

// Reads `# comment` lines, the header `b,m,n,k,dtype,flops_per_s`, then one row per line;
// dtype "bf16" or "fp8".
Expected<GemmTable> ReadGemmTable(const std::string& path);

// The rows of one data type.
std::vector<GemmTableRow> RowsOf(const std::vector<GemmTableRow>& rows, bool fp8);

struct GemmTableFit {
  double max_fraction = 1;
  double k_half = 0;
  double overhead_s = 0;
  double rms_log_error = 0;  // sqrt(mean(ln(model / measured)^2)) over the fitted rows
};

// Fits base's max_fraction, k_half and overhead_s (the others are facts) to `rows`.
// REQUIRES: rows of one data type; base.peak_flops_per_s > 0.
Expected<GemmTableFit> FitGemmTable(const std::vector<GemmTableRow>& rows, const GemmParams& base);

// `base` with a fit's parameters.
GemmParams WithFit(GemmParams base, const GemmTableFit& fit);

struct HeldOutError {
  size_t points = 0;
  double median_abs_rel = 0;  // median |model / measured - 1| over held-out predictions
  double p90_abs_rel = 0;
};
Expected<HeldOutError> KFoldGemmTable(const std::vector<GemmTableRow>& rows, const GemmParams& base,
                                      int folds = 5);

// The error of parameters as they are (a built-in profile's), nothing fitted: |model / measured
// - 1| over every row. For a table the parameters were not fitted on, it is held out as a whole.
HeldOutError GemmTableError(const std::vector<GemmTableRow>& rows, const GemmParams& params);

}  // namespace moesim::calib
