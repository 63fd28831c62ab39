#include "sim/planner/budget.h"

#include <algorithm>

namespace moesim {

std::string OverrideValue(const std::vector<std::string>& overrides, const std::string& path) {
  std::string v;
  for (const std::string& o : overrides) {
    if (o.size() > path.size() && o.compare(0, path.size(), path) == 0 && o[path.size()] == '=') {
      v = o.substr(path.size() + 1);
    }
  }
  return v;
}

std::vector<std::vector<std::string>> ShardingPoints(const Scenario& sc, const SearchSpace& space,
                                                     std::vector<std::string> base) {
  std::vector<std::vector<std::string>> out;
  const int64_t experts = sc.model.moe.num_experts;
  for (const auto& mesh : MeshFactorizations(sc.cluster.num_devices, experts, sc.model.num_layers,
                                             space.max_pipeline)) {
    for (const std::string& strategy : space.strategies) {
      for (const char* recompute : {"NONE", "SELECTIVE", "FULL"}) {
        std::vector<int64_t> mbs = {0};
        if (mesh[3] > 1) mbs = {1, 2, 4};
        for (int64_t mb : mbs) {
          auto p = base;
          for (auto& o : MeshOverrides(strategy, mesh)) p.push_back(std::move(o));
          p.push_back(std::string("training.recompute=") + recompute);
          p.push_back("training.micro_batch_size=" + std::to_string(mb));
          out.push_back(std::move(p));
        }
      }
    }
  }
  return out;
}

OutcomeCounts CountOutcomes(const std::vector<PointResult>& points) {
  OutcomeCounts c;
  for (const auto& p : points) {
    if (p.outcome == PointResult::Outcome::kOk) ++c.ok;
    if (p.outcome == PointResult::Outcome::kInvalid) ++c.invalid;
    if (p.outcome == PointResult::Outcome::kDoesNotFit) ++c.unfit;
  }
  return c;
}

const PointResult* FastestFeasible(const std::vector<PointResult>& points) {
  const PointResult* best = nullptr;
  for (const auto& p : points) {
    if (p.outcome != PointResult::Outcome::kOk) continue;
    if (best == nullptr || p.report.step_time_s < best->report.step_time_s) best = &p;
  }
  return best;
}

std::string DescribeSharding(const std::vector<std::string>& o) {
  return OverrideValue(o, "sharding.strategy") + " (" + OverrideValue(o, "sharding.mesh.data") +
         "," + OverrideValue(o, "sharding.mesh.expert") + "," +
         OverrideValue(o, "sharding.mesh.model") + "," +
         OverrideValue(o, "sharding.mesh.pipeline") + ") recompute " +
         OverrideValue(o, "training.recompute") + " mb " +
         OverrideValue(o, "training.micro_batch_size");
}

Expected<BudgetPlan> PlanTokensInBudget(const ScenarioText& base,
                                        const std::vector<std::string>& overrides,
                                        const Scenario& sc, const SearchSpace& space,
                                        const RunOptions& options) {
  if (sc.model.is_moe()) {
    return Status::InvalidInput(
        "--objective tokens_in_budget takes a dense scenario (model.moe.num_experts=0); its "
        "MoE versions are the candidates");
  }
  auto dense = RunPoints(base, {overrides}, options);
  if (dense[0].cancelled) {
    BudgetPlan plan;
    plan.cancelled = true;
    return plan;
  }
  if (dense[0].outcome != PointResult::Outcome::kOk) {
    return Status::InvalidInput("the dense scenario itself does not " +
                                std::string(dense[0].outcome == PointResult::Outcome::kInvalid
                                                ? "simulate: " + dense[0].message
                                                : "fit in memory"));
  }
  BudgetPlan plan;
  plan.dense = std::move(dense[0]);
  plan.params = plan.dense.report.cost.params.total;
  plan.batch_tokens = static_cast<double>(sc.training.global_batch_tokens);
  plan.steps = 20 * plan.params / plan.batch_tokens;
  plan.budget_s = plan.steps * plan.dense.report.step_time_s;
  plan.explored = 1;
  for (int64_t e : space.experts) {
    for (int64_t k : space.every_k) {
      std::vector<std::string> moe_base = overrides;
      moe_base.push_back("model.moe.num_experts=" + std::to_string(e));
      moe_base.push_back("model.moe.top_k=2");
      moe_base.push_back("model.moe.capacity_factor=2");
      moe_base.push_back("model.moe.placement=EVERY_K");
      moe_base.push_back("model.moe.placement_k=" + std::to_string(k));
      Scenario moe = sc;
      moe.model.moe.num_experts = e;
      const auto results = RunPoints(base, ShardingPoints(moe, space, moe_base), options);
      BudgetCandidate c;
      c.experts = e;
      c.every_k = k;
      c.counts = CountOutcomes(results);
      if (const PointResult* best = FastestFeasible(results)) {
        c.best = *best;
        c.tokens = plan.budget_s / best->report.step_time_s * plan.batch_tokens;
      }
      for (const auto& p : results) plan.cancelled = plan.cancelled || p.cancelled;
      plan.explored += results.size();
      plan.candidates.push_back(std::move(c));
    }
  }
  std::stable_sort(plan.candidates.begin(), plan.candidates.end(),
                   [](const BudgetCandidate& x, const BudgetCandidate& y) {
                     const double tx = x.best ? 1 / x.best->report.step_time_s : 0;
                     const double ty = y.best ? 1 / y.best->report.step_time_s : 0;
                     return tx > ty;
                   });
  return plan;
}

}  // namespace moesim
