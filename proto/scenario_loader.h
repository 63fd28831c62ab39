// scenario_loader.h
//
// Loads a scenario: protobuf text (a file, or the built-in default), then `--set PATH=VALUE`
// overrides, then validation into the plain structs of scenario.h with every default resolved.
//
// Every error names where it comes from and the field path, e.g.
//   scenarios/apple2024/moe-1.6b-64e.textproto:27: sharding.mesh.expert=12 does not divide
//   model.moe.num_experts=64
//   <default> (--set model.d_model=-4): model.d_model=-4 must be > 0
// and comes back as Status::kInvalidInput (exit code 2). All errors found are reported, one per
// line. Thread safety: pure functions; safe to call from many threads.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "proto/scenario.h"

namespace moesim {

struct LoadOptions {
  std::string path;                    // empty = the built-in default scenario
  std::vector<std::string> overrides;  // "model.d_model=1024", applied in order
};

Expected<Scenario> LoadScenario(const LoadOptions& options);

// As LoadScenario, from text already read. `source_name` is used in messages; `base_dir`
// resolves relative topology file paths.
Expected<Scenario> LoadScenarioFromText(const std::string& text, const std::string& source_name,
                                        const std::vector<std::string>& overrides,
                                        const std::string& base_dir = ".");

// Whether `assignment` ("PATH=VALUE") could be applied as `--set`: PATH names a scalar field of
// the schema and VALUE parses for its type. Nothing is loaded or validated beyond that, so a
// command that applies one path with many values (sweep) refuses a typo once, up front.
Status CheckOverride(const std::string& assignment);

// The built-in default scenario's text (scenarios/apple2024/moe-1.6b-64e.textproto, compiled in).
const std::string& DefaultScenarioText();

}  // namespace moesim
