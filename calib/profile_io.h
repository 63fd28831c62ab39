// profile_io.h
//
// Hardware profile files: one `Hardware` message (proto/moesim.proto) in protobuf text format,
// as `moesim calibrate --out` writes them and a scenario's `hardware { ... }` block reads them:
//   chip: "cpu"  peak_flops_per_s: 1.344e+11  memory_efficiency: 0.61 ...
// A profile is a chip's built-in figures with the file's set fields replacing them.
// Thread safety: pure functions.
#pragma once

#include <string>

#include "calib/fit.h"
#include "common/status.h"
#include "proto/moesim.pb.h"
#include "proto/scenario.h"

namespace moesim::calib {

// A built-in chip name ("cpu", "h100-sxm") or a profile file. Errors name the file and line.
Expected<pb::Hardware> ReadProfileMessage(const std::string& name_or_path);
// The message resolved against its chip's built-in profile (set fields win).
Expected<HardwareProfile> ResolveProfile(const pb::Hardware& message);

// The calibrated profile as a message: every field set explicitly, fits recorded.
pb::Hardware ProfileMessage(const Calibration& calibration);
// Text of a profile file; `header` lines are written as # comments first.
std::string ProfileText(const pb::Hardware& message, const std::string& header);

}  // namespace moesim::calib
