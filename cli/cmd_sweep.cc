// `moesim sweep SCENARIO --vary PATH=V1,V2,... [--vary ...] [--set ...] [--csv FILE|-]
// [--json FILE|-] [--jobs N] [--network ...]`: the grid over every --vary, simulated in parallel; a
// readable table on stdout, one CSV row per point, progress on stderr. Under mpirun the points are
// split over the ranks (cli/mpi_share.h). Invalid or unfit points are rows
// too (status column), not failures.
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/mpi_share.h"
#include "cli/planner_output.h"
#include "cli/progress.h"
#include "common/limits.h"
#include "sim/planner/planner.h"

namespace moesim::cli {
namespace {

RunFn Setup(CLI::App* sub) {
  auto args = std::make_shared<ScenarioArgs>();
  auto vary = std::make_shared<std::vector<std::string>>();
  auto csv = std::make_shared<std::string>();
  auto json = std::make_shared<std::string>();
  auto jobs =
      std::make_shared<int>(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  auto network = std::make_shared<std::string>("analytical");
  AddScenarioOptions(sub, args.get(), true);
  sub->add_option("--vary", *vary, "A field and its values, e.g. model.moe.num_experts=8,16,32")
      ->type_name("PATH=V1,V2,...")
      ->required();
  sub->add_option("--csv", *csv, "Write one CSV row per point to FILE (- for stdout)")
      ->type_name("FILE|-");
  sub->add_option("--json", *json,
                  "Write the rows as a JSON array to FILE (- for stdout; docs/schema.md)")
      ->type_name("FILE|-");
  CLI::Option* jobs_option =
      sub->add_option("--jobs", *jobs,
                      "Parallel simulations (default: all cores; under mpirun, per rank: the "
                      "node's cores over its ranks)")
          ->check(CLI::Range(int64_t{1}, limits::kMaxJobs));
  auto max_memory = std::make_shared<uint64_t>(0);
  AddMaxMemoryOption(sub, max_memory.get());
  sub->add_option("--network", *network, "analytical | flow")
      ->check(CLI::IsMember({"analytical", "flow"}));
  return [args, vary, csv, json, jobs, jobs_option, network, max_memory]() -> Status {
    MpiSession mpi;
    auto points = GridPoints(args->overrides, *vary);
    if (!points.ok()) return points.status();
    RunOptions opts;
    opts.jobs = jobs_option->count() == 0 ? DefaultJobs(mpi) : *jobs;
    opts.distributor = mpi.distributor();
    opts.max_memory_bytes = static_cast<double>(*max_memory);
    opts.network = *network == "flow" ? NetworkLevel::kFlow : NetworkLevel::kAnalytical;
    Progress progress("sweep", "points", std::cerr, StderrIsTerminal());
    opts.progress = [&progress](size_t done, size_t total) { progress.Update(done, total); };
    const auto results = RunPoints(args->path, *points, opts);
    std::vector<std::string> columns;
    for (const std::string& spec : *vary) columns.push_back(spec.substr(0, spec.find('=')));
    const size_t base = args->overrides.size();
    if (*csv != "-" && *json != "-") PrintPointsTable(results, columns, base, std::cout);
    // Under mpirun every rank has every result; rank 0 alone writes them.
    if (mpi.rank() != 0) return Status::Ok();
    if (!csv->empty()) MOESIM_RETURN_IF_ERROR(WritePointsCsv(results, columns, base, *csv));
    if (!json->empty()) {
      nlohmann::ordered_json rows = nlohmann::ordered_json::array();
      for (const PointResult& p : results) {
        rows.push_back(SweepRowJson(MakeSweepRow(p, columns), columns));
      }
      return WriteJsonText(rows.dump(2) + "\n", *json);
    }
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("sweep", "Simulate a grid of --vary values in parallel; CSV of results", 50,
                        Setup);

}  // namespace moesim::cli
