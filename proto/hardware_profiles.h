// hardware_profiles.h
//
// Built-in chip profiles: vendor datasheet figures (../shared/data/hardware.md, sources in
// hardware_profiles.cc) plus first-principles priors for the efficiencies, which calibration
// (validation/calibration.md, `moesim calibrate`) replaces with fitted values. One profile per chip, never per scenario.
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

// One bad field of a Hardware message: its path under the message
// ("matmul_efficiency", "kernel_memory_efficiency[1].kernel") and what is wrong with it, after
// that path.
struct HardwareFieldError {
  std::string field;
  std::string detail;  // "=1.5 must be in (0, 1]", "=\"foo\" is not a kernel (copy, ...)"
};
// Sets over *out (normally the chip's built-in profile) every field that h sets: a scalar when
// > 0 (0 = not given), the GEMM model's four fields together when gemm_max_efficiency is, each
// kernel_memory_efficiency entry. Fields out of range (negative, not finite, efficiencies above
// 1, unknown or repeated kernels) are left unapplied and returned, in message order. Shared by
// scenarios' hardware blocks and profile files, so both accept and refuse the same values.
std::vector<HardwareFieldError> ApplyHardwareFields(const pb::Hardware& h, HardwareProfile* out);

}  // namespace moesim
