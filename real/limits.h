// limits.h
//
// The ranges moesim-real accepts for counts given on its command line or read from a checkpoint.
// They are far above any real run and low enough that sums of two or three of them (a first step
// plus a warm-up plus a trace length) cannot overflow int64. Anything outside is refused as bad
// input naming the option or field. real/README.md states them.
// Thread safety: constants.
#pragma once

#include <cstdint>
#include <limits>

#include "common/limits.h"

namespace moesim::real {

// Steps of any kind: --steps, --schedule-steps, --warmup, --trace-warmup, --trace-steps,
// --checkpoint-every, --log-every, and a checkpoint's step and schedule length.
inline constexpr int64_t kMaxSteps = 1'000'000'000'000;  // 1e12
// Ranks of a run and --expert-parallel.
inline constexpr int64_t kMaxRanks = 1 << 20;
// Sequences per micro-batch per rank (--micro-batch).
inline constexpr int64_t kMaxMicroBatch = int64_t{1} << 30;
// Sequences a data source has drawn (a checkpoint's data position).
inline constexpr int64_t kMaxSequencesDrawn = int64_t{1} << 62;
// Model sizes moesim-real builds: layers, and every other dimension (d_model, heads, head_dim,
// d_ff, vocabulary, sequence length, experts, top-k, expert d_ff, group size): token ids and
// GPU kernel arguments are 32-bit.
inline constexpr int64_t kMaxLayers = limits::kMaxLayers;  // as every scenario (common/limits.h)
inline constexpr int64_t kMaxDimension = std::numeric_limits<int32_t>::max();
// `bench --repeats`.
inline constexpr int64_t kMaxBenchRepeats = 10'000;

}  // namespace moesim::real
