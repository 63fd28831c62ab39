#include "report/set_report.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "report/json_util.h"
#include "report/plots.h"

namespace moesim::report {

using json = nlohmann::json;
namespace fs = std::filesystem;

Expected<std::string> WriteSetReport(const json& r, const ReportInputs& in) {
  const std::string& file = in.results_json;
  if (!r.at("rows").is_array() || r.at("rows").empty()) {
    return Status::InvalidInput(file + ": rows: missing or empty");
  }
  std::error_code ec;
  fs::create_directories(in.out_dir, ec);
  if (ec) return Status::InvalidInput(in.out_dir + ": cannot create (" + ec.message() + ")");
  const auto out = [&](const std::string& f) { return (fs::path(in.out_dir) / f).string(); };

  const std::string set = r.value("set", "?");
  std::ostringstream md;
  md << "# moesim: validation set report\n\n"
     << "Simulated (`moesim validate`, network " << r.value("network", "?")
     << ") against the measurements of `" << set << "`, row by row.\n\n";

  // Per row: the error bars, a table, and per metric simulated vs measured.
  std::vector<std::string> ids;
  BarSet errors{"error (%)", {}};
  std::map<std::string, Series> by_metric;
  md << "## Rows\n\n![error per row](errors.png)\n\n"
     << "| id | metric | simulated | measured | error | source |\n|---|---|---|---|---|---|\n";
  const json& rows = r.at("rows");
  for (size_t i = 0; i < rows.size(); ++i) {
    const json& row = rows[i];
    const std::string where = "rows[" + std::to_string(i) + "]";
    Expected<double> sim = Num(row, file, where, "simulated");
    if (!sim.ok()) return sim.status();
    Expected<double> meas = Num(row, file, where, "measured");
    if (!meas.ok()) return meas.status();
    Expected<double> err = Num(row, file, where, "error_pct");
    if (!err.ok()) return err.status();
    const std::string id = row.value("id", where);
    const std::string metric = row.value("metric", "?");
    ids.push_back(id);
    errors.values.push_back(*err);
    if (*sim > 0 && *meas > 0) {
      Series& s = by_metric[metric];
      s.name = metric;
      s.points.push_back({*meas, *sim});
    }
    md << "| " << id << " | " << metric << " | " << F("%.4g", *sim) << " | " << F("%.4g", *meas)
       << " | " << F("%+.1f%%", *err) << " | " << row.value("source", "") << " |\n";
  }
  Expected<double> mape = Num(r, file, "", "mape_pct");
  if (!mape.ok()) return mape.status();
  md << "\n**MAPE " << F("%.1f%%", *mape) << "** over " << rows.size() << " rows.\n\n";
  MOESIM_RETURN_IF_ERROR(WriteBarsPng(
      out("errors.png"), {"Error per row (simulated / measured - 1)", "row", "error (%)"}, ids,
      {errors}));
  for (const auto& [metric, series] : by_metric) {
    if (series.points.size() < 2) continue;
    const std::string png = "scatter_" + metric + ".png";
    md << "![" << metric << ": simulated vs measured](" << png << ")\n\n";
    MOESIM_RETURN_IF_ERROR(WriteScatterPng(
        out(png), {metric + ": simulated vs measured", "measured", "simulated", true, true},
        {series}));
  }

  // Changes against a baseline row (the paper's dense-to-MoE increases).
  const json rel = r.value("relative", json::array());
  if (rel.is_array() && !rel.empty()) {
    std::vector<std::string> names;
    BarSet simulated{"simulated", {}}, measured{"measured", {}};
    md << "## Changes against a baseline\n\n![changes](changes.png)\n\n"
       << "| change of | against | simulated | measured | difference |\n|---|---|---|---|---|\n";
    for (size_t i = 0; i < rel.size(); ++i) {
      const std::string where = "relative[" + std::to_string(i) + "]";
      Expected<double> s = Num(rel[i], file, where, "simulated_pct");
      if (!s.ok()) return s.status();
      Expected<double> m = Num(rel[i], file, where, "measured_pct");
      if (!m.ok()) return m.status();
      const std::string id = rel[i].value("id", where);
      const std::string base = rel[i].value("baseline", "?");
      names.push_back(id);
      simulated.values.push_back(*s);
      measured.values.push_back(*m);
      md << "| " << id << " | " << base << " | " << F("%+.1f%%", *s) << " | " << F("%+.1f%%", *m)
         << " | " << F("%+.1f pp", *s - *m) << " |\n";
    }
    md << "\n";
    MOESIM_RETURN_IF_ERROR(WriteBarsPng(out("changes.png"),
                                        {"Change against the baseline row", "row", "change (%)"},
                                        names, {simulated, measured}));
  }

  return WriteText(out("report.md"), md.str());
}

}  // namespace moesim::report
