// planner.h
//
// Sweeps and searches over scenarios: many SimulateScenario() runs in parallel threads, each an
// independent point (a base scenario plus `--set` overrides). A point that does not validate or
// does not fit in memory is a normal result (counted and reported), never a crash. Results come
// back in input order whatever the thread timing, so output is the same bit for bit.
//
// Thread safety: RunPoints uses `jobs` worker threads internally; callers need no locking.
// Topology graphs are shared between points with the same cluster (TopologyCache).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sim/step/analytical_network.h"
#include "sim/step/simulate.h"

namespace moesim {

// Builds each distinct (topology, link figures) once; safe from many threads.
class TopologyCache {
 public:
  Expected<std::shared_ptr<const Topology>> Get(const Scenario& sc);
  // The analytical network of that topology under sc's mesh, shared by every point with both.
  Expected<std::shared_ptr<const AnalyticalNetwork>> Network(const Scenario& sc);

 private:
  static std::string Key(const Scenario& sc);
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const Topology>> graphs_;
  std::map<std::string, std::shared_ptr<const AnalyticalNetwork>> networks_;
};

struct PointResult {
  std::vector<std::string> overrides;
  enum class Outcome { kOk, kInvalid, kDoesNotFit } outcome = Outcome::kOk;
  std::string message;     // why invalid
  bool cancelled = false;  // never run because RunOptions::cancel was set (outcome kInvalid)
  Scenario scenario;       // resolved (valid points; empty without RunOptions::keep_details)
  SimReport report;        // kOk and kDoesNotFit (simulated anyway: the user may want the time)
};

class PointDistributor;  // sim/planner/point_share.h

struct RunOptions {
  int jobs = 1;  // worker threads; never more than the points or limits::kMaxJobs
  NetworkLevel network = NetworkLevel::kAnalytical;
  bool simulate_unfit = true;  // also simulate points that do not fit in memory
  // Memory all running simulations together may use, in bytes (each gets its share over the
  // jobs; see SimulateOptions::max_memory_bytes). 0 = the machine's physical memory.
  double max_memory_bytes = 0;
  // Called after each finished point with (done, total), from worker threads, serialized.
  std::function<void(size_t, size_t)> progress;
  // When set and *cancel becomes true, points not yet started are skipped (cancelled, kInvalid,
  // message "cancelled") and RunPoints returns once the running ones finish: an interactive
  // caller (the GUI) abandons a long sweep without waiting for it. Progress still counts them.
  const std::atomic<bool>* cancel = nullptr;
  // When set, the points are split over processes (`mpirun`, cli/mpi_share.h): this process
  // evaluates its share and gets every result back; progress counts all processes' points.
  // Every process must make the same RunPoints calls. Null: this process runs every point.
  PointDistributor* distributor = nullptr;
  // Keep each point's resolved scenario and its report's tables (the per-tensor and per-stage
  // memory, the mesh axes, the breakdown by kernel class and by collective) in its PointResult.
  // A caller that needs only the reports' figures (and reloads the few scenarios it prints)
  // turns it off: a plan then holds a few KB per point instead of ~25 KB.
  bool keep_details = true;
  // Work out each point's breakdown (SimulateOptions::breakdown); a caller that ranks points
  // by step time alone turns it off (the compact program then replays once, not twice).
  bool breakdown = true;
};

// A base scenario given as text rather than a file: what an editor holds before it is saved.
// Messages name `source_name`; relative topology and histogram paths resolve from `base_dir`.
struct ScenarioText {
  std::string text;
  std::string source_name;
  std::string base_dir = ".";
};

// The text LoadScenario would read for `path` ("" = the built-in default, named "<default>").
Expected<ScenarioText> ReadScenarioText(const std::string& path);

std::vector<PointResult> RunPoints(const std::string& scenario_path,
                                   const std::vector<std::vector<std::string>>& points,
                                   const RunOptions& options);
// As above, each point loaded with LoadScenarioFromText(base.text, ...): the same results as the
// path form when `base` is ReadScenarioText(path).
std::vector<PointResult> RunPoints(const ScenarioText& base,
                                   const std::vector<std::vector<std::string>>& points,
                                   const RunOptions& options);

// The Cartesian product of `--vary PATH=V1,V2,...` specs, first spec outermost. Each element
// is one point's overrides, appended to `base`. Errors on a spec without '=' or values, and on
// a path or value that `--set` would refuse (CheckOverride): a typo fails once, not per point.
Expected<std::vector<std::vector<std::string>>> GridPoints(
    const std::vector<std::string>& base, const std::vector<std::string>& vary_specs);

// "ok", "invalid", "does_not_fit": the status column of sweep CSVs and GUI exports.
const char* OutcomeName(PointResult::Outcome o);

// The overrides that select `strategy` on mesh (data, expert, model, pipeline).
std::vector<std::string> MeshOverrides(const std::string& strategy,
                                       const std::array<int64_t, 4>& mesh);

// Mesh factorizations (data, expert, model, pipeline) of `devices`: expert divides
// `num_experts` (1 when dense), pipeline divides `num_layers` and is at most `max_pipeline`.
std::vector<std::array<int64_t, 4>> MeshFactorizations(int64_t devices, int64_t num_experts,
                                                       int64_t num_layers, int64_t max_pipeline);

}  // namespace moesim
