// scenario_doc.h
//
// The scenario being edited in the GUI: a base text (a scenario file, or the built-in default)
// plus the form's edits as `--set PATH=VALUE` overrides, applied in order exactly as the CLI
// applies them. Loading goes through LoadScenarioFromText, so a bad value gets the CLI's own
// message, e.g. "<default> (--set model.d_model=-4): model.d_model=-4 must be > 0".
// Repeated fields (sharding.rules) cannot be overridden with --set; editing one rewrites the base
// text instead (the source is then named "NAME (edited)").
// Thread safety: none; a value type, copied into worker threads.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "proto/scenario.h"
#include "sim/planner/planner.h"

namespace moesim::gui {

class ScenarioDoc {
 public:
  ScenarioDoc();  // the built-in default scenario, no overrides

  // Reads `path` ("" = the built-in default) and drops every override.
  Status Open(const std::string& path);
  const std::string& path() const { return path_; }
  const ScenarioText& base() const { return base_; }
  const std::vector<std::string>& overrides() const { return overrides_; }

  // Sets PATH=VALUE (after every other override; earlier ones of PATH are dropped).
  void SetOverride(const std::string& path, const std::string& value);
  void ClearOverrides() { overrides_.clear(); }
  // Replaces every override (e.g. `--set` arguments, or a point picked on a chart).
  void SetOverrides(std::vector<std::string> overrides) { overrides_ = std::move(overrides); }

  // Replaces the elements of repeated field `path` (e.g. "sharding.rules") with `elements_text`,
  // protobuf text of the elements as they would appear inside the parent message
  // ("rules { ... } rules { ... }"). Errors name the field and the parse problem.
  Status SetRepeatedField(const std::string& path, const std::string& elements_text);

  // The validated scenario, as `moesim simulate [PATH] --set ...` would load it.
  Expected<Scenario> Load() const;

  // The value of `path` among the overrides, or "" (the last one wins).
  std::string OverrideValue(const std::string& path) const;

 private:
  std::string path_;
  ScenarioText base_;
  std::vector<std::string> overrides_;
};

}  // namespace moesim::gui
