// hardware_profiles.h
//
// Built-in chip profiles: vendor datasheet figures (../shared/data/hardware.md, sources in
// hardware_profiles.cc) plus first-principles priors for the efficiencies, which calibration
// (issue 8) replaces with fitted values. One profile per chip, never per scenario.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "proto/moesim.pb.h"
#include "proto/scenario.h"

namespace moesim {

// The profile named `chip` ("tpu-v5e", "h100-sxm", ...), or kInvalidInput naming the choices.
Expected<HardwareProfile> BuiltinHardwareProfile(const std::string& chip);
std::vector<std::string> BuiltinHardwareProfileNames();

// One bad entry of Hardware.kernel_memory_efficiency: the field path under the Hardware message
// ("kernel_memory_efficiency[1].kernel") and what is wrong with it, after that path.
struct HardwareFieldError {
  std::string field;
  std::string detail;  // "=\"foo\" is not a kernel (copy, axpy, ...)"
};
// Sets out->kernel_memory_efficiency from h's entries; entries in error are skipped and returned.
std::vector<HardwareFieldError> ApplyKernelEfficiencies(const pb::Hardware& h,
                                                        HardwareProfile* out);

}  // namespace moesim
