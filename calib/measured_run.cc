#include "calib/measured_run.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace moesim::calib {

std::string OpClass(const std::string& name) {
  if (name.size() > 2 && name[0] == 'L' && std::isdigit(static_cast<unsigned char>(name[1]))) {
    const size_t dot = name.find('.');
    if (dot != std::string::npos) return name.substr(dot + 1);
  }
  return name;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

Expected<MeasuredRun> ReadMeasuredRun(const std::string& trace_path,
                                      const std::string& metrics_path, int64_t steady_after) {
  using json = nlohmann::json;
  MeasuredRun run;
  {
    std::ifstream in(metrics_path);
    if (!in) return Status::InvalidInput(metrics_path + ": cannot open metrics file");
    std::string line;
    int lineno = 0;
    double dropped_sum = 0;
    int64_t dropped_n = 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.empty()) continue;
      const std::string where = metrics_path + ":" + std::to_string(lineno);
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e400
        return Status::InvalidInput(where + ": not valid JSON: " + e.what());
      }
      if (!j.contains("step") || !j.at("step").is_number_integer() || !j.contains("step_time_s") ||
          !j.at("step_time_s").is_number()) {
        return Status::InvalidInput(where + ": needs integer \"step\" and number \"step_time_s\"");
      }
      if (j.at("step").get<int64_t>() > steady_after) {
        run.step_times_s.push_back(j.at("step_time_s").get<double>());
        if (j.contains("dropped_fraction") && j.at("dropped_fraction").is_number()) {
          dropped_sum += j.at("dropped_fraction").get<double>();
          ++dropped_n;
        }
      }
    }
    if (dropped_n > 0) run.dropped_fraction = dropped_sum / static_cast<double>(dropped_n);
    if (run.step_times_s.empty()) {
      return Status::InvalidInput(metrics_path + ": no step after step " +
                                  std::to_string(steady_after) +
                                  " (warm-up and traced steps are not timed)");
    }
    run.step_time_s = Median(run.step_times_s);
  }
  std::ifstream in(trace_path);
  if (!in) return Status::InvalidInput(trace_path + ": cannot open trace");
  std::stringstream ss;
  ss << in.rdbuf();
  json root;
  try {
    root = json::parse(ss.str());
  } catch (const json::exception& e) {
    return Status::InvalidInput(trace_path + ": not valid JSON: " + e.what());
  }
  if (!root.is_object() || !root.contains("traceEvents") || !root.at("traceEvents").is_array()) {
    return Status::InvalidInput(trace_path + ": traceEvents is missing (not a moesim-real trace)");
  }
  std::set<int64_t> pids, steps;
  std::map<std::string, double> total;
  const json& events = root.at("traceEvents");
  for (size_t i = 0; i < events.size(); ++i) {
    const json& e = events[i];
    if (!e.is_object() || !e.contains("ph") || e.at("ph") != "X") continue;
    // Types checked before any get<>(), which throws on a mismatch.
    if (!e.contains("name") || !e.at("name").is_string() || !e.contains("dur") ||
        !e.at("dur").is_number() || !e.contains("pid") || !e.at("pid").is_number_integer()) {
      return Status::InvalidInput(trace_path + ": traceEvents[" + std::to_string(i) +
                                  "]: an X event needs name (a string), dur (a number) and pid "
                                  "(an integer)");
    }
    pids.insert(e.at("pid").get<int64_t>());
    if (e.contains("args") && e.at("args").contains("step")) {
      if (!e.at("args").at("step").is_number_integer()) {
        return Status::InvalidInput(trace_path + ": traceEvents[" + std::to_string(i) +
                                    "]: args.step must be an integer");
      }
      steps.insert(e.at("args").at("step").get<int64_t>());
    }
    total[OpClass(e.at("name").get<std::string>())] += e.at("dur").get<double>() * 1e-6;
  }
  if (pids.empty()) return Status::InvalidInput(trace_path + ": no op events");
  run.ranks = static_cast<int64_t>(pids.size());
  run.traced_steps = std::max<int64_t>(1, static_cast<int64_t>(steps.size()));
  const double div = static_cast<double>(run.ranks * run.traced_steps);
  for (auto& [name, s] : total) run.op_s[name] = s / div;
  return run;
}

}  // namespace moesim::calib
