// memory_estimate.h
//
// What a training run of moesim-real will allocate on one rank, estimated from the model and
// the batch before anything is allocated, so that a model too large for the machine is refused
// in milliseconds with the numbers (instead of being killed by the kernel's OOM killer after
// minutes of building it). Everything is computed in double from the sizes (no overflow for any
// input); the estimate follows what Transformer::Create and the trainer allocate:
//   parameters, gradients, AdamW first and second moments: one buffer each of this rank's
//     parameters (dense tensors plus its share of the experts; params.h);
//   activations: one micro-batch's residual stream, per-layer saved tensors (attention
//     probabilities [batch, heads, seq, seq] included), logits, MoE dispatch buffers at capacity,
//     and the workspace of the largest layer;
//   host: the host copy of the parameters made at initialization and at checkpoints, the batch's
//     tokens, the per-layer routing tables of MoE layers (kept on the host), the training text
//     (or the synthetic language's table) and a per-layer allowance for bookkeeping.
// It is a planning figure, slightly above the allocations (tests/real/memory_estimate_test.cc).
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "proto/scenario.h"

namespace moesim::real {

struct MemoryEstimateInput {
  int64_t micro_batch_seqs = 1;  // sequences per micro-batch on this rank
  int64_t local_seqs = 1;        // sequences per step on this rank (the batch's host tokens)
  int64_t expert_parallel = 1;   // experts are sharded over this many ranks
  int64_t scalar_bytes = 4;      // sizeof(T)
  int64_t data_bytes = 0;        // the training text file's size (0 = synthetic tokens)
};

struct MemoryEstimate {
  double params_bytes = 0;       // this rank's parameters
  double grads_bytes = 0;        // their gradients
  double optimizer_bytes = 0;    // AdamW's two moments
  double activations_bytes = 0;  // one micro-batch, workspace included
  double host_bytes = 0;         // host-only memory (see above)
  double total_params = 0;       // parameters of the whole model (all experts), a count
  std::string shape;  // "model.num_layers=2, model.d_model=64, ..., micro-batch 16 x 32 tokens"

  double device_bytes() const {
    return params_bytes + grads_bytes + optimizer_bytes + activations_bytes;
  }
  double total_bytes() const { return device_bytes() + host_bytes; }
  // "1.2 GiB (parameters 100.0 MiB, gradients ..., AdamW moments ..., activations ..., host ...)"
  std::string Describe() const;
};

// REQUIRES: `model` validated by LoadScenario (sizes positive), input counts >= 1.
MemoryEstimate EstimateTrainMemory(const ModelSpec& model, const MemoryEstimateInput& in);

// "512 B", "3.0 KiB", "1.5 GiB", "181.9 TiB"; with the exact byte count for small values.
std::string FormatBytes(double bytes);

// Refuses (kInvalidInput) an estimate above `limit_bytes` (> 0). `limit_name` says where the
// limit comes from, e.g. "--max-memory 1000" or "the 15.6 GiB of physical memory".
Status CheckMemoryEstimate(const MemoryEstimate& e, double needed_bytes, double limit_bytes,
                           const std::string& limit_name);

}  // namespace moesim::real
