// csv.h: splitting one line of a CSV file (validation sets, calibration configurations).
// RFC 4180 quoting ("a ""b""" -> a "b"), no embedded newlines, a trailing '\r' dropped.
// Thread safety: pure functions.
#pragma once

#include <string>
#include <vector>

namespace moesim {

// The fields of `line`; an empty line gives one empty field.
std::vector<std::string> SplitCsvLine(const std::string& line);

}  // namespace moesim
