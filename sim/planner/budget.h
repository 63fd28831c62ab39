// budget.h
//
// The sharding search behind `moesim plan` and Du et al. 2024's dense-budget comparison
// (`moesim plan --objective tokens_in_budget`, the GUI's Budget view):
//   budget_s = 20 x dense parameters / batch tokens x dense step time   (Chinchilla, 20 tokens
//              per parameter, at the dense model's own step time);
//   tokens   = budget_s / candidate step time x batch tokens             (per MoE candidate, at
//              its fastest feasible sharding).
// Infeasible points (invalid, or not fitting in memory) are counted, never errors.
// Thread safety: pure functions over RunPoints (which runs its own threads).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "sim/planner/planner.h"

namespace moesim {

// What the search enumerates besides mesh factorizations.
struct SearchSpace {
  int64_t max_pipeline = 8;
  std::vector<std::string> strategies = {"APPLE_3D", "MEGATRON", "FSDP", "ZERO1"};
  std::vector<int64_t> experts = {8, 16, 32, 64, 128, 256};  // budget candidates
  std::vector<int64_t> every_k = {2, 4};                     // budget candidates
};

// The value `path` has among `overrides` ("path=value"; the last one wins), or "".
std::string OverrideValue(const std::vector<std::string>& overrides, const std::string& path);

// Every (mesh, strategy, recompute, micro-batch) variant of `sc`'s model on its cluster, each as
// `base` plus overrides. Micro-batch sizes 1, 2, 4 are tried only with a pipeline axis.
std::vector<std::vector<std::string>> ShardingPoints(const Scenario& sc, const SearchSpace& space,
                                                     std::vector<std::string> base);

struct OutcomeCounts {
  size_t ok = 0, invalid = 0, unfit = 0;
};
OutcomeCounts CountOutcomes(const std::vector<PointResult>& points);

// The feasible point with the lowest step time (the first on ties), or null.
const PointResult* FastestFeasible(const std::vector<PointResult>& points);

// "APPLE_3D (4,64,1,1) recompute FULL mb 0" from a ShardingPoints point's overrides.
std::string DescribeSharding(const std::vector<std::string>& overrides);

struct BudgetCandidate {
  int64_t experts = 0;
  int64_t every_k = 0;
  std::optional<PointResult> best;  // empty: no feasible sharding
  OutcomeCounts counts;
  double tokens = 0;  // trained within the budget at best's step time (0 without one)
};

struct BudgetPlan {
  PointResult dense;
  double params = 0;                        // dense total parameters
  double batch_tokens = 0;                  // training.global_batch_tokens
  double steps = 0;                         // Chinchilla steps: 20 x params / batch_tokens
  double budget_s = 0;                      // steps x dense step time
  std::vector<BudgetCandidate> candidates;  // most tokens first; ties keep enumeration order
  size_t explored = 0;                      // points simulated or rejected, dense included
  bool cancelled = false;                   // RunOptions::cancel stopped it part way
};

// REQUIRES: `sc` is LoadScenarioFromText(base.text, ..., overrides) (the validated base).
// Errors (kInvalidInput): `sc` is an MoE model; the dense model itself is invalid or unfit.
Expected<BudgetPlan> PlanTokensInBudget(const ScenarioText& base,
                                        const std::vector<std::string>& overrides,
                                        const Scenario& sc, const SearchSpace& space,
                                        const RunOptions& options);

}  // namespace moesim
