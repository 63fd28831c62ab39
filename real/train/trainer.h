// trainer.h
//
// Train(): the training loop of `moesim-real train`, one call per rank, the same on the CPU and
// CUDA backends. Per step: the global batch (training.global_batch_tokens / seq_len sequences)
// is split evenly over the ranks and, on each rank, into micro-batches; each micro-batch runs
// forward and backward (gradients accumulate, scaled by 1 / micro-batches); gradients are
// all-reduced; the global loss (mean over ranks) is checked; AdamW steps.
//
// Timing: step time is wall time from a synchronized start to the end of the optimizer on
// rank 0; tokens/s = global tokens / step time. With a trace path, steps
// [first + trace_warmup, first + trace_warmup + trace_steps) are profiled op by op
// (profiler.h) and written as one Chrome trace with a process per rank.
//
// Failure handling: a non-finite global loss stops the run before the optimizer touches the
// weights, with a message naming the step; checkpoints are written only after good steps, so
// the last one stays. Any error comes back as a Status; the caller must end every rank (other
// ranks may be blocked in a collective). Resuming from a checkpoint restores parameters,
// moments, the data position and the step, so the run continues bit for bit.
// Limits: every count of TrainOptions has the range ValidateTrainOptions states (real/limits.h);
// before building the model, Train estimates the memory the run needs (memory_estimate.h) and
// refuses it (kInvalidInput, with the estimate) above max_memory_bytes or, when that is 0, the
// machine's physical memory (on a GPU backend only the host part is checked; the device's own
// out-of-memory error names the tensor).
// Thread safety: one thread per rank.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/scenario.h"
#include "real/comm/comm.h"
#include "real/device.h"
#include "real/train/optimizer.h"

namespace moesim::real {

struct TrainOptions {
  int64_t steps = 10;  // train until this many steps are done (resume included)
  // Length of the warm-up + cosine schedule; 0 = the checkpoint's when resuming, else `steps`.
  // (Stopping early at k of N steps and resuming continues the same schedule.)
  int64_t schedule_steps = 0;
  int64_t micro_batch_seqs = 0;  // sequences per micro-batch per rank; 0 = the local batch
  int64_t expert_parallel = 1;   // must equal the communicator's expert_size
  uint64_t seed = 1;
  std::string data_path;  // empty = synthetic tokens
  OptimizerConfig optimizer;
  double aux_loss_coef = 0.01;
  double z_loss_coef = 0.001;
  std::string trace_path;
  int64_t trace_warmup = 2;
  int64_t trace_steps = 2;
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;  // 0 = only at the end
  std::string resume_dir;
  std::string metrics_path;  // JSON lines, one per step (rank 0)
  int64_t log_every = 1;
  // Memory the run may use per rank (memory_estimate.h); 0 = the machine's physical memory.
  int64_t max_memory_bytes = 0;
  int64_t poison_step = -1;      // testing hook: makes the loss NaN at this step (0-based)
  int64_t comm_error_step = -1;  // testing hook: the last rank makes a failing MPI/NCCL call
};

struct StepLog {
  int64_t step = 0;  // 1-based: steps completed after this one
  double loss = 0, cross_entropy = 0, aux = 0, load_balance = 0;
  double dropped_fraction = 0;
  double lr = 0, grad_norm = 0;
  double step_time_s = 0, tokens_per_s = 0;
  double mfu = 0;  // model FLOPs / (step time x ranks x device peak); 0 when the peak is unknown
};

struct TrainResult {
  std::vector<StepLog> steps;
  int64_t params = 0, activated_params = 0;
  double model_flops_per_token = 0;
  std::string device, comm;
};

// Checks every option's range; errors name the command-line option ("--log-every 0: ..."),
// kInvalidInput. Train calls it first.
Status ValidateTrainOptions(const TrainOptions& options);

// REQUIRES: `comm` spans the ranks of this run (size 1 for one process).
template <typename T>
Expected<TrainResult> Train(const Scenario& scenario, const TrainOptions& options, Device<T>* dev,
                            Comm* comm, std::ostream* log);

}  // namespace moesim::real
