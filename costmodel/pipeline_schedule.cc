#include "costmodel/pipeline_schedule.h"

#include <algorithm>
#include <array>

namespace moesim {
namespace {

// DeepSeek's DualPipe.step (github.com/deepseek-ai/DualPipe, dualpipe/dualpipe.py), step for step.
std::vector<PipelineTask> DualPipeTasks(const PipelineShape& s, int32_t rank) {
  std::vector<PipelineTask> t;
  const int32_t p = s.ranks, n = s.micro_batches;
  const int32_t half_ranks = p / 2, half_n = n / 2;
  const int32_t h = std::min(rank, p - 1 - rank);
  const bool second_half = rank >= half_ranks;
  const bool middle = h == half_ranks - 1;
  // Phase 0 is the forward direction (chunk 0) on the first half of the ranks, the reverse
  // direction (chunk 1) on the second half.
  auto chunk_of = [&](int32_t phase) { return second_half ? 1 - phase : phase; };
  std::array<int32_t, 2> next_f = {0, 0}, next_b = {0, 0};
  auto mb_of = [&](int32_t chunk, int32_t i) { return chunk == 0 ? i : half_n + i; };
  auto f = [&](int32_t phase) {
    const int32_t c = chunk_of(phase);
    t.push_back({mb_of(c, next_f[static_cast<size_t>(phase)]++), c, true});
  };
  auto b = [&](int32_t phase, bool zb = false) {
    const int32_t c = chunk_of(phase);
    PipelineTask x{mb_of(c, next_b[static_cast<size_t>(phase)]++), c, false};
    x.defer_wgrad = zb;
    t.push_back(x);
  };
  auto w = [&] {
    PipelineTask x{-1, 0, false};
    x.weight = true;
    t.push_back(x);
  };
  auto fb = [&](int32_t f_phase, int32_t b_phase) {
    f(f_phase);
    t.back().paired = true;
    b(b_phase);
  };
  for (int32_t i = 0; i < (half_ranks - h - 1) * 2; ++i) f(0);  // step 1: nF0
  for (int32_t i = 0; i < h + 1; ++i) {                         // step 2: nF0F1
    f(0);
    f(1);
  }
  for (int32_t i = 0; i < half_ranks - h - 1; ++i) {  // step 3: nB1W1F1
    b(1, true);
    w();
    f(1);
  }
  for (int32_t i = 0; i < half_n - p + h + 1; ++i) {  // step 4: nF0B1F1B0
    if (i == 0 && middle) {
      // "We don't overlap these two chunks to further reduce bubble size."
      f(0);
      b(1);
    } else {
      fb(0, 1);
    }
    fb(1, 0);
  }
  for (int32_t i = 0; i < half_ranks - h - 1; ++i) {  // step 5: nB1F1B0
    b(1);
    fb(1, 0);
  }
  const int32_t step_6 = h + 1;  // step 6: nB1B0, the second half zero-bubble
  bool zb = false;
  for (int32_t i = 0; i < step_6; ++i) {
    if (i == step_6 / 2 && h % 2 == 1) zb = true;
    b(1, zb);
    if (i == step_6 / 2 && h % 2 == 0) zb = true;
    b(0, zb);
  }
  for (int32_t i = 0; i < half_ranks - h - 1; ++i) {  // step 7: nWB0
    w();
    b(0, true);
  }
  for (int32_t i = 0; i < h + 1; ++i) w();  // step 8: nW
  return t;
}

}  // namespace

std::vector<PipelineTask> PipelineTasks(const PipelineShape& s, int32_t p) {
  std::vector<PipelineTask> t;
  const int32_t n = s.micro_batches;
  if (s.schedule == PipelineSchedule::kDualPipe && s.ranks > 1) return DualPipeTasks(s, p);
  if (s.ranks == 1 && !s.ep_overlap) {
    for (int32_t mb = 0; mb < n; ++mb) {
      t.push_back({mb, 0, true});
      t.push_back({mb, 0, false});
    }
    return t;
  }
  if (s.ranks > 1 && s.schedule == PipelineSchedule::kGpipe) {
    for (int32_t mb = 0; mb < n; ++mb) t.push_back({mb, 0, true});
    for (int32_t mb = 0; mb < n; ++mb) t.push_back({mb, 0, false});
    return t;
  }
  // 1F1B, and its interleaved form (Megatron-LM's order): warm-up forwards, then one forward one
  // backward, then the remaining backwards.
  const int32_t stages = s.ranks, chunks = s.chunks;
  const int32_t total = n * chunks;
  const int32_t group = stages * chunks;
  auto fwd = [&](int32_t k) {
    return PipelineTask{(k / group) * stages + k % stages, (k % group) / stages, true};
  };
  auto bwd = [&](int32_t k) {
    return PipelineTask{(k / group) * stages + k % stages, chunks - 1 - (k % group) / stages,
                        false};
  };
  // With the all-to-all overlap one more forward runs first, so that the forward and the
  // backward of every steady-state pair are independent (Megatron-Core's
  // get_pp_rank_microbatches); without a pipeline that is the only warm-up forward.
  const int32_t extra = s.ep_overlap ? 1 : 0;
  const int32_t warmup =
      chunks == 1 ? std::min(stages - p - 1 + extra, total)
                  : std::min((stages - p - 1) * 2 + (chunks - 1) * stages + extra, total);
  for (int32_t k = 0; k < warmup; ++k) t.push_back(fwd(k));
  for (int32_t k = 0; k < total - warmup; ++k) {
    t.push_back(fwd(warmup + k));
    t.back().paired = s.ep_overlap;
    t.push_back(bwd(k));
  }
  for (int32_t k = total - warmup; k < total; ++k) t.push_back(bwd(k));
  return t;
}

}  // namespace moesim
