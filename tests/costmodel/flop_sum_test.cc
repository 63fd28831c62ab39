// FlopSum: a total that does not depend on the order of its additions, and is exact where a sum
// of doubles is not.
#include "costmodel/flop_sum.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace moesim {
namespace {

TEST(FlopSum, LargeTotalsKeepTheSmallAddends) {
  // 2^60 + 1 + 1 + ... (1,000 ones): a double sum drops every 1 (the spacing of doubles at 2^60
  // is 256); the exact total is 2^60 + 1000, which rounds to the double 2^60 + 1024 (the nearest
  // multiple of 256).
  FlopSum s;
  double naive = 0x1p60;
  s.Add(0x1p60);
  for (int i = 0; i < 1000; ++i) {
    s.Add(1);
    naive += 1;
  }
  EXPECT_EQ(naive, 0x1p60);
  EXPECT_EQ(s.Value(), 0x1p60 + 1024);
}

TEST(FlopSum, AnyOrderGivesTheSameBits) {
  // 100,000 GEMM-sized FLOP counts (2 m n k with shapes up to 16,384): summed forward, backward,
  // shuffled, and in unit sums that are added up: the same double each time. The doubles' own
  // sums in those orders differ.
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int64_t> dim(1, 16384);
  std::vector<double> flops;
  for (int i = 0; i < 100000; ++i) {
    flops.push_back(2.0 * static_cast<double>(dim(rng)) * static_cast<double>(dim(rng)) *
                    static_cast<double>(dim(rng)) / 3.0);  // a third: not an integer
  }
  FlopSum forward, backward, shuffled, by_units;
  double naive_forward = 0, naive_backward = 0;
  for (double f : flops) {
    forward.Add(f);
    naive_forward += f;
  }
  for (auto it = flops.rbegin(); it != flops.rend(); ++it) {
    backward.Add(*it);
    naive_backward += *it;
  }
  std::vector<double> mixed = flops;
  std::shuffle(mixed.begin(), mixed.end(), rng);
  for (double f : mixed) shuffled.Add(f);
  for (size_t u = 0; u < flops.size(); u += 37) {
    FlopSum unit;
    for (size_t i = u; i < std::min(flops.size(), u + 37); ++i) unit.Add(flops[i]);
    by_units.Add(unit);
  }
  EXPECT_NE(naive_forward, naive_backward);
  EXPECT_EQ(forward.Value(), backward.Value());
  EXPECT_EQ(forward.Value(), shuffled.Value());
  EXPECT_EQ(forward.Value(), by_units.Value());
  // And it is the sum: within the double sums' own rounding of it.
  EXPECT_NEAR(forward.Value(), naive_forward, 1e-12 * naive_forward);
}

}  // namespace
}  // namespace moesim
