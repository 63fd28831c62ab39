// json_util.h (internal to report/)
//
// Reading the JSON files the reports are made from (their fields are read by schema/'s typed
// readers), and writing the Markdown page.
#pragma once

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common/status.h"

namespace moesim::report {

inline Expected<nlohmann::json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidInput(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e400
    return Status::InvalidInput(path + ": not valid JSON: " + e.what());
  }
}

// printf-formatted number.
inline std::string F(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

// Writes `text` to `path`; returns the path.
inline Expected<std::string> WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  if (!f) return Status::InvalidInput(path + ": cannot open for writing");
  f << text;
  f.close();
  if (!f) return Status::InvalidInput(path + ": write failed");
  return path;
}

}  // namespace moesim::report
