// chrome_trace.h
//
// The one writer of Chrome trace JSON (opens in Perfetto and chrome://tracing), used by
// `moesim simulate --trace` (a simulated step, schema/report_schema.h) and by
// `moesim-real train --trace` (a measured step, real/profiler.h), so the two compare op by op.
//
// A trace is a list of events written in the order they were added: process and thread names
// ("M" metadata events) and complete ops ("X" events). Times are given in seconds and written in
// microseconds (the format's unit): ts = start_s x 1e6, dur = dur_s x 1e6. pid and tid are free
// integers (moesim: pid = pipeline stage or rank, tid = stream). `args` and `other_data` are
// written as given (JSON objects).
// Thread safety: a value; one thread per ChromeTrace.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace moesim {

class ChromeTrace {
 public:
  // A process (pid) named `name`, and its threads 0..thread_names.size()-1 named in order.
  void AddProcess(int64_t pid, const std::string& name,
                  const std::vector<std::string>& thread_names);
  // A complete op: [start_s, start_s + dur_s) on (pid, tid), category `cat`.
  void AddOp(const std::string& name, const std::string& cat, int64_t pid, int64_t tid,
             double start_s, double dur_s, nlohmann::json args);
  // The "otherData" object (generator, notes, figures of the whole trace).
  nlohmann::json& other_data() { return other_data_; }

  // {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}.
  nlohmann::json ToJson() const;
  // ToJson() on one line and a newline. Errors (kInvalidInput) name the path.
  Status Write(const std::string& path) const;

  size_t num_events() const { return events_.size(); }

 private:
  nlohmann::json events_ = nlohmann::json::array();
  nlohmann::json other_data_ = nlohmann::json::object();
};

}  // namespace moesim
