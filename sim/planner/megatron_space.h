// megatron_space.h
//
// The Megatron-LM search space of `moesim plan --space megatron` (scenarios in the megatron form,
// GPU clusters): tensor, context, pipeline with virtual stages (uneven splits through first/last
// stage layer counts where the layers do not divide), expert and expert tensor parallelism (the
// MoE layers folded over the dense layers' ranks, proto/megatron_preset.h), micro-batch sizes,
// recomputation and Megatron FSDP, with the distributed optimizer always on. Each point is a list
// of `--set` overrides on the base scenario; RunPoints simulates them.
//
// Bounded by construction: |pipeline x virtual| x 2 (uneven placements) x |tensor| x |context| x
// |expert| x 2 (expert tensor 1 or = tensor) x |micro-batch sizes <= max_micro_batch| x |recompute|
// x |fsdp|. Combinations that cannot be a Megatron-LM run are skipped before simulation and counted
// (MegatronPoints::skipped): sizes that do not divide the devices, expert ranks that do not nest
// with the dense ones, a batch that does not split over the data-parallel ranks, an interleaved
// schedule whose micro-batches are not a multiple of the pipeline size.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/scenario.h"

namespace moesim {

struct MegatronSpace {
  std::vector<int64_t> tensor;  // empty = the divisors of the GPUs per node
  std::vector<int64_t> context = {1};
  std::vector<int64_t> pipeline;  // empty = divisors of the device count up to max_pipeline
  int64_t max_pipeline = 8;
  std::vector<int64_t> virtual_stages = {1, 2, 4};  // tried with a pipeline > 1
  std::vector<int64_t> expert;                      // empty = the divisors of num_experts
  bool expert_tensor_one = true;  // also try expert_tensor 1 besides expert_tensor = tensor
  // Every micro-batch size that divides a data-parallel rank's sequences, up to this.
  int64_t max_micro_batch = 8;
  std::vector<std::string> recompute = {"NONE", "SELECTIVE", "FULL"};
  std::vector<bool> fsdp = {false};
};

struct MegatronPoints {
  std::vector<std::vector<std::string>> points;  // base overrides + the point's
  size_t skipped = 0;                            // combinations that cannot be run
};

// Layers on the first and last of `ranks` pipeline ranks with `chunks` virtual stages each when
// num_layers does not split evenly over ranks x chunks: the middle ranks get q layers each (a
// multiple of chunks), the last floor(rest / 2) (it also runs the head and loss) and the first the
// rest of the layers (each a
// multiple of chunks and at least one per chunk: Megatron-LM refuses an end rank without layers);
// the q with the fewest layers on the busiest rank wins (the first such q from the smallest).
// False when none exists (ranks < 2, or the layers do not split in chunks).
bool UnevenPipelineSplit(int64_t num_layers, int64_t ranks, int64_t chunks, int64_t* first,
                         int64_t* last);

// Megatron-LM's --pipeline-model-parallel-layout placing num_layers over `stages` virtual stages as
// evenly as they go: each gets num_layers / stages, stages 1 .. (num_layers % stages) one more (the
// first stage, which also holds the embedding, never does); the model's MTP layers go on the last
// stage before the loss, where Megatron-LM wants them. "Et*3|t*4|...|t*3L", "Et*3|...|t*3m*1L".
std::string BalancedPipelineLayout(int64_t num_layers, int64_t stages, int64_t mtp_layers = 0);

// The points, in a fixed order (pipeline, virtual stages, layer placement, tensor, context, expert,
// expert tensor, FSDP, micro-batch, recompute; each list as given). Layer placement: the even
// split where the layers divide, else first/last stage counts (UnevenPipelineSplit, when it finds
// some) and BalancedPipelineLayout.
MegatronPoints EnumerateMegatronPoints(const Scenario& sc, const MegatronSpace& space,
                                       const std::vector<std::string>& base);

// "TP2 CP1 PP4 VPP14 EP8 ETP2 DP16 mb1 NONE" (+ " fsdp", " first3/last2") of a point.
std::string DescribeMegatronPoint(const std::vector<std::string>& overrides);

}  // namespace moesim
