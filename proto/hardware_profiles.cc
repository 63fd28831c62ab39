#include "proto/hardware_profiles.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include "common/limits.h"
#include "proto/checker.h"

namespace moesim {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// The step-level fit (see Efficiencies below).
constexpr double kA100MatmulFit = 0.709;
constexpr double kH100MatmulFit = 0.717, kH100ElementwiseFit = 0.35;

// Efficiencies (stated once):
// - matmul_efficiency (the fraction of the GEMM kernel model's rate, costmodel/gemm_model.h, a
//   training step's GEMMs reach) and elementwise_efficiency (the fraction of the streaming rate
//   a step's elementwise layer ops reach): one fit per chip over every public row of that chip
//   in validation/published.csv and validation/moe_public.csv, by
//     moesim calibrate --published validation/published.csv validation/moe_public.csv
//       --rule median --scan elementwise_efficiency=1,0.7,0.5,0.35,0.25 --grid 9 --lo 0.3 --hi 1
//   (sim/planner/profile_fit.h: the median of log(simulated / measured speed) is 0; the second
//   parameter only where a chip has >= 5 rows; validation/calibration.md has the residuals and
//   the 5-fold held-out error). The MaxText series (validation/maxtext-*.csv) are held out.
//     A100 0.709 / 1 (3 Megatron SC21 rows: +3.0, +0.0, -6.3%);
//     H100 0.717 / 0.35 (11 rows; Megatron-Core dense 1.7B +0.8, 16B -8.4, 177B -4.1%);
//     TPU v5e 0.667, TPU v4 0.589 / 1 (one MaxText row each).
//   Chips without public measurements of their own, or with one row, inherit their nearest
//   sibling's fit, an assumption: H200, B200, GB200 <- H100 (same software stack, Hopper and
//   Blackwell tensor cores at similar utilization); v5p <- v4 (3D-torus line); v6e <- v5e. Their
//   single rows (GB200 Qwen3, v6e Mixtral) test that inheritance instead.
// - memory_efficiency: streaming kernels reach ~85% of HBM bandwidth (prior, not fitted);
// - link_efficiency: NCCL reaches ~80% of NVLink/IB line rate (nccl-tests#212: ~370 of 450 GB/s);
//   we assume the same fraction on ICI, as no measured TPU curve is public in text.
HardwareProfile Make(const char* chip, double peak, double hbm_bytes, double hbm_bw, double link,
                     double link_latency, double scaleout, double scaleout_latency,
                     int64_t per_host, double matmul_eff, double overhead_s) {
  HardwareProfile p;
  p.chip = chip;
  p.peak_flops_per_s = peak;
  p.hbm_bytes = static_cast<int64_t>(hbm_bytes);
  p.hbm_bytes_per_s = hbm_bw;
  p.matmul_efficiency = matmul_eff;
  p.memory_efficiency = 0.85;
  p.op_overhead_s = overhead_s;
  p.link_bytes_per_s = link;
  p.link_latency_s = link_latency;
  p.link_efficiency = 0.8;
  p.scaleout_bytes_per_s = scaleout;
  p.scaleout_latency_s = scaleout_latency;
  p.devices_per_host = per_host;
  return p;
}

// The GEMM kernel model (costmodel/gemm_model.h) of a GPU: the SM count is a fact (NVIDIA
// architecture whitepapers: A100 108, H100 SXM 132, B200 148 per GPU), the rest is fitted once
// per chip to OpenXLA's measured GEMM tables (validation/data/gemm/, `moesim calibrate
// --gemm-table`; docs/compute.md "GEMMs" has the k-fold held-out errors).
// Transformer Engine's FP8 quantize kernels, fraction of HBM bandwidth (derived below).
constexpr double kFp8CastEfficiency = 0.72;
struct GemmKernel {
  int64_t sms;
  double bf16_fraction, bf16_k_half, fp8_fraction, fp8_k_half, overhead_s;
  double fp8_block_scaled_rate;  // Hardware.fp8_block_scaled_gemm_rate
};
// H100 ("sm_90" table, 375 BF16 rows): 0.860 of peak, k_half 131, 5.29 us; 5-fold held-out
// |error| median 4.2%, p90 14.9%. Its FP8 column is not used: 29 of its 375 rows exceed the
// 1979 TFLOP/s dense FP8 peak (up to 2593). FP8's fraction is BF16's times the ratio of the
// measured maximum achievable FP8 and BF16 matmul fractions of the same chip (stas00/ml-
// engineering @744d01e compute/accelerator/README.md, "Maximum Achievable Matmul FLOPS" by
// mamf-finder, torch 2.7 / cuBLAS): H100 SXM FP8 1402.6 of 1979 TFLOP/s (70.9%) against BF16
// 794.5 of 989 (80.3%): 0.860 x 70.9 / 80.3 = 0.759; H200 SXM FP8 1453.4 (73.4%) against the
// same BF16: 0.786 (the same die; the table's own figures). FP8's
// ramp is BF16's (assumed).
//
// FP8 beside it, from Transformer Engine's GEMM profiling tutorial (NVIDIA/TransformerEngine
// docs/examples/gemm_profiling/gemm_profiling.rst @d0067d0; a 4096 / 16384 layer at 15,872
// tokens, 12 GEMMs, per-layer ms): on H200 NVL, BF16 32.014; per-tensor current scaling 20.285
// with its quantization, 16.785 pre-quantized; delayed scaling 18.978; FP8 block scaling 22.882
// with its quantization (no pre-quantized figure: Hopper's cuBLAS has no 2D-by-2D
// block GEMM). Derived, not fitted on our rows:
// - quantization runs at ~0.72 of HBM bandwidth: current scaling's 3.50 ms quantize 2.48e9
//   elements (the benchmark casts both operands of each GEMM) at 5 B each (amax pass, read,
//   write), 12.4 GB / 3.5 ms = 3.54 TB/s of 4.8; delayed scaling's ~2.2 ms at 3 B each gives
//   0.71 -> kernel_memory_efficiency fp8_cast 0.72 on GPUs;
// - block scaling's quantization at 4 B per element (both orientations written) takes ~2.37
//   ms of its 22.882, so its GEMMs take ~20.5 ms against 16.785 per-tensor: rate 0.82.
// - Blackwell (B300 in the same tutorial): MXFP8 GEMMs 7.161 ms pre-quantized against 6.812
//   per-tensor: rate 0.95.
constexpr GemmKernel kH100Gemm = {132, 0.860, 131, 0.860 * 70.9 / 80.3, 131, 5.29e-6, 0.82};
constexpr GemmKernel kH200Gemm = {132, 0.860, 131, 0.860 * 73.4 / 80.3, 131, 5.29e-6, 0.82};
// B200 ("sm_100_B200"): BF16 0.760, k_half 211; FP8 0.817, k_half 447; 5.56 us. Held-out median
// (p90) 5.4% (14.4%) BF16, 4.1% (16.2%) FP8. GB200 inherits it (same die).
constexpr GemmKernel kB200Gemm = {148, 0.760, 211, 0.817, 447, 5.56e-6, 0.95};
// A100: OpenXLA publishes no A100 table. 0.85 of peak is the public large-GEMM figure (85-88%
// of 312 TFLOP/s); k_half and overhead are H100's (assumed). Checked, not fitted, against a
// public mamf-finder run on an A100-SXM4-80GB (validation/data/gemm/a100.csv, 288 BF16 rows, m
// 19456-20224): median |error| 2.9%, p90 7.8%. Its own fit (0.828, k_half 70, 19.5 us) is not
// taken: the table has no small GEMM to pin the overhead (docs/compute.md "GEMMs").
constexpr GemmKernel kA100Gemm = {108, 0.85, 131, 0.85, 131, 5.29e-6, 1};
HardwareProfile WithGemm(HardwareProfile p, const GemmKernel& g, double fp8_peak) {
  p.gemm_compute_units = g.sms;
  p.fp8_peak_flops_per_s = fp8_peak;
  p.gemm_peak_fraction = g.bf16_fraction;
  p.gemm_tile_k_half = g.bf16_k_half;
  p.fp8_gemm_peak_fraction = g.fp8_fraction;
  p.fp8_gemm_tile_k_half = g.fp8_k_half;
  p.gemm_overhead_s = g.overhead_s;
  p.fp8_block_scaled_gemm_rate = g.fp8_block_scaled_rate;
  p.kernel_memory_efficiency[static_cast<size_t>(MemoryKernel::kFp8Cast)] = kFp8CastEfficiency;
  return p;
}

// The step-level fit's second parameter (see Efficiencies).
HardwareProfile WithElementwise(HardwareProfile p, double elementwise) {
  p.elementwise_efficiency = elementwise;
  return p;
}

// A TPU's systolic array edge: 128 on v4, v5e, v5p; 256 on v6e (Trillium).
HardwareProfile Tpu(HardwareProfile p, int64_t mxu) {
  p.gemm_mxu_size = mxu;
  return p;
}

// Blockwise attention's kernel model per chip (costmodel/attention_model.h), fitted by
// validation/data/attention/fit_attention.py to validation/data/attention/flash_attention.csv
// (mean squared log error over the rows marked fit; seq_len 4096 rows held out):
//   a100-sxm: FlashAttention-2, fwd+bwd figures of Dao 2023 (arXiv 2307.08691) Fig. 4; the
//     backward's shape relative to the forward (max, head-dim and length halves) is FA2's own as
//     its separate forward and backward bars on H100 give it (Shah et al. 2024 figures).
//   h100-sxm: FlashAttention-3 BF16 forward and backward figures (Shah et al. 2024, arXiv
//     2407.08608). H200: the same kernel on the same SMs (compute-bound: its HBM does not matter).
//   b200, gb200: no published FlashAttention table in our sources: H100's fit (an assumption)
//     with their 148 SMs as parallel tiles.
// TPUs and cpu: none (no published splash-attention table known): attention's core as GEMMs.
AttentionKernelProfile AttentionFit(const std::string& chip) {
  AttentionKernelProfile a;
  if (chip == "a100-sxm") {
    a = {0.676, 0.750, 5.25, 24.0, 81.0, 202, 114, 108};
  } else if (chip == "h100-sxm" || chip == "h200-sxm" || chip == "b200" || chip == "gb200") {
    a = {0.935, 0.742, 50.8, 27.5, 224, 413, 168, 132};
    if (chip == "b200" || chip == "gb200") a.parallel_tiles = 148;
  }
  return a;
}

const std::map<std::string, HardwareProfile>& Profiles() {
  // link_bytes_per_s: one ICI link one way on TPUs: v4 4.5e10 and v5p 9e10 (scaling-book; v4's
  // gives 23.0 TB/s pod bisection against the vendor's 24); v5e 5e10 and v6e 1e11 from the vendor
  // per-chip figures (400 and 800 GB/s bidirectional over 4 ports), which reproduce the vendor
  // pod bisections of 1.6 and 3.2 TB/s exactly (scaling-book's 4.5e10 / 9e10 would be 10% low);
  // on GPUs the GPU's whole NVLink bundle to the NVSwitch, one way (12x25 GB/s A100, 18x25 H100,
  // 18x50 B200). scaleout_bytes_per_s: DCN per chip (host NIC / chips per host) on TPUs, the
  // GPU's own NIC on GPUs (HDR 200 Gb/s, NDR 400 Gb/s). Latencies: ~1 us per ICI hop
  // (scaling-book), ~2 us NVSwitch, ~5 us IB/DCN (assumed).
  static const std::map<std::string, HardwareProfile> profiles = {
      // cloud.google.com/tpu/docs/v4: 275 TF bf16, 32 GiB HBM2, 1200 GB/s; host = 4 chips.
      {"tpu-v4", Tpu(Make("tpu-v4", 275e12, 32 * kGiB, 1200e9, 4.5e10, 1e-6, 2.5e10 / 4, 5e-6, 4,
                          0.589, 1e-6),
                     128)},
      // docs.cloud.google.com/tpu/docs/v5e: 197 TF, 16 GiB HBM2, 819 GB/s; host = 8 chips with
      // 2x100 Gb/s NICs (25 GB/s per host).
      {"tpu-v5e",
       Tpu(Make("tpu-v5e", 197e12, 16 * kGiB, 819e9, 5e10, 1e-6, 25e9 / 8, 5e-6, 8, 0.667, 1e-6),
           128)},
      // cloud.google.com/tpu/docs/v5p: 459 TF, 95 GiB HBM2e, 2765 GB/s; DCN 50 Gb/s per chip.
      {"tpu-v5p",
       Tpu(Make("tpu-v5p", 459e12, 95 * kGiB, 2765e9, 9e10, 1e-6, 6.25e9, 5e-6, 4, 0.589, 1e-6),
           128)},
      // docs.cloud.google.com/tpu/docs/v6e: 918 TF, 32 GiB, 1638 GB/s; DCN per host as v4
      // (scaling-book's typical 2.5e10 B/s), 8 chips per host.
      {"tpu-v6e",
       Tpu(Make("tpu-v6e", 918e12, 32 * kGiB, 1638e9, 1e11, 1e-6, 2.5e10 / 8, 5e-6, 8, 0.667, 1e-6),
           256)},
      // A100 SXM4 80GB: 312 TF, 80 GiB HBM2e, 2.0 TB/s, NVLink3 300 GB/s/dir, HDR 200 Gb/s.
      {"a100-sxm", WithGemm(Make("a100-sxm", 312e12, 80 * kGiB, 2.0e12, 300e9, 2e-6, 25e9, 5e-6, 8,
                                 kA100MatmulFit, 4e-6),
                            kA100Gemm, 0)},
      // H100 SXM5 80GB: 989 TF, 80 GiB HBM3, 3.35 TB/s, NVLink4 450 GB/s/dir, NDR 400 Gb/s.
      {"h100-sxm", WithElementwise(WithGemm(Make("h100-sxm", 989e12, 80 * kGiB, 3.35e12, 450e9,
                                                 2e-6, 50e9, 5e-6, 8, kH100MatmulFit, 4e-6),
                                            kH100Gemm, 1979e12),
                                   kH100ElementwiseFit)},
      // H200: as H100 with 141 GB HBM3e at 4.8 TB/s.
      {"h200-sxm", WithElementwise(WithGemm(Make("h200-sxm", 989e12, 141e9, 4.8e12, 450e9, 2e-6,
                                                 50e9, 5e-6, 8, kH100MatmulFit, 4e-6),
                                            kH200Gemm, 1979e12),
                                   kH100ElementwiseFit)},
      // B200: 2.25 PF, 192 GB HBM3e, 8 TB/s, NVLink5 900 GB/s/dir, 400 Gb/s NIC.
      {"b200", WithElementwise(WithGemm(Make("b200", 2.25e15, 192e9, 8e12, 900e9, 2e-6, 50e9, 5e-6,
                                             8, kH100MatmulFit, 4e-6),
                                        kB200Gemm, 4.5e15),
                               kH100ElementwiseFit)},
      // GB200 (per GPU): ~2.5 PF, ~186 GB, 8 TB/s, 900 GB/s/dir in a 72-GPU NVLink domain.
      {"gb200", WithElementwise(WithGemm(Make("gb200", 2.5e15, 186e9, 8e12, 900e9, 2e-6, 50e9, 5e-6,
                                              4, kH100MatmulFit, 4e-6),
                                         kB200Gemm, 5e15),
                                kH100ElementwiseFit)},
      // cpu: ONE core of the development host (AMD EPYC, Zen 5: family 26, AVX-512 with two
      // 512-bit FMA pipes; 2.1 GHz as /proc/cpuinfo reports), which runs one moesim-real rank
      // (Eigen is single-threaded there). Peak fp32 = 2.1e9 Hz x 2 FMA pipes x 16 lanes x 2
      // FLOP = 134.4 GFLOP/s. Memory: the most one core moves, from L1: two 64-byte loads and
      // one 64-byte store per cycle, 192 B x 2.1 GHz = 403 GB/s; the tensors of the models a CPU
      // trains live in L1-L3, not DRAM, and each kernel's fraction of that is calibrated (a
      // copy in L1 measured ~230 GB/s, a softmax bound by exp() ~1.5 GB/s). "hbm_bytes": the
      // VM's 23 GiB, shared by the host's ranks.
      // Links (cpu-host:N): MPI over shared memory, ~10 GB/s and ~1 us per message before
      // calibration. A portable build uses SSE2 only (4 lanes, no FMA), which the fitted
      // GEMM efficiency absorbs (`moesim calibrate`); the efficiencies here are priors.
      {"cpu", Make("cpu", 2.1e9 * 2 * 16 * 2, 23 * kGiB, 2.1e9 * 192, 10e9, 1e-6, 10e9, 1e-6, 1024,
                   0.25, 1e-7)},
  };
  return profiles;
}

}  // namespace

Expected<HardwareProfile> BuiltinHardwareProfile(const std::string& chip) {
  auto it = Profiles().find(chip);
  if (it == Profiles().end()) {
    std::string names;
    for (const auto& n : BuiltinHardwareProfileNames()) names += (names.empty() ? "" : ", ") + n;
    return Status::InvalidInput("unknown chip \"" + chip + "\" (built-in profiles: " + names + ")");
  }
  HardwareProfile p = it->second;
  p.attention = AttentionFit(chip);
  return p;
}

std::vector<std::string> BuiltinHardwareProfileNames() {
  std::vector<std::string> names;
  for (const auto& [name, p] : Profiles()) names.push_back(name);
  return names;
}

namespace {

void ApplyKernelEfficiencies(const pb::Hardware& h, HardwareProfile* out,
                             std::vector<HardwareFieldError>* errors) {
  std::array<bool, kNumMemoryKernels> listed{};
  for (int i = 0; i < h.kernel_memory_efficiency_size(); ++i) {
    const pb::KernelEfficiency& k = h.kernel_memory_efficiency(i);
    const std::string p = "kernel_memory_efficiency[" + std::to_string(i) + "]";
    MemoryKernel kind;
    if (!ParseMemoryKernel(k.kernel(), &kind)) {
      errors->push_back({p + ".kernel", "=\"" + k.kernel() + "\" is not a kernel (" +
                                            MemoryKernelChoices() + ")"});
      continue;
    }
    if (!(k.efficiency() > 0) || k.efficiency() > 1) {
      errors->push_back({p + ".efficiency", "=" + Num(k.efficiency()) + " must be in (0, 1]"});
      continue;
    }
    const auto at = static_cast<size_t>(kind);
    if (listed[at]) {
      errors->push_back({p + ".kernel", "=\"" + k.kernel() + "\" is listed twice"});
      continue;
    }
    listed[at] = true;
    out->kernel_memory_efficiency[at] = k.efficiency();
  }
}

}  // namespace

std::vector<HardwareFieldError> ApplyHardwareFields(const pb::Hardware& h, HardwareProfile* out) {
  std::vector<HardwareFieldError> errors;
  // NaN and infinities fail the range test too: protobuf's text format reads "nan" and "inf".
  // Upper bounds (and rates' lower bound) are the documented limits of common/limits.h.
  auto in_range = [&](const char* name, double v, bool fraction, double max = 0, double min = 0) {
    if (!std::isfinite(v) || v < 0 || (fraction && v > 1)) {
      errors.push_back({name, "=" + Num(v) + (fraction ? " must be in (0, 1]" : " must be >= 0")});
      return false;
    }
    if (max > 0 && v > max) {
      errors.push_back(
          {name, "=" + Num(v) + " exceeds the limit of " + Num(max) + " (docs/limits.md)"});
      return false;
    }
    if (v > 0 && v < min) {
      errors.push_back({name, "=" + Num(v) + " is below " + Num(min) + " (docs/limits.md)"});
      return false;
    }
    return true;
  };
  auto scalar = [&](const char* name, double v, double* dst, bool fraction) {
    if (in_range(name, v, fraction) && v > 0) *dst = v;
  };
  auto rate = [&](const char* name, double v, double* dst, double max) {
    if (in_range(name, v, false, max, limits::kMinRatePerS) && v > 0) *dst = v;
  };
  auto latency = [&](const char* name, double v, double* dst) {
    if (in_range(name, v, false, limits::kMaxLatencyS) && v > 0) *dst = v;
  };
  auto count = [&](const char* name, int64_t v, int64_t* dst, int64_t max) {
    if (v < 0) errors.push_back({name, "=" + Num(v) + " must be >= 0"});
    if (v > max) {
      errors.push_back(
          {name, "=" + Num(v) + " exceeds the limit of " + Num(max) + " (docs/limits.md)"});
    } else if (v > 0) {
      *dst = v;
    }
  };
  rate("peak_flops_per_s", h.peak_flops_per_s(), &out->peak_flops_per_s, limits::kMaxFlopsPerS);
  count("hbm_bytes", h.hbm_bytes(), &out->hbm_bytes, limits::kMaxHbmBytes);
  rate("hbm_bytes_per_s", h.hbm_bytes_per_s(), &out->hbm_bytes_per_s, limits::kMaxBytesPerS);
  scalar("matmul_efficiency", h.matmul_efficiency(), &out->matmul_efficiency, true);
  scalar("memory_efficiency", h.memory_efficiency(), &out->memory_efficiency, true);
  latency("op_overhead_s", h.op_overhead_s(), &out->op_overhead_s);
  rate("link_bytes_per_s", h.link_bytes_per_s(), &out->link_bytes_per_s, limits::kMaxBytesPerS);
  latency("link_latency_s", h.link_latency_s(), &out->link_latency_s);
  scalar("link_efficiency", h.link_efficiency(), &out->link_efficiency, true);
  rate("scaleout_bytes_per_s", h.scaleout_bytes_per_s(), &out->scaleout_bytes_per_s,
       limits::kMaxBytesPerS);
  latency("scaleout_latency_s", h.scaleout_latency_s(), &out->scaleout_latency_s);
  count("devices_per_host", h.devices_per_host(), &out->devices_per_host,
        limits::kMaxDevicesPerHost);
  // The GEMM model's half-points may legitimately be 0 (no shortfall along that dimension), so
  // the four are taken together whenever the model is switched on.
  // Each is checked, so that every bad one is reported.
  const bool max_ok = in_range("gemm_max_efficiency", h.gemm_max_efficiency(), true);
  const bool m_ok = in_range("gemm_m_half", h.gemm_m_half(), false, limits::kMaxGemmHalf);
  const bool n_ok = in_range("gemm_n_half", h.gemm_n_half(), false, limits::kMaxGemmHalf);
  const bool k_ok = in_range("gemm_k_half", h.gemm_k_half(), false, limits::kMaxGemmHalf);
  if (max_ok && m_ok && n_ok && k_ok && h.gemm_max_efficiency() > 0) {
    out->gemm_max_efficiency = h.gemm_max_efficiency();
    out->gemm_m_half = h.gemm_m_half();
    out->gemm_n_half = h.gemm_n_half();
    out->gemm_k_half = h.gemm_k_half();
  }
  // A kernel cannot take the whole chip: [0, 1).
  if (!std::isfinite(h.comm_sm_fraction()) || h.comm_sm_fraction() < 0 ||
      h.comm_sm_fraction() >= 1) {
    errors.push_back({"comm_sm_fraction", "=" + Num(h.comm_sm_fraction()) + " must be in [0, 1)"});
  } else if (h.comm_sm_fraction() > 0) {
    out->comm_sm_fraction = h.comm_sm_fraction();
  }
  // GEMM kernel model (costmodel/gemm_model.h). Bounds: no GPU has 2^16 SMs nor a TPU an MXU
  // wider than 2^12.
  constexpr int64_t kMaxComputeUnits = int64_t{1} << 16, kMaxMxuSize = int64_t{1} << 12;
  count("gemm_compute_units", h.gemm_compute_units(), &out->gemm_compute_units, kMaxComputeUnits);
  count("gemm_mxu_size", h.gemm_mxu_size(), &out->gemm_mxu_size, kMaxMxuSize);
  scalar("gemm_peak_fraction", h.gemm_peak_fraction(), &out->gemm_peak_fraction, true);
  if (in_range("gemm_tile_k_half", h.gemm_tile_k_half(), false, limits::kMaxGemmHalf) &&
      h.gemm_tile_k_half() > 0) {
    out->gemm_tile_k_half = h.gemm_tile_k_half();
  }
  latency("gemm_overhead_s", h.gemm_overhead_s(), &out->gemm_overhead_s);
  rate("fp8_peak_flops_per_s", h.fp8_peak_flops_per_s(), &out->fp8_peak_flops_per_s,
       limits::kMaxFlopsPerS);
  scalar("fp8_gemm_peak_fraction", h.fp8_gemm_peak_fraction(), &out->fp8_gemm_peak_fraction, true);
  scalar("fp8_block_scaled_gemm_rate", h.fp8_block_scaled_gemm_rate(),
         &out->fp8_block_scaled_gemm_rate, true);
  scalar("elementwise_efficiency", h.elementwise_efficiency(), &out->elementwise_efficiency, true);
  if (in_range("fp8_gemm_tile_k_half", h.fp8_gemm_tile_k_half(), false, limits::kMaxGemmHalf) &&
      h.fp8_gemm_tile_k_half() > 0) {
    out->fp8_gemm_tile_k_half = h.fp8_gemm_tile_k_half();
  }
  // The attention model (moesim.proto Hardware 30-37): the eight together when
  // attention_fwd_max_efficiency > 0, each checked so that every bad one is reported.
  {
    const double most = limits::kMaxGemmHalf;
    const bool ok[] = {
        in_range("attention_fwd_max_efficiency", h.attention_fwd_max_efficiency(), true),
        in_range("attention_bwd_max_efficiency", h.attention_bwd_max_efficiency(), true),
        in_range("attention_fwd_head_dim_half", h.attention_fwd_head_dim_half(), false, most),
        in_range("attention_bwd_head_dim_half", h.attention_bwd_head_dim_half(), false, most),
        in_range("attention_fwd_seq_half", h.attention_fwd_seq_half(), false, most),
        in_range("attention_bwd_seq_half", h.attention_bwd_seq_half(), false, most),
        in_range("attention_causal_block", h.attention_causal_block(), false, most),
        in_range("attention_parallel_tiles", h.attention_parallel_tiles(), false, most)};
    const bool on = h.attention_fwd_max_efficiency() > 0;
    if (on && ok[0] && ok[1] && !(h.attention_bwd_max_efficiency() > 0)) {
      errors.push_back({"attention_bwd_max_efficiency",
                        "=0 must be in (0, 1] when attention_fwd_max_efficiency is set"});
    } else if (on && std::all_of(std::begin(ok), std::end(ok), [](bool b) { return b; })) {
      out->attention = {h.attention_fwd_max_efficiency(), h.attention_bwd_max_efficiency(),
                        h.attention_fwd_head_dim_half(),  h.attention_bwd_head_dim_half(),
                        h.attention_fwd_seq_half(),       h.attention_bwd_seq_half(),
                        h.attention_causal_block(),       h.attention_parallel_tiles()};
    }
  }
  ApplyKernelEfficiencies(h, out, &errors);
  return errors;
}

}  // namespace moesim
