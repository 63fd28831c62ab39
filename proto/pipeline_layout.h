// pipeline_layout.h
//
// Which layers each pipeline rank runs: for every (pipeline rank, model chunk) a contiguous run of
// transformer layers, and whether it also holds the embedding, MTP layers or the head (output
// layer and loss). Three ways to get one, all ending in the same PipelineLayout:
//   - the even split (the default): every virtual stage gets num_layers / (ranks x chunks);
//   - first/last stage layer counts (Megatron-LM's --decoder-first-pipeline-num-layers /
//     --decoder-last-pipeline-num-layers): the other layers split evenly over the middle ranks,
//     each rank's layers split evenly over its chunks;
//   - a layout string in Megatron-LM's --pipeline-model-parallel-layout notation, parsed here.
//
// Layout grammar (commas are ignored between items, as in Megatron-LM):
//   layout := item*                 item := atom ( '*' count )?
//   atom   := 'E' | 't' | 'm' | 'L' | '|' | '(' item* ')'      count := digit+
//   'E' embedding, 't' transformer layer, 'm' MTP layer, 'L' loss (head), '|' ends a virtual
//   stage. `x*n` repeats one symbol n times (n >= 0); a group `( ... )` must be followed by `*n`.
//   Groups may nest here (Megatron-LM's parser takes one level); "Et|(tt|)*2t|tL" expands to
//   "Et|tt|tt|t|tL": 5 virtual stages.
// The expansion lists virtual stages in order: with R ranks and C chunks per rank there are R x C
// segments and segment i runs on rank i % R as chunk i / R. Transformer layers are numbered in
// that order (segment 0 holds layers 0.., then segment 1, ...), so each segment's layers are
// contiguous. As Megatron-LM requires: 'E' exactly once and first, 'L' exactly once and last,
// every 't' before any 'm'.
//
// Invariants of a PipelineLayout from these functions: stages.size() == ranks x chunks; the
// stages' layers, in stage order, are 0 .. num_layers-1 without gap or overlap; the embedding is
// on stage 0 and the head on the last stage, each once.
// Units: counts of layers; columns are 1-based character positions in the layout string.
// Limits (common/limits.h, checked before anything is expanded): the string's length, each repeat
// count, the nesting depth and the expanded length.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace moesim {

// One model chunk of one pipeline rank (a virtual stage).
struct PipelineChunk {
  int64_t first_layer = 0;  // global index (0-based) of its first transformer layer
  int64_t num_layers = 0;   // it runs layers first_layer .. first_layer + num_layers - 1
  int64_t mtp_layers = 0;   // MTP layers ('m')
  bool embedding = false;
  bool head = false;  // output layer and loss ('L')
};

struct PipelineLayout {
  int64_t ranks = 1;   // sharding.mesh.pipeline
  int64_t chunks = 1;  // model chunks per rank (virtual stages per rank)
  // ranks x chunks entries in virtual-stage order: entry i is rank i % ranks, chunk i / ranks.
  std::vector<PipelineChunk> stages;

  const PipelineChunk& At(int64_t rank, int64_t chunk) const {
    return stages[static_cast<size_t>(chunk * ranks + rank)];
  }
  // Transformer layers on `rank`, all its chunks together.
  int64_t LayersOnRank(int64_t rank) const;
};

// A layout string after parsing: one entry per virtual stage, in order.
struct ParsedPipelineLayout {
  std::vector<PipelineChunk> segments;  // first_layer filled in order
  int64_t num_layers = 0;               // 't' in all
  int64_t mtp_layers = 0;               // 'm' in all
  int64_t first_mtp_column = 0;         // column of the first 'm' (0: none)
};

// Parses `text`. Errors (kInvalidInput) read "column N: what was found, what was expected",
// for the caller to prefix with the field.
Expected<ParsedPipelineLayout> ParsePipelineLayout(const std::string& text);

// Every virtual stage gets num_layers / (ranks x chunks) layers (the caller has checked that it
// divides); the embedding on stage 0, the head on the last.
PipelineLayout EvenPipelineLayout(int64_t num_layers, int64_t ranks, int64_t chunks);

// Segments of a parsed layout on `ranks` ranks. REQUIRES: segments.size() is a multiple of ranks.
PipelineLayout LayoutFromSegments(const ParsedPipelineLayout& parsed, int64_t ranks);

// Megatron-LM's first/last stage counts: `first` layers on rank 0 and `last` on rank ranks-1 (each
// nullopt = that rank is a middle rank), the rest evenly over the middle ranks; every rank's
// layers evenly over its chunks. Errors (kInvalidInput) say which count does not divide, without
// the field name. REQUIRES: ranks >= 1, chunks >= 1, num_layers >= 0.
Expected<PipelineLayout> FirstLastPipelineLayout(int64_t num_layers, int64_t ranks, int64_t chunks,
                                                 std::optional<int64_t> first,
                                                 std::optional<int64_t> last);

// "E,2 | 3 | 3,L": a rank's chunks in order, for reports.
std::string DescribeRank(const PipelineLayout& layout, int64_t rank);

}  // namespace moesim
