// The CPU device's ops, each against an independent computation: naive loops for GEMM and the
// layout ops, hand-worked numbers for AdamW and cross-entropy, central differences in double
// precision for every backward op.
#include <gtest/gtest.h>

#include <cmath>

#include "real/kernels/cpu_device.h"
#include "tests/real/grad_check.h"

namespace moesim::real {
namespace {

using testing::Dot;
using testing::ExpectGradientMatches;
using testing::RandomVector;

// Naive row-major reference for C = alpha op(A) op(B) + beta C.
std::vector<double> NaiveGemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                              const std::vector<double>& a, int64_t lda,
                              const std::vector<double>& b, int64_t ldb, double beta,
                              std::vector<double> c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double av =
            ta ? a[static_cast<size_t>(p * lda + i)] : a[static_cast<size_t>(i * lda + p)];
        const double bv =
            tb ? b[static_cast<size_t>(j * ldb + p)] : b[static_cast<size_t>(p * ldb + j)];
        s += av * bv;
      }
      double& cv = c[static_cast<size_t>(i * ldc + j)];
      cv = alpha * s + beta * cv;
    }
  }
  return c;
}

TEST(CpuOps, GemmAllTransposesWithStridesMatchNaiveLoops) {
  CpuDevice<double> dev;
  const int64_t m = 5, n = 7, k = 3;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const int64_t lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 3;
      std::vector<double> a = RandomVector((ta ? k : m) * lda, 1);
      std::vector<double> b = RandomVector((tb ? n : k) * ldb, 2);
      std::vector<double> c = RandomVector(m * ldc, 3);
      const std::vector<double> want = NaiveGemm(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 2.0, c, ldc);
      dev.Gemm(ta, tb, m, n, k, 0.5, a.data(), lda, b.data(), ldb, 2.0, c.data(), ldc);
      for (size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(c[i], want[i], 1e-12) << ta << tb << i;
    }
  }
}

TEST(CpuOps, GemmBetaZeroIgnoresNaNInOutput) {
  CpuDevice<float> dev;
  std::vector<float> a = {1, 2}, b = {3, 4}, c = {std::nanf("")};
  dev.Gemm(false, false, 1, 1, 2, 1.0f, a.data(), 2, b.data(), 1, 0.0f, c.data(), 1);
  EXPECT_EQ(c[0], 11.0f);  // 1*3 + 2*4
}

TEST(CpuOps, StridedBatchedGemmIsIndependentGemms) {
  CpuDevice<double> dev;
  const int64_t m = 3, n = 2, k = 4, batch = 3;
  std::vector<double> a = RandomVector(batch * m * k, 4), b = RandomVector(batch * k * n, 5);
  std::vector<double> c(static_cast<size_t>(batch * m * n), 0.0);
  dev.GemmStridedBatched(false, false, m, n, k, 1.0, a.data(), k, m * k, b.data(), n, k * n, 0.0,
                         c.data(), n, m * n, batch);
  for (int64_t i = 0; i < batch; ++i) {
    std::vector<double> ai(a.begin() + i * m * k, a.begin() + (i + 1) * m * k);
    std::vector<double> bi(b.begin() + i * k * n, b.begin() + (i + 1) * k * n);
    const std::vector<double> want =
        NaiveGemm(false, false, m, n, k, 1.0, ai, k, bi, n, 0.0, std::vector<double>(6, 0.0), n);
    for (int64_t j = 0; j < m * n; ++j)
      EXPECT_NEAR(c[static_cast<size_t>(i * m * n + j)], want[static_cast<size_t>(j)], 1e-12);
  }
}

TEST(CpuOps, Permute0213SwapsTheMiddleDims) {
  CpuDevice<double> dev;
  std::vector<double> in(2 * 3 * 4 * 5), out(in.size());
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<double>(i);
  dev.Permute0213(in.data(), out.data(), 2, 3, 4, 5);
  // out[a][c][b][d] = in[a][b][c][d]: element (1, 2, 3, 4) of in lands at (1, 3, 2, 4).
  EXPECT_EQ(out[((1 * 4 + 3) * 3 + 2) * 5 + 4], in[((1 * 3 + 2) * 4 + 3) * 5 + 4]);
}

TEST(CpuOps, RmsNormForwardByHand) {
  CpuDevice<double> dev;
  // x = (3, 4): mean square 12.5; rstd = 1/sqrt(12.5); gain (1, 2).
  std::vector<double> x = {3, 4}, g = {1, 2}, y(2), rstd(1);
  dev.RmsNormForward(x.data(), g.data(), y.data(), rstd.data(), 1, 2, 0.0);
  EXPECT_NEAR(rstd[0], 1 / std::sqrt(12.5), 1e-15);
  EXPECT_NEAR(y[0], 3 / std::sqrt(12.5), 1e-15);
  EXPECT_NEAR(y[1], 8 / std::sqrt(12.5), 1e-15);
}

TEST(CpuOps, RmsNormBackwardMatchesFiniteDifferences) {
  CpuDevice<double> dev;
  const int64_t rows = 3, cols = 6;
  std::vector<double> x = RandomVector(rows * cols, 10), g = RandomVector(cols, 11),
                      probe = RandomVector(rows * cols, 12);
  auto f = [&]() {
    std::vector<double> y(x.size()), rstd(rows);
    dev.RmsNormForward(x.data(), g.data(), y.data(), rstd.data(), rows, cols, 1e-5);
    return Dot(y, probe);
  };
  std::vector<double> y(x.size()), rstd(rows), dx(x.size(), 0.0), dg(cols, 0.0);
  dev.RmsNormForward(x.data(), g.data(), y.data(), rstd.data(), rows, cols, 1e-5);
  dev.RmsNormBackward(x.data(), g.data(), rstd.data(), probe.data(), dx.data(), dg.data(), rows,
                      cols);
  ExpectGradientMatches("rmsnorm dx", &x, dx, f);
  ExpectGradientMatches("rmsnorm dgain", &g, dg, f);
}

TEST(CpuOps, RopeRotatesPairsByPositionTimesFrequency) {
  CpuDevice<double> dev;
  // One head of dim 4, seq 3; row 2 is position 2. Pair 0 turns by 2 rad, pair 1 by
  // 2 * 100^(-2/4) = 0.2 rad (theta = 100).
  std::vector<double> x(3 * 4, 0.0);
  x[8] = 1.0;   // row 2, pair 0 = (1, 0)
  x[10] = 1.0;  // row 2, pair 1 = (1, 0)
  dev.Rope(x.data(), 3, 1, 4, 3, 100.0, false);
  EXPECT_NEAR(x[8], std::cos(2.0), 1e-14);
  EXPECT_NEAR(x[9], std::sin(2.0), 1e-14);
  EXPECT_NEAR(x[10], std::cos(0.2), 1e-14);
  EXPECT_NEAR(x[11], std::sin(0.2), 1e-14);
}

TEST(CpuOps, RopeInverseIsTheBackward) {
  CpuDevice<double> dev;
  const int64_t rows = 6, heads = 2, dim = 4;
  std::vector<double> x = RandomVector(rows * heads * dim, 20),
                      probe = RandomVector(rows * heads * dim, 21);
  auto f = [&]() {
    std::vector<double> y = x;
    dev.Rope(y.data(), rows, heads, dim, 3, 10000.0, false);
    return Dot(y, probe);
  };
  std::vector<double> dx = probe;
  dev.Rope(dx.data(), rows, heads, dim, 3, 10000.0, true);
  ExpectGradientMatches("rope", &x, dx, f);
}

TEST(CpuOps, CausalSoftmaxMasksTheFuture) {
  CpuDevice<double> dev;
  // 2 x 2 scores; row 0 (position 0) sees only column 0; row 1 sees both: softmax(0, ln 3).
  std::vector<double> s = {5, 7, 0, std::log(3.0)};
  dev.Softmax(s.data(), 2, 2, true);
  EXPECT_DOUBLE_EQ(s[0], 1.0);
  EXPECT_DOUBLE_EQ(s[1], 0.0);
  EXPECT_NEAR(s[2], 0.25, 1e-15);
  EXPECT_NEAR(s[3], 0.75, 1e-15);
}

TEST(CpuOps, SoftmaxBackwardMatchesFiniteDifferences) {
  CpuDevice<double> dev;
  for (bool causal : {false, true}) {
    const int64_t rows = 4, cols = 4;
    std::vector<double> x = RandomVector(rows * cols, 30), probe = RandomVector(rows * cols, 31);
    auto f = [&]() {
      std::vector<double> p = x;
      dev.Softmax(p.data(), rows, cols, causal);
      return Dot(p, probe);
    };
    std::vector<double> p = x, dx(x.size());
    dev.Softmax(p.data(), rows, cols, causal);
    dev.SoftmaxBackward(p.data(), probe.data(), dx.data(), rows, cols);
    ExpectGradientMatches(causal ? "causal softmax" : "softmax", &x, dx, f);
  }
}

TEST(CpuOps, SwiGluForwardAndBackward) {
  CpuDevice<double> dev;
  // silu(1) * 2 = 2 / (1 + e^-1).
  std::vector<double> a = {1.0}, b = {2.0}, o(1);
  dev.SwiGluForward(a.data(), b.data(), o.data(), 1);
  EXPECT_NEAR(o[0], 2.0 / (1.0 + std::exp(-1.0)), 1e-15);
  const int64_t n = 10;
  std::vector<double> h1 = RandomVector(n, 40, 2.0), h3 = RandomVector(n, 41),
                      probe = RandomVector(n, 42);
  auto f = [&]() {
    std::vector<double> out(n);
    dev.SwiGluForward(h1.data(), h3.data(), out.data(), n);
    return Dot(out, probe);
  };
  std::vector<double> dh1(n), dh3(n);
  dev.SwiGluBackward(h1.data(), h3.data(), probe.data(), dh1.data(), dh3.data(), n);
  ExpectGradientMatches("swiglu dh1", &h1, dh1, f);
  ExpectGradientMatches("swiglu dh3", &h3, dh3, f);
}

TEST(CpuOps, CrossEntropyByHandAndGradient) {
  CpuDevice<double> dev;
  // logits (0, ln 3), target 1: p = (1/4, 3/4), loss = ln(4/3); grad = (1/4, -1/4) x scale.
  std::vector<double> l = {0, std::log(3.0)}, loss(1), dl(2);
  std::vector<int32_t> t = {1};
  dev.CrossEntropy(l.data(), t.data(), loss.data(), dl.data(), 1, 2, 2.0);
  EXPECT_NEAR(loss[0], std::log(4.0 / 3.0), 1e-15);
  EXPECT_NEAR(dl[0], 0.5, 1e-15);
  EXPECT_NEAR(dl[1], -0.5, 1e-15);
  // Gradient of the mean loss over rows, in place (dlogits aliasing logits).
  const int64_t rows = 3, cols = 5;
  std::vector<double> x = RandomVector(rows * cols, 50);
  std::vector<int32_t> tg = {4, 0, 2};
  auto f = [&]() {
    std::vector<double> ls(rows), d(x.size());
    dev.CrossEntropy(x.data(), tg.data(), ls.data(), d.data(), rows, cols, 1.0);
    return (ls[0] + ls[1] + ls[2]) / 3.0;
  };
  std::vector<double> g = x, ls(rows);
  dev.CrossEntropy(g.data(), tg.data(), ls.data(), g.data(), rows, cols, 1.0 / 3.0);
  ExpectGradientMatches("cross-entropy", &x, g, f);
}

TEST(CpuOps, GatherCombineDotAndScatter) {
  CpuDevice<double> dev;
  // src rows: r0 = (1, 2), r1 = (3, 4), r2 = (5, 6).
  std::vector<double> src = {1, 2, 3, 4, 5, 6};
  std::vector<int32_t> idx = {2, -1, 0};
  std::vector<double> scale = {2, 9, 0.5}, out(6);
  dev.GatherRows(src.data(), idx.data(), scale.data(), out.data(), 3, 2);
  EXPECT_EQ(out, (std::vector<double>{10, 12, 0, 0, 0.5, 1}));
  // Two tokens, k = 2: token 0 = 1 * r1 + 0.5 * r2; token 1 = 2 * r0 (second choice dropped).
  std::vector<int32_t> pos = {1, 2, 0, -1};
  std::vector<double> w = {1, 0.5, 2, 7}, comb(4, 100.0);
  dev.CombineRows(src.data(), pos.data(), w.data(), comb.data(), 2, 2, 2, false);
  EXPECT_EQ(comb, (std::vector<double>{5.5, 7, 2, 4}));
  std::vector<double> dots(3);
  std::vector<int32_t> didx = {0, 2, 1};
  dev.GatherDot(src.data(), didx.data(), src.data(), dots.data(), 3, 2);
  // (1,2).(1,2) = 5; (5,6).(3,4) = 39; (3,4).(5,6) = 39.
  EXPECT_EQ(dots, (std::vector<double>{5, 39, 39}));
  // Table rows 0 and 3 receive src rows {2} and {0, 1}.
  std::vector<int32_t> ids = {0, 3}, offsets = {0, 1, 3}, p = {2, 0, 1};
  std::vector<double> table(8, 1.0);
  dev.ScatterAddRows(src.data(), ids.data(), offsets.data(), p.data(), 2, table.data(), 2);
  EXPECT_EQ(table, (std::vector<double>{6, 7, 1, 1, 1, 1, 5, 7}));
}

TEST(CpuOps, AdamWFirstStepByHand) {
  CpuDevice<double> dev;
  // Step 1: m = 0.1 g, v = 0.001 g^2 (b1 0.9, b2 0.999); bias-corrected m/v = g, g^2, so the
  // update is lr (g / (|g| + eps) + wd p) = 0.1 (1 + 0.5 * 2) for g = 4 (scaled from 8), p = 2.
  std::vector<double> p = {2.0}, g = {8.0}, m = {0}, v = {0};
  dev.AdamW(p.data(), g.data(), m.data(), v.data(), 1, 0.1, 0.9, 0.999, 0.0, 0.5, 0.1, 0.001, 0.5);
  EXPECT_NEAR(m[0], 0.4, 1e-15);
  EXPECT_NEAR(v[0], 0.016, 1e-15);
  EXPECT_NEAR(p[0], 2.0 - 0.1 * (1.0 + 1.0), 1e-14);
}

}  // namespace
}  // namespace moesim::real
