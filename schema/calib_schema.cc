#include "schema/calib_schema.h"

#include <utility>

namespace moesim {

nlohmann::json CalibrationJson(const CalibrationReport& report) {
  nlohmann::json fits = nlohmann::json::array();
  for (const CalibrationFit& f : report.fits) {
    nlohmann::json params = nlohmann::json::object();
    for (const auto& [name, value] : f.params) params[name] = value;
    nlohmann::json points = nlohmann::json::array();
    for (const CalibrationPoint& p : f.points) {
      points.push_back({{"label", p.label},
                        {"measured_s", p.measured_s},
                        {"model_s", p.model_s},
                        {"rel_error", p.rel_error}});
    }
    fits.push_back({{"name", f.name},
                    {"fitted", f.fitted},
                    {"model", f.model},
                    {"params", params},
                    {"notes", f.notes},
                    {"rms_rel_error", f.rms_rel_error},
                    {"points", points}});
  }
  return {{"chip", report.chip}, {"fits", fits}};
}

nlohmann::json GemmTableFitJson(const GemmTableFitReport& r) {
  nlohmann::json dtypes = nlohmann::json::array();
  for (const GemmTableDtypeFit& d : r.dtypes) {
    nlohmann::json j = {{"dtype", d.dtype},
                        {"rows", d.rows},
                        {"fitted", d.fitted},
                        {"peak_flops_per_s", d.peak_flops_per_s}};
    if (d.fitted) {
      j["max_fraction"] = d.max_fraction;
      j["k_half"] = d.k_half;
      j["overhead_s"] = d.overhead_s;
      j["rms_log_error"] = d.rms_log_error;
      j["held_out"] = {{"points", d.held_out_points},
                       {"median_abs_rel", d.held_out_median_abs_rel},
                       {"p90_abs_rel", d.held_out_p90_abs_rel}};
    }
    dtypes.push_back(std::move(j));
  }
  return {{"chip", r.chip},
          {"table", r.table},
          {"source", r.source},
          {"rows", r.rows},
          {"folds", r.folds},
          {"gemm_compute_units", r.gemm_compute_units},
          {"hbm_bytes_per_s", r.hbm_bytes_per_s},
          {"memory_efficiency", r.memory_efficiency},
          {"dtypes", dtypes}};
}

nlohmann::json PublishedFitJson(const std::vector<PublishedFitRecord>& fits) {
  nlohmann::json out = nlohmann::json::array();
  for (const PublishedFitRecord& f : fits) {
    nlohmann::json rows = nlohmann::json::array();
    for (const PublishedFitRowRecord& r : f.rows) {
      rows.push_back({{"set", r.set},
                      {"id", r.id},
                      {"metric", r.metric},
                      {"measured", r.measured},
                      {"in_sample", r.in_sample},
                      {"held_out", r.held_out},
                      {"error_in_pct", r.error_in_pct},
                      {"error_held_out_pct", r.error_held_out_pct},
                      {"fold", r.fold}});
    }
    nlohmann::json j = {{"chip", f.chip},
                        {"param", f.param},
                        {"rule", f.rule},
                        {"value", f.value},
                        {"at_bound", f.at_bound},
                        {"mape_in_pct", f.mape_in_pct},
                        {"spread_in_pp", f.spread_in_pp},
                        {"held_out_valid", f.held_out_valid},
                        {"folds", f.folds},
                        {"mape_held_out_pct", f.mape_held_out_pct},
                        {"rows", rows}};
    if (f.scan) {
      j["scan"] = {{"param", f.scan->param},
                   {"value", f.scan->value},
                   {"values", f.scan->values},
                   {"losses", f.scan->losses}};
    }
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json RealValidationJson(const RealValidationReport& r) {
  nlohmann::json configs = nlohmann::json::array();
  for (const RealValidationConfig& c : r.configs) {
    nlohmann::json ops = nlohmann::json::array();
    for (const RealValidationOp& op : c.ops) {
      ops.push_back(
          {{"op", op.op},
           {"simulated_s", op.simulated_s},
           {"measured_s", op.measured_s},
           {"error_pct", op.error_pct ? nlohmann::json(*op.error_pct) : nlohmann::json(nullptr)}});
    }
    configs.push_back({{"id", c.id},
                       {"scenario", c.scenario},
                       {"overrides", c.overrides},
                       {"ranks", c.ranks},
                       {"expert_parallel", c.expert_parallel},
                       {"core_share", c.core_share},
                       {"link_group", c.link_group},
                       {"simulated_step_s", c.simulated_step_s},
                       {"measured_step_s", c.measured_step_s},
                       {"measured_step_s_repeats", c.measured_step_s_repeats},
                       {"spread_pct", c.spread_pct},
                       {"error_pct", c.error_pct},
                       {"simulated_dropped_fraction", c.simulated_dropped_fraction},
                       {"measured_dropped_fraction", c.measured_dropped_fraction},
                       {"ops", ops}});
  }
  return {{"tool", "moesim validate-real"},
          {"machine",
           {{"hostname", r.machine.hostname},
            {"cpu_model", r.machine.cpu_model},
            {"cores", r.machine.cores},
            {"date_utc", r.machine.date_utc},
            {"git_commit", r.machine.git_commit}}},
          {"backend", r.backend},
          {"profile", r.profile},
          {"configs", configs},
          {"mape_pct", r.mape_pct}};
}

namespace {

using nlohmann::json;

// Reads fields of one file; every error names the file and the field's path
// ("configs[2].ops[0].measured_s").
class FieldReader {
 public:
  explicit FieldReader(std::string file) : file_(std::move(file)) {}

  Status Error(const std::string& path, const std::string& what) const {
    return Status::InvalidInput(file_ + ": " + path + ": " + what);
  }
  static std::string Path(const std::string& where, const std::string& key) {
    return where.empty() ? key : where + "." + key;
  }
  // `obj` must be an object; `where` names it.
  Status Object(const json& obj, const std::string& where) const {
    return obj.is_object() ? Status::Ok() : Error(where, "not an object");
  }
  // A number that must be there.
  Status Required(const json& obj, const std::string& where, const char* key, double* out) const {
    if (!obj.contains(key) || !obj.at(key).is_number()) {
      return Error(Path(where, key), "missing or not a number");
    }
    *out = obj.at(key).get<double>();
    return Status::Ok();
  }
  // Optional fields: absent leaves *out as it is; present with another type is an error.
  Status Optional(const json& obj, const std::string& where, const char* key, double* out) const {
    if (!obj.contains(key)) return Status::Ok();
    if (!obj.at(key).is_number()) return Error(Path(where, key), "not a number");
    *out = obj.at(key).get<double>();
    return Status::Ok();
  }
  Status Optional(const json& obj, const std::string& where, const char* key, int64_t* out) const {
    if (!obj.contains(key)) return Status::Ok();
    if (!obj.at(key).is_number()) return Error(Path(where, key), "not a number");
    *out = obj.at(key).get<int64_t>();
    return Status::Ok();
  }
  Status Optional(const json& obj, const std::string& where, const char* key,
                  std::string* out) const {
    if (!obj.contains(key)) return Status::Ok();
    if (!obj.at(key).is_string()) return Error(Path(where, key), "not a string");
    *out = obj.at(key).get<std::string>();
    return Status::Ok();
  }
  Status Optional(const json& obj, const std::string& where, const char* key, bool* out) const {
    if (!obj.contains(key)) return Status::Ok();
    if (!obj.at(key).is_boolean()) return Error(Path(where, key), "not true or false");
    *out = obj.at(key).get<bool>();
    return Status::Ok();
  }
  Status Optional(const json& obj, const std::string& where, const char* key,
                  std::optional<double>* out) const {
    if (!obj.contains(key) || obj.at(key).is_null()) return Status::Ok();
    if (!obj.at(key).is_number()) return Error(Path(where, key), "not a number or null");
    *out = obj.at(key).get<double>();
    return Status::Ok();
  }
  Status Optional(const json& obj, const std::string& where, const char* key,
                  std::vector<double>* out) const {
    const json* a = nullptr;
    MOESIM_RETURN_IF_ERROR(Array(obj, where, key, &a));
    if (a == nullptr) return Status::Ok();
    out->clear();
    for (size_t i = 0; i < a->size(); ++i) {
      if (!(*a)[i].is_number()) return Error(Index(where, key, i), "not a number");
      out->push_back((*a)[i].get<double>());
    }
    return Status::Ok();
  }
  Status Optional(const json& obj, const std::string& where, const char* key,
                  std::vector<std::string>* out) const {
    const json* a = nullptr;
    MOESIM_RETURN_IF_ERROR(Array(obj, where, key, &a));
    if (a == nullptr) return Status::Ok();
    out->clear();
    for (size_t i = 0; i < a->size(); ++i) {
      if (!(*a)[i].is_string()) return Error(Index(where, key, i), "not a string");
      out->push_back((*a)[i].get<std::string>());
    }
    return Status::Ok();
  }
  // An optional array: *out is null when absent.
  Status Array(const json& obj, const std::string& where, const char* key, const json** out) const {
    *out = nullptr;
    if (!obj.contains(key)) return Status::Ok();
    if (!obj.at(key).is_array()) return Error(Path(where, key), "not an array");
    *out = &obj.at(key);
    return Status::Ok();
  }
  static std::string Index(const std::string& where, const char* key, size_t i) {
    return Path(where, key) + "[" + std::to_string(i) + "]";
  }

 private:
  std::string file_;
};

}  // namespace

Expected<CalibrationReport> ParseCalibrationJson(const json& j, const std::string& file) {
  const FieldReader in(file);
  if (!j.is_object() || !j.contains("fits") || !j.at("fits").is_array()) {
    return in.Error("fits", "missing (not `moesim calibrate --json` output)");
  }
  CalibrationReport r;
  MOESIM_RETURN_IF_ERROR(in.Optional(j, "", "chip", &r.chip));
  const json& fits = j.at("fits");
  for (size_t i = 0; i < fits.size(); ++i) {
    const std::string where = FieldReader::Index("", "fits", i);
    const json& fj = fits[i];
    MOESIM_RETURN_IF_ERROR(in.Object(fj, where));
    CalibrationFit f;
    f.name = "?";
    MOESIM_RETURN_IF_ERROR(in.Optional(fj, where, "name", &f.name));
    MOESIM_RETURN_IF_ERROR(in.Optional(fj, where, "fitted", &f.fitted));
    MOESIM_RETURN_IF_ERROR(in.Optional(fj, where, "model", &f.model));
    if (fj.contains("params")) {
      const json& params = fj.at("params");
      if (!params.is_object()) return in.Error(FieldReader::Path(where, "params"), "not an object");
      for (const auto& [name, value] : params.items()) {
        if (!value.is_number()) {
          return in.Error(FieldReader::Path(where, "params." + name), "not a number");
        }
        f.params[name] = value.get<double>();
      }
    }
    MOESIM_RETURN_IF_ERROR(in.Optional(fj, where, "notes", &f.notes));
    MOESIM_RETURN_IF_ERROR(in.Optional(fj, where, "rms_rel_error", &f.rms_rel_error));
    const json* points = nullptr;
    MOESIM_RETURN_IF_ERROR(in.Array(fj, where, "points", &points));
    for (size_t k = 0; points != nullptr && k < points->size(); ++k) {
      const std::string pw = FieldReader::Index(where, "points", k);
      const json& pj = (*points)[k];
      MOESIM_RETURN_IF_ERROR(in.Object(pj, pw));
      CalibrationPoint p;
      MOESIM_RETURN_IF_ERROR(in.Optional(pj, pw, "label", &p.label));
      MOESIM_RETURN_IF_ERROR(in.Optional(pj, pw, "measured_s", &p.measured_s));
      MOESIM_RETURN_IF_ERROR(in.Optional(pj, pw, "model_s", &p.model_s));
      MOESIM_RETURN_IF_ERROR(in.Optional(pj, pw, "rel_error", &p.rel_error));
      f.points.push_back(std::move(p));
    }
    r.fits.push_back(std::move(f));
  }
  return r;
}

Expected<RealValidationReport> ParseRealValidationJson(const json& j, const std::string& file) {
  const FieldReader in(file);
  if (!j.is_object() || !j.contains("configs") || !j.at("configs").is_array() ||
      j.at("configs").empty()) {
    return in.Error("configs",
                    "missing or empty (neither validate-real results nor moesim validate --json "
                    "output)");
  }
  RealValidationReport r;
  RealValidationMachine& m = r.machine;
  m.hostname = m.cpu_model = m.date_utc = m.git_commit = "?";
  if (j.contains("machine")) {
    const json& mj = j.at("machine");
    MOESIM_RETURN_IF_ERROR(in.Object(mj, "machine"));
    MOESIM_RETURN_IF_ERROR(in.Optional(mj, "machine", "hostname", &m.hostname));
    MOESIM_RETURN_IF_ERROR(in.Optional(mj, "machine", "cpu_model", &m.cpu_model));
    MOESIM_RETURN_IF_ERROR(in.Optional(mj, "machine", "cores", &m.cores));
    MOESIM_RETURN_IF_ERROR(in.Optional(mj, "machine", "date_utc", &m.date_utc));
    MOESIM_RETURN_IF_ERROR(in.Optional(mj, "machine", "git_commit", &m.git_commit));
  }
  r.backend = r.profile = "?";
  MOESIM_RETURN_IF_ERROR(in.Optional(j, "", "backend", &r.backend));
  MOESIM_RETURN_IF_ERROR(in.Optional(j, "", "profile", &r.profile));
  MOESIM_RETURN_IF_ERROR(in.Optional(j, "", "mape_pct", &r.mape_pct));
  const json& configs = j.at("configs");
  for (size_t i = 0; i < configs.size(); ++i) {
    const std::string where = FieldReader::Index("", "configs", i);
    const json& cj = configs[i];
    MOESIM_RETURN_IF_ERROR(in.Object(cj, where));
    RealValidationConfig c;
    MOESIM_RETURN_IF_ERROR(in.Required(cj, where, "simulated_step_s", &c.simulated_step_s));
    MOESIM_RETURN_IF_ERROR(in.Required(cj, where, "measured_step_s", &c.measured_step_s));
    MOESIM_RETURN_IF_ERROR(in.Required(cj, where, "spread_pct", &c.spread_pct));
    c.id = where;
    c.ranks = 0;
    c.expert_parallel = 0;
    MOESIM_RETURN_IF_ERROR(in.Optional(cj, where, "id", &c.id));
    MOESIM_RETURN_IF_ERROR(in.Optional(cj, where, "scenario", &c.scenario));
    MOESIM_RETURN_IF_ERROR(in.Optional(cj, where, "overrides", &c.overrides));
    MOESIM_RETURN_IF_ERROR(in.Optional(cj, where, "ranks", &c.ranks));
    MOESIM_RETURN_IF_ERROR(in.Optional(cj, where, "expert_parallel", &c.expert_parallel));
    MOESIM_RETURN_IF_ERROR(in.Optional(cj, where, "core_share", &c.core_share));
    MOESIM_RETURN_IF_ERROR(in.Optional(cj, where, "link_group", &c.link_group));
    MOESIM_RETURN_IF_ERROR(
        in.Optional(cj, where, "measured_step_s_repeats", &c.measured_step_s_repeats));
    MOESIM_RETURN_IF_ERROR(in.Optional(cj, where, "error_pct", &c.error_pct));
    MOESIM_RETURN_IF_ERROR(
        in.Optional(cj, where, "simulated_dropped_fraction", &c.simulated_dropped_fraction));
    MOESIM_RETURN_IF_ERROR(
        in.Optional(cj, where, "measured_dropped_fraction", &c.measured_dropped_fraction));
    const json* ops = nullptr;
    MOESIM_RETURN_IF_ERROR(in.Array(cj, where, "ops", &ops));
    for (size_t k = 0; ops != nullptr && k < ops->size(); ++k) {
      const std::string ow = FieldReader::Index(where, "ops", k);
      const json& oj = (*ops)[k];
      MOESIM_RETURN_IF_ERROR(in.Object(oj, ow));
      RealValidationOp op;
      op.op = "?";
      MOESIM_RETURN_IF_ERROR(in.Optional(oj, ow, "op", &op.op));
      MOESIM_RETURN_IF_ERROR(in.Optional(oj, ow, "simulated_s", &op.simulated_s));
      MOESIM_RETURN_IF_ERROR(in.Optional(oj, ow, "measured_s", &op.measured_s));
      MOESIM_RETURN_IF_ERROR(in.Optional(oj, ow, "error_pct", &op.error_pct));
      c.ops.push_back(std::move(op));
    }
    r.configs.push_back(std::move(c));
  }
  return r;
}

}  // namespace moesim
