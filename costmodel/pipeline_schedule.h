// pipeline_schedule.h
//
// The order in which one pipeline rank runs its forward, backward and weight-gradient chunks of
// one training step, for every training.pipeline_schedule; costmodel/opgraph_builder.cc emits the
// ops of each task in this order (and the simulator finds the bubble the order leaves).
//   GPIPE        all forwards, then all backwards.
//   ONE_F_ONE_B  Megatron-LM's order: (ranks - rank - 1) warm-up forwards, then one forward one
//   INTERLEAVED  backward, then the remaining backwards; interleaved over the rank's chunks.
//   DUALPIPE     DeepSeek-V3's bidirectional pipeline (arXiv 2412.19437 sec 3.2.1;
//                github.com/deepseek-ai/DualPipe, dualpipe/dualpipe.py DualPipe.step): the model is
//                split into `ranks` stages S_0..S_{P-1}; rank r holds two chunks, chunk 0 = S_r and
//                chunk 1 = S_{P-1-r}. Micro-batches 0..n/2-1 enter at rank 0 and run chunk 0 on
//                every rank (forward direction), n/2..n-1 enter at rank P-1 and run chunk 1
//                (reverse direction). The eight steps of DualPipe.step, with h = min(r, P-1-r):
//                  1 nF0      (P/2-h-1) x 2 forwards          2 nF0F1    (h+1) x (F0, F1)
//                  3 nB1W1F1  (P/2-h-1) x (B1 zb, W, F1)      4 nF0B1F1B0 (n/2-P+h+1) x
//                  5 nB1F1B0  (P/2-h-1) x (B1, F1&B0)           (F0&B1, F1&B0)
//                  6 nB1B0    (h+1) x (B1, B0), the later half zero-bubble
//                  7 nWB0     (P/2-h-1) x (W, B0 zb)          8 nW       (h+1) x W
//                where phase 0 is the forward direction on the first half of the ranks and the
//                reverse direction on the second half, F&B a forward and a backward of two
//                micro-batches run together (paired), "zb" a backward whose weight gradients
//                wait in a queue and W one that runs the oldest queued set (zero bubble).
//                The DualPipe README's table: bubble (PP/2-1)(F&B+B-3W) against 1F1B's
//                (PP-1)(F+B), 2x parameters, PP+1 micro-batches of activations per device;
//                PP and the micro-batches even, micro-batches >= 2 PP.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "proto/scenario.h"

namespace moesim {

struct PipelineTask {
  int32_t mb = -1;
  int32_t chunk = 0;
  bool forward = true;
  // This forward runs together with the backward after it in the list (Megatron-Core's combined
  // 1F1B step with training.overlap_moe_expert_parallel_comm; DualPipe's F&B).
  bool paired = false;
  // DualPipe's zero bubble: a backward that queues its weight gradients (zb), and a task that
  // runs the oldest queued set (W; mb and chunk unused).
  bool defer_wgrad = false;
  bool weight = false;
};

struct PipelineShape {
  int32_t ranks = 1;
  int32_t chunks = 1;  // model chunks per rank of the interleaved schedule
  int32_t micro_batches = 1;
  PipelineSchedule schedule = PipelineSchedule::kOneFOneB;
  bool ep_overlap = false;  // training.overlap_moe_expert_parallel_comm
};

// The tasks of `rank`, in the order it runs them.
std::vector<PipelineTask> PipelineTasks(const PipelineShape& shape, int32_t rank);

// DualPipe: the chunk a micro-batch runs on every rank (0: fed from rank 0; 1: from rank P-1).
inline int32_t DualPipeChunk(int32_t mb, int32_t micro_batches) {
  return mb < micro_batches / 2 ? 0 : 1;
}
// DualPipe: the model stage of chunk `chunk` of rank `rank`, and the rank that runs model stage
// `stage` for the micro-batches of chunk `chunk`.
inline int32_t DualPipeStage(int32_t rank, int32_t chunk, int32_t ranks) {
  return chunk == 0 ? rank : ranks - 1 - rank;
}
inline int32_t DualPipeRank(int32_t stage, int32_t chunk, int32_t ranks) {
  return chunk == 0 ? stage : ranks - 1 - stage;
}

}  // namespace moesim
