#include "cli/planner_output.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/format.h"

namespace moesim::cli {
namespace {

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

}  // namespace

std::string OverrideValue(const std::vector<std::string>& overrides, const std::string& path) {
  std::string v;
  for (const auto& o : overrides) {
    if (o.rfind(path + "=", 0) == 0) v = o.substr(path.size() + 1);
  }
  return v;
}

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
  for (const auto& c : columns) *out << CsvField(c) << ",";
  *out << "status,step_time_s,compute_s,exposed_comm_s,comm_total_s,bubble_s,idle_s,mfu,"
          "tokens_per_s,tflops_per_device,peak_bytes_per_device,fits,message\n";
  for (const PointResult& p : points) {
    for (const auto& c : columns) *out << CsvField(OverrideValue(p.overrides, c)) << ",";
    const SimReport& r = p.report;
    const bool sim = p.outcome != PointResult::Outcome::kInvalid && r.step_time_s > 0;
    *out << OutcomeName(p.outcome) << ",";
    if (sim) {
      const Breakdown& b = r.breakdown;
      *out << Num(r.step_time_s) << "," << Num(b.compute_s) << "," << Num(b.exposed_comm_s) << ","
           << Num(b.comm_total_s) << "," << Num(b.bubble_s) << "," << Num(b.idle_s) << ","
           << Num(r.mfu) << "," << Num(r.tokens_per_s) << "," << Num(r.tflops_per_device) << ","
           << Num(r.memory.peak_bytes) << "," << (r.memory.fits ? "true" : "false") << ",";
    } else {
      *out << ",,,,,,,,,,,";
    }
    *out << CsvField(p.message.substr(0, p.message.find('\n'))) << "\n";
  }
  if (file.is_open()) {
    file.close();
    if (!file) return Status::InvalidInput(target + ": write failed");
  }
  return Status::Ok();
}

}  // namespace moesim::cli
