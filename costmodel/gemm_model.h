// gemm_model.h
//
// The time of one GEMM kernel on one chip: the ONE owner of the GEMM formula (compute_time.cc
// ComputeTimeS and MatmulEfficiency call it; calib/gemm_table.h fits its parameters to public
// measurements). C[b, m, n] = A[b, m, k] x B[b, k, n]; 2 b m n k FLOPs.
//
// GPU (compute_units = SMs > 0): the physics that decide a GEMM's time on tensor cores --
//   - wave quantization: the output is cut into tm x tn tiles, one thread block per tile, run in
//     waves of one tile per SM: tiles = b ceil(m/tm) ceil(n/tn), waves = ceil(tiles / SMs). A
//     GEMM one tile past a full wave takes two waves. cuBLAS picks the fastest of a few tile
//     shapes: the time is the minimum over kGpuTiles.
//   - split-K: a GEMM of fewer tiles than SMs (only) splits its k loop over split = 1, 2, 4, 8 or
//   16
//     blocks per tile (cuBLAS split-K, CUTLASS stream-K), each slice at least kMinSplitKSlice
//     long: split x tiles blocks over ceil(k / split) steps each; the minimum is taken over the
//     splits too. (The partial sums' reduction is left out: small against the GEMM.)
//   - a k ramp: each tile's prologue (first loads of the pipeline) and epilogue (writing C) cost
//     as much as k_half more steps of the k loop: a tile runs for (k + k_half) steps of k, so its
//     efficiency is k / (k + k_half).
//   - max_fraction: the fraction of peak a full wave of large-k tiles reaches (clock throttling
//     under tensor-core load, instruction issue): public ~85-88% of bf16 peak on A100 and
//     ~75-80% on H100 SXM.
//     compute_s = min over tiles and splits of ceil(split x tiles / SMs)
//                 x 2 tm tn (ceil(k / split) + k_half) / (peak / SMs x max_fraction)
//   - the HBM roofline for skinny (memory-bound) shapes:
//     memory_s = (b m k + b k n) x operand bytes + b m n x 2 (BF16 output) / hbm_bytes_per_s
//   - a fixed launch overhead: total_s = max(compute_s, memory_s) + overhead_s.
// TPU (mxu_size > 0, compute_units = 0): a systolic array of mxu_size x mxu_size (128 on v4,
// v5e, v5p; 256 on v6e) pads m, n and k to its size; no waves, no k ramp:
//     compute_s = 2 b pad(m) pad(n) pad(k) / (peak x max_fraction).
// FP8 (GemmShape::fp8): operands of one byte, BF16 output, at the FP8 peak and FP8's own fitted
// max_fraction and k_half.
//
// Units: seconds, FLOP/s, bytes/s; shape sizes are element counts.
// Invariants: every time >= 0; compute_s is non-decreasing in m, n, k and b; with max_fraction
// <= 1 no shape beats the peak.
// Thread safety: pure functions.
#pragma once

#include <array>
#include <cstdint>

#include "proto/scenario.h"

namespace moesim {

struct GemmShape {
  int64_t b = 1;  // batch count (independent GEMMs of one kernel)
  int64_t m = 0, n = 0, k = 0;
  bool fp8 = false;  // FP8 operands, BF16 output
};

// Output tile shapes (tm, tn) cuBLAS/CUTLASS kernels use for 16-bit and 8-bit tensor-core GEMMs
// on Ampere, Hopper and Blackwell (CUTLASS's default CTA tiles: 128x128, 128x256, 256x128).
struct GemmTile {
  int64_t tm, tn;
};
inline constexpr std::array<GemmTile, 3> kGpuTiles = {{{128, 128}, {128, 256}, {256, 128}}};
inline constexpr int64_t kMaxSplitK = 16;
inline constexpr int64_t kMinSplitKSlice = 128;

// One chip's GEMM kernel parameters for one data type (from a HardwareProfile: GemmParamsOf).
struct GemmParams {
  double peak_flops_per_s = 0;  // of the data type
  double hbm_bytes_per_s = 0;   // achievable (bandwidth x memory efficiency)
  int64_t compute_units = 0;    // SMs: the wave model; 0 = none
  int64_t mxu_size = 0;         // TPU systolic array; used when compute_units == 0
  double max_fraction = 1;      // (0, 1]
  double k_half = 0;            // >= 0, in elements of k
  double overhead_s = 0;        // >= 0
};

struct GemmTime {
  double compute_s = 0;
  double memory_s = 0;
  double overhead_s = 0;
  double total_s() const { return (compute_s > memory_s ? compute_s : memory_s) + overhead_s; }
};

GemmTime GemmKernelTime(const GemmShape& s, const GemmParams& p);

// The profile has a GEMM kernel model (compute_units or mxu_size set).
bool HasGemmModel(const HardwareProfile& hw);
// The profile's parameters for `fp8` or BF16 GEMMs. FP8 on a chip without an FP8 peak
// (fp8_peak_flops_per_s = 0: A100, TPUs) runs at the BF16 peak with BF16's parameters.
GemmParams GemmParamsOf(const HardwareProfile& hw, bool fp8);

// The fraction of the data type's peak a GEMM kernel reaches, launch and memory included:
// 2 b m n k / (total_s x peak) -- what a profiler shows for the kernel. 0 for an empty shape.
double GemmAchievedFraction(const GemmShape& s, const HardwareProfile& hw);

}  // namespace moesim
