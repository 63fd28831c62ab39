#include "schema/chrome_trace.h"

#include <fstream>

namespace moesim {

void ChromeTrace::AddProcess(int64_t pid, const std::string& name,
                             const std::vector<std::string>& thread_names) {
  events_.push_back(
      {{"name", "process_name"}, {"ph", "M"}, {"pid", pid}, {"args", {{"name", name}}}});
  for (size_t t = 0; t < thread_names.size(); ++t) {
    events_.push_back({{"name", "thread_name"},
                       {"ph", "M"},
                       {"pid", pid},
                       {"tid", static_cast<int64_t>(t)},
                       {"args", {{"name", thread_names[t]}}}});
  }
}

void ChromeTrace::AddOp(const std::string& name, const std::string& cat, int64_t pid, int64_t tid,
                        double start_s, double dur_s, nlohmann::json args) {
  events_.push_back({{"name", name},
                     {"cat", cat},
                     {"ph", "X"},
                     {"pid", pid},
                     {"tid", tid},
                     {"ts", start_s * 1e6},
                     {"dur", dur_s * 1e6},
                     {"args", std::move(args)}});
}

nlohmann::json ChromeTrace::ToJson() const {
  return {{"traceEvents", events_}, {"displayTimeUnit", "ms"}, {"otherData", other_data_}};
}

Status ChromeTrace::Write(const std::string& path) const {
  std::ofstream out(path, std::ios::binary);
  if (!out) return Status::InvalidInput(path + ": cannot open for writing");
  out << ToJson().dump() << "\n";
  out.close();
  if (!out) return Status::InvalidInput(path + ": write failed");
  return Status::Ok();
}

}  // namespace moesim
