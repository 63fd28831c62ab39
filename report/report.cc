#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "report/json_util.h"
#include "report/plots.h"
#include "report/set_report.h"
#include "schema/calib_schema.h"
#include "schema/report_schema.h"

namespace moesim::report {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct OpTotals {
  double simulated = 0, measured = 0;
  int configs = 0;
};

}  // namespace

Expected<std::string> WriteReport(const ReportInputs& in) {
  Expected<json> res = ReadJson(in.results_json);
  if (!res.ok()) return res.status();
  if (IsValidationJson(*res)) {
    if (!in.calibration_json.empty()) {
      return Status::InvalidInput("--calibration goes with validate-real results, not with " +
                                  in.results_json + " (moesim validate output)");
    }
    return WriteSetReport(*res, in);
  }
  Expected<RealValidationReport> parsed = ParseRealValidationJson(*res, in.results_json);
  if (!parsed.ok()) return parsed.status();
  const RealValidationReport& r = *parsed;
  std::optional<CalibrationReport> calibration;
  if (!in.calibration_json.empty()) {
    Expected<json> cal = ReadJson(in.calibration_json);
    if (!cal.ok()) return cal.status();
    Expected<CalibrationReport> c = ParseCalibrationJson(*cal, in.calibration_json);
    if (!c.ok()) return c.status();
    calibration = std::move(*c);
  }
  std::error_code ec;
  fs::create_directories(in.out_dir, ec);
  if (ec) return Status::InvalidInput(in.out_dir + ": cannot create (" + ec.message() + ")");
  const auto out = [&](const char* f) { return (fs::path(in.out_dir) / f).string(); };

  std::ostringstream md;
  const RealValidationMachine& m = r.machine;
  md << "# moesim: calibration and validation report\n\n"
     << "Simulated (`moesim validate-real`, calibrated profile `" << r.profile
     << "`) against measured (`moesim-real train`, backend " << r.backend << ") training steps.\n\n"
     << "- machine: " << m.hostname << ", " << m.cpu_model << ", " << m.cores << " cores\n"
     << "- date: " << m.date_utc << ", commit " << m.git_commit << "\n- results: `"
     << in.results_json << "`\n\n";

  // Step times.
  Series steps{"configurations", {}};
  std::vector<std::string> names;
  std::vector<double> errors, spreads;
  std::map<std::string, OpTotals> ops;
  Series op_points{"(configuration, op class)", {}};
  md << "## Step time\n\n![simulated vs measured step time](step_scatter.png)\n\n"
     << "| configuration | ranks | expert parallel | simulated ms | measured ms (median) | "
        "repeats ms | spread | error |\n|---|---|---|---|---|---|---|---|\n";
  double abs_sum = 0;
  const std::vector<RealValidationConfig>& configs = r.configs;
  for (size_t i = 0; i < configs.size(); ++i) {
    const RealValidationConfig& c = configs[i];
    const double sim = c.simulated_step_s, meas = c.measured_step_s;
    if (!(meas > 0) || !(sim > 0)) {
      return Status::InvalidInput(in.results_json + ": configs[" + std::to_string(i) +
                                  "]: step times must be > 0");
    }
    const double err = 100 * (sim / meas - 1);
    abs_sum += std::abs(err);
    names.push_back(c.id);
    errors.push_back(err);
    spreads.push_back(c.spread_pct);
    steps.points.push_back({1e3 * meas, 1e3 * sim});
    std::string reps;
    for (double v : c.measured_step_s_repeats) {
      reps += (reps.empty() ? "" : ", ") + F("%.1f", 1e3 * v);
    }
    md << "| " << c.id << " | " << c.ranks << " | " << c.expert_parallel
       << (c.core_share < 1 ? " (ranks share cores)" : "") << " | " << F("%.2f", 1e3 * sim) << " | "
       << F("%.2f", 1e3 * meas) << " | " << reps << " | " << F("%.1f%%", c.spread_pct) << " | "
       << F("%+.1f%%", err) << " |\n";
    for (const RealValidationOp& op : c.ops) {
      const double s = op.simulated_s, me = op.measured_s;
      if (me < in.min_op_share * meas) continue;
      OpTotals& t = ops[op.op];
      t.simulated += s;
      t.measured += me;
      ++t.configs;
      if (s > 0) op_points.points.push_back({1e3 * me, 1e3 * s});
    }
  }
  const double mape = abs_sum / static_cast<double>(configs.size());
  double mean_spread = 0;
  for (double s : spreads) mean_spread += s / static_cast<double>(spreads.size());
  md << "\n**MAPE " << F("%.1f%%", mape) << "** over " << configs.size()
     << " held-out configurations; mean spread of the repeats " << F("%.1f%%", mean_spread)
     << " ((max - min) / median step time over separate launches).\n\n";
  MOESIM_RETURN_IF_ERROR(WriteScatterPng(
      out("step_scatter.png"),
      {"Step time: simulated vs measured", "measured (ms)", "simulated (ms)", true, true},
      {steps}));

  // Per op.
  std::vector<std::pair<std::string, OpTotals>> sorted(ops.begin(), ops.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.measured > b.second.measured; });
  std::vector<std::string> cats;
  BarSet op_err{"error of the summed time (%)", {}};
  md << "## Per-op errors\n\nOp classes (layer prefix dropped, summed over layers and "
        "micro-batches) at or above "
     << F("%.0f%%", 100 * in.min_op_share)
     << " of their configuration's measured step, summed over the configurations where they "
        "are; the plot shows the 30 with the most measured time.\n\n![per-op "
        "error](op_errors.png)\n\n![per-op scatter](op_scatter.png)\n\n"
     << "| op class | configurations | simulated ms | measured ms | error |\n"
     << "|---|---|---|---|---|\n";
  for (const auto& [name, t] : sorted) {
    if (t.simulated <= 0) {
      // Measured only (a collective's wait for its group, folded copies): no error to plot.
      md << "| " << name << " | " << t.configs << " | - | " << F("%.2f", 1e3 * t.measured)
         << " | not simulated |\n";
      continue;
    }
    const double e = 100 * (t.simulated / t.measured - 1);
    if (cats.size() < 30) {  // the plot shows the 30 largest; the table has them all
      cats.push_back(name);
      op_err.values.push_back(e);
    }
    md << "| " << name << " | " << t.configs << " | " << F("%.2f", 1e3 * t.simulated) << " | "
       << F("%.2f", 1e3 * t.measured) << " | " << F("%+.1f%%", e) << " |\n";
  }
  md << "\n";
  if (!cats.empty()) {
    MOESIM_RETURN_IF_ERROR(WriteBarsPng(
        out("op_errors.png"),
        {"Per-op error (simulated / measured - 1)", "op class", "error (%)", false, false}, cats,
        {op_err}));
  }
  if (!op_points.points.empty()) {
    MOESIM_RETURN_IF_ERROR(
        WriteScatterPng(out("op_scatter.png"),
                        {"Per op class and configuration", "measured (ms per step)",
                         "simulated (ms per step)", true, true},
                        {op_points}));
  }

  // Calibration.
  if (calibration) {
    std::vector<Series> fits;
    md << "## Calibration residuals\n\nEvery benchmark point of `moesim-real bench` against "
          "the fitted model (`"
       << in.calibration_json
       << "`).\n\n![calibration residuals](calibration_residuals.png)\n\n"
          "| fit | parameters | points | RMS residual | worst points |\n|---|---|---|---|---|\n";
    for (const CalibrationFit& f : calibration->fits) {
      Series s{f.name, {}};
      std::vector<std::pair<double, std::string>> worst;
      for (const CalibrationPoint& p : f.points) {
        if (p.measured_s > 0 && p.model_s > 0) s.points.push_back({p.measured_s, p.model_s});
        worst.push_back({p.rel_error, p.label});
      }
      std::sort(worst.begin(), worst.end(),
                [](const auto& a, const auto& b) { return std::abs(a.first) > std::abs(b.first); });
      std::string params, w;
      for (const auto& [k, v] : f.params) {
        params += (params.empty() ? "" : ", ") + k + " = " + F("%.4g", v);
      }
      for (size_t i = 0; i < std::min<size_t>(2, worst.size()); ++i) {
        w += (w.empty() ? "" : "; ") + F("%+.0f%% ", 100 * worst[i].first) + worst[i].second;
      }
      md << "| " << s.name << " | " << params << " | " << s.points.size() << " | "
         << F("%.1f%%", 100 * f.rms_rel_error) << " | " << w << " |\n";
      // The link fits re-use the per-collective points: plotted once.
      if (!s.points.empty() && s.name.rfind("link/", 0) != 0) fits.push_back(std::move(s));
    }
    md << "\n";
    if (!fits.empty()) {
      MOESIM_RETURN_IF_ERROR(WriteScatterPng(out("calibration_residuals.png"),
                                             {"Calibration: model vs measured benchmark time",
                                              "measured (s)", "model (s)", true, true},
                                             fits));
    }
  }
  return WriteText(out("report.md"), md.str());
}

}  // namespace moesim::report
