// shipped_files.h
//
// The shipped inputs that the command-line tests run end to end (every scenario under
// scenarios/, every validation set validation/*.csv), listed from the source tree at run time,
// so that a new file is covered without touching a test. One owner for the tests that iterate over
// them (tests/cli/determinism_test.cc, tests/cli/golden_test.cc). Header-only.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

namespace moesim::test_cli {

// Files with extension `ext` under `dir` of the source tree (its subfolders too when `deep`), as
// paths relative to the source root, sorted.
inline std::vector<std::string> ShippedFiles(const std::string& dir, const std::string& ext,
                                             bool deep) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  const fs::path root = fs::path(MOESIM_SOURCE_DIR) / dir;
  auto take = [&](const fs::directory_entry& e) {
    if (e.is_regular_file() && e.path().extension() == ext) {
      out.push_back(fs::relative(e.path(), MOESIM_SOURCE_DIR).string());
    }
  };
  if (deep) {
    for (const auto& e : fs::recursive_directory_iterator(root)) take(e);
  } else {
    for (const auto& e : fs::directory_iterator(root)) take(e);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every shipped scenario: scenarios/**/*.textproto.
inline std::vector<std::string> ShippedScenarios() {
  return ShippedFiles("scenarios", ".textproto", true);
}

// Every shipped validation set: validation/*.csv (not validation/real/, which validate-real reads).
inline std::vector<std::string> ShippedValidationSets() {
  return ShippedFiles("validation", ".csv", false);
}

// A GoogleTest parameter name for a path: every character but letters and digits becomes '_'.
inline std::string PathTestName(const testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

}  // namespace moesim::test_cli
