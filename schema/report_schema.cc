#include "schema/report_schema.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <set>

#include "costmodel/opgraph.h"

namespace moesim {
namespace {

nlohmann::json BreakdownJson(const Breakdown& b) {
  return {{"compute", b.compute_s},
          {"exposed_comm", b.exposed_comm_s},
          {"comm_total", b.comm_total_s},
          {"compute_by_class", b.compute_by_class},
          {"bubble", b.bubble_s},
          {"idle", b.idle_s},
          {"exposed_comm_by_collective", b.exposed_by_collective}};
}

StageCompute ComputeByClass(const Scenario& sc) {
  OpGraph g;
  BuildStepGraph(sc, &g);
  std::vector<StageCompute> stages(static_cast<size_t>(g.num_programs));
  for (const Op& op : g.ops) {
    if (op.is_collective) continue;
    StageCompute& s = stages[static_cast<size_t>(op.program)];
    ClassTime& c = s.by_class[KernelClassName(op.compute)];
    const double t = ComputeTimeS(op.compute, sc.hardware);
    c.time_s += t;
    c.flops += op.compute.flops;
    s.total_s += t;
  }
  for (size_t p = 0; p < stages.size(); ++p) stages[p].stage = static_cast<int32_t>(p);
  return *std::max_element(
      stages.begin(), stages.end(),
      [](const StageCompute& a, const StageCompute& b) { return a.total_s < b.total_s; });
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// The shortest text that reads back to the same double (as in the JSON).
std::string ShortestNum(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

}  // namespace

nlohmann::json StepReportJson(const Scenario& sc, const SimReport& r) {
  nlohmann::json axes = nlohmann::json::array();
  for (const auto& a : r.axes) {
    axes.push_back({{"name", a.name},
                    {"size", a.size},
                    {"span", a.span},
                    {"ring_bytes_per_s", a.ring_bytes_per_s}});
  }
  return {
      {"name", sc.name},
      {"step_time_s", r.step_time_s},
      {"breakdown_s", BreakdownJson(r.breakdown)},
      {"mfu", r.mfu},
      {"tokens_per_s", r.tokens_per_s},
      {"tflops_per_device", r.tflops_per_device},
      {"params", {{"total", r.cost.params.total}, {"activated", r.cost.params.activated}}},
      {"flops_per_token",
       {{"model", r.cost.flops_per_token.model}, {"hardware", r.cost.flops_per_token.hardware}}},
      {"flops_per_step",
       {{"model", r.model_flops_per_step}, {"hardware", r.hardware_flops_per_step}}},
      {"memory",
       {{"peak_bytes_per_device", r.memory.peak_bytes},
        {"capacity_bytes", r.memory.capacity_bytes},
        {"fits", r.memory.fits}}},
      {"moe", {{"dropped_token_fraction", r.dropped_token_fraction}}},
      {"mesh_axes", axes},
      {"num_ops", r.num_ops},
      {"network", r.network},
      {"flow",
       {{"collectives", r.flow.collectives},
        {"flow_runs", r.flow.flow_runs},
        {"replayed", r.flow.replayed},
        {"flows", r.flow.flows},
        {"events", r.flow.events},
        {"symmetric_steps", r.flow.symmetric_steps},
        {"split_steps", r.flow.split_steps}}},
      {"scenario", sc.resolved_text}};
}

std::vector<OpRecord> StepOps(const Scenario& sc, const SimReport& r) {
  std::vector<OpRecord> out;
  if (r.program == nullptr) return out;
  const Mesh& mesh = sc.sharding.mesh;
  const OpGraph& g = *r.program;
  out.reserve(g.ops.size());
  for (const Op& op : g.ops) {
    const OpTiming& t = r.timing[static_cast<size_t>(op.id)];
    OpRecord o;
    o.name = op.name;
    o.program = op.program;
    o.stream = op.stream;
    o.stream_name = StreamName(op.stream);
    o.phase = PhaseName(op.phase);
    o.micro_batch = op.micro_batch;
    o.start_s = t.start_s;
    o.end_s = t.end_s;
    o.is_collective = op.is_collective;
    if (op.is_collective) {
      o.collective = CollectiveKindName(op.collective.kind);
      o.bytes = op.collective.bytes;
      for (MeshAxis a : op.collective.axes) o.axes += (o.axes.empty() ? "" : ",") + mesh.Name(a);
    } else {
      o.flops = op.compute.flops;
      o.bytes = op.compute.bytes;
      o.kernel_class = KernelClassName(op.compute);
      const double dur = t.end_s - t.start_s;
      const double peak =
          op.compute.fp8 ? sc.hardware.fp8_peak_flops_per_s : sc.hardware.peak_flops_per_s;
      if (op.compute.matmul && !op.compute.attention && op.compute.flops > 0 && dur > 0 &&
          peak > 0) {
        // A GEMM's achieved fraction over its whole time on the timeline (launch overhead and
        // any slowdown beside communication included), against the peak of its precision.
        // Not for attention: its FLOPs count the causal mask's skipped blocks.
        o.fraction_of_peak = op.compute.flops / (dur * peak);
      }
      o.fp8 = op.compute.fp8;
    }
    out.push_back(std::move(o));
  }
  return out;
}

void WriteStepOpsCsv(const std::vector<OpRecord>& ops, std::ostream& out) {
  out << "name,program,stream,stream_name,phase,micro_batch,start_s,end_s,is_collective,"
         "collective,axes,kernel_class,flops,bytes,fraction_of_peak,fp8\n";
  for (const OpRecord& o : ops) {
    out << CsvField(o.name) << "," << o.program << "," << o.stream << "," << CsvField(o.stream_name)
        << "," << CsvField(o.phase) << "," << o.micro_batch << "," << ShortestNum(o.start_s) << ","
        << ShortestNum(o.end_s) << "," << (o.is_collective ? "true" : "false") << ","
        << CsvField(o.collective) << "," << CsvField(o.axes) << "," << CsvField(o.kernel_class)
        << "," << (o.is_collective ? "" : ShortestNum(o.flops)) << "," << ShortestNum(o.bytes)
        << "," << (o.fraction_of_peak >= 0 ? ShortestNum(o.fraction_of_peak) : "") << ","
        << (o.fp8 ? "true" : "false") << "\n";
  }
}

void WriteBreakdownCsv(const std::vector<std::pair<std::string, const SimReport*>>& reports,
                       std::ostream& out) {
  std::set<std::string> classes, collectives;
  for (const auto& [label, r] : reports) {
    for (const auto& [k, v] : r->breakdown.compute_by_class) classes.insert(k);
    for (const auto& [k, v] : r->breakdown.exposed_by_collective) collectives.insert(k);
  }
  out << "label,step_time_s,compute_s,exposed_comm_s,comm_total_s,bubble_s,idle_s";
  for (const std::string& k : classes) out << "," << CsvField("compute_by_class." + k);
  for (const std::string& k : collectives)
    out << "," << CsvField("exposed_comm_by_collective." + k);
  out << "\n";
  const auto at = [](const std::map<std::string, double>& m, const std::string& k) {
    const auto it = m.find(k);
    return it == m.end() ? 0.0 : it->second;
  };
  for (const auto& [label, r] : reports) {
    const Breakdown& b = r->breakdown;
    out << CsvField(label) << "," << ShortestNum(r->step_time_s) << "," << ShortestNum(b.compute_s)
        << "," << ShortestNum(b.exposed_comm_s) << "," << ShortestNum(b.comm_total_s) << ","
        << ShortestNum(b.bubble_s) << "," << ShortestNum(b.idle_s);
    for (const std::string& k : classes) out << "," << ShortestNum(at(b.compute_by_class, k));
    for (const std::string& k : collectives) {
      out << "," << ShortestNum(at(b.exposed_by_collective, k));
    }
    out << "\n";
  }
}

ChromeTrace StepTrace(const Scenario& sc, const SimReport& r) {
  ChromeTrace trace;
  if (r.program == nullptr) return trace;
  std::vector<std::string> streams;
  for (int32_t s = 0; s < kNumStreams; ++s) streams.push_back(StreamName(s));
  for (int32_t p = 0; p < r.program->num_programs; ++p) {
    trace.AddProcess(p, "stage " + std::to_string(p) + " (representative device)", streams);
  }
  for (const OpRecord& o : StepOps(sc, r)) {
    nlohmann::json args = {{"phase", o.phase}, {"micro_batch", o.micro_batch}};
    if (o.is_collective) {
      args["collective"] = o.collective;
      args["bytes"] = o.bytes;
      args["axes"] = o.axes;
    } else {
      args["flops"] = o.flops;
      args["bytes"] = o.bytes;
      args["kernel_class"] = o.kernel_class;
      if (o.fraction_of_peak >= 0) args["fraction_of_peak"] = o.fraction_of_peak;
      if (o.fp8) args["fp8"] = true;
    }
    trace.AddOp(o.name, o.is_collective ? "collective" : "compute", o.program, o.stream, o.start_s,
                o.end_s - o.start_s, std::move(args));
  }
  trace.other_data() = {{"generator", "moesim simulate"},
                        {"note",
                         "SPMD: one representative device per pipeline stage; every device of a "
                         "stage runs the same program"},
                        {"step_time_s", r.step_time_s},
                        {"network", r.network}};
  return trace;
}

CostReport ComputeCostReport(const Scenario& sc) {
  return {ComputeScenarioCost(sc), ComputeMemory(sc), ComputeByClass(sc)};
}

nlohmann::json CostReportJson(const Scenario& sc, const CostReport& c) {
  const ModelCost& cost = c.cost;
  const MemoryReport& mem = c.memory;
  const StageCompute& compute = c.compute;
  nlohmann::json j;
  j["name"] = sc.name;
  j["params"] = {{"total", cost.params.total},
                 {"activated", cost.params.activated},
                 {"embedding", cost.params.embedding},
                 {"per_expert", cost.params.per_expert}};
  if (cost.params.mtp > 0) j["params"]["mtp"] = cost.params.mtp;  // model.mtp_depth's modules
  j["flops_per_token"] = {{"model", cost.flops_per_token.model},
                          {"hardware", cost.flops_per_token.hardware},
                          {"forward", cost.flops_per_token.forward},
                          {"forward_by_op", cost.flops_per_token.forward_by_op}};
  j["flops_per_step"] = {
      {"model", cost.flops_per_token.model * static_cast<double>(sc.training.global_batch_tokens)},
      {"hardware",
       cost.flops_per_token.hardware * static_cast<double>(sc.training.global_batch_tokens)}};
  j["layers"] = {{"total", cost.num_layers}, {"moe", cost.num_moe_layers}};
  nlohmann::json by_class = nlohmann::json::object();
  for (const auto& [kind, t] : compute.by_class) {
    by_class[kind] = {{"time_s", t.time_s}, {"flops", t.flops}};
  }
  j["compute_per_step"] = {
      {"stage", compute.stage}, {"time_s", compute.total_s}, {"by_class", by_class}};
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : mem.tensors) {
    tensors.push_back({{"group", t.group},
                       {"name", t.name},
                       {"class", TensorClassName(t.tensor_class)},
                       {"dims", t.dims},
                       {"global_shape", t.global_shape},
                       {"local_shape", t.local_shape},
                       {"local_bytes", t.local_bytes}});
  }
  j["memory"] = {{"peak_bytes_per_device", mem.peak_bytes},
                 {"capacity_bytes", mem.capacity_bytes},
                 {"fits", mem.fits},
                 {"weights_bytes", mem.weights_bytes},
                 {"grads_bytes", mem.grads_bytes},
                 {"optimizer_bytes", mem.optimizer_bytes},
                 {"activations_bytes", mem.activations_bytes},
                 {"logits_bytes", mem.logits_bytes},
                 {"moe_dispatch_bytes", mem.moe_dispatch_bytes},
                 {"pipeline_stage", mem.stage},
                 {"micro_batches_in_flight", mem.micro_batches_in_flight},
                 {"tensors", tensors}};
  const PipelineLayout layout = ScenarioPipelineLayout(sc);
  nlohmann::json stages = nlohmann::json::array();
  for (int64_t r = 0; r < layout.ranks; ++r) {
    std::vector<int64_t> per_chunk;
    for (int64_t k = 0; k < layout.chunks; ++k) per_chunk.push_back(layout.At(r, k).num_layers);
    stages.push_back({{"stage", r},
                      {"layers", layout.LayersOnRank(r)},
                      {"layers_per_chunk", per_chunk},
                      {"peak_bytes", static_cast<size_t>(r) < mem.stage_peak_bytes.size()
                                         ? mem.stage_peak_bytes[static_cast<size_t>(r)]
                                         : 0.0}});
  }
  j["pipeline_stages"] = stages;
  j["scenario"] = sc.resolved_text;
  return j;
}

nlohmann::json ValidationJson(const std::string& set, const std::string& network,
                              const ValidationReport& v) {
  nlohmann::json rows = nlohmann::json::array();
  for (const ValidationResult& r : v.results) {
    nlohmann::json j = {{"id", r.row.id},           {"metric", r.row.metric},
                        {"simulated", r.simulated}, {"measured", r.row.measured},
                        {"error_pct", r.error_pct}, {"source", r.row.source}};
    if (!r.row.baseline.empty()) j["baseline"] = r.row.baseline;
    rows.push_back(std::move(j));
  }
  nlohmann::json out = {
      {"set", set}, {"rows", rows}, {"mape_pct", v.mape_pct}, {"network", network}};
  if (!v.relatives.empty()) {
    nlohmann::json rel = nlohmann::json::array();
    for (const RelativeResult& r : v.relatives) {
      rel.push_back({{"id", r.id},
                     {"baseline", r.baseline},
                     {"simulated_pct", r.simulated_pct},
                     {"measured_pct", r.measured_pct},
                     {"diff_pp", r.diff_pp}});
    }
    out["relative"] = rel;
  }
  return out;
}

void WriteValidationCsv(const ValidationReport& v, std::ostream& out) {
  std::map<std::string, const RelativeResult*> relative;
  for (const RelativeResult& r : v.relatives) relative.emplace(r.id, &r);
  out << "id,metric,simulated,measured,error_pct,baseline,simulated_pct,measured_pct,diff_pp,"
         "source\n";
  for (const ValidationResult& r : v.results) {
    out << CsvField(r.row.id) << "," << CsvField(r.row.metric) << "," << ShortestNum(r.simulated)
        << "," << ShortestNum(r.row.measured) << "," << ShortestNum(r.error_pct) << ","
        << CsvField(r.row.baseline) << ",";
    const auto it = relative.find(r.row.id);
    if (it != relative.end()) {
      out << ShortestNum(it->second->simulated_pct) << "," << ShortestNum(it->second->measured_pct)
          << "," << ShortestNum(it->second->diff_pp) << ",";
    } else {
      out << ",,,";
    }
    out << CsvField(r.row.source) << "\n";
  }
}

namespace {

Status Missing(const std::string& file, const std::string& where, const char* key,
               const char* what) {
  return Status::InvalidInput(file + ": " + where + (where.empty() ? "" : ".") + key +
                              ": missing or not " + what);
}

Status GetNum(const nlohmann::json& obj, const std::string& file, const std::string& where,
              const char* key, double* out) {
  if (!obj.is_object() || !obj.contains(key) || !obj.at(key).is_number()) {
    return Missing(file, where, key, "a number");
  }
  *out = obj.at(key).get<double>();
  return Status::Ok();
}

std::string GetText(const nlohmann::json& obj, const char* key, const std::string& fallback) {
  if (obj.is_object() && obj.contains(key) && obj.at(key).is_string()) {
    return obj.at(key).get<std::string>();
  }
  return fallback;
}

}  // namespace

Expected<ValidationRecord> ParseValidationJson(const nlohmann::json& j, const std::string& file) {
  ValidationRecord v;
  if (!j.is_object() || !j.contains("rows") || !j.at("rows").is_array() || j.at("rows").empty()) {
    return Status::InvalidInput(file + ": rows: missing or empty");
  }
  v.set = GetText(j, "set", "?");
  v.network = GetText(j, "network", "?");
  const nlohmann::json& rows = j.at("rows");
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string where = "rows[" + std::to_string(i) + "]";
    ValidationRecord::Row r;
    MOESIM_RETURN_IF_ERROR(GetNum(rows[i], file, where, "simulated", &r.simulated));
    MOESIM_RETURN_IF_ERROR(GetNum(rows[i], file, where, "measured", &r.measured));
    MOESIM_RETURN_IF_ERROR(GetNum(rows[i], file, where, "error_pct", &r.error_pct));
    r.id = GetText(rows[i], "id", where);
    r.metric = GetText(rows[i], "metric", "?");
    r.source = GetText(rows[i], "source", "");
    r.baseline = GetText(rows[i], "baseline", "");
    v.rows.push_back(std::move(r));
  }
  MOESIM_RETURN_IF_ERROR(GetNum(j, file, "", "mape_pct", &v.mape_pct));
  if (j.contains("relative")) {
    const nlohmann::json& rel = j.at("relative");
    if (!rel.is_array()) return Missing(file, "", "relative", "an array");
    for (size_t i = 0; i < rel.size(); ++i) {
      const std::string where = "relative[" + std::to_string(i) + "]";
      ValidationRecord::Relative r;
      MOESIM_RETURN_IF_ERROR(GetNum(rel[i], file, where, "simulated_pct", &r.simulated_pct));
      MOESIM_RETURN_IF_ERROR(GetNum(rel[i], file, where, "measured_pct", &r.measured_pct));
      r.id = GetText(rel[i], "id", where);
      r.baseline = GetText(rel[i], "baseline", "?");
      v.relative.push_back(std::move(r));
    }
  }
  return v;
}

bool IsValidationJson(const nlohmann::json& j) {
  return j.is_object() && j.contains("mape_pct") && j.contains("rows");
}

const std::vector<std::string>& SweepFieldNames() {
  static const std::vector<std::string> names = {"status",
                                                 "step_time_s",
                                                 "compute_s",
                                                 "exposed_comm_s",
                                                 "comm_total_s",
                                                 "bubble_s",
                                                 "idle_s",
                                                 "mfu",
                                                 "tokens_per_s",
                                                 "tflops_per_device",
                                                 "peak_bytes_per_device",
                                                 "fits",
                                                 "message"};
  return names;
}

SweepRow MakeSweepRow(const PointResult& p, const std::vector<std::string>& columns) {
  SweepRow row;
  for (const auto& c : columns) row.values.push_back(OverrideValue(p.overrides, c));
  row.status = OutcomeName(p.outcome);
  const SimReport& r = p.report;
  row.simulated = p.outcome != PointResult::Outcome::kInvalid && r.step_time_s > 0;
  if (row.simulated) {
    const Breakdown& b = r.breakdown;
    row.step_time_s = r.step_time_s;
    row.compute_s = b.compute_s;
    row.exposed_comm_s = b.exposed_comm_s;
    row.comm_total_s = b.comm_total_s;
    row.bubble_s = b.bubble_s;
    row.idle_s = b.idle_s;
    row.mfu = r.mfu;
    row.tokens_per_s = r.tokens_per_s;
    row.tflops_per_device = r.tflops_per_device;
    row.peak_bytes_per_device = r.memory.peak_bytes;
    row.fits = r.memory.fits;
  }
  row.message = p.message.substr(0, p.message.find('\n'));
  return row;
}

nlohmann::ordered_json SweepRowJson(const SweepRow& row, const std::vector<std::string>& columns) {
  nlohmann::ordered_json j;
  for (size_t i = 0; i < columns.size() && i < row.values.size(); ++i) {
    j[columns[i]] = row.values[i];
  }
  j["status"] = row.status;
  auto num = [&](const char* key, double v) {
    j[key] = row.simulated ? nlohmann::ordered_json(v) : nlohmann::ordered_json();
  };
  num("step_time_s", row.step_time_s);
  num("compute_s", row.compute_s);
  num("exposed_comm_s", row.exposed_comm_s);
  num("comm_total_s", row.comm_total_s);
  num("bubble_s", row.bubble_s);
  num("idle_s", row.idle_s);
  num("mfu", row.mfu);
  num("tokens_per_s", row.tokens_per_s);
  num("tflops_per_device", row.tflops_per_device);
  num("peak_bytes_per_device", row.peak_bytes_per_device);
  j["fits"] = row.simulated ? nlohmann::ordered_json(row.fits) : nlohmann::ordered_json();
  j["message"] = row.message;
  return j;
}

void WriteSweepCsvHeader(const std::vector<std::string>& columns, std::ostream& out) {
  for (const auto& c : columns) out << CsvField(c) << ",";
  const auto& names = SweepFieldNames();
  for (size_t i = 0; i < names.size(); ++i) out << (i == 0 ? "" : ",") << names[i];
  out << "\n";
}

void WriteSweepCsvRow(const SweepRow& row, std::ostream& out) {
  for (const auto& v : row.values) out << CsvField(v) << ",";
  out << row.status << ",";
  if (row.simulated) {
    out << Num(row.step_time_s) << "," << Num(row.compute_s) << "," << Num(row.exposed_comm_s)
        << "," << Num(row.comm_total_s) << "," << Num(row.bubble_s) << "," << Num(row.idle_s) << ","
        << Num(row.mfu) << "," << Num(row.tokens_per_s) << "," << Num(row.tflops_per_device) << ","
        << Num(row.peak_bytes_per_device) << "," << (row.fits ? "true" : "false") << ",";
  } else {
    out << ",,,,,,,,,,,";
  }
  out << CsvField(row.message) << "\n";
}

std::vector<BudgetRow> MakeBudgetRows(const BudgetPlan& plan, size_t top) {
  std::vector<BudgetRow> rows;
  for (size_t i = 0; i < plan.candidates.size() && i < top; ++i) {
    const BudgetCandidate& c = plan.candidates[i];
    BudgetRow row;
    row.rank = static_cast<int64_t>(i + 1);
    row.experts = c.experts;
    row.every_k = c.every_k;
    row.feasible = c.best.has_value();
    if (row.feasible) {
      row.configuration = DescribeSharding(c.best->overrides);
      row.figures = MakeSweepRow(*c.best, {});
      row.params_total = c.best->report.cost.params.total;
      row.params_activated = c.best->report.cost.params.activated;
    }
    row.tokens = c.tokens;
    row.unfit = c.counts.unfit;
    row.invalid = c.counts.invalid;
    row.dense_params = plan.params;
    row.dense_step_time_s = plan.dense.report.step_time_s;
    row.budget_s = plan.budget_s;
    rows.push_back(std::move(row));
  }
  return rows;
}

const std::vector<std::string>& BudgetFieldNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = {"rank", "experts", "every_k", "configuration"};
    for (const auto& f : SweepFieldNames()) n.push_back(f);
    for (const char* f : {"params_total", "params_activated", "tokens", "unfit", "invalid",
                          "dense_params", "dense_step_time_s", "budget_s"}) {
      n.push_back(f);
    }
    return n;
  }();
  return names;
}

nlohmann::ordered_json BudgetRowJson(const BudgetRow& row) {
  using J = nlohmann::ordered_json;
  J j;
  j["rank"] = row.rank;
  j["experts"] = row.experts;
  j["every_k"] = row.every_k;
  j["configuration"] = row.feasible ? J(row.configuration) : J();
  const J figures =
      row.feasible ? SweepRowJson(row.figures, {}) : J{{"status", "no_feasible_sharding"}};
  for (auto it = figures.begin(); it != figures.end(); ++it) j[it.key()] = it.value();
  j["params_total"] = row.feasible ? J(row.params_total) : J();
  j["params_activated"] = row.feasible ? J(row.params_activated) : J();
  j["tokens"] = row.tokens;
  j["unfit"] = row.unfit;
  j["invalid"] = row.invalid;
  j["dense_params"] = row.dense_params;
  j["dense_step_time_s"] = row.dense_step_time_s;
  j["budget_s"] = row.budget_s;
  return j;
}

void WriteBudgetCsv(const std::vector<BudgetRow>& rows, std::ostream& out) {
  const auto& names = BudgetFieldNames();
  for (size_t i = 0; i < names.size(); ++i) out << (i == 0 ? "" : ",") << names[i];
  out << "\n";
  for (const BudgetRow& row : rows) {
    out << row.rank << "," << row.experts << "," << row.every_k << ","
        << CsvField(row.configuration) << ",";
    const SweepRow& f = row.figures;
    if (row.feasible && f.simulated) {
      out << f.status << "," << ShortestNum(f.step_time_s) << "," << ShortestNum(f.compute_s) << ","
          << ShortestNum(f.exposed_comm_s) << "," << ShortestNum(f.comm_total_s) << ","
          << ShortestNum(f.bubble_s) << "," << ShortestNum(f.idle_s) << "," << ShortestNum(f.mfu)
          << "," << ShortestNum(f.tokens_per_s) << "," << ShortestNum(f.tflops_per_device) << ","
          << ShortestNum(f.peak_bytes_per_device) << "," << (f.fits ? "true" : "false") << ","
          << CsvField(f.message) << ",";
    } else {
      out << (row.feasible ? f.status : std::string("no_feasible_sharding")) << ",,,,,,,,,,,,"
          << CsvField(row.feasible ? f.message : std::string()) << ",";
    }
    if (row.feasible) {
      out << ShortestNum(row.params_total) << "," << ShortestNum(row.params_activated) << ",";
    } else {
      out << ",,";
    }
    out << ShortestNum(row.tokens) << "," << row.unfit << "," << row.invalid << ","
        << ShortestNum(row.dense_params) << "," << ShortestNum(row.dense_step_time_s) << ","
        << ShortestNum(row.budget_s) << "\n";
  }
}

nlohmann::json TopologyJson(const Topology& topo, const TopologySummary& s,
                            const std::vector<AxisRing>& rings, const MeshPlacement* placement) {
  nlohmann::json j;
  j["name"] = topo.name();
  j["chip"] = topo.hardware().chip;
  j["num_devices"] = s.num_devices;
  j["num_vertices"] = s.num_vertices;
  j["num_links"] = s.num_links;
  nlohmann::json by_kind = nlohmann::json::object();
  for (int k = 0; k < kNumLinkKinds; ++k) {
    if (s.links_by_kind[static_cast<size_t>(k)] > 0) {
      by_kind[LinkKindName(static_cast<LinkKind>(k))] = s.links_by_kind[static_cast<size_t>(k)];
    }
  }
  j["links_by_kind"] = by_kind;
  j["diameter_hops"] = s.diameter_hops >= 0 ? nlohmann::json(s.diameter_hops) : nlohmann::json();
  j["bisection_bytes_per_s"] = s.bisection_bytes_per_s;
  nlohmann::json axes = nlohmann::json::array();
  for (size_t i = 0; i < rings.size(); ++i) {
    axes.push_back({{"name", rings[i].name},
                    {"size", rings[i].size},
                    {"ring_bytes_per_s", rings[i].ring_bytes_per_s},
                    {"max_hops", rings[i].max_hops},
                    {"span", placement != nullptr ? placement->axis_spans[i] : std::string()}});
  }
  j["axes"] = axes;
  return j;
}

}  // namespace moesim
