#include "schema/calib_schema.h"

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

}  // namespace moesim
