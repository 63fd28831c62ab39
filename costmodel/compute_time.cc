#include <algorithm>
#include <cmath>

#include "costmodel/attention_model.h"
#include "costmodel/gemm_model.h"
#include "costmodel/opgraph.h"

namespace moesim {
namespace {

constexpr double kTile = 128;

// Fraction of a GEMM dimension that fills whole tiles: 100 of a 128-wide tile is 78% used.
double TileFill(int64_t d) {
  if (d <= 0) return 1;
  const double x = static_cast<double>(d);
  return x / (std::ceil(x / kTile) * kTile);
}

// s(x, h) = x / (x + h): the calibrated model's shortfall along one GEMM dimension.
double Saturation(int64_t d, double half) {
  if (d <= 0) return 1;
  const double x = static_cast<double>(d);
  return x / (x + half);
}

// A GEMM timed by the kernel model (costmodel/gemm_model.h): its shape as one GEMM (batch labels
// folded into m by step_plan.cc Matmul()).
bool UsesGemmModel(const ComputeWork& w, const HardwareProfile& hw) {
  return w.matmul && hw.gemm_max_efficiency <= 0 && HasGemmModel(hw) && w.m > 0 && w.n > 0 &&
         w.k > 0;
}

double PeakFlopsPerS(const ComputeWork& w, const HardwareProfile& hw) {
  return w.fp8 && hw.fp8_peak_flops_per_s > 0 ? hw.fp8_peak_flops_per_s : hw.peak_flops_per_s;
}

// A block-scaled FP8 GEMM's rate relative to a per-tensor one (1 otherwise).
double BlockScaleRate(const ComputeWork& w, const HardwareProfile& hw) {
  return w.fp8 && w.fp8_block_scaled ? hw.fp8_block_scaled_gemm_rate : 1.0;
}

// A step's elementwise layer op (norms, activations, residuals, rotary, softmax, permutation),
// whose streaming efficiency Hardware.elementwise_efficiency scales; the optimizer and FP8 casts
// are single fused kernels measured as such and are not scaled.
bool IsLayerElementwise(const ComputeWork& w) {
  if (w.matmul || w.attention) return false;
  return !w.kernel || (*w.kernel != MemoryKernel::kAdamw && *w.kernel != MemoryKernel::kFp8Cast);
}

}  // namespace

double MatmulEfficiency(const ComputeWork& w, const HardwareProfile& hw) {
  if (hw.gemm_max_efficiency > 0) {
    if (!w.matmul) return hw.gemm_max_efficiency;
    return hw.gemm_max_efficiency * Saturation(w.m, hw.gemm_m_half) *
           Saturation(w.n, hw.gemm_n_half) * Saturation(w.k, hw.gemm_k_half);
  }
  if (UsesGemmModel(w, hw)) {
    // The kernel's compute term as a fraction of peak, times the step-level multiplier.
    const GemmShape s{1, w.m, w.n, w.k, w.fp8};
    const GemmParams p = GemmParamsOf(hw, w.fp8);
    const double compute_s = GemmKernelTime(s, p).compute_s;
    const double flops =
        2.0 * static_cast<double>(w.m) * static_cast<double>(w.n) * static_cast<double>(w.k);
    return flops / (compute_s * p.peak_flops_per_s) * hw.matmul_efficiency * BlockScaleRate(w, hw);
  }
  double eff = hw.matmul_efficiency * BlockScaleRate(w, hw);
  if (w.matmul) eff *= TileFill(w.m) * TileFill(w.n) * TileFill(w.k);
  return eff;
}

double ComputeTimeS(const ComputeWork& w, const HardwareProfile& hw) {
  if (w.attention && HasAttentionModel(hw)) {
    // FlashAttention's core (costmodel/attention_model.h): its fitted kernel rate, which already
    // holds the call's memory traffic and launch; HBM as a floor all the same.
    const double bytes_s = w.bytes / (hw.hbm_bytes_per_s * hw.memory_efficiency);
    return std::max(AttentionTimeS(*w.attention, hw), bytes_s);
  }
  const double eff = MatmulEfficiency(w, hw);
  const double flops_s = w.flops > 0 ? w.flops / (PeakFlopsPerS(w, hw) * eff) : 0;
  const double mem_eff = (w.kernel ? hw.MemoryEfficiency(*w.kernel) : hw.memory_efficiency) *
                         (IsLayerElementwise(w) ? hw.elementwise_efficiency : 1.0);
  const double bytes_s = w.bytes > 0 ? w.bytes / (hw.hbm_bytes_per_s * mem_eff) : 0;
  const double overhead_s =
      UsesGemmModel(w, hw) ? GemmParamsOf(hw, w.fp8).overhead_s : hw.op_overhead_s;
  return std::max(flops_s, bytes_s) + overhead_s;
}

const char* PhaseName(Phase p) {
  switch (p) {
    case Phase::kForward:
      return "forward";
    case Phase::kBackward:
      return "backward";
    case Phase::kRecompute:
      return "recompute";
    case Phase::kOptimizer:
      return "optimizer";
  }
  return "?";
}

const char* CollectiveKindName(CollectiveKind k) {
  switch (k) {
    case CollectiveKind::kAllReduce:
      return "all_reduce";
    case CollectiveKind::kAllGather:
      return "all_gather";
    case CollectiveKind::kReduceScatter:
      return "reduce_scatter";
    case CollectiveKind::kAllToAll:
      return "all_to_all";
    case CollectiveKind::kSendRecv:
      return "send_recv";
    case CollectiveKind::kRingShift:
      return "ring_shift";
  }
  return "?";
}

const char* TokenDispatcherName(TokenDispatcher d) {
  switch (d) {
    case TokenDispatcher::kAllToAll:
      return "alltoall";
    case TokenDispatcher::kAllGather:
      return "allgather";
    case TokenDispatcher::kHierarchical:
      return "hierarchical";
  }
  return "?";
}

const char* StreamName(int32_t stream) {
  switch (stream) {
    case kComputeStream:
      return "compute";
    case kCommStream:
      return "comm";
    case kPrefetchStream:
      return "prefetch";
    case kGradStream:
      return "grad";
    case kP2pStream:
      return "p2p";
    case kEpStream:
      return "ep";
    default:
      return "?";
  }
}

}  // namespace moesim
