// Bisection bandwidth computed on the graph (max-flow = min-cut between two halves of the
// devices, one direction) against vendor figures (../shared/data/hardware.md) and hand
// calculations. Every expected value below is worked out from link counts, not read from code.
#include <gtest/gtest.h>

#include "tests/topologies/test_util.h"
#include "topologies/analysis.h"

namespace moesim {
namespace {

using testing::Build;
using testing::BuildWithLinkRate;

TEST(Bisection, FullV5ePodMatchesVendor) {
  // Vendor (cloud.google.com/tpu/docs/v5e, hardware.md): 400 GB/s bidirectional ICI per chip over
  // 4 ports = 100 GB/s bidirectional per port = 50 GB/s per link per direction. Pod bisection
  // 1.6 TB/s.
  // Cut a 16x16 torus in two 8x16 halves: each of the 16 rows crossing the cut has two links
  // across it (the direct one between x=7 and x=8, and the wraparound between x=15 and x=0),
  // so 32 links; one direction 32 x 50 GB/s = 1.6 TB/s. The vendor figure is therefore ONE
  // direction (bidirectional would be 3.2 TB/s).
  auto t = BuildWithLinkRate("tpu-v5e:16x16", 50e9);
  ASSERT_TRUE(t);
  const double b = BisectionBytesPerS(*t);
  EXPECT_DOUBLE_EQ(b, 32 * 50e9);
  EXPECT_NEAR(b, 1.6e12, 0.05 * 1.6e12);
}

TEST(Bisection, FullV5ePodWithBuiltinProfile) {
  // The built-in profile takes the vendor's per-chip figure: 400 GB/s bidirectional over 4
  // ports = 50 GB/s per link per direction: 32 x 50 GB/s = 1.6 TB/s, the vendor's bisection.
  auto t = Build("tpu-v5e:16x16");
  ASSERT_TRUE(t);
  EXPECT_DOUBLE_EQ(BisectionBytesPerS(*t), 32 * 50e9);
}

TEST(Bisection, FullV6ePodMatchesVendor) {
  // Vendor: 800 GB/s bidirectional per chip over 4 ports -> 100 GB/s per link per direction;
  // bisection 3.2 TB/s = 32 links x 100 GB/s, one direction, as for v5e.
  auto t = BuildWithLinkRate("tpu-v6e:16x16", 100e9);
  ASSERT_TRUE(t);
  const double b = BisectionBytesPerS(*t);
  EXPECT_DOUBLE_EQ(b, 32 * 100e9);
  EXPECT_NEAR(b, 3.2e12, 0.05 * 3.2e12);
}

TEST(Bisection, FullV4PodMatchesVendor) {
  // 16x16x16 torus cut into two 8x16x16 halves: 16 x 16 = 256 lines of chips cross the cut, each
  // with two links across it (direct + wraparound) = 512 links; one direction at scaling-book's
  // 4.5e10 B/s: 512 x 45 GB/s = 23.04 TB/s. Vendor: 24 TB/s (= 512 x 46.9 GB/s, or the same
  // 23-24 TB/s counted as 256 links x 2 directions without the wraparound); 23.04 / 24 = 0.96,
  // within 5%.
  auto t = Build("tpu-v4:16x16x16");
  ASSERT_TRUE(t);
  const double b = BisectionBytesPerS(*t);
  EXPECT_DOUBLE_EQ(b, 512 * 4.5e10);
  EXPECT_NEAR(b, 24e12, 0.05 * 24e12);
}

TEST(Bisection, DgxH100ScalableUnitHandCalculation) {
  // dgx-h100:32, 1:1: halves are nodes 0-15 and 16-31 (128 GPUs each). Each GPU has one
  // 400 Gb/s NDR NIC = 50 GB/s per direction; NVLink stays inside a node, so nothing crosses
  // there.
  // Upper bound: cutting the 128 NIC links of one half = 128 x 50 GB/s = 6.4 TB/s.
  // Lower bound: pair GPU i of node n with GPU i of node n+16: same rail leaf, 128 link-disjoint
  // paths of 50 GB/s = 6.4 TB/s. So the bisection is 6.4 TB/s (one direction).
  auto t = Build("dgx-h100:32");
  ASSERT_TRUE(t);
  const double b = BisectionBytesPerS(*t);
  EXPECT_DOUBLE_EQ(b, 128 * 50e9);
  EXPECT_NEAR(b, 6.4e12, 0.05 * 6.4e12);
}

TEST(Bisection, OversubscriptionCutsTheSpineLayer) {
  // dgx-h100:64: nodes 0-31 sit on leaf 0 of each rail, nodes 32-63 on leaf 1, so the halves
  // talk only through the spines. 1:1: each leaf has 32 x 50 GB/s of uplink; 8 leaves per half
  // -> 12.8 TB/s, equal to the 256 NICs of a half (256 x 50 GB/s). 2:1: 16 x 50 GB/s uplink per
  // leaf -> 8 x 800 GB/s = 6.4 TB/s.
  auto full = Build("dgx-h100:64");
  auto half = Build("dgx-h100:64,oversubscription=2");
  ASSERT_TRUE(full && half);
  EXPECT_DOUBLE_EQ(BisectionBytesPerS(*full), 256 * 50e9);
  EXPECT_DOUBLE_EQ(BisectionBytesPerS(*half), 8 * 16 * 50e9);
}

TEST(Bisection, OneDgxNodeIsHalfTheVendorBidirectionalFigure) {
  // 4 GPUs on each side, each with 450 GB/s per direction to the NVSwitch: 4 x 450 = 1.8 TB/s
  // one direction; NVIDIA's "3.6 TB/s" node bisection counts both directions.
  auto t = Build("dgx-h100:1");
  ASSERT_TRUE(t);
  EXPECT_DOUBLE_EQ(BisectionBytesPerS(*t), 4 * 450e9);
}

TEST(Bisection, FatTreeHasFullBisection) {
  // fattree:128 (k=16, two levels): 64 hosts a side x 50 GB/s = 3.2 TB/s.
  // fattree:16,k=4,levels=3: 8 x 50 GB/s = 400 GB/s.
  auto a = Build("fattree:128");
  auto b = Build("fattree:16,k=4,levels=3");
  ASSERT_TRUE(a && b);
  EXPECT_DOUBLE_EQ(BisectionBytesPerS(*a), 64 * 50e9);
  EXPECT_DOUBLE_EQ(BisectionBytesPerS(*b), 8 * 50e9);
}

TEST(Bisection, MultiSliceIsBoundByDcn) {
  // tpu-v5e:16x16*4, halves = slices {0,1} and {2,3}: 2 slices x 32 hosts x 25 GB/s host NIC =
  // 1.6 TB/s, far below cutting every slice across ICI (4 x 32 x 45 GB/s = 5.76 TB/s).
  auto t = Build("tpu-v5e:16x16*4");
  ASSERT_TRUE(t);
  EXPECT_DOUBLE_EQ(BisectionBytesPerS(*t), 64 * 25e9);
}

TEST(Bisection, CutsAcrossTheLongestDimension) {
  // torus:4x8 (both wrap): cutting across the 8-long dimension crosses 4 rows x 2 = 8 links;
  // across the 4-long one 8 x 2 = 16. Minimum: 8 x 45 GB/s = 360 GB/s.
  auto t = Build("torus:4x8");
  ASSERT_TRUE(t);
  EXPECT_DOUBLE_EQ(BisectionBytesPerS(*t), 8 * 45e9);
}

TEST(Bisection, MaxFlowBetweenTwoChips) {
  // Two neighbouring chips of a 4x4 v5e slice (no wraparound): from chip 0 (corner, 2 links)
  // to chip 1 at most 2 x 50 GB/s leave chip 0.
  auto t = Build("tpu-v5e:4x4");
  ASSERT_TRUE(t);
  EXPECT_DOUBLE_EQ(MaxFlowBytesPerS(*t, {0}, {1}), 2 * 50e9);
  // Chip 5 (inside, 4 links) to chip 0 (corner, 2 links in): the corner limits it.
  EXPECT_DOUBLE_EQ(MaxFlowBytesPerS(*t, {5}, {0}), 2 * 50e9);
}

TEST(Bisection, RatesWhoseSumPassesInt64StayExact) {
  // 1,024 one-way links of 1e17 B/s sum to 1.0e20, past int64_t's 9.2e18: push-relabel works in
  // coarser units then instead of overflowing (undefined behaviour under UBSan). The cut
  // is the v5e pod's 32 links, one direction.
  auto t = BuildWithLinkRate("tpu-v5e:16x16", 1e17);
  ASSERT_TRUE(t);
  EXPECT_NEAR(BisectionBytesPerS(*t), 32 * 1e17, 32 * 1e17 * 1e-12);
}

}  // namespace
}  // namespace moesim
