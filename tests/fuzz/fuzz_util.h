// fuzz_util.h: helpers shared by the libFuzzer harnesses (tests/fuzz/*_fuzzer.cc).
//
// Loaders that only take a path get the input through a file in a directory of this process
// (std::filesystem::temp_directory_path()/moesim-fuzz-PID-XXXXXX), removed when the process
// exits normally. Thread safety: one thread (libFuzzer runs inputs one after another).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moesim::fuzz {

// The input as a string.
std::string AsString(const uint8_t* data, size_t size);

// Writes `bytes` to `name` inside this process's temporary directory and returns the path.
std::string WriteTempFile(const std::string& name, std::string_view bytes);

// This process's temporary directory (created on first use).
const std::string& TempDir();

// The values of lines "#set PATH=VALUE" in `text` ("PATH=VALUE"), at most `max` of them: the
// `--set` overrides a scenario input carries in its comments, so that scenario files work as
// seeds as they are.
std::vector<std::string> SetLines(const std::string& text, size_t max);

// Splits `text` at the first occurrence of `marker`: {before, after}; no marker: {text, ""} and
// *found = false.
std::pair<std::string, std::string> SplitAt(const std::string& text, std::string_view marker,
                                            bool* found);

}  // namespace moesim::fuzz
