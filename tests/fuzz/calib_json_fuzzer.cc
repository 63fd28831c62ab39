// Fuzzes the calibration inputs read as JSON (calib/):
//   - `moesim-real bench --json` documents (ParseBenchJson, calib/bench_data.h); a document
//     that parses is merged and calibrated (Calibrate, calib/fit.h) as `moesim calibrate` does;
//   - a measured run, `moesim-real train --trace FILE --metrics FILE` (ReadMeasuredRun,
//     calib/measured_run.h): when the input holds the line "--- metrics ---", the text before
//     it is the trace (Chrome trace JSON) and the text after it the metrics (JSON lines).
//
// Seeds: the bench files under validation/measurements/ and seeds/calib_json/. Files go through
// temporary files where the reader takes a path. An error Status is a fine outcome; only
// crashes, undefined behaviour, leaks, timeouts and running out of memory are findings.
#include <cstddef>
#include <cstdint>
#include <string>

#include "calib/bench_data.h"
#include "calib/fit.h"
#include "calib/measured_run.h"
#include "proto/hardware_profiles.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

// Fitting is least squares over the points; a bench of more than this is not worth its time
// per input (the shipped ones have about 300).
constexpr size_t kMaxCalibratePoints = 2000;

void Bench(const std::string& text) {
  moesim::Expected<moesim::calib::BenchData> bench =
      moesim::calib::ParseBenchJson(text, "fuzz.json");
  if (!bench.ok()) return;
  moesim::calib::BenchData merged;
  if (!moesim::calib::MergeBench(*bench, &merged).ok()) return;
  if (bench->gemm.size() + bench->memory.size() + bench->grouped_gemm.size() +
          bench->collectives.size() >
      kMaxCalibratePoints) {
    return;
  }
  const std::string chip = merged.backend == "cuda" ? "h100-sxm" : "cpu";
  moesim::Expected<moesim::HardwareProfile> base = moesim::BuiltinHardwareProfile(chip);
  if (!base.ok()) return;
  (void)moesim::calib::Calibrate(merged, *base, /*host_cores=*/2);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = moesim::fuzz::AsString(data, size);
  bool measured = false;
  const auto [trace, metrics] = moesim::fuzz::SplitAt(text, "\n--- metrics ---\n", &measured);
  if (!measured) {
    Bench(text);
    return 0;
  }
  const std::string trace_path = moesim::fuzz::WriteTempFile("trace.json", trace);
  const std::string metrics_path = moesim::fuzz::WriteTempFile("metrics.jsonl", metrics);
  (void)moesim::calib::ReadMeasuredRun(trace_path, metrics_path, /*steady_after=*/2);
  return 0;
}
