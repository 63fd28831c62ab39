// batch_split.h (internal to costmodel/)
//
// MaxText's batch-split schedule (training.batch_split_factor = F; use_batch_split_schedule in
// AI-Hypercomputer/maxtext@519ff77a src/maxtext/models/deepseek_batchsplit.py): each device's
// micro-batch is split into F sub-batches along the batch dimension (`split`: a reshape to
// (-1, F, ...)), and a MoE layer runs them phase by phase: `staggered_call` applies one phase to
// sub-batch 0, 1, ..., F-1, each tied to the next sub-batch's input by an optimization_barrier,
// for attention (mla_with_norms), routing (route_fn), the experts (compute_fn) and the way back
// (unroute_fn). One sub-batch's dispatch or combine collective is thus in flight while the next
// sub-batch computes.
//
// In moesim a MoE layer is five parts (opgraph_builder.cc Part): 0 attention, router and
// permutation, 1 the dispatch all-to-all, 2 the experts, 3 the combine all-to-all, 4 the rest
// (shared experts' and residual's ops after the combine). BatchSplitOrder gives the order in which
// the builder emits the parts of each sub-batch for a run of consecutive MoE layers:
//   forward, per layer:  [0,1] of s=0..F-1, then [2,3] of s=0..F-1, then [4] of s=0..F-1;
//   backward, per layer: [4,3] of s=0..F-1, then [2,1] of s=0..F-1, then [0] of s=0..F-1
// (the backward mirrors the forward: autodiff of the barrier chain runs the phases in reverse),
// and the last group of a layer is merged, sub-batch by sub-batch, with the first group of the
// next layer of the run ([4 of l, 0,1 of l+1] for s=0..F-1), so that the last sub-batch's
// combine of layer l runs beside layer l+1's attention of sub-batch 0. With full recomputation
// a layer's recomputation (the forward order, marked recompute) precedes its backward and layers
// are not merged in backward.
//
// Invariants: every (layer, sub-batch, part) of the run appears once per pass (twice for a layer
// with full recomputation: once recompute, once backward); within one sub-batch the parts of a
// layer keep their pass order and layers keep the run's order; `opens` marks the first step
// emitted for a layer (its FSDP gathers go before it), `closes` the last (its gradient reduction
// goes after it, in backward).
// Thread safety: pure function.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace moesim {

struct SplitStep {
  int32_t layer = 0;
  int32_t sub = 0;   // sub-batch, 0..F-1
  int32_t part = 0;  // 0..4 (see above)
  bool recompute = false;
  bool opens = false;
  bool closes = false;
  auto operator<=>(const SplitStep&) const = default;
};

// `layers`: a run of consecutive MoE layers in emission order (ascending forward, descending
// backward). `factor` >= 1. `full_recompute`: backward only.
std::vector<SplitStep> BatchSplitOrder(std::span<const int32_t> layers, int32_t factor,
                                       bool backward, bool full_recompute);

}  // namespace moesim
