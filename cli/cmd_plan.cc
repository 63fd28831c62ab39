// `moesim plan SCENARIO [--objective step_time|tokens_in_budget] [--top N] [--jobs N]`:
// enumerates shardings (mesh factorizations x strategies), micro-batching and recomputation
// (and, for the budget objective, expert counts and MoE placements), drops what is invalid or
// does not fit in memory (counted), and ranks the rest.
//   step_time:        the fastest feasible configurations of the scenario's model.
//   tokens_in_budget: Du et al. 2024's comparison (BRIEF section 4). The scenario is a dense
//                     model; its budget is its Chinchilla run (20 tokens per parameter) at its
//                     own step time; each MoE candidate, at its best sharding, trains on
//                     budget / its step time x batch tokens. Ranked by those tokens.
// --json FILE|- (tokens_in_budget) writes the ranked rows (schema/report_schema.h BudgetRow,
// docs/schema.md) as a JSON array; with "-" they replace the table on stdout.
// For a scenario in the megatron form (sharding.megatron) step_time searches Megatron-LM's space
// instead (--space megatron, docs/megatron.md) and prints the winner's Megatron-LM arguments.
#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <thread>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/mpi_share.h"
#include "cli/progress.h"
#include "common/limits.h"
#include "proto/megatron_args.h"
#include "proto/scenario_loader.h"
#include "schema/report_schema.h"
#include "sim/planner/budget.h"
#include "sim/planner/megatron_space.h"
#include "sim/planner/planner.h"

namespace moesim::cli {
namespace {

struct PlanArgs {
  ScenarioArgs scenario;
  std::string objective = "step_time";
  int top = 10;
  int jobs = 1;
  uint64_t max_memory = 0;
  SearchSpace space;
  std::string space_kind = "auto";
  MegatronSpace megatron;
  std::string json;  // tokens_in_budget: the rows as JSON to this file, "-" for stdout
};

// The step_time objective over Megatron-LM's space (sim/planner/megatron_space.h): the ranked
// table, then the winner's Megatron-LM arguments.
Status PlanMegatron(const PlanArgs& a, const Scenario& sc, const RunOptions& opts,
                    const std::function<double()>& seconds) {
  MegatronSpace space = a.megatron;
  space.max_pipeline = a.space.max_pipeline;
  const MegatronPoints points = EnumerateMegatronPoints(sc, space, a.scenario.overrides);
  RunOptions run = opts;
  run.keep_details = false;  // the winner's is loaded again below
  run.breakdown = false;     // ranked by step time; the table shows no breakdown
  auto results = RunPoints(a.scenario.path, points.points, run);
  const OutcomeCounts c = CountOutcomes(results);
  std::vector<const PointResult*> ok;
  for (const auto& p : results) {
    if (p.outcome == PointResult::Outcome::kOk) ok.push_back(&p);
  }
  std::stable_sort(ok.begin(), ok.end(), [](const PointResult* x, const PointResult* y) {
    return x->report.step_time_s < y->report.step_time_s;
  });
  std::cerr << "plan: explored " << results.size() << " configurations in " << Fixed(seconds(), 2)
            << " s\n";
  std::cout << "explored " << results.size() << " Megatron-LM configurations: " << c.ok
            << " feasible, " << c.unfit << " do not fit in memory, " << c.invalid << " invalid ("
            << points.skipped << " combinations skipped: no Megatron-LM run has them)\n\n";
  std::printf("%-4s %-60s %9s %6s %9s\n", "rank", "configuration", "step_s", "MFU", "peak_GiB");
  for (size_t i = 0; i < ok.size() && i < static_cast<size_t>(a.top); ++i) {
    std::printf("%-4zu %-60s %9.4f %5.1f%% %9.2f\n", i + 1,
                DescribeMegatronPoint(ok[i]->overrides).c_str(), ok[i]->report.step_time_s,
                100 * ok[i]->report.mfu, ok[i]->report.memory.peak_bytes / (1024.0 * 1024 * 1024));
  }
  if (ok.empty()) return Status::Ok();
  auto winner = LoadScenario({a.scenario.path, ok[0]->overrides});
  if (!winner.ok()) return winner.status();
  auto args = MegatronArgs(*winner);
  if (!args.ok()) return args.status();
  std::cout << "\nMegatron-LM arguments of rank 1 (moesim ... --megatron-args \"...\" reads "
               "them back):\n"
            << JoinShellArgs(*args) << "\n";
  return Status::Ok();
}

RunFn Setup(CLI::App* sub) {
  auto a = std::make_shared<PlanArgs>();
  a->jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  AddScenarioOptions(sub, &a->scenario, true);
  sub->add_option("--objective", a->objective, "step_time | tokens_in_budget")
      ->check(CLI::IsMember({"step_time", "tokens_in_budget"}));
  sub->add_option("--top", a->top, "Configurations to list")->check(CLI::PositiveNumber);
  sub->add_option("--json", a->json,
                  "tokens_in_budget: write the --top rows as a JSON array to FILE (- for stdout "
                  "instead of the table; docs/schema.md)")
      ->type_name("FILE|-");
  CLI::Option* jobs =
      sub->add_option("--jobs", a->jobs,
                      "Parallel simulations (default: all cores; under mpirun, per rank: the "
                      "node's cores over its ranks)")
          ->check(CLI::Range(int64_t{1}, limits::kMaxJobs));
  AddMaxMemoryOption(sub, &a->max_memory);
  sub->add_option("--max-pipeline", a->space.max_pipeline, "Largest pipeline axis tried")
      ->check(CLI::PositiveNumber);
  sub->add_option("--strategies", a->space.strategies, "Strategies tried")->delimiter(',');
  sub->add_option("--experts", a->space.experts, "Expert counts tried (tokens_in_budget)")
      ->delimiter(',');
  sub->add_option("--space", a->space_kind,
                  "auto | legacy | megatron: the step_time search over four-axis meshes and "
                  "strategies, or Megatron-LM's sizes (auto: megatron for a scenario in the "
                  "megatron form)")
      ->check(CLI::IsMember({"auto", "legacy", "megatron"}));
  MegatronSpace& m = a->megatron;
  sub->add_option("--tp", m.tensor, "Megatron: tensor sizes (default: divisors of GPUs per node)")
      ->delimiter(',');
  sub->add_option("--cp", m.context, "Megatron: context sizes (default 1)")->delimiter(',');
  sub->add_option("--pp", m.pipeline, "Megatron: pipeline sizes (default: up to --max-pipeline)")
      ->delimiter(',');
  sub->add_option("--vpp", m.virtual_stages, "Megatron: virtual stages (default 1,2,4)")
      ->delimiter(',');
  sub->add_option("--ep", m.expert, "Megatron: expert sizes (default: divisors of the experts)")
      ->delimiter(',');
  sub->add_option("--etp-one", m.expert_tensor_one,
                  "Megatron: also expert tensor 1 besides = tensor (default true)");
  sub->add_option("--max-micro-batch", m.max_micro_batch,
                  "Megatron: micro-batch sizes dividing the local batch up to this (default 8)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--recompute", m.recompute, "Megatron: NONE,SELECTIVE,FULL (default all)")
      ->delimiter(',')
      ->check(CLI::IsMember({"NONE", "SELECTIVE", "FULL"}));
  sub->add_option("--fsdp", m.fsdp, "Megatron: FSDP off/on tried (default false)")->delimiter(',');
  return [a, jobs]() -> Status {
    MpiSession mpi;
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
    opts.jobs = jobs->count() == 0 ? DefaultJobs(mpi) : a->jobs;
    opts.max_memory_bytes = static_cast<double>(a->max_memory);
    opts.simulate_unfit = false;
    opts.distributor = mpi.distributor();
    Progress progress("plan", "configurations", std::cerr, StderrIsTerminal());
    opts.progress = [&progress](size_t done, size_t total) { progress.Update(done, total); };
    auto seconds = [&]() {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };

    const bool megatron =
        a->space_kind == "megatron" || (a->space_kind == "auto" && UsesMegatronForm(*sc));
    if (megatron && a->objective != "step_time") {
      return Status::InvalidInput("--space megatron searches for --objective step_time only");
    }
    if (megatron && !UsesMegatronForm(*sc)) {
      return Status::InvalidInput(a->scenario.path +
                                  ": --space megatron needs a scenario in the megatron form "
                                  "(sharding.megatron { ... }, docs/megatron.md)");
    }
    if (!a->json.empty() && a->objective != "tokens_in_budget") {
      return Status::InvalidInput("--json writes the rows of --objective tokens_in_budget only");
    }
    if (megatron) return PlanMegatron(*a, *sc, opts, seconds);
    if (a->objective == "step_time") {
      auto results =
          RunPoints(a->scenario.path, ShardingPoints(*sc, a->space, a->scenario.overrides), opts);
      const OutcomeCounts c = CountOutcomes(results);
      std::vector<const PointResult*> ok;
      for (const auto& p : results) {
        if (p.outcome == PointResult::Outcome::kOk) ok.push_back(&p);
      }
      std::stable_sort(ok.begin(), ok.end(), [](const PointResult* x, const PointResult* y) {
        return x->report.step_time_s < y->report.step_time_s;
      });
      // The wall-clock time goes to stderr: stdout is the same for the same input.
      std::cerr << "plan: explored " << results.size() << " configurations in "
                << Fixed(seconds(), 2) << " s\n";
      std::cout << "explored " << results.size() << " configurations: " << c.ok << " feasible, "
                << c.unfit << " do not fit in memory, " << c.invalid << " invalid\n\n";
      std::printf("%-4s %-60s %9s %6s %9s\n", "rank", "configuration", "step_s", "MFU", "peak_GiB");
      for (size_t i = 0; i < ok.size() && i < static_cast<size_t>(a->top); ++i) {
        std::printf("%-4zu %-60s %9.4f %5.1f%% %9.2f\n", i + 1,
                    DescribeSharding(ok[i]->overrides).c_str(), ok[i]->report.step_time_s,
                    100 * ok[i]->report.mfu,
                    ok[i]->report.memory.peak_bytes / (1024.0 * 1024 * 1024));
      }
      return Status::Ok();
    }

    // tokens_in_budget.
    auto base = ReadScenarioText(a->scenario.path);
    if (!base.ok()) return base.status();
    auto plan = PlanTokensInBudget(*base, a->scenario.overrides, *sc, a->space, opts);
    if (!plan.ok()) return plan.status();
    auto explored = [&] {
      std::cerr << "plan: explored " << plan->explored << " configurations in "
                << Fixed(seconds(), 2) << " s\n";
    };
    // Under mpirun every rank has every result; rank 0 alone writes the file.
    if (!a->json.empty() && (mpi.rank() == 0 || a->json == "-")) {
      nlohmann::ordered_json rows = nlohmann::ordered_json::array();
      for (const BudgetRow& row : MakeBudgetRows(*plan, static_cast<size_t>(a->top))) {
        rows.push_back(BudgetRowJson(row));
      }
      Status written = WriteJsonText(rows.dump(2) + "\n", a->json);
      if (!written.ok()) return written;
      if (a->json == "-") {
        explored();
        return Status::Ok();
      }
    }
    std::cout << "dense: " << Count(plan->params)
              << " parameters, Chinchilla 20 tokens/parameter = " << Count(20 * plan->params)
              << " tokens = " << Fixed(plan->steps, 0) << " steps of "
              << Fixed(plan->dense.report.step_time_s, 4) << " s -> budget "
              << Fixed(plan->budget_s / 3600, 2) << " h\n\n";
    explored();
    std::cout << "explored " << plan->explored << " configurations\n\n";
    std::printf("%-8s %-6s %-52s %9s %9s %9s %12s\n", "experts", "every", "best sharding", "step_s",
                "total", "active", "tokens");
    for (size_t i = 0; i < plan->candidates.size() && i < static_cast<size_t>(a->top); ++i) {
      const BudgetCandidate& c = plan->candidates[i];
      if (!c.best) {
        std::printf("%-8lld %-6lld no feasible sharding (%zu unfit, %zu invalid)\n",
                    static_cast<long long>(c.experts), static_cast<long long>(c.every_k),
                    c.counts.unfit, c.counts.invalid);
        continue;
      }
      const SimReport& r = c.best->report;
      std::printf("%-8lld %-6lld %-52s %9.4f %9s %9s %12s\n", static_cast<long long>(c.experts),
                  static_cast<long long>(c.every_k), DescribeSharding(c.best->overrides).c_str(),
                  r.step_time_s, Count(r.cost.params.total).c_str(),
                  Count(r.cost.params.activated).c_str(), Count(c.tokens).c_str());
    }
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("plan", "Search shardings (and MoE candidates in a compute budget)", 60,
                        Setup);

}  // namespace moesim::cli
