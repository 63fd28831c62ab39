// `moesim validate SET.csv [--network ...] [--json FILE|-]`: simulated vs measured, per row, and
// the mean absolute percentage error; for rows with a baseline, the change against it,
// simulated and measured. A validation set is a CSV with the header
//   id,scenario,overrides,metric,measured,source[,baseline]
// scenario: a path relative to the CSV's folder, to its parent (the repository root for
// validation/*.csv) or to the working directory, or `default`;
// overrides: PATH=VALUE joined by ';'; metric: step_time_s | tflops_per_device | mfu |
// tokens_per_s_per_device. Large errors are results, not failures: exit 0. The JSON is what
// `moesim report` draws a validation set's error tables and plots from.
#include <cstdio>

#include "cli/command.h"
#include "cli/format.h"
#include "schema/report_schema.h"
#include "sim/planner/validation_set.h"

namespace moesim::cli {
namespace {

RunFn Setup(CLI::App* sub) {
  auto set = std::make_shared<std::string>();
  auto json = std::make_shared<std::string>();
  auto network = std::make_shared<std::string>("analytical");
  sub->add_option("set", *set,
                  "Validation set CSV (id,scenario,overrides,metric,measured,source[,baseline])")
      ->required();
  sub->add_option("--network", *network, "analytical | flow")
      ->check(CLI::IsMember({"analytical", "flow"}));
  sub->add_option("--json", *json,
                  "Write JSON to FILE, or to stdout with - (`moesim report FILE` turns it into "
                  "tables and plots)")
      ->type_name("FILE|-");
  return [set, json, network]() -> Status {
    auto rows = ReadValidationSet(*set);
    if (!rows.ok()) return rows.status();
    const NetworkLevel level = *network == "flow" ? NetworkLevel::kFlow : NetworkLevel::kAnalytical;
    ValidationReport report;
    if (*json != "-") {
      std::printf("%-28s %-18s %12s %12s %9s\n", "id", "metric", "simulated", "measured", "error");
    }
    for (const ValidationRow& row : *rows) {
      auto r = EvaluateValidationRow(*set, row, level);
      if (!r.ok()) return r.status();
      if (*json != "-") {
        // Row by row, as each finishes: a long set shows progress.
        std::printf("%-28s %-18s %12.4g %12.4g %8.1f%%\n", row.id.c_str(), row.metric.c_str(),
                    r->simulated, row.measured, r->error_pct);
        std::fflush(stdout);
      }
      report.results.push_back(std::move(*r));
    }
    report.mape_pct = MeanAbsolutePercentError(report.results);
    report.relatives = RelativeChanges(report.results);
    const double mape = report.mape_pct;
    const std::vector<RelativeResult>& rel = report.relatives;
    if (*json != "-") {
      std::printf("MAPE %.1f%% over %zu rows (network %s)\n", mape, rows->size(), network->c_str());
      if (!rel.empty()) {
        std::printf("\n%-28s %-28s %10s %10s %11s\n", "change of", "against", "simulated",
                    "measured", "difference");
        for (const RelativeResult& r : rel) {
          std::printf("%-28s %-28s %+9.1f%% %+9.1f%% %+8.1f pp\n", r.id.c_str(), r.baseline.c_str(),
                      r.simulated_pct, r.measured_pct, r.diff_pp);
        }
      }
    }
    if (!json->empty()) return WriteJson(ValidationJson(*set, *network, report), *json);
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("validate", "Simulated vs measured over a validation set CSV; MAPE", 40,
                        Setup);

}  // namespace moesim::cli
