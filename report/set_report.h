// set_report.h (internal to report/)
//
// The report of a validation set (`moesim validate SET.csv --json FILE`, then `moesim report
// FILE`): per-row errors, the changes against a baseline, and simulated vs measured per metric.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"
#include "report/report.h"

namespace moesim::report {

// `r` is moesim validate's JSON, read through schema/report_schema.h (ParseValidationJson; a
// missing or mistyped field is an error naming the file and field). Returns report.md's path.
Expected<std::string> WriteSetReport(const nlohmann::json& r, const ReportInputs& in);

}  // namespace moesim::report
