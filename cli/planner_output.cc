#include "cli/planner_output.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/format.h"
#include "schema/report_schema.h"

namespace moesim::cli {
void PrintPointsTable(const std::vector<PointResult>& points,
                      const std::vector<std::string>& columns, size_t base, std::ostream& out) {
  (void)base;
  // Each varied field's column is as wide as its name or its widest value.
  std::vector<size_t> width;
  for (const auto& c : columns) {
    size_t w = c.size();
    for (const PointResult& p : points) w = std::max(w, OverrideValue(p.overrides, c).size());
    width.push_back(w);
  }
  auto cell = [&out](const std::string& text, size_t w) {
    out << text << std::string(w - text.size() + 2, ' ');
  };
  for (size_t i = 0; i < columns.size(); ++i) cell(columns[i], width[i]);
  char header[128];
  std::snprintf(header, sizeof(header), "| %-12s %7s  %7s  %7s  %7s  %6s  %8s\n", "status",
                "step_s", "compute", "exposed", "bubble", "MFU", "peak_GiB");
  out << header;
  for (const PointResult& p : points) {
    for (size_t i = 0; i < columns.size(); ++i) {
      cell(OverrideValue(p.overrides, columns[i]), width[i]);
    }
    char line[256];
    if (p.outcome == PointResult::Outcome::kInvalid) {
      out << "| invalid: " << p.message.substr(0, p.message.find('\n')) << "\n";
      continue;
    }
    const SimReport& r = p.report;
    std::snprintf(line, sizeof(line), "| %-12s %7.4f  %7.4f  %7.4f  %7.4f  %5.1f%%  %8.2f\n",
                  OutcomeName(p.outcome), r.step_time_s, r.breakdown.compute_s,
                  r.breakdown.exposed_comm_s, r.breakdown.bubble_s, 100 * r.mfu,
                  r.memory.peak_bytes / (1024.0 * 1024 * 1024));
    out << line;
  }
}

Status WritePointsCsv(const std::vector<PointResult>& points,
                      const std::vector<std::string>& columns, size_t base,
                      const std::string& target) {
  (void)base;
  std::ofstream file;
  std::ostream* out = &std::cout;
  if (target != "-") {
    file.open(target, std::ios::binary);
    if (!file) return Status::InvalidInput(target + ": cannot open for writing");
    out = &file;
  }
  WriteSweepCsvHeader(columns, *out);
  for (const PointResult& p : points) WriteSweepCsvRow(MakeSweepRow(p, columns), *out);
  if (file.is_open()) {
    file.close();
    if (!file) return Status::InvalidInput(target + ": write failed");
  }
  return Status::Ok();
}

}  // namespace moesim::cli
