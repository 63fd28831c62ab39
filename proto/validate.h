// validate.h (internal to proto/)
//
// Turns a parsed pb::Scenario into the plain Scenario of scenario.h: resolves defaults, expands
// the sharding preset, and checks every invariant that scenario.h promises. Collects all errors.
#pragma once

#include <string>

#include "common/status.h"
#include "proto/field_locator.h"
#include "proto/moesim.pb.h"
#include "proto/scenario.h"

namespace moesim {

Expected<Scenario> ValidateScenario(const pb::Scenario& in, const FieldLocator& locator,
                                    const std::string& base_dir);

}  // namespace moesim
