// schema/report_schema.h's CSV writers against hand-computed lines, column by column: the GUI's
// Validation (WriteValidationCsv), Breakdown (WriteBreakdownCsv), Timeline (WriteStepOpsCsv) and
// Budget (WriteBudgetCsv) exports, their units and their empty cells.
// Registered in tests/calib/CMakeLists.txt (the schema's C++ tests), run as schema_csv_tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "schema/report_schema.h"

namespace moesim {
namespace {

ValidationResult Result(const std::string& id, const std::string& metric, double measured,
                        double simulated, const std::string& baseline, const std::string& source) {
  ValidationResult r;
  r.row.id = id;
  r.row.metric = metric;
  r.row.measured = measured;
  r.row.baseline = baseline;
  r.row.source = source;
  r.simulated = simulated;
  r.error_pct = 100 * (simulated / measured - 1);
  return r;
}

TEST(SchemaCsv, ValidationColumnsAndValues) {
  ValidationReport v;
  // 1.25 s simulated against 1 s measured: +25%; 2.5 s against 2 s: +25%.
  v.results = {Result("dense", "step_time_s", 1.0, 1.25, "", "Paper, table 2"),
               Result("moe", "step_time_s", 2.0, 2.5, "dense", "Paper")};
  // The MoE row's change against the dense row: simulated 2.5 / 1.25 - 1 = +100%, measured
  // 2 / 1 - 1 = +100%, difference 0 pp.
  v.relatives = RelativeChanges(v.results);
  ASSERT_EQ(v.relatives.size(), 1u);
  std::ostringstream out;
  WriteValidationCsv(v, out);
  EXPECT_EQ(out.str(),
            "id,metric,simulated,measured,error_pct,baseline,simulated_pct,measured_pct,diff_pp,"
            "source\n"
            "dense,step_time_s,1.25,1,25,,,,,\"Paper, table 2\"\n"
            "moe,step_time_s,2.5,2,25,dense,100,100,0,Paper\n");
}

TEST(SchemaCsv, ValidationNumbersReadBackExactly) {
  ValidationReport v;
  v.results = {Result("a", "mfu", 0.3, 0.1, "", "s")};
  RelativeResult rel;
  rel.id = "a";
  rel.baseline = "b";
  rel.simulated_pct = -12.5;
  rel.measured_pct = 1.0 / 3;
  rel.diff_pp = -12.5 - 1.0 / 3;
  v.relatives = {rel};
  std::ostringstream out;
  WriteValidationCsv(v, out);
  // error_pct = 100 (0.1 / 0.3 - 1), at full precision: the shortest text of the double.
  EXPECT_EQ(out.str(),
            "id,metric,simulated,measured,error_pct,baseline,simulated_pct,measured_pct,diff_pp,"
            "source\n"
            "a,mfu,0.1,0.3,-66.66666666666666,,-12.5,0.3333333333333333,-12.833333333333334,s\n");
}

// Two reports whose kernel classes and collectives differ: the union of keys, sorted, with 0
// where a report lacks one; times in seconds as given.
TEST(SchemaCsv, BreakdownColumnsAreTheUnionOfKeys) {
  SimReport a;
  a.step_time_s = 1.5;
  a.breakdown.compute_s = 1;
  a.breakdown.compute_by_class = {{"gemm", 0.75}, {"attention", 0.25}};
  a.breakdown.exposed_comm_s = 0.25;
  a.breakdown.comm_total_s = 0.5;
  a.breakdown.exposed_by_collective = {{"all_to_all expert", 0.125}};
  a.breakdown.bubble_s = 0.125;
  a.breakdown.idle_s = 0.125;
  SimReport b;
  b.step_time_s = 2e-3;
  b.breakdown.compute_s = 1e-3;
  b.breakdown.compute_by_class = {{"memory", 1e-3}};
  b.breakdown.exposed_comm_s = 1e-3;
  b.breakdown.comm_total_s = 1e-3;
  b.breakdown.exposed_by_collective = {{"all_reduce data", 1e-3}};
  std::ostringstream out;
  WriteBreakdownCsv({{"8E (1, 8, 1, 1)", &a}, {"this scenario", &b}}, out);
  EXPECT_EQ(out.str(),
            "label,step_time_s,compute_s,exposed_comm_s,comm_total_s,bubble_s,idle_s,"
            "compute_by_class.attention,compute_by_class.gemm,compute_by_class.memory,"
            "exposed_comm_by_collective.all_reduce data,"
            "exposed_comm_by_collective.all_to_all expert\n"
            "\"8E (1, 8, 1, 1)\",1.5,1,0.25,0.5,0.125,0.125,0.25,0.75,0,0,0.125\n"
            "this scenario,0.002,0.001,0.001,0.001,0,0,0,0,0.001,0.001,0\n");
}

TEST(SchemaCsv, StepOpsComputeAndCollective) {
  OpRecord gemm;
  gemm.name = "layer0.moe.w1";
  gemm.program = 1;
  gemm.stream = 0;
  gemm.stream_name = "compute";
  gemm.phase = "forward";
  gemm.micro_batch = 3;
  gemm.start_s = 0.5;
  gemm.end_s = 0.75;
  gemm.kernel_class = "gemm";
  gemm.flops = 2e12;
  gemm.bytes = 4096;
  gemm.fraction_of_peak = 0.8;
  gemm.fp8 = true;
  OpRecord a2a;
  a2a.name = "layer0.moe.dispatch";
  a2a.program = 1;
  a2a.stream = 1;
  a2a.stream_name = "comm";
  a2a.phase = "forward";
  a2a.start_s = 0.25;
  a2a.end_s = 0.5;
  a2a.is_collective = true;
  a2a.collective = "all_to_all";
  a2a.axes = "expert,data";
  a2a.bytes = 1048576;
  std::ostringstream out;
  WriteStepOpsCsv({gemm, a2a}, out);
  EXPECT_EQ(out.str(),
            "name,program,stream,stream_name,phase,micro_batch,start_s,end_s,is_collective,"
            "collective,axes,kernel_class,flops,bytes,fraction_of_peak,fp8\n"
            "layer0.moe.w1,1,0,compute,forward,3,0.5,0.75,false,,,gemm,2e+12,4096,0.8,true\n"
            "layer0.moe.dispatch,1,1,comm,forward,-1,0.25,0.5,true,all_to_all,\"expert,data\",,,"
            "1048576,,false\n");
}

// A tokens-in-budget plan by hand: a dense 1e8-parameter model at 0.5 s a step, 2 candidates.
BudgetPlan TwoCandidatePlan() {
  BudgetPlan plan;
  plan.params = 1e8;
  plan.batch_tokens = 1e6;
  plan.steps = 2000;  // 20 x 1e8 / 1e6
  plan.dense.report.step_time_s = 0.5;
  plan.budget_s = 1000;  // 2000 steps x 0.5 s
  BudgetCandidate moe;
  moe.experts = 16;
  moe.every_k = 2;
  PointResult best;
  best.outcome = PointResult::Outcome::kOk;
  best.overrides = {"sharding.strategy=APPLE_3D", "sharding.mesh.data=4",
                    "sharding.mesh.expert=2",     "sharding.mesh.model=1",
                    "sharding.mesh.pipeline=1",   "training.recompute=FULL",
                    "training.micro_batch_size=0"};
  SimReport& r = best.report;
  r.step_time_s = 0.625;
  r.breakdown.compute_s = 0.5;
  r.breakdown.exposed_comm_s = 0.125;
  r.breakdown.comm_total_s = 0.25;
  r.breakdown.bubble_s = 0;
  r.breakdown.idle_s = 0;
  r.mfu = 0.375;
  r.tokens_per_s = 1.6e6;  // 1e6 tokens / 0.625 s
  r.tflops_per_device = 123.5;
  r.memory.peak_bytes = 3.5e10;
  r.memory.fits = true;
  r.cost.params.total = 4e8;
  r.cost.params.activated = 1.5e8;
  moe.best = best;
  moe.counts.unfit = 3;
  moe.counts.invalid = 1;
  moe.tokens = 1.6e9;  // 1000 s / 0.625 s x 1e6 tokens
  BudgetCandidate none;
  none.experts = 256;
  none.every_k = 4;
  none.counts.unfit = 7;
  none.counts.invalid = 2;
  plan.candidates = {moe, none};
  return plan;
}

TEST(SchemaCsv, BudgetColumnsAndValues) {
  const BudgetPlan plan = TwoCandidatePlan();
  std::ostringstream out;
  WriteBudgetCsv(MakeBudgetRows(plan, plan.candidates.size()), out);
  EXPECT_EQ(out.str(),
            "rank,experts,every_k,configuration,status,step_time_s,compute_s,exposed_comm_s,"
            "comm_total_s,bubble_s,idle_s,mfu,tokens_per_s,tflops_per_device,"
            "peak_bytes_per_device,fits,message,params_total,params_activated,tokens,unfit,"
            "invalid,dense_params,dense_step_time_s,budget_s\n"
            // Numbers as the shortest text that reads back (3.5e+10, not 35000000000). The best
            // sharding's description has commas: quoted.
            "1,16,2,\"APPLE_3D (4,2,1,1) recompute FULL mb 0\",ok,0.625,0.5,0.125,0.25,0,0,0.375,"
            "1600000,123.5,3.5e+10,true,,4e+08,1.5e+08,1.6e+09,3,1,1e+08,0.5,1000\n"
            // No feasible sharding: no configuration, figures or parameters; no tokens.
            "2,256,4,,no_feasible_sharding,,,,,,,,,,,,,,,0,7,2,1e+08,0.5,1000\n");
}

TEST(SchemaCsv, BudgetHeaderIsTheJsonKeysAndTopCuts) {
  const BudgetPlan plan = TwoCandidatePlan();
  const std::vector<BudgetRow> rows = MakeBudgetRows(plan, 1);
  ASSERT_EQ(rows.size(), 1u);
  std::ostringstream out;
  WriteBudgetCsv(rows, out);
  const std::string csv = out.str();
  const nlohmann::ordered_json first = BudgetRowJson(rows[0]);
  std::vector<std::string> keys;
  for (auto it = first.begin(); it != first.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, BudgetFieldNames());
  std::string header;
  for (const auto& k : keys) header += (header.empty() ? "" : ",") + k;
  EXPECT_EQ(csv.substr(0, csv.find('\n')), header);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 2);  // header and one row
  // The JSON of a candidate without a feasible sharding: nulls and status alone.
  const nlohmann::ordered_json none = BudgetRowJson(MakeBudgetRows(plan, 2)[1]);
  EXPECT_EQ(none.dump(),
            "{\"rank\":2,\"experts\":256,\"every_k\":4,\"configuration\":null,"
            "\"status\":\"no_feasible_sharding\",\"params_total\":null,"
            "\"params_activated\":null,\"tokens\":0.0,\"unfit\":7,\"invalid\":2,"
            "\"dense_params\":100000000.0,\"dense_step_time_s\":0.5,\"budget_s\":1000.0}");
}

}  // namespace
}  // namespace moesim
