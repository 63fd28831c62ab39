// The fits of calib/fit.h on synthetic benchmarks generated from known parameters, the model
// formulas against hand-worked numbers, and the refusals.
#include "calib/fit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <utility>

#include "costmodel/opgraph.h"
#include "proto/hardware_profiles.h"

namespace moesim::calib {
namespace {

using ::testing::HasSubstr;

HardwareProfile Base() {
  HardwareProfile hw;
  hw.chip = "test";
  hw.peak_flops_per_s = 100e9;
  hw.hbm_bytes_per_s = 50e9;
  hw.memory_efficiency = 1;
  hw.link_bytes_per_s = 1e9;
  hw.link_efficiency = 1;
  return hw;
}

// The parameters the synthetic bench is generated from.
// axpy (the streaming kernel, memory_efficiency) 0.62; copy faster, softmax bound by exp().
constexpr double kMemEff = 0.62, kCopyEff = 0.9, kSoftmaxEff = 0.011, kOverhead = 1.5e-6;
constexpr double kEmax = 0.35, kHm = 24, kHn = 48, kHk = 96;
constexpr double kAlpha = 3e-6, kLinkBw = 5e9;

HardwareProfile Truth() {
  HardwareProfile hw = Base();
  hw.memory_efficiency = kMemEff;
  hw.op_overhead_s = kOverhead;
  hw.gemm_max_efficiency = kEmax;
  hw.gemm_m_half = kHm;
  hw.gemm_n_half = kHn;
  hw.gemm_k_half = kHk;
  return hw;
}

BenchData Synthetic() {
  const HardwareProfile t = Truth();
  BenchData b;
  b.backend = "cpu";
  b.files = {"synthetic.json"};
  for (int64_t m : {32, 64, 128, 256, 512}) {
    for (int64_t n : {32, 64, 128, 256, 512}) {
      for (int64_t k : {32, 64, 128, 256, 512}) {
        b.gemm.push_back({m, n, k, GemmTimeS(m, n, k, t), "g"});
      }
    }
  }
  for (int64_t e : {4, 16}) {
    for (int64_t rows : {16, 64, 256}) {
      b.grouped_gemm.push_back(
          {e, rows, 128, 256, static_cast<double>(e) * GemmTimeS(rows, 256, 128, t), "gg"});
    }
  }
  for (const auto& [kern, eff] : {std::pair{"copy", kCopyEff}, std::pair{"axpy", kMemEff},
                                  std::pair{"softmax", kSoftmaxEff}}) {
    for (int64_t e = 1 << 12; e <= (1 << 22); e *= 4) {
      const double bytes = 8.0 * static_cast<double>(e);
      b.memory.push_back({kern, e, bytes, bytes / (t.hbm_bytes_per_s * eff) + kOverhead, "m"});
    }
  }
  const AlphaBeta ab{kAlpha, kLinkBw};
  for (const char* op : {"all_reduce", "all_to_all"}) {
    for (int64_t n : {1, 2, 4}) {
      for (double bytes = 1024; bytes <= (1 << 22); bytes *= 4) {
        b.collectives.push_back(
            {op, bytes, n, n == 1 ? 1e-7 : CollectiveTimeS(op, n, bytes, ab), "c"});
      }
    }
  }
  return b;
}

TEST(CollectiveTime, HandWorked) {
  // all_reduce on 4 ranks, 1 MB, alpha 1 us, 1 GB/s: 2*3 alpha + 2*3/4 * 1e6 / 1e9
  //   = 6e-6 + 1.5e-3.
  EXPECT_NEAR(CollectiveTimeS("all_reduce", 4, 1e6, {1e-6, 1e9}), 1.506e-3, 1e-12);
  // all_to_all on 4 ranks: alpha + 3/4 * 1e6 / 1e9 = 1e-6 + 0.75e-3.
  EXPECT_NEAR(CollectiveTimeS("all_to_all", 4, 1e6, {1e-6, 1e9}), 0.751e-3, 1e-12);
  EXPECT_EQ(CollectiveTimeS("all_reduce", 1, 1e6, {1e-6, 1e9}), 0);
}

TEST(GemmTime, HandWorked) {
  // m = n = k = 100 with every half-point 100: e = 0.5 x (1/2)^3 = 0.0625;
  // 2e6 FLOPs / (1e11 x 0.0625) = 3.2e-4 s, + 1e-6 overhead. Bytes 4 x 3e4 = 1.2e5 at 5e10
  // = 2.4e-6 s: FLOPs bound.
  HardwareProfile hw = Base();
  hw.op_overhead_s = 1e-6;
  hw.gemm_max_efficiency = 0.5;
  hw.gemm_m_half = hw.gemm_n_half = hw.gemm_k_half = 100;
  EXPECT_NEAR(GemmTimeS(100, 100, 100, hw), 3.21e-4, 1e-12);
}

TEST(ComputeTime, UnsetGemmModelKeepsTheTileModel) {
  // The tile model: 100 of a 128 tile; matmul_efficiency 0.5 -> e = 0.5 (100/128)^3.
  HardwareProfile hw = Base();
  hw.matmul_efficiency = 0.5;
  ComputeWork w;
  w.matmul = true;
  w.m = w.n = w.k = 100;
  w.flops = 2e6;
  const double e = 0.5 * std::pow(100.0 / 128.0, 3);
  EXPECT_DOUBLE_EQ(ComputeTimeS(w, hw), 2e6 / (100e9 * e));
}

TEST(Calibrate, RecoversKnownParametersWithin2Percent) {
  Expected<Calibration> c = Calibrate(Synthetic(), Base());
  ASSERT_TRUE(c.ok()) << c.status().message();
  const HardwareProfile& p = c->profile;
  EXPECT_NEAR(p.memory_efficiency, kMemEff, 0.02 * kMemEff);
  EXPECT_NEAR(p.MemoryEfficiency(MemoryKernel::kAxpy), kMemEff, 0.02 * kMemEff);
  EXPECT_NEAR(p.MemoryEfficiency(MemoryKernel::kCopy), kCopyEff, 0.02 * kCopyEff);
  EXPECT_NEAR(p.MemoryEfficiency(MemoryKernel::kSoftmax), kSoftmaxEff, 0.02 * kSoftmaxEff);
  // Kernels the bench did not measure fall back to memory_efficiency.
  EXPECT_EQ(p.kernel_memory_efficiency[static_cast<size_t>(MemoryKernel::kAdamw)], 0);
  EXPECT_EQ(p.MemoryEfficiency(MemoryKernel::kAdamw), p.memory_efficiency);
  EXPECT_NEAR(p.op_overhead_s, kOverhead, 0.02 * kOverhead);
  EXPECT_NEAR(p.gemm_max_efficiency, kEmax, 0.02 * kEmax);
  EXPECT_NEAR(p.gemm_m_half, kHm, 0.02 * kHm);
  EXPECT_NEAR(p.gemm_n_half, kHn, 0.02 * kHn);
  EXPECT_NEAR(p.gemm_k_half, kHk, 0.02 * kHk);
  EXPECT_NEAR(p.link_latency_s, kAlpha, 0.02 * kAlpha);
  EXPECT_NEAR(p.link_bytes_per_s, kLinkBw, 0.02 * kLinkBw);
  EXPECT_EQ(p.link_efficiency, 1);
  ASSERT_EQ(c->collective_fits.size(), 3u);  // all_reduce, all_to_all, link
  for (const auto& f : c->collective_fits) {
    EXPECT_EQ(f.group, "SHM");
    EXPECT_NEAR(f.fit.alpha_s, kAlpha, 0.02 * kAlpha) << f.op;
    EXPECT_NEAR(f.fit.bytes_per_s, kLinkBw, 0.02 * kLinkBw) << f.op;
    // ranks 2 and 4, 7 sizes (1-rank points skipped); the link fit takes both ops.
    EXPECT_EQ(f.points, f.op == "link" ? 28 : 14) << f.op;
  }
  for (const FitReport& r : c->reports) EXPECT_LT(r.RmsRelError(), 1e-3) << r.name;
}

TEST(Calibrate, RanksBeyondTheCoresAreAnotherGroupKind) {
  // On a 2-core host the 4-rank points time-share: generated with alpha 2 ms, 1 GB/s.
  BenchData b = Synthetic();
  const AlphaBeta shared{2e-3, 1e9};
  for (auto& p : b.collectives) {
    if (p.ranks == 4) p.time_s = CollectiveTimeS(p.op, 4, p.bytes, shared);
  }
  Expected<Calibration> c = Calibrate(b, Base(), /*host_cores=*/2);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_NEAR(c->profile.link_latency_s, kAlpha, 0.02 * kAlpha);  // from the 2-rank group
  EXPECT_NEAR(c->profile.link_bytes_per_s, kLinkBw, 0.02 * kLinkBw);
  ASSERT_EQ(c->collective_fits.size(), 6u);
  for (const auto& f : c->collective_fits) {
    const bool ts = f.group == "SHM-timeshared";
    EXPECT_TRUE(ts || f.group == "SHM") << f.group;
    EXPECT_NEAR(f.fit.alpha_s, ts ? 2e-3 : kAlpha, 0.02 * (ts ? 2e-3 : kAlpha)) << f.op;
    EXPECT_NEAR(f.fit.bytes_per_s, ts ? 1e9 : kLinkBw, 0.02 * (ts ? 1e9 : kLinkBw)) << f.op;
  }
}

TEST(Calibrate, RecoversWithinNoise) {
  // +-3% alternating noise: the fit averages it out to well within 2% on the GEMM model.
  BenchData b = Synthetic();
  for (size_t i = 0; i < b.gemm.size(); ++i) b.gemm[i].time_s *= i % 2 == 0 ? 1.03 : 0.97;
  Expected<Calibration> c = Calibrate(b, Base());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_NEAR(c->profile.gemm_max_efficiency, kEmax, 0.02 * kEmax);
}

TEST(Calibrate, RefusesTooFewGemmPoints) {
  BenchData b = Synthetic();
  b.gemm.resize(7);
  Expected<Calibration> c = Calibrate(b, Base());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "calibrate: gemm: 7 point(s), need at least 8 (4 parameters: gemm_max_efficiency "
            "and the half-points of m, n, k)");
}

TEST(Calibrate, RefusesTooFewMemoryPoints) {
  BenchData b = Synthetic();
  b.memory.resize(3);
  Expected<Calibration> c = Calibrate(b, Base());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("memory: 3 point(s), need at least 4"));
}

TEST(Calibrate, RefusesTooFewCollectivePoints) {
  BenchData b = Synthetic();
  std::vector<CollectivePoint> keep;
  for (const auto& p : b.collectives) {
    if (p.op == "all_reduce" || (p.ranks == 2 && p.bytes <= 4096)) keep.push_back(p);
  }
  b.collectives = keep;  // all_to_all: 2 points with more than one rank
  Expected<Calibration> c = Calibrate(b, Base());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("all_to_all/SHM: 2 point(s), need at least 3"));
}

TEST(Calibrate, RefusesOneGemmSizeAlongADimension) {
  BenchData b = Synthetic();
  for (auto& p : b.gemm) p.k = 64;
  Expected<Calibration> c = Calibrate(b, Base());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("every point has the same k"));
}

TEST(Calibrate, RefusesEfficiencyAboveOne) {
  // Bandwidth twice the base profile's for the copy: its efficiency would be 2 x 0.9.
  HardwareProfile base = Base();
  base.hbm_bytes_per_s = 50e9 / 2;
  Expected<Calibration> c = Calibrate(Synthetic(), base);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              HasSubstr("kernel copy: measured bandwidth is 1.8 x the base profile's"));
  EXPECT_THAT(c.status().message(), HasSubstr("an efficiency must be <= 1"));
}

TEST(Calibrate, RefusesAKernelWithOnePointOrUnknown) {
  BenchData b = Synthetic();
  b.memory.push_back({"adamw", 4096, 28.0 * 4096, 1e-5, "m"});
  Expected<Calibration> c = Calibrate(b, Base());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("memory: kernel adamw: 1 point(s), need at least 2"));
  b = Synthetic();
  b.memory.push_back({"gelu", 4096, 8.0 * 4096, 1e-5, "x.json: memory[21]"});
  c = Calibrate(b, Base());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("x.json: memory[21]: kernel \"gelu\" is not one"));
}

TEST(ComputeTime, ElementwiseOpsUseTheirKernelsEfficiency) {
  // 1 MB of softmax at 50 GB/s x 0.01 = 2 ms; with no softmax efficiency, memory_efficiency 0.5:
  // 40 us; a matmul bound by memory always uses memory_efficiency.
  HardwareProfile hw = Base();
  hw.memory_efficiency = 0.5;
  ComputeWork w;
  w.bytes = 1e6;
  w.kernel = MemoryKernel::kSoftmax;
  EXPECT_DOUBLE_EQ(ComputeTimeS(w, hw), 1e6 / (50e9 * 0.5));
  hw.kernel_memory_efficiency[static_cast<size_t>(MemoryKernel::kSoftmax)] = 0.01;
  EXPECT_DOUBLE_EQ(ComputeTimeS(w, hw), 1e6 / (50e9 * 0.01));
  w.kernel.reset();
  EXPECT_DOUBLE_EQ(ComputeTimeS(w, hw), 1e6 / (50e9 * 0.5));
}

TEST(Calibrate, WithoutMultiRankCollectivesKeepsTheBaseLinks) {
  BenchData b = Synthetic();
  std::vector<CollectivePoint> one;
  for (const auto& p : b.collectives) {
    if (p.ranks == 1) one.push_back(p);
  }
  b.collectives = one;
  Expected<Calibration> c = Calibrate(b, Base());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->profile.link_bytes_per_s, Base().link_bytes_per_s);
  EXPECT_TRUE(c->collective_fits.empty());
}

TEST(CpuProfile, FirstPrinciplesPeak) {
  // 2.1 GHz x 2 FMA pipes x 16 fp32 lanes x 2 FLOP; L1: two 64-byte loads and one store per
  // cycle, 2.1 GHz x 192 B = 403.2 GB/s.
  Expected<HardwareProfile> p = BuiltinHardwareProfile("cpu");
  ASSERT_TRUE(p.ok());
  EXPECT_DOUBLE_EQ(p->peak_flops_per_s, 134.4e9);
  EXPECT_DOUBLE_EQ(p->hbm_bytes_per_s, 403.2e9);
}

}  // namespace
}  // namespace moesim::calib
