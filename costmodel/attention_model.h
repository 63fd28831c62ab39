// attention_model.h
//
// Blockwise (FlashAttention) attention as its own kernel class: the time of one kernel call
// from its shape and the chip's attention profile (HardwareProfile::attention, moesim.proto
// Hardware fields 30-37), fitted once per chip to the published FlashAttention figures of
// validation/data/attention/flash_attention.csv (FA2 on A100: Dao 2023, arXiv 2307.08691; FA3
// on H100: Shah et al. 2024, arXiv 2407.08608) by validation/data/attention/fit_attention.py.
// Attention is not a GEMM: its rate depends on head dimension, sequence length, causal masking,
// forward vs backward, and the chip; a GEMM's tile model sees none of that.
//
// FLOPs are counted as FlashAttention's benchmarks count them
// (Dao-AILab/flash-attention@0251105a benchmarks/benchmark_flash_attention.py flops()):
//   forward  = 2 x batch_heads x pairs x (head_dim + head_dim_v)   (QK^T and PV)
//   backward = 2.5 x forward (recomputed QK^T, then dV, dP, dQ, dK: five matmuls where the
//              forward has two)
// where pairs = the (query, key) pairs the mask keeps: q_len x kv_len, or with a causal mask
// (bottom-right aligned, as FlashAttention >= 2.1 aligns it) q_len x (kv_len - q_len / 2),
// i.e. half of a square call. The step's model FLOPs (model_cost.h) stay the full q x kv
// count; only the time comes from here.
//
// Efficiency (fraction of the dense BF16 peak), per pass p (forward or backward):
//   e = max_p x d / (d + d_half_p) x a / (a + seq_half_p) x [causal: a / (a + block / 2)]
//       x waves
//   d     = (head_dim + head_dim_v) / 2: the non-matmul work per score (softmax, rescaling) is
//           fixed while the matmul work grows with d;
//   a     = pairs / q_len, the keys each query row visits: a tile's fixed work (loading Q,
//           writing O and the softmax statistics, pipeline prologue) is amortized over them;
//   block = the key block: a causal call computes whole blocks, so the diagonal block's
//           masked half is wasted (a / (a + block / 2) of the computed work is kept);
//   waves = tiles / (ceil(tiles / parallel_tiles) x parallel_tiles), tiles = batch_heads x
//           ceil(rows / 128) (rows = q_len forward, kv_len backward, each CTA owning one block):
//           a call with too few tiles leaves SMs idle in its last wave.
// Invariants: 0 < max_p <= 1; halves, block >= 0; parallel_tiles >= 0 (0 = no wave term).
// Units: seconds, FLOPs, elements (sequence lengths, head dims).
// Thread safety: pure functions.
#pragma once

#include <cstdint>

#include "proto/scenario.h"

namespace moesim {

// One attention kernel call (or the part of it one op of the step graph stands for).
struct AttentionShape {
  double batch_heads = 1;  // sequences x query heads in the call (GQA: query heads)
  int64_t q_len = 0;       // query rows per sequence
  int64_t kv_len = 0;      // key rows per sequence
  int64_t head_dim = 0;    // of queries and keys
  int64_t head_dim_v = 0;  // of values (MLA: v_head_dim); 0 = head_dim
  bool causal = true;
  bool backward = false;
  // The fraction of the call this op is: the step graph keeps attention's core as two ops
  // (scores, context) in forward and their four gradient ops in backward, each a share of the
  // call's time (1/2 forward, 1/4 backward).
  double share = 1;
  // The backward call of the same shape, split over the four gradient ops of the two forward ops.
  AttentionShape Backward() const {
    AttentionShape b = *this;
    b.backward = true;
    b.share = share / 2;
    return b;
  }
  auto operator<=>(const AttentionShape&) const = default;
};

// True when `hw` carries a fitted attention profile (attention.fwd_max_efficiency > 0); without
// one the core is timed as the GEMMs it is made of.
bool HasAttentionModel(const HardwareProfile& hw);

// FLOPs of the whole call (share not applied), FlashAttention's count.
double AttentionFlops(const AttentionShape& s);

// Fraction of hw.peak_flops_per_s the call reaches. REQUIRES: HasAttentionModel(hw).
double AttentionEfficiency(const AttentionShape& s, const HardwareProfile& hw);

// Seconds of the op: share x AttentionFlops / (peak x AttentionEfficiency). No launch overhead
// (the published rates include it). REQUIRES: HasAttentionModel(hw).
double AttentionTimeS(const AttentionShape& s, const HardwareProfile& hw);

}  // namespace moesim
