// optimizer.h
//
// One optimizer step over a ParamSet, after Backward() of every micro-batch:
//  1. gradient synchronization: dense gradients summed over every rank, expert gradients over
//     the Data group (the replicas of the same experts)              "grads.all_reduce"
//  2. global gradient norm of the mean gradient (experts counted once) and clipping
//     coefficient min(1, clip_norm / norm)
//  3. AdamW (Loshchilov & Hutter 2019; decoupled weight decay on matrices, none on norm gains)
//     with the learning rate of a linear warm-up then cosine decay to min_lr_ratio x lr
//  4. gradients zeroed.                                       (2-4: "optimizer.step")
// Each rank's loss is the mean over its own tokens, so the mean over ranks (sum / world) is the
// loss of the global batch; the 1/world and clipping factors are folded into AdamW's gradient
// scale. Thread safety: one thread.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "real/comm/comm.h"
#include "real/device.h"
#include "real/layers/params.h"
#include "real/profiler.h"

namespace moesim::real {

struct OptimizerConfig {
  double lr = 3e-3;           // peak learning rate
  double min_lr_ratio = 0.1;  // final lr = min_lr_ratio x lr
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;  // the cosine reaches its minimum here
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double clip_norm = 1.0;  // <= 0: no clipping
};

// Learning rate of 0-based `step`: lr (step + 1) / warmup during warm-up, then
// min + (lr - min) (1 + cos(pi t)) / 2 with t the fraction of the remaining steps done.
double LearningRate(const OptimizerConfig& c, int64_t step);

struct OptimizerStats {
  double lr = 0;
  double grad_norm = 0;  // of the mean gradient, before clipping
  double clip_coef = 1;
};

// Sums gradients across ranks (no-op without a communicator or on one rank).
template <typename T>
Status AllReduceGradients(ParamSet<T>& params, Comm* comm, Profiler* prof);

// Steps 2-4 above. `world` = ranks whose losses the gradients sum (1 without a communicator).
template <typename T>
Expected<OptimizerStats> OptimizerStep(ParamSet<T>& params, Device<T>* dev, Comm* comm,
                                       const OptimizerConfig& c, int64_t step, Profiler* prof);

}  // namespace moesim::real
