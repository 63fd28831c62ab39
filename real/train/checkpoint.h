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
//
// Reading is hardened against any file: every field of meta.json must be present with its JSON
// type and range (limits.h), or the error names the file and the field; every length and count
// of a rank file is checked against the bytes left in the file before anything is allocated;
// messages quote at most kMaxQuotedBytes of file content, with non-printable bytes escaped.
// Errors are kInvalidInput (bad or mismatched files) or kInternal (a device or communicator
// failure); nothing throws or exits.
//
// SaveCheckpoint and LoadCheckpoint are collective over the world (comm may be null: one rank).
// ReadCheckpoint, ReadCheckpointMeta, ParseCheckpointMeta and ParseCheckpointFile need no model,
// device or communicator: they are the entry points for inspection tools and fuzzers.
// Thread safety: one thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
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
  int scalar_bytes = 4;  // read from meta.json (SaveCheckpoint writes sizeof(T))
  DataState data;
  std::string notes;  // e.g. the scenario name and options, for people
};

inline constexpr int64_t kMaxMetaJsonBytes = 1 << 20;  // meta.json is a few hundred bytes
inline constexpr int64_t kMaxTensorNameBytes = 256;    // "layers.3.moe.w1"
inline constexpr int64_t kMaxQuotedBytes = 64;         // file content quoted in a message

// One entry of a rank file's parameter table.
struct CheckpointTensor {
  std::string name;
  int64_t count = 0;   // elements
  int64_t offset = 0;  // into the flat buffers
};

// One rank file, read whole and checked (header, table, sizes, checksum).
struct CheckpointFile {
  int64_t step = 0;
  uint32_t scalar_bytes = 0;  // 4 (float) or 8 (double)
  std::vector<CheckpointTensor> table;
  int64_t total = 0;  // elements of each of the three buffers
  // Parameters, first moments, second moments, as stored: 3 x total x scalar_bytes bytes.
  std::vector<unsigned char> data;
};

struct CheckpointContents {
  CheckpointMeta meta;
  CheckpointFile file;
};

// meta.json from its text. `name` (a path) starts every error message, e.g.
//   ck/meta.json: field "step" must be an integer in [0, 1000000000000], got "two"
Expected<CheckpointMeta> ParseCheckpointMeta(std::string_view text, const std::string& name);
// Reads and parses `path` (refuses files over kMaxMetaJsonBytes).
Expected<CheckpointMeta> ReadCheckpointMeta(const std::string& path);

// A rank file from its bytes; refuses a data section over `max_data_bytes`.
Expected<CheckpointFile> ParseCheckpointFile(std::string_view bytes, const std::string& name,
                                             int64_t max_data_bytes);

// The fuzzing and inspection entry point: reads `dir`/meta.json and `dir`/rank-RRRRR.bin of
// `rank`, checks each and that they agree (step, scalar size). The rank file is read whole into
// memory: one over `max_data_bytes` of parameter and moment data is refused before reading it.
Expected<CheckpointContents> ReadCheckpoint(const std::string& dir, int rank = 0,
                                            int64_t max_data_bytes = int64_t{1} << 30);

template <typename T>
Status SaveCheckpoint(const std::string& dir, const CheckpointMeta& meta, ParamSet<T>& params,
                      Comm* comm);

// Restores parameters and moments into `params` (already allocated with the same layout),
// streaming the rank file (one buffer of host memory at a time). Refuses a checkpoint of another
// rank layout, model or scalar type.
template <typename T>
Expected<CheckpointMeta> LoadCheckpoint(const std::string& dir, ParamSet<T>& params, Comm* comm);

}  // namespace moesim::real
