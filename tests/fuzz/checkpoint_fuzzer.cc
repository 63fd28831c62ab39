// Fuzzes moesim-real's checkpoint loader (LoadCheckpoint, real/train/checkpoint.h): meta.json
// (step, layout, data position) and a rank's binary file (header, parameter table, parameters,
// AdamW moments, checksum), restored into a small parameter set (checkpoint_layout.h) with
// fp32 and with fp64 scalars, on one rank (no communicator).
//
// Input: meta.json, the line "--- rank-00000.bin ---", then the rank file (seeds: written by
// checkpoint_seed, which saves real checkpoints of that layout); both go to a temporary
// checkpoint directory because the loader takes one. An error Status is a fine outcome; only
// crashes, undefined behaviour, leaks, timeouts and running out of memory are findings.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "real/train/checkpoint.h"
#include "tests/fuzz/checkpoint_layout.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

template <typename T>
void Load(const std::string& dir) {
  static moesim::fuzz::CheckpointParams<T> p;
  (void)moesim::real::LoadCheckpoint(dir, p.params, nullptr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = moesim::fuzz::AsString(data, size);
  bool has_rank_file = false;
  const auto [meta, rank] =
      moesim::fuzz::SplitAt(text, moesim::fuzz::kRankFileMarker, &has_rank_file);
  const std::string meta_path = moesim::fuzz::WriteTempFile("meta.json", meta);
  const std::string dir = std::filesystem::path(meta_path).parent_path().string();
  if (has_rank_file) {
    moesim::fuzz::WriteTempFile("rank-00000.bin", rank);
  } else {
    std::filesystem::remove(std::filesystem::path(dir) / "rank-00000.bin");
  }
  Load<float>(dir);
  Load<double>(dir);
  return 0;
}
