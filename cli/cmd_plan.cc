// `moesim plan SCENARIO [--objective step_time|tokens_in_budget] [--top N] [--jobs N]`:
// enumerates shardings (mesh factorizations x strategies), micro-batching and recomputation
// (and, for the budget objective, expert counts and MoE placements), drops what is invalid or
// does not fit in memory (counted), and ranks the rest.
//   step_time:        the fastest feasible configurations of the scenario's model.
//   tokens_in_budget: Du et al. 2024's comparison (BRIEF section 4). The scenario is a dense
//                     model; its budget is its Chinchilla run (20 tokens per parameter) at its
//                     own step time; each MoE candidate, at its best sharding, trains on
//                     budget / its step time x batch tokens. Ranked by those tokens.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <thread>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/planner_output.h"
#include "proto/scenario_loader.h"
#include "sim/planner/planner.h"

namespace moesim::cli {
namespace {

struct PlanArgs {
  ScenarioArgs scenario;
  std::string objective = "step_time";
  int top = 10;
  int jobs = 1;
  int64_t max_pipeline = 8;
  std::vector<std::string> strategies = {"APPLE_3D", "MEGATRON", "FSDP", "ZERO1"};
  std::vector<int64_t> experts = {8, 16, 32, 64, 128, 256};
  std::vector<int64_t> every_k = {2, 4};
};

// Every sharding / micro-batch / recompute variant of one model, as override lists.
std::vector<std::vector<std::string>> ShardingPoints(const Scenario& sc, const PlanArgs& a,
                                                     std::vector<std::string> base) {
  std::vector<std::vector<std::string>> out;
  const int64_t experts = sc.model.moe.num_experts;
  for (const auto& mesh :
       MeshFactorizations(sc.cluster.num_devices, experts, sc.model.num_layers, a.max_pipeline)) {
    for (const std::string& strategy : a.strategies) {
      for (const char* recompute : {"NONE", "SELECTIVE", "FULL"}) {
        std::vector<int64_t> mbs = {0};
        if (mesh[3] > 1) mbs = {1, 2, 4};
        for (int64_t mb : mbs) {
          auto p = base;
          p.push_back("sharding.strategy=" + strategy);
          p.push_back("sharding.mesh.data=" + std::to_string(mesh[0]));
          p.push_back("sharding.mesh.expert=" + std::to_string(mesh[1]));
          p.push_back("sharding.mesh.model=" + std::to_string(mesh[2]));
          p.push_back("sharding.mesh.pipeline=" + std::to_string(mesh[3]));
          p.push_back(std::string("training.recompute=") + recompute);
          p.push_back("training.micro_batch_size=" + std::to_string(mb));
          out.push_back(std::move(p));
        }
      }
    }
  }
  return out;
}

std::string Describe(const PointResult& p) {
  const auto& o = p.overrides;
  return OverrideValue(o, "sharding.strategy") + " (" + OverrideValue(o, "sharding.mesh.data") +
         "," + OverrideValue(o, "sharding.mesh.expert") + "," +
         OverrideValue(o, "sharding.mesh.model") + "," +
         OverrideValue(o, "sharding.mesh.pipeline") + ") recompute " +
         OverrideValue(o, "training.recompute") + " mb " +
         OverrideValue(o, "training.micro_batch_size");
}

struct Counts {
  size_t ok = 0, invalid = 0, unfit = 0;
};

Counts Tally(const std::vector<PointResult>& r) {
  Counts c;
  for (const auto& p : r) {
    if (p.outcome == PointResult::Outcome::kOk) ++c.ok;
    if (p.outcome == PointResult::Outcome::kInvalid) ++c.invalid;
    if (p.outcome == PointResult::Outcome::kDoesNotFit) ++c.unfit;
  }
  return c;
}

const PointResult* Best(const std::vector<PointResult>& r) {
  const PointResult* best = nullptr;
  for (const auto& p : r) {
    if (p.outcome != PointResult::Outcome::kOk) continue;
    if (best == nullptr || p.report.step_time_s < best->report.step_time_s) best = &p;
  }
  return best;
}

RunFn Setup(CLI::App* sub) {
  auto a = std::make_shared<PlanArgs>();
  a->jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  AddScenarioOptions(sub, &a->scenario, true);
  sub->add_option("--objective", a->objective, "step_time | tokens_in_budget")
      ->check(CLI::IsMember({"step_time", "tokens_in_budget"}));
  sub->add_option("--top", a->top, "Configurations to list")->check(CLI::PositiveNumber);
  sub->add_option("--jobs", a->jobs, "Parallel simulations (default: all cores)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-pipeline", a->max_pipeline, "Largest pipeline axis tried")
      ->check(CLI::PositiveNumber);
  sub->add_option("--strategies", a->strategies, "Strategies tried")->delimiter(',');
  sub->add_option("--experts", a->experts, "Expert counts tried (tokens_in_budget)")
      ->delimiter(',');
  return [a]() -> Status {
    auto sc = LoadScenario({a->scenario.path, a->scenario.overrides});
    if (!sc.ok()) {
      // The search replaces the mesh: a base whose own mesh no longer fits the cluster (e.g.
      // after --set cluster.topology=...) is still a model and a cluster to plan for.
      auto relaxed = a->scenario.overrides;
      for (const char* o :
           {"sharding.mesh.data=0", "sharding.mesh.expert=0", "sharding.mesh.model=0",
            "sharding.mesh.pipeline=0", "training.micro_batch_size=0"}) {
        relaxed.push_back(o);
      }
      auto retry = LoadScenario({a->scenario.path, relaxed});
      if (!retry.ok()) return sc.status();
      sc = std::move(retry);
    }
    const auto start = std::chrono::steady_clock::now();
    RunOptions opts;
    opts.jobs = a->jobs;
    opts.simulate_unfit = false;
    size_t total_points = 0;
    opts.progress = [&total_points](size_t done, size_t total) {
      if (done % 50 == 0 || done == total) {
        std::cerr << "\rplan: " << done << "/" << total << " configurations"
                  << (done == total ? "\n" : "") << std::flush;
      }
      total_points = total;
    };
    auto seconds = [&]() {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };

    if (a->objective == "step_time") {
      auto results =
          RunPoints(a->scenario.path, ShardingPoints(*sc, *a, a->scenario.overrides), opts);
      const Counts c = Tally(results);
      std::vector<const PointResult*> ok;
      for (const auto& p : results) {
        if (p.outcome == PointResult::Outcome::kOk) ok.push_back(&p);
      }
      std::stable_sort(ok.begin(), ok.end(), [](const PointResult* x, const PointResult* y) {
        return x->report.step_time_s < y->report.step_time_s;
      });
      std::cout << "explored " << results.size() << " configurations in " << Fixed(seconds(), 2)
                << " s: " << c.ok << " feasible, " << c.unfit << " do not fit in memory, "
                << c.invalid << " invalid\n\n";
      std::printf("%-4s %-60s %9s %6s %9s\n", "rank", "configuration", "step_s", "MFU", "peak_GiB");
      for (size_t i = 0; i < ok.size() && i < static_cast<size_t>(a->top); ++i) {
        std::printf("%-4zu %-60s %9.4f %5.1f%% %9.2f\n", i + 1, Describe(*ok[i]).c_str(),
                    ok[i]->report.step_time_s, 100 * ok[i]->report.mfu,
                    ok[i]->report.memory.peak_bytes / (1024.0 * 1024 * 1024));
      }
      return Status::Ok();
    }

    // tokens_in_budget.
    if (sc->model.is_moe()) {
      return Status::InvalidInput(
          "--objective tokens_in_budget takes a dense scenario (model.moe.num_experts=0); its "
          "MoE versions are the candidates");
    }
    auto dense = RunPoints(a->scenario.path, {a->scenario.overrides}, opts);
    if (dense[0].outcome != PointResult::Outcome::kOk) {
      return Status::InvalidInput("the dense scenario itself does not " +
                                  std::string(dense[0].outcome == PointResult::Outcome::kInvalid
                                                  ? "simulate: " + dense[0].message
                                                  : "fit in memory"));
    }
    const double params = dense[0].report.cost.params.total;
    const double batch = static_cast<double>(sc->training.global_batch_tokens);
    const double steps = 20 * params / batch;
    const double budget_s = steps * dense[0].report.step_time_s;
    std::cout << "dense: " << Count(params)
              << " parameters, Chinchilla 20 tokens/parameter = " << Count(20 * params)
              << " tokens = " << Fixed(steps, 0) << " steps of "
              << Fixed(dense[0].report.step_time_s, 4) << " s -> budget "
              << Fixed(budget_s / 3600, 2) << " h\n\n";
    struct Candidate {
      int64_t experts, every;
      const PointResult* best = nullptr;
      Counts counts;
    };
    std::vector<std::vector<PointResult>> all;
    std::vector<Candidate> cands;
    for (int64_t e : a->experts) {
      for (int64_t k : a->every_k) {
        std::vector<std::string> base = a->scenario.overrides;
        base.push_back("model.moe.num_experts=" + std::to_string(e));
        base.push_back("model.moe.top_k=2");
        base.push_back("model.moe.capacity_factor=2");
        base.push_back("model.moe.placement=EVERY_K");
        base.push_back("model.moe.placement_k=" + std::to_string(k));
        Scenario moe = *sc;
        moe.model.moe.num_experts = e;
        all.push_back(RunPoints(a->scenario.path, ShardingPoints(moe, *a, base), opts));
        cands.push_back({e, k, nullptr, {}});
      }
    }
    size_t explored = 1;
    for (size_t i = 0; i < cands.size(); ++i) {
      cands[i].best = Best(all[i]);
      cands[i].counts = Tally(all[i]);
      explored += all[i].size();
    }
    std::stable_sort(cands.begin(), cands.end(), [](const Candidate& x, const Candidate& y) {
      const double tx = x.best ? 1 / x.best->report.step_time_s : 0;
      const double ty = y.best ? 1 / y.best->report.step_time_s : 0;
      return tx > ty;
    });
    std::cout << "explored " << explored << " configurations in " << Fixed(seconds(), 2)
              << " s\n\n";
    std::printf("%-8s %-6s %-52s %9s %9s %9s %12s\n", "experts", "every", "best sharding", "step_s",
                "total", "active", "tokens");
    for (size_t i = 0; i < cands.size() && i < static_cast<size_t>(a->top); ++i) {
      const Candidate& c = cands[i];
      if (c.best == nullptr) {
        std::printf("%-8lld %-6lld no feasible sharding (%zu unfit, %zu invalid)\n",
                    static_cast<long long>(c.experts), static_cast<long long>(c.every),
                    c.counts.unfit, c.counts.invalid);
        continue;
      }
      const SimReport& r = c.best->report;
      std::printf("%-8lld %-6lld %-52s %9.4f %9s %9s %12s\n", static_cast<long long>(c.experts),
                  static_cast<long long>(c.every), Describe(*c.best).c_str(), r.step_time_s,
                  Count(r.cost.params.total).c_str(), Count(r.cost.params.activated).c_str(),
                  Count(budget_s / r.step_time_s * batch).c_str());
    }
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("plan", "Search shardings (and MoE candidates in a compute budget)", 60,
                        Setup);

}  // namespace moesim::cli
