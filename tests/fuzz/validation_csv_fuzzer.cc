// Fuzzes validation-set CSVs: the reader of `moesim validate SET.csv` (ReadValidationSet,
// sim/planner/validation_set.h), the reader of `moesim validate-real`'s configuration CSV
// (ReadRealConfigs, calib/validation.h), and the line splitter both use (common/csv.h). Rows
// are read and checked, not simulated.
//
// Input: a CSV file (seeds: validation/*.csv, validation/real/*.csv), written to a temporary
// file because both readers take a path. An error Status is a fine outcome; only crashes,
// undefined behaviour, leaks, timeouts and running out of memory are findings.
#include <cstddef>
#include <cstdint>
#include <string>

#include "calib/validation.h"
#include "common/csv.h"
#include "sim/planner/validation_set.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = moesim::fuzz::AsString(data, size);
  size_t fields = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    fields += moesim::SplitCsvLine(text.substr(pos, end - pos)).size();
    pos = end + 1;
  }
  (void)fields;
  const std::string path = moesim::fuzz::WriteTempFile("set.csv", text);
  (void)moesim::ReadValidationSet(path);
  (void)moesim::calib::ReadRealConfigs(path);
  return 0;
}
