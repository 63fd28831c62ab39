// planner_output.h: tables and CSV of planner points, shared by `sweep` and `plan`.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "sim/planner/planner.h"

namespace moesim::cli {

// The value of `path` among a point's overrides (the last one wins), or "".
std::string OverrideValue(const std::vector<std::string>& overrides, const std::string& path);

// One line per point: the varied values, status, step time, breakdown, MFU, memory.
void PrintPointsTable(const std::vector<PointResult>& points,
                      const std::vector<std::string>& columns, size_t base_overrides,
                      std::ostream& out);
Status WritePointsCsv(const std::vector<PointResult>& points,
                      const std::vector<std::string>& columns, size_t base_overrides,
                      const std::string& target);

}  // namespace moesim::cli
