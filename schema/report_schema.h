// report_schema.h
//
// The one owner of the reports moesim writes: typed results and one JSON writer each, used by
// the `moesim` command (simulate, cost, validate, sweep, plan, topo), by report/ (which reads
// validation JSON back through ParseValidationJson) and by the Python module (python/); and the
// CSV the GUI exports of them (WriteValidationCsv, WriteBreakdownCsv, WriteStepOpsCsv,
// WriteBudgetCsv; the sweep rows' CSV is `moesim sweep --csv`'s). Every field, its type and its
// unit are documented in docs/schema.md; tests/schema checks every JSON the CLI writes for the
// shipped inputs against that document, and the CSV writers against hand-computed lines.
//
// Units: times in seconds (suffix _s), sizes in bytes (suffix _bytes / bytes_), rates per second
// (_per_s), FLOPs as counts, fractions in [0, 1] (mfu, dropped_token_fraction), percentages with
// a _pct or _pp suffix. JSON objects are written with their keys sorted (nlohmann::json), numbers
// as the shortest text that reads back to the same double, so the same input gives the same
// bytes.
//
// kSchemaVersion counts incompatible changes to these layouts (a field renamed, removed or given
// another unit or type); adding a field does not change it. It is documented, not written into
// each file, so that older files and the golden files stay as they are.
// Thread safety: pure functions.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "costmodel/costmodel.h"
#include "proto/scenario.h"
#include "schema/chrome_trace.h"
#include "sim/planner/budget.h"
#include "sim/planner/planner.h"
#include "sim/planner/validation_set.h"
#include "sim/step/simulate.h"
#include "topologies/analysis.h"
#include "topologies/placement.h"
#include "topologies/topology.h"

namespace moesim {

inline constexpr int kSchemaVersion = 1;

// ---- step report (`moesim simulate --json`) ----
nlohmann::json StepReportJson(const Scenario& sc, const SimReport& r);

// One op of a simulated step's timeline. REQUIRES a report made with keep_program.
struct OpRecord {
  std::string name;
  int32_t program = 0;  // pipeline stage (representative device)
  int32_t stream = 0;
  std::string stream_name;
  std::string phase;
  int64_t micro_batch = -1;
  double start_s = 0, end_s = 0;
  bool is_collective = false;
  std::string collective;    // kind, collectives only
  std::string axes;          // mesh axes joined by ',', collectives only
  std::string kernel_class;  // compute only
  double flops = 0;          // compute only
  double bytes = 0;          // collective: bytes sent; compute: bytes moved
  // A GEMM's achieved FLOP/s over its time on the timeline / the peak of its precision; < 0
  // when not a GEMM (attention, memory-bound ops, collectives) or of zero duration.
  double fraction_of_peak = -1;
  bool fp8 = false;
};
std::vector<OpRecord> StepOps(const Scenario& sc, const SimReport& r);

// The same ops as CSV (the GUI's Timeline export: the ops of the stages it shows), a header,
// then one line per op in the given order, numbers as the shortest text that reads back to the
// same double:
//   name,program,stream,stream_name,phase,micro_batch,start_s,end_s,is_collective,collective,
//   axes,kernel_class,flops,bytes,fraction_of_peak,fp8
// collective and axes are empty for compute ops, kernel_class and flops for collectives;
// fraction_of_peak is empty when < 0 (not a GEMM).
void WriteStepOpsCsv(const std::vector<OpRecord>& ops, std::ostream& out);

// The step's Chrome trace: a process per pipeline stage, a thread per stream, an op per event
// (args as OpRecord's fields). REQUIRES keep_program.
ChromeTrace StepTrace(const Scenario& sc, const SimReport& r);

// The breakdowns (breakdown_s) of labelled step reports as CSV (the GUI's Breakdown export), a
// header, then one line per report in the given order:
//   label,step_time_s,compute_s,exposed_comm_s,comm_total_s,bubble_s,idle_s,
//   compute_by_class.CLASS...,exposed_comm_by_collective.KEY...
// one compute_by_class and exposed_comm_by_collective column per key any of the reports has
// (sorted; 0 in a report without it). Times in seconds, numbers as the shortest text that reads
// back to the same double. REQUIRES every report non-null.
void WriteBreakdownCsv(const std::vector<std::pair<std::string, const SimReport*>>& reports,
                       std::ostream& out);

// ---- cost report (`moesim cost --json`) ----
// Compute time of one step by kernel class (KernelClassName) on the busiest pipeline stage: each
// op's time alone (ComputeTimeS), no communication, no overlap.
struct ClassTime {
  double time_s = 0, flops = 0;
};
struct StageCompute {
  int32_t stage = 0;
  std::map<std::string, ClassTime> by_class;
  double total_s = 0;
};
struct CostReport {
  ModelCost cost;
  MemoryReport memory;
  StageCompute compute;
};
CostReport ComputeCostReport(const Scenario& sc);
nlohmann::json CostReportJson(const Scenario& sc, const CostReport& c);

// ---- validation (`moesim validate --json`) ----
// `set` is the CSV path as given, `network` "analytical" or "flow".
nlohmann::json ValidationJson(const std::string& set, const std::string& network,
                              const ValidationReport& v);
// What a reader (report/) needs of that JSON, typed; errors name `file` and the field.
struct ValidationRecord {
  struct Row {
    std::string id, metric, source, baseline;
    double simulated = 0, measured = 0, error_pct = 0;
  };
  struct Relative {
    std::string id, baseline;
    double simulated_pct = 0, measured_pct = 0;
  };
  std::string set, network;
  std::vector<Row> rows;
  std::vector<Relative> relative;
  double mape_pct = 0;
};
Expected<ValidationRecord> ParseValidationJson(const nlohmann::json& j, const std::string& file);
// The same rows as CSV (the GUI's Validation export): a header, then one line per row of `v`
// in its order, numbers as the shortest text that reads back to the same double:
//   id,metric,simulated,measured,error_pct,baseline,simulated_pct,measured_pct,diff_pp,source
// baseline is the row's; simulated_pct, measured_pct and diff_pp are its relative entry's
// (empty cells when the row has none). Units as in the JSON (docs/schema.md).
void WriteValidationCsv(const ValidationReport& v, std::ostream& out);
// Whether `j` looks like that JSON (an object with "rows" and "mape_pct"), to tell it from other
// reports a reader accepts (validate-real's results).
bool IsValidationJson(const nlohmann::json& j);

// ---- sweep and plan rows (`moesim sweep --csv`) ----
// One point: its value of each varied field (`columns`), its status and figures. Figures are
// absent (simulated = false) for invalid points.
struct SweepRow {
  std::vector<std::string> values;  // one per column
  std::string status;               // "ok" | "invalid" | "does_not_fit"
  bool simulated = false;
  double step_time_s = 0, compute_s = 0, exposed_comm_s = 0, comm_total_s = 0, bubble_s = 0,
         idle_s = 0, mfu = 0, tokens_per_s = 0, tflops_per_device = 0, peak_bytes_per_device = 0;
  bool fits = false;
  std::string message;  // first line of why the point is invalid, else ""
};
// The figures' names, in CSV order after the columns: status, step_time_s, ..., message.
const std::vector<std::string>& SweepFieldNames();
SweepRow MakeSweepRow(const PointResult& p, const std::vector<std::string>& columns);
// {column: value (string), ..., "status": ..., "step_time_s": number or null, ...,
// "fits": bool or null, "message": string}, keys in CSV order.
nlohmann::ordered_json SweepRowJson(const SweepRow& row, const std::vector<std::string>& columns);
// The CSV: a header, then a row per point (numbers as %.6g; empty cells where not simulated).
void WriteSweepCsvHeader(const std::vector<std::string>& columns, std::ostream& out);
void WriteSweepCsvRow(const SweepRow& row, std::ostream& out);

// ---- budget plan rows (`moesim plan --objective tokens_in_budget --json`) ----
// One MoE candidate of a BudgetPlan (sim/planner/budget.h), ranked as the plan ranks them (most
// tokens first): its best sharding's sweep row (`figures`, columns none) when one is feasible,
// its parameter counts and tokens, and the dense budget every row shares. Times in seconds,
// parameters and tokens as counts.
struct BudgetRow {
  int64_t rank = 0;  // 1-based
  int64_t experts = 0, every_k = 0;
  bool feasible = false;      // a feasible sharding exists; else no figures, no parameters
  std::string configuration;  // DescribeSharding of the best sharding, "" when not feasible
  SweepRow figures;           // MakeSweepRow(best, {}), when feasible
  double params_total = 0, params_activated = 0;
  double tokens = 0;  // trained within the budget (0 when not feasible)
  size_t unfit = 0, invalid = 0;
  double dense_params = 0, dense_step_time_s = 0, budget_s = 0;
};
// The first `top` candidates of `plan` as rows.
std::vector<BudgetRow> MakeBudgetRows(const BudgetPlan& plan, size_t top);
// The fields' names in JSON and CSV order: rank, experts, every_k, configuration, then
// SweepFieldNames(), then params_total, params_activated, tokens, unfit, invalid, dense_params,
// dense_step_time_s, budget_s.
const std::vector<std::string>& BudgetFieldNames();
// {"rank", "experts", "every_k", "configuration" (string, null when not feasible), the sweep
// row's fields (only "status": "no_feasible_sharding" when not feasible), "params_total",
// "params_activated" (null when not feasible), "tokens", "unfit", "invalid", "dense_params",
// "dense_step_time_s", "budget_s"}, keys in that order.
nlohmann::ordered_json BudgetRowJson(const BudgetRow& row);
// The rows as CSV (the GUI's Budget export): the header BudgetFieldNames(), then one line per
// row, numbers as the shortest text that reads back to the same double; a row that is not
// feasible has status no_feasible_sharding and empty configuration, figures, message and
// parameter cells.
void WriteBudgetCsv(const std::vector<BudgetRow>& rows, std::ostream& out);

// ---- topology (`moesim topo --json`) ----
// `placement` may be null (no axes).
nlohmann::json TopologyJson(const Topology& topo, const TopologySummary& s,
                            const std::vector<AxisRing>& rings, const MeshPlacement* placement);

}  // namespace moesim
