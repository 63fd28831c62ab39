#include "costmodel/gemm_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace moesim {
namespace {

double CeilDiv(int64_t a, int64_t b) {
  return std::ceil(static_cast<double>(a) / static_cast<double>(b));
}

double Pad(int64_t d, int64_t to) { return CeilDiv(d, to) * static_cast<double>(to); }

}  // namespace

GemmTime GemmKernelTime(const GemmShape& s, const GemmParams& p) {
  GemmTime t;
  t.overhead_s = p.overhead_s;
  if (s.b <= 0 || s.m <= 0 || s.n <= 0 || s.k <= 0) return t;
  const double b = static_cast<double>(s.b), m = static_cast<double>(s.m),
               n = static_cast<double>(s.n), k = static_cast<double>(s.k);
  const double operand_bytes = s.fp8 ? 1 : 2;
  if (p.hbm_bytes_per_s > 0) {
    t.memory_s = (b * (m * k + k * n) * operand_bytes + b * m * n * 2) / p.hbm_bytes_per_s;
  }
  if (p.peak_flops_per_s <= 0) return t;
  const double rate = p.peak_flops_per_s * p.max_fraction;
  if (p.compute_units > 0) {
    const double units = static_cast<double>(p.compute_units);
    const double per_unit = rate / units;
    double best = std::numeric_limits<double>::infinity();
    for (const GemmTile& tile : kGpuTiles) {
      const double tiles = b * CeilDiv(s.m, tile.tm) * CeilDiv(s.n, tile.tn);
      for (int64_t split = 1; split <= kMaxSplitK; split *= 2) {
        if (split > 1 && (s.k < split * kMinSplitKSlice || tiles >= units)) break;
        const double waves = std::ceil(tiles * static_cast<double>(split) / units);
        const double tile_s = 2 * static_cast<double>(tile.tm * tile.tn) *
                              (CeilDiv(s.k, split) + p.k_half) / per_unit;
        best = std::min(best, waves * tile_s);
      }
    }
    t.compute_s = best;
  } else if (p.mxu_size > 0) {
    t.compute_s = 2 * b * Pad(s.m, p.mxu_size) * Pad(s.n, p.mxu_size) * Pad(s.k, p.mxu_size) / rate;
  } else {
    t.compute_s = 2 * b * m * n * k / rate;
  }
  return t;
}

bool HasGemmModel(const HardwareProfile& hw) {
  return hw.gemm_compute_units > 0 || hw.gemm_mxu_size > 0;
}

GemmParams GemmParamsOf(const HardwareProfile& hw, bool fp8) {
  GemmParams p;
  const bool use_fp8 = fp8 && hw.fp8_peak_flops_per_s > 0;
  p.peak_flops_per_s = use_fp8 ? hw.fp8_peak_flops_per_s : hw.peak_flops_per_s;
  p.hbm_bytes_per_s = hw.hbm_bytes_per_s * hw.memory_efficiency;
  p.compute_units = hw.gemm_compute_units;
  p.mxu_size = hw.gemm_mxu_size;
  p.max_fraction = use_fp8 ? hw.fp8_gemm_peak_fraction : hw.gemm_peak_fraction;
  p.k_half = use_fp8 ? hw.fp8_gemm_tile_k_half : hw.gemm_tile_k_half;
  p.overhead_s = hw.gemm_overhead_s >= 0 ? hw.gemm_overhead_s : hw.op_overhead_s;
  return p;
}

double GemmAchievedFraction(const GemmShape& s, const HardwareProfile& hw) {
  const GemmParams p = GemmParamsOf(hw, s.fp8);
  const double total = GemmKernelTime(s, p).total_s();
  if (total <= 0 || p.peak_flops_per_s <= 0 || s.b <= 0 || s.m <= 0 || s.n <= 0 || s.k <= 0) {
    return 0;
  }
  const double flops = 2.0 * static_cast<double>(s.b) * static_cast<double>(s.m) *
                       static_cast<double>(s.n) * static_cast<double>(s.k);
  return flops / (total * p.peak_flops_per_s);
}

}  // namespace moesim
