// point_share.h
//
// Splitting a planner run over processes (`mpirun -n N moesim plan|sweep`, cli/mpi_share.h):
// every process enumerates the same points, estimates each one's cost, and takes the share that
// AssignByCost gives it; the results travel between processes as bytes (EncodePointResults) and
// come back in input order, so what rank 0 prints is what one process prints.
//
// Thread safety: the functions are pure; a PointDistributor is called from one thread.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "sim/planner/planner.h"

namespace moesim {

// The owner (0 .. processes-1) of each of `costs.size()` points: longest processing time first
// (points by decreasing cost, ties by index) each to the least loaded process so far (ties: the
// lowest). The same costs give the same owners on every process. REQUIRES: processes >= 1.
std::vector<int> AssignByCost(const std::vector<double>& costs, int processes);

// The estimated cost of evaluating a point: a constant for one that does not load (or does not
// fit and is not simulated), else that plus the bound on its step program's ops
// (StepGraphOpBound), which a simulation's time follows.
double EstimatePointCost(const Expected<Scenario>& scenario, bool simulate_unfit);

// The results at `indices` as bytes: outcome, message and the report's figures (network,
// times, breakdown, metrics, cost, the memory report's sizes, axes, op and flow counts; not its
// tensor list nor a kept program). Doubles travel as their bits: the processes of one run share
// one byte order (one machine architecture).
std::string EncodePointResults(const std::vector<PointResult>& results,
                               const std::vector<size_t>& indices);
// Reads what EncodePointResults wrote into results[indices[k]] (overrides and scenario are left
// as they are). Errors (kInternal) on bytes that are short, long or otherwise malformed.
Status DecodePointResults(const std::string& bytes, const std::vector<size_t>& indices,
                          std::vector<PointResult>* results);

// Evaluates the points at `indices` (into their places in the returned vector, sized for all
// points), calling done(k) after the k-th of them finishes.
using ShareEvaluator = std::function<std::vector<PointResult>(
    const std::vector<size_t>& indices, const std::function<void(size_t)>& done)>;

// Splits one RunPoints call over processes (RunOptions::distributor). Every process calls Run
// with the same costs, in the same order of calls.
class PointDistributor {
 public:
  virtual ~PointDistributor() = default;
  // Evaluates this process's share of the points (evaluate) and returns every point's result
  // (overrides and scenario left empty for the points of other processes), in input order;
  // progress(done, total) counts all processes' finished points.
  virtual std::vector<PointResult> Run(const std::vector<double>& costs,
                                       const ShareEvaluator& evaluate,
                                       const std::function<void(size_t, size_t)>& progress) = 0;

  // Estimating the costs together: when the caller keeps no scenarios
  // (RunOptions::keep_details off), this process estimates costs[i] only for the points with
  // i % Processes() == Index(), the others' entries 0, and ShareCosts fills them in from the
  // other processes (every process then holds the same costs, bit for bit). By default one
  // process estimates them all.
  virtual int Index() const { return 0; }
  virtual int Processes() const { return 1; }
  virtual void ShareCosts(std::vector<double>* /*costs*/) {}
};

}  // namespace moesim
