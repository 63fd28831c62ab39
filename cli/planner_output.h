// planner_output.h: tables and CSV of planner points, shared by `sweep` and `plan`.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "schema/report_schema.h"
#include "sim/planner/planner.h"

namespace moesim::cli {

// The sweep CSV's rows are schema/report_schema.h's SweepRow ; OverrideValue is
// sim/planner/budget.h's.

// One line per point: the varied values, status, step time, breakdown, MFU, memory.
void PrintPointsTable(const std::vector<PointResult>& points,
                      const std::vector<std::string>& columns, size_t base_overrides,
                      std::ostream& out);
Status WritePointsCsv(const std::vector<PointResult>& points,
                      const std::vector<std::string>& columns, size_t base_overrides,
                      const std::string& target);

}  // namespace moesim::cli
