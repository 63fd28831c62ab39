#include "costmodel/attention_model.h"

#include <algorithm>
#include <cmath>

namespace moesim {
namespace {

// Rows of the query (forward) or key (backward) block one CTA owns: kBlockM = 128 in FA3's BF16
// forward for head dims 96-256 (Dao-AILab/flash-attention@0251105a hopper/tile_size.h
// tile_size_fwd_sm90; 192 at head dim <= 64), 128 in FA2's for head dim >= 128
// (csrc/flash_attn/src/flash_fwd_launch_template.h). One value for all: the wave term is small.
constexpr double kTileRows = 128;

// (query, key) pairs per sequence and head that the mask keeps.
double Pairs(const AttentionShape& s) {
  const double q = static_cast<double>(s.q_len), kv = static_cast<double>(s.kv_len);
  if (!s.causal) return q * kv;
  // Bottom-right aligned: query i sees keys up to i + kv - q.
  return q <= kv ? q * (kv - q / 2) : kv * kv / 2;
}

double HeadDim(const AttentionShape& s) { return static_cast<double>(s.head_dim); }
double HeadDimV(const AttentionShape& s) {
  return static_cast<double>(s.head_dim_v > 0 ? s.head_dim_v : s.head_dim);
}

}  // namespace

bool HasAttentionModel(const HardwareProfile& hw) { return hw.attention.fwd_max_efficiency > 0; }

double AttentionFlops(const AttentionShape& s) {
  const double fwd = 2 * s.batch_heads * Pairs(s) * (HeadDim(s) + HeadDimV(s));
  return s.backward ? 2.5 * fwd : fwd;
}

double AttentionEfficiency(const AttentionShape& s, const HardwareProfile& hw) {
  const AttentionKernelProfile& a = hw.attention;
  const double e = s.backward ? a.bwd_max_efficiency : a.fwd_max_efficiency;
  const double d_half = s.backward ? a.bwd_head_dim_half : a.fwd_head_dim_half;
  const double seq_half = s.backward ? a.bwd_seq_half : a.fwd_seq_half;
  const double d = (HeadDim(s) + HeadDimV(s)) / 2;
  const double q = std::max<double>(1, static_cast<double>(s.q_len));
  const double keys = std::max(1.0, Pairs(s) / q);  // keys each query row visits
  double eff = e * d / (d + d_half) * keys / (keys + seq_half);
  if (s.causal) eff *= keys / (keys + a.causal_block / 2);
  if (a.parallel_tiles > 0) {
    const double rows = static_cast<double>(s.backward ? s.kv_len : s.q_len);
    const double tiles = std::max(1.0, s.batch_heads * std::ceil(rows / kTileRows));
    const double waves = std::ceil(tiles / a.parallel_tiles);
    eff *= tiles / (waves * a.parallel_tiles);
  }
  return eff;
}

double AttentionTimeS(const AttentionShape& s, const HardwareProfile& hw) {
  const double flops = AttentionFlops(s);
  if (flops <= 0) return 0;
  return s.share * flops / (hw.peak_flops_per_s * AttentionEfficiency(s, hw));
}

}  // namespace moesim
