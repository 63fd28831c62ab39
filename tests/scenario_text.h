// scenario_text.h: helpers for tests that write scenarios inline.
//
// LoadText parses and validates a scenario text as "t.textproto" (errors name its lines), with
// relative paths resolved from the source tree; Replace edits one occurrence of a piece of a
// scenario text (a missing piece fails the test); Read returns a file of the source tree;
// AxisNamed finds a mesh axis by its written name (a missing one fails the test).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "proto/scenario_loader.h"

namespace moesim::scenario_text {

inline Expected<Scenario> LoadText(const std::string& text) {
  return LoadScenarioFromText(text, "t.textproto", {}, MOESIM_SOURCE_DIR);
}

inline std::string Replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

inline std::string Read(const std::string& relative_path) {
  std::ifstream in(std::string(MOESIM_SOURCE_DIR) + "/" + relative_path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline MeshAxis AxisNamed(const Mesh& mesh, const std::string& name) {
  for (int a = 0; a < mesh.num_axes; ++a) {
    if (mesh.Name(static_cast<MeshAxis>(a)) == name) return static_cast<MeshAxis>(a);
  }
  ADD_FAILURE() << "no axis " << name;
  return MeshAxis::kData;
}

}  // namespace moesim::scenario_text
