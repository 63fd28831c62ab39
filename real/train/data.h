// data.h
//
// DataSource: the training tokens, as sequences of seq_len + 1 tokens (inputs and the
// next-token targets shifted by one). Two sources:
//  - a text file read as bytes (token = byte value; REQUIRES vocab_size >= 256); each sequence
//    starts at an offset drawn uniformly from the file;
//  - synthetic tokens from a seeded "language": every token has four likely successors
//    (probabilities 0.6, 0.2, 0.1, 0.05; otherwise a uniform token), fixed by the seed, so a
//    model can learn it and its loss falls well below ln(vocab).
// Each step draws the whole global batch from one generator (one draw per sequence), and a rank
// keeps its slice, so the tokens a rank sees depend only on (seed, step, rank's slice), not on
// the number of ranks. The generator state and the count of sequences drawn are the data
// position a checkpoint saves.
// Thread safety: one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "real/rng.h"

namespace moesim::real {

struct DataState {
  uint64_t rng_state = 0;
  int64_t sequences_drawn = 0;
};

class DataSource {
 public:
  // path empty = synthetic. Errors (kInvalidInput, naming the path): missing or unreadable
  // file, not a regular file (a directory, FIFO or device), larger than physical memory, shorter
  // than one sequence, vocab too small for bytes; seq_len or vocab_size outside
  // [1, kMaxDimension]. Never throws.
  static Expected<DataSource> Create(const std::string& path, uint64_t seed, int64_t vocab_size,
                                     int64_t seq_len);

  // Draws `global_seqs` sequences and returns sequences [first, first + count) as inputs and
  // targets, [count x seq_len] each, sequence-major.
  void NextBatch(int64_t global_seqs, int64_t first, int64_t count, std::vector<int32_t>* tokens,
                 std::vector<int32_t>* targets);

  DataState state() const { return {rng_.state(), drawn_}; }
  void set_state(const DataState& s) {
    rng_.set_state(s.rng_state);
    drawn_ = s.sequences_drawn;
  }
  std::string Describe() const;  // "synthetic (seed 1, vocab 256)" or "FILE (12345 bytes)"

 private:
  DataSource() = default;
  void Sequence(uint64_t draw, std::vector<int32_t>* out) const;

  std::string path_;
  std::vector<uint8_t> text_;
  std::vector<int32_t> successors_;  // synthetic: [vocab, 4]
  int64_t vocab_ = 0, seq_len_ = 0;
  Rng rng_;
  int64_t drawn_ = 0;
};

}  // namespace moesim::real
