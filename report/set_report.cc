#include "report/set_report.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "report/json_util.h"
#include "report/plots.h"
#include "schema/report_schema.h"

namespace moesim::report {

using json = nlohmann::json;
namespace fs = std::filesystem;

Expected<std::string> WriteSetReport(const json& r, const ReportInputs& in) {
  const std::string& file = in.results_json;
  Expected<ValidationRecord> parsed = ParseValidationJson(r, file);
  if (!parsed.ok()) return parsed.status();
  const ValidationRecord& v = *parsed;
  std::error_code ec;
  fs::create_directories(in.out_dir, ec);
  if (ec) return Status::InvalidInput(in.out_dir + ": cannot create (" + ec.message() + ")");
  const auto out = [&](const std::string& f) { return (fs::path(in.out_dir) / f).string(); };

  std::ostringstream md;
  md << "# moesim: validation set report\n\n"
     << "Simulated (`moesim validate`, network " << v.network << ") against the measurements of `"
     << v.set << "`, row by row.\n\n";

  // Per row: the error bars, a table, and per metric simulated vs measured.
  std::vector<std::string> ids;
  BarSet errors{"error (%)", {}};
  std::map<std::string, Series> by_metric;
  md << "## Rows\n\n![error per row](errors.png)\n\n"
     << "| id | metric | simulated | measured | error | source |\n|---|---|---|---|---|---|\n";
  for (const ValidationRecord::Row& row : v.rows) {
    ids.push_back(row.id);
    errors.values.push_back(row.error_pct);
    if (row.simulated > 0 && row.measured > 0) {
      Series& s = by_metric[row.metric];
      s.name = row.metric;
      s.points.push_back({row.measured, row.simulated});
    }
    md << "| " << row.id << " | " << row.metric << " | " << F("%.4g", row.simulated) << " | "
       << F("%.4g", row.measured) << " | " << F("%+.1f%%", row.error_pct) << " | " << row.source
       << " |\n";
  }
  md << "\n**MAPE " << F("%.1f%%", v.mape_pct) << "** over " << v.rows.size() << " rows.\n\n";
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
  if (!v.relative.empty()) {
    std::vector<std::string> names;
    BarSet simulated{"simulated", {}}, measured{"measured", {}};
    md << "## Changes against a baseline\n\n![changes](changes.png)\n\n"
       << "| change of | against | simulated | measured | difference |\n|---|---|---|---|---|\n";
    for (const ValidationRecord::Relative& rel : v.relative) {
      names.push_back(rel.id);
      simulated.values.push_back(rel.simulated_pct);
      measured.values.push_back(rel.measured_pct);
      md << "| " << rel.id << " | " << rel.baseline << " | " << F("%+.1f%%", rel.simulated_pct)
         << " | " << F("%+.1f%%", rel.measured_pct) << " | "
         << F("%+.1f pp", rel.simulated_pct - rel.measured_pct) << " |\n";
    }
    md << "\n";
    MOESIM_RETURN_IF_ERROR(WriteBarsPng(out("changes.png"),
                                        {"Change against the baseline row", "row", "change (%)"},
                                        names, {simulated, measured}));
  }

  return WriteText(out("report.md"), md.str());
}

}  // namespace moesim::report
