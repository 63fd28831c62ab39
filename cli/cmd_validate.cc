// `moesim validate SET.csv [--network ...] [--json FILE|-]`: simulated vs measured, per row, and
// the mean absolute percentage error. A validation set is a CSV with the header
//   id,scenario,overrides,metric,measured,source
// scenario: a path relative to the CSV's folder, to its parent (the repository root for
// validation/*.csv) or to the working directory, or `default`;
// overrides: PATH=VALUE joined by ';'; metric: step_time_s | tflops_per_device | mfu |
// tokens_per_s_per_device. Large errors are results, not failures: exit 0.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "cli/format.h"
#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"

namespace moesim::cli {
namespace {

// Splits one CSV line (RFC 4180 quoting, no embedded newlines).
std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else if (c != '\r') {
      out.back() += c;
    }
  }
  return out;
}

struct Row {
  int line = 0;
  std::string id, scenario, overrides, metric, source;
  double measured = 0;
};

Expected<std::vector<Row>> ReadSet(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidInput(path + ": cannot open validation set");
  std::string line;
  std::getline(in, line);
  const std::string header = "id,scenario,overrides,metric,measured,source";
  if (line.rfind(header, 0) != 0) {
    return Status::InvalidInput(path + ":1: header must be \"" + header + "\"");
  }
  std::vector<Row> rows;
  int n = 1;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    const auto f = SplitCsv(line);
    const std::string where = path + ":" + std::to_string(n) + ": ";
    if (f.size() != 6) {
      return Status::InvalidInput(where + "expected 6 fields, got " + std::to_string(f.size()));
    }
    Row r;
    r.line = n;
    r.id = f[0];
    r.scenario = f[1];
    r.overrides = f[2];
    r.metric = f[3];
    r.source = f[5];
    char* end = nullptr;
    r.measured = std::strtod(f[4].c_str(), &end);
    if (f[4].empty() || end != f[4].c_str() + f[4].size() || !(r.measured > 0)) {
      return Status::InvalidInput(where + "measured=\"" + f[4] + "\" is not a positive number");
    }
    if (r.metric != "step_time_s" && r.metric != "tflops_per_device" && r.metric != "mfu" &&
        r.metric != "tokens_per_s_per_device") {
      return Status::InvalidInput(where + "metric=\"" + r.metric +
                                  "\" is not one of step_time_s, tflops_per_device, mfu, "
                                  "tokens_per_s_per_device");
    }
    rows.push_back(r);
  }
  return rows;
}

double Metric(const Row& row, const SimReport& r, const Scenario& sc) {
  if (row.metric == "step_time_s") return r.step_time_s;
  if (row.metric == "tflops_per_device") return r.tflops_per_device;
  if (row.metric == "mfu") return r.mfu;
  return r.tokens_per_s / static_cast<double>(sc.sharding.mesh.NumDevices());
}

RunFn Setup(CLI::App* sub) {
  auto set = std::make_shared<std::string>();
  auto json = std::make_shared<std::string>();
  auto network = std::make_shared<std::string>("analytical");
  sub->add_option("set", *set, "Validation set CSV (id,scenario,overrides,metric,measured,source)")
      ->required();
  sub->add_option("--network", *network, "analytical | flow")
      ->check(CLI::IsMember({"analytical", "flow"}));
  sub->add_option("--json", *json, "Write JSON to FILE, or to stdout with -")->type_name("FILE|-");
  return [set, json, network]() -> Status {
    auto rows = ReadSet(*set);
    if (!rows.ok()) return rows.status();
    const std::filesystem::path dir = std::filesystem::path(*set).parent_path();
    nlohmann::json out_rows = nlohmann::json::array();
    double abs_err = 0;
    if (*json != "-") {
      std::printf("%-28s %-18s %12s %12s %9s\n", "id", "metric", "simulated", "measured", "error");
    }
    for (const Row& row : *rows) {
      std::string path;
      if (row.scenario != "default") {
        // The CSV's folder, then the repository root above it (validation/..), then as given.
        path = row.scenario;
        for (const auto& base : {dir, dir / ".."}) {
          if (std::filesystem::exists(base / row.scenario)) {
            path = (base / row.scenario).lexically_normal().string();
            break;
          }
        }
      }
      std::vector<std::string> overrides;
      std::stringstream ss(row.overrides);
      std::string o;
      while (std::getline(ss, o, ';')) {
        if (!o.empty()) overrides.push_back(o);
      }
      auto sc = LoadScenario({path, overrides});
      if (!sc.ok()) {
        return sc.status().WithPrefix(*set + ":" + std::to_string(row.line) + ": row " + row.id +
                                      ": ");
      }
      SimulateOptions opts;
      opts.network = *network == "flow" ? NetworkLevel::kFlow : NetworkLevel::kAnalytical;
      auto r = SimulateScenario(*sc, opts);
      if (!r.ok()) {
        return r.status().WithPrefix(*set + ":" + std::to_string(row.line) + ": row " + row.id +
                                     ": ");
      }
      const double sim = Metric(row, *r, *sc);
      const double err = 100 * (sim - row.measured) / row.measured;
      abs_err += std::abs(err);
      out_rows.push_back({{"id", row.id},
                          {"metric", row.metric},
                          {"simulated", sim},
                          {"measured", row.measured},
                          {"error_pct", err}});
      if (*json != "-") {
        std::printf("%-28s %-18s %12.4g %12.4g %8.1f%%\n", row.id.c_str(), row.metric.c_str(), sim,
                    row.measured, err);
        std::fflush(stdout);
      }
    }
    const double mape = rows->empty() ? 0 : abs_err / static_cast<double>(rows->size());
    if (*json != "-") {
      std::printf("MAPE %.1f%% over %zu rows (network %s)\n", mape, rows->size(), network->c_str());
    }
    if (!json->empty()) {
      return WriteJson({{"rows", out_rows}, {"mape_pct", mape}, {"network", *network}}, *json);
    }
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("validate", "Simulated vs measured over a validation set CSV; MAPE", 40,
                        Setup);

}  // namespace moesim::cli
