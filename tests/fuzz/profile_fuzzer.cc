// Fuzzes hardware profile files (calib/profile_io.h): one `Hardware` message in protobuf text
// format, read over a chip's built-in profile (proto/hardware_profiles.h), as `moesim calibrate`
// and `moesim validate-real --profile` read them. A profile that reads is resolved, written
// back as text and read again.
//
// Input: a profile file (seeds: the cpu.textproto profiles under validation/measurements/),
// written to a temporary file because the reader takes a path. An error Status is a fine
// outcome; only crashes, undefined behaviour, leaks, timeouts and running out of memory are
// findings.
#include <cstddef>
#include <cstdint>
#include <string>

#include "calib/profile_io.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      moesim::fuzz::WriteTempFile("profile.textproto", moesim::fuzz::AsString(data, size));
  moesim::Expected<moesim::pb::Hardware> msg = moesim::calib::ReadProfileMessage(path);
  if (!msg.ok()) return 0;
  (void)moesim::calib::ResolveProfile(*msg);
  const std::string again =
      moesim::fuzz::WriteTempFile("again.textproto", moesim::calib::ProfileText(*msg, "fuzz"));
  (void)moesim::calib::ReadProfileMessage(again);
  return 0;
}
