// measured_run.h
//
// What `moesim-real train --trace FILE --metrics FILE` measured, read back for comparison with
// the simulator:
//   - step time: the median over the steps that were neither warm-up nor traced (profiling
//     adds a timestamp pair per op), from the metrics file's step_time_s;
//   - per op: seconds per step per op CLASS, the layer prefix dropped ("L1.moe.w1" ->
//     "moe.w1"), summed over layers and micro-batches, averaged over the traced steps and
//     over ranks (SPMD: every rank runs the same program).
// Errors (kInvalidInput) name the file and, for JSON, what is wrong.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace moesim::calib {

// "L12.attn.q.dgrad" -> "attn.q.dgrad"; names without a layer prefix are returned unchanged.
std::string OpClass(const std::string& name);

struct MeasuredRun {
  double step_time_s = 0;              // median of the steady steps
  std::vector<double> step_times_s;    // those steps, in order
  std::map<std::string, double> op_s;  // op class -> seconds per step (mean over ranks)
  int64_t ranks = 0;
  int64_t traced_steps = 0;
  // MoE: the share of routed tokens the capacity dropped, mean over the steady steps (the
  // metrics' dropped_fraction); -1 when the metrics have none (a dense model).
  double dropped_fraction = -1;
};

// `steady_after`: metrics steps (1-based, as written) <= this are skipped (warm-up + traced).
Expected<MeasuredRun> ReadMeasuredRun(const std::string& trace_path,
                                      const std::string& metrics_path, int64_t steady_after);

double Median(std::vector<double> v);

}  // namespace moesim::calib
