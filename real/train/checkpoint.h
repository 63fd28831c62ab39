// checkpoint.h
//
// Checkpoints: everything a run needs to continue bit for bit. A checkpoint directory holds
//   rank-RRRRR.bin  per rank: a header (magic "MOESIMCK", format version, step, scalar size,
//                   the parameter table: names, element counts, offsets) then the parameters,
//                   the AdamW first and second moments, and an FNV-1a checksum of the data;
//   meta.json       written by rank 0 last: step, ranks, expert parallelism, data position
//                   (generator state, sequences drawn), seed, and free-form notes.
// Saving writes every file under a temporary name and renames it only after all ranks have
// written theirs (a barrier in between), so a crash or a NaN stop never leaves a half-written
// checkpoint in place of the last good one. Loading checks the parameter table, the rank layout
// and the checksum, and names the first mismatch.
// Both calls are collective over the world. Thread safety: one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "real/comm/comm.h"
#include "real/layers/params.h"
#include "real/train/data.h"

namespace moesim::real {

struct CheckpointMeta {
  int64_t step = 0;            // steps completed
  int64_t schedule_steps = 0;  // length of the learning-rate schedule of the run
  int world = 1;
  int expert_parallel = 1;
  uint64_t seed = 0;
  DataState data;
  std::string notes;  // e.g. the scenario name and options, for people
};

template <typename T>
Status SaveCheckpoint(const std::string& dir, const CheckpointMeta& meta, ParamSet<T>& params,
                      Comm* comm);

// Restores parameters and moments into `params` (already allocated with the same layout).
template <typename T>
Expected<CheckpointMeta> LoadCheckpoint(const std::string& dir, ParamSet<T>& params, Comm* comm);

}  // namespace moesim::real
