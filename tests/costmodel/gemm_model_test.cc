// The GEMM kernel model (costmodel/gemm_model.h) against hand calculations: wave quantization,
// split-K, the k ramp, the HBM roofline's crossover, TPU MXU padding, FP8's peak and bytes, and
// the fraction of peak it exposes. Every expected value below is worked out in the comment
// beside it from the formula's physics, not read back from the code.
#include "costmodel/gemm_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "costmodel/opgraph.h"
#include "proto/hardware_profiles.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

// An H100-sized GPU with round numbers: 132 SMs at 1 TFLOP/s each, full peak, no ramp, no
// launch cost, no memory term (bandwidth 0 = not modelled).
GemmParams Gpu132() {
  GemmParams p;
  p.peak_flops_per_s = 132e12;
  p.compute_units = 132;
  return p;
}

TEST(GemmModel, OneTilePastAFullWaveTakesTwoWaves) {
  const GemmParams p = Gpu132();
  // k = 128: too short to split (slices of at least 128). 132 output tiles of 128 x 128
  // (m = 132 x 128, n = 128): one wave, each SM one tile of 2 x 128 x 128 x 128 FLOPs at
  // 1e12 FLOP/s = 4.194304 us.
  const double full = GemmKernelTime({1, 132 * 128, 128, 128, false}, p).compute_s;
  EXPECT_NEAR(full, 2.0 * 128 * 128 * 128 / 1e12, 1e-15);
  // 133 tiles: 128 x 128 tiles need a second wave (2 x 4.19 us); 256 x 128 tiles are 67 of twice
  // the work in one wave (the same); 128 x 256 tiles waste half of each (n = 128): 133 of twice
  // the work over 2 waves. So twice the time.
  const double past = GemmKernelTime({1, 133 * 128, 128, 128, false}, p).compute_s;
  EXPECT_NEAR(past / full, 2.0, 1e-12);
  // The batch count multiplies the tiles alike: b = 133 GEMMs of one tile = 2 waves.
  EXPECT_NEAR(GemmKernelTime({133, 128, 128, 128, false}, p).compute_s / full, 2.0, 1e-12);
  // k = 1024: the 67 tiles of 256 x 128 are fewer than the SMs, so they split k: 8 ways, 536
  // blocks of 128 steps in 5 waves: 5 x 2 x 256 x 128 x 128 against one wave of 128 x 128 x
  // 1024 tiles (2 x 128 x 128 x 1024): 1.25x (2 ways: 2 waves of 512 steps, 2x; 4 ways: 3 waves
  // of 256, 1.5x). The full wave itself cannot split (132 tiles fill the SMs).
  const double full_k = GemmKernelTime({1, 132 * 128, 128, 1024, false}, p).compute_s;
  const double past_k = GemmKernelTime({1, 133 * 128, 128, 1024, false}, p).compute_s;
  EXPECT_NEAR(past_k / full_k, 1.25, 1e-12);
}

TEST(GemmModel, FewTilesSplitTheirKLoopOverIdleSms) {
  const GemmParams p = Gpu132();
  // One 128 x 128 tile, k = 4096: split 16 ways (4096 / 16 = 256 >= the 128 minimum slice), 16
  // blocks in one wave, each 256 steps of k: 2 x 128 x 128 x 256 / 1e12 = 8.388608 us.
  EXPECT_NEAR(GemmKernelTime({1, 128, 128, 4096, false}, p).compute_s, 2.0 * 128 * 128 * 256 / 1e12,
              1e-15);
  // k = 1024: at most 8 slices of 128: 2 x 128 x 128 x 128 / 1e12.
  EXPECT_NEAR(GemmKernelTime({1, 128, 128, 1024, false}, p).compute_s, 2.0 * 128 * 128 * 128 / 1e12,
              1e-15);
}

TEST(GemmModel, KRampHalvesTheRateAtKHalf) {
  // One SM, one 128 x 128 tile (no split: the tile fills the only SM), peak 1e12, k_half 256: a
  // tile runs k + 256 steps, so it reaches k / (k + 256) of peak: 1/2 at k = 256, 3/4 at 768.
  GemmParams p;
  p.peak_flops_per_s = 1e12;
  p.compute_units = 1;
  p.k_half = 256;
  for (auto [k, fraction] : {std::pair{256, 0.5}, {768, 0.75}, {2304, 0.9}}) {
    const double flops = 2.0 * 128 * 128 * k;
    EXPECT_NEAR(flops / (GemmKernelTime({1, 128, 128, k, false}, p).compute_s * 1e12), fraction,
                1e-12)
        << "k=" << k;
  }
}

TEST(GemmModel, SkinnyGemmTurnsComputeBoundWhereTheRooflineSays) {
  // C[m, N] = A[m, N] B[N, N], N = 8192, BF16: FLOPs 2 m N^2; bytes 2 (m N + N^2) + 2 m N.
  // Compute-bound when 2 m N^2 / P >= (4 m N + 2 N^2) / B, i.e. m >= (N / B) / (N / P - 2 / B).
  // P = 1e15 FLOP/s, B = 3e12 B/s: m* = 2.7307e-9 / (8.192e-12 - 6.667e-13) = 362.86.
  // The MXU path with a 1-wide array pads nothing, so compute is exactly 2 m N^2 / P.
  GemmParams p;
  p.peak_flops_per_s = 1e15;
  p.hbm_bytes_per_s = 3e12;
  p.mxu_size = 1;
  const double n = 8192;
  const double m_star = (n / 3e12) / (n / 1e15 - 2 / 3e12);
  EXPECT_NEAR(m_star, 362.86, 0.01);
  const GemmTime below = GemmKernelTime({1, 362, 8192, 8192, false}, p);
  const GemmTime above = GemmKernelTime({1, 364, 8192, 8192, false}, p);
  EXPECT_GT(below.memory_s, below.compute_s);
  EXPECT_LT(above.memory_s, above.compute_s);
  // At m = 1 (a GEMV) the time is the weight's bytes over bandwidth: 2 N^2 / B + the rest.
  EXPECT_NEAR(GemmKernelTime({1, 1, 8192, 8192, false}, p).total_s(),
              (2 * n * n + 2 * n + 2 * n) / 3e12, 1e-15);
}

TEST(GemmModel, TpuPadsEveryDimensionToTheMxu) {
  // v6e's 256-wide MXU: 257 pads to 512 in each of m, n, k: 2 x 512^3 FLOPs of work.
  GemmParams p;
  p.peak_flops_per_s = 918e12;
  p.mxu_size = 256;
  EXPECT_NEAR(GemmKernelTime({1, 257, 257, 257, false}, p).compute_s,
              2.0 * 512 * 512 * 512 / 918e12, 1e-18);
  // Whole multiples pad nothing.
  EXPECT_NEAR(GemmKernelTime({1, 512, 256, 768, false}, p).compute_s,
              2.0 * 512 * 256 * 768 / 918e12, 1e-18);
}

TEST(GemmModel, Fp8UsesItsPeakAndOneByteOperands) {
  HardwareProfile hw;
  hw.peak_flops_per_s = 1e15;
  hw.fp8_peak_flops_per_s = 2e15;
  hw.hbm_bytes_per_s = 1e12;
  hw.memory_efficiency = 1;
  hw.gemm_mxu_size = 1;
  hw.op_overhead_s = 0;
  const GemmParams bf16 = GemmParamsOf(hw, false), fp8 = GemmParamsOf(hw, true);
  EXPECT_EQ(bf16.peak_flops_per_s, 1e15);
  EXPECT_EQ(fp8.peak_flops_per_s, 2e15);
  // m = n = k = 1024: operands 2 x 1024^2 elements of 1 byte, output 1024^2 of 2 bytes (BF16):
  // 4 MiB against BF16's 6 MiB.
  const double e = 1024.0 * 1024;
  EXPECT_NEAR(GemmKernelTime({1, 1024, 1024, 1024, true}, fp8).memory_s, 4 * e / 1e12, 1e-18);
  EXPECT_NEAR(GemmKernelTime({1, 1024, 1024, 1024, false}, bf16).memory_s, 6 * e / 1e12, 1e-18);
  // No FP8 peak (A100): FP8 GEMMs run at the BF16 peak.
  hw.fp8_peak_flops_per_s = 0;
  EXPECT_EQ(GemmParamsOf(hw, true).peak_flops_per_s, 1e15);
}

TEST(GemmModel, AchievedFractionCountsLaunchAndMemory) {
  HardwareProfile hw;
  hw.peak_flops_per_s = 1e12;
  hw.gemm_compute_units = 1;
  hw.gemm_peak_fraction = 0.8;
  hw.gemm_tile_k_half = 0;
  hw.gemm_overhead_s = 1e-6;
  // One tile, k = 128: 2 x 128^3 = 4.194304 MFLOP at 0.8e12 = 5.24288 us, + 1 us launch =
  // 6.24288 us; 4.194304e6 / (6.24288e-6 x 1e12) = 0.671854.
  EXPECT_NEAR(GemmAchievedFraction({1, 128, 128, 128, false}, hw), 0.671854, 1e-6);
  EXPECT_EQ(GemmAchievedFraction({1, 0, 128, 128, false}, hw), 0);
}

TEST(GemmModel, ComputeTimeMultipliesTheKernelRateByMatmulEfficiency) {
  // ComputeTimeS of a GEMM op: the kernel's compute term / matmul_efficiency (the step-level
  // loss), against the op's bytes, plus the GEMM launch overhead. One SM at 1e12, one tile,
  // k = 128, matmul_efficiency 0.5: 4.194304 us / 0.5 = 8.388608 us, + 2 us.
  HardwareProfile hw;
  hw.peak_flops_per_s = 1e12;
  hw.hbm_bytes_per_s = 1e12;
  hw.gemm_compute_units = 1;
  hw.gemm_overhead_s = 2e-6;
  hw.op_overhead_s = 7e-6;  // elementwise ops' overhead, not the GEMM's
  hw.matmul_efficiency = 0.5;
  ComputeWork w;
  w.matmul = true;
  w.m = w.n = w.k = 128;
  w.flops = 2.0 * 128 * 128 * 128;
  w.bytes = 3 * 128 * 128 * 2;
  EXPECT_NEAR(ComputeTimeS(w, hw), 8.388608e-6 + 2e-6, 1e-15);
  EXPECT_NEAR(MatmulEfficiency(w, hw), 0.5, 1e-12);
}

TEST(GemmModel, BuiltinProfilesCarryTheModel) {
  // SM counts (NVIDIA whitepapers) and MXU edges are facts of the chips.
  EXPECT_EQ(BuiltinHardwareProfile("a100-sxm")->gemm_compute_units, 108);
  EXPECT_EQ(BuiltinHardwareProfile("h100-sxm")->gemm_compute_units, 132);
  EXPECT_EQ(BuiltinHardwareProfile("b200")->gemm_compute_units, 148);
  EXPECT_EQ(BuiltinHardwareProfile("tpu-v5e")->gemm_mxu_size, 128);
  EXPECT_EQ(BuiltinHardwareProfile("tpu-v6e")->gemm_mxu_size, 256);
  EXPECT_EQ(BuiltinHardwareProfile("h100-sxm")->fp8_peak_flops_per_s, 1979e12);
  EXPECT_EQ(BuiltinHardwareProfile("a100-sxm")->fp8_peak_flops_per_s, 0);
}

TEST(GemmModel, HardwareFieldsAreChecked) {
  auto hw = BuiltinHardwareProfile("h100-sxm");
  ASSERT_TRUE(hw.ok());
  pb::Hardware h;
  h.set_gemm_peak_fraction(1.5);
  h.set_gemm_tile_k_half(-1);
  h.set_gemm_compute_units(int64_t{1} << 20);
  h.set_fp8_gemm_peak_fraction(std::nan(""));
  auto errors = ApplyHardwareFields(h, &*hw);
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].field, "gemm_compute_units");
  EXPECT_EQ(errors[1].field, "gemm_peak_fraction");
  EXPECT_EQ(errors[1].detail, "=1.5 must be in (0, 1]");
  EXPECT_EQ(errors[2].field, "gemm_tile_k_half");
  EXPECT_EQ(errors[3].field, "fp8_gemm_peak_fraction");
  EXPECT_EQ(hw->gemm_compute_units, 132);  // bad values leave the profile's
  pb::Hardware good;
  good.set_gemm_compute_units(100);
  good.set_gemm_peak_fraction(0.5);
  good.set_gemm_tile_k_half(64);
  good.set_gemm_overhead_s(1e-6);
  good.set_fp8_peak_flops_per_s(3e15);
  EXPECT_TRUE(ApplyHardwareFields(good, &*hw).empty());
  EXPECT_EQ(hw->gemm_compute_units, 100);
  EXPECT_EQ(hw->gemm_peak_fraction, 0.5);
  EXPECT_EQ(hw->gemm_tile_k_half, 64);
  EXPECT_EQ(hw->gemm_overhead_s, 1e-6);
  EXPECT_EQ(hw->fp8_peak_flops_per_s, 3e15);
}

TEST(GemmModel, ScenarioErrorsNameFileAndLine) {
  // The GEMM fields go through the loader's Hardware path: a bad one names file:line and field.
  auto sc = LoadScenarioFromText(R"(name: "t"
model {
  num_layers: 2
  d_model: 256
  num_heads: 8
  d_ff: 1024
  vocab_size: 1024
  seq_len: 128
}
cluster { topology: "tpu-v5e:4x4" }
sharding { mesh { data: 16 expert: 1 model: 1 } }
training { global_batch_tokens: 65536 }
hardware {
  gemm_peak_fraction: 2
}
)",
                                 "t.textproto", {});
  ASSERT_FALSE(sc.ok());
  EXPECT_NE(sc.status().message().find("t.textproto:14: hardware.gemm_peak_fraction=2 must be in "
                                       "(0, 1]"),
            std::string::npos)
      << sc.status().message();
}

}  // namespace
}  // namespace moesim
