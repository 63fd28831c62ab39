// hardware_profiles.h
//
// Built-in chip profiles: vendor datasheet figures (../shared/data/hardware.md, sources in
// hardware_profiles.cc) plus first-principles priors for the efficiencies, which calibration
// (issue 8) replaces with fitted values. One profile per chip, never per scenario.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "proto/scenario.h"

namespace moesim {

// The profile named `chip` ("tpu-v5e", "h100-sxm", ...), or kInvalidInput naming the choices.
Expected<HardwareProfile> BuiltinHardwareProfile(const std::string& chip);
std::vector<std::string> BuiltinHardwareProfileNames();

}  // namespace moesim
