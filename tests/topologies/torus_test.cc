// Tori: link counts, wraparound rules, hop counts, diameters, dimension-order routes, multi-slice
// DCN, and the error messages for bad names.
#include <gtest/gtest.h>

#include "tests/topologies/test_util.h"
#include "topologies/analysis.h"

namespace moesim {
namespace {

using testing::Build;
using testing::BuildError;

int64_t OneWayIci(const Topology& t) {
  return t.LinkCountsByKind()[static_cast<size_t>(LinkKind::kIci)];
}

TEST(Torus, FullV4CubeWrapsEveryDimension) {
  // 4x4x4 is one full cube: rings on all three dimensions. Each chip has a + neighbour on each
  // dimension: 64 x 3 = 192 full-duplex links = 384 one-way. Diameter 3 x floor(4/2) = 6.
  auto t = Build("tpu-v4:4x4x4");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->num_devices(), 64);
  EXPECT_EQ(t->num_vertices(), 64);
  EXPECT_EQ(OneWayIci(*t), 384);
  EXPECT_EQ(static_cast<int64_t>(t->links().size()), 384);
  EXPECT_EQ(DiameterHops(*t), 6);
  EXPECT_EQ(t->links()[0].bytes_per_s, 4.5e10);  // scaling-book: 45 GB/s one way per ICI link
  EXPECT_EQ(t->links()[0].latency_s, 1e-6);
}

TEST(Torus, PartialV4SliceHasNoWraparound) {
  // 4x4x2 is not made of full cubes: a mesh. x: 3 links x 4 (y) x 2 (z) = 24; y: 24;
  // z: 1 x 16 = 16; 64 full-duplex = 128 one-way. Diameter 3 + 3 + 1 = 7.
  auto t = Build("tpu-v4:4x4x2");
  ASSERT_TRUE(t);
  EXPECT_EQ(OneWayIci(*t), 128);
  EXPECT_EQ(DiameterHops(*t), 7);
  for (const auto& d : t->physical_dims()) EXPECT_FALSE(d.wraps) << d.name;
}

TEST(Torus, V5eWrapsOnlyAFull16Dimension) {
  // 8x16: x (8) is a line, y (16) a ring. x: 7 x 16 = 112; y: 16 x 8 = 128; 240 full-duplex =
  // 480 one-way. Diameter 7 + 8 = 15.
  auto t = Build("tpu-v5e:8x16");
  ASSERT_TRUE(t);
  EXPECT_EQ(OneWayIci(*t), 480);
  EXPECT_EQ(DiameterHops(*t), 15);
  ASSERT_EQ(t->physical_dims().size(), 2u);
  EXPECT_FALSE(t->physical_dims()[0].wraps);
  EXPECT_TRUE(t->physical_dims()[1].wraps);
}

TEST(Torus, FullV5ePodAndItsUnwrappedWhatIf) {
  // 16x16 with wraparound: 2 x 256 = 512 full-duplex, 1024 one-way, diameter 8 + 8 = 16.
  // wrap=none: 2 x 15 x 16 = 480 full-duplex, 960 one-way, diameter 15 + 15 = 30.
  auto t = Build("tpu-v5e:16x16");
  ASSERT_TRUE(t);
  EXPECT_EQ(OneWayIci(*t), 1024);
  EXPECT_EQ(DiameterHops(*t), 16);
  auto mesh = Build("tpu-v5e:16x16,wrap=none");
  ASSERT_TRUE(mesh);
  EXPECT_EQ(OneWayIci(*mesh), 960);
  EXPECT_EQ(DiameterHops(*mesh), 30);
}

TEST(Torus, V4PodDiameter) {
  // 16x16x16 full cubes wrap: 3 x 8 = 24 hops; 4096 x 3 x 2 = 24576 one-way links.
  auto t = Build("tpu-v4:16x16x16");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->num_devices(), 4096);
  EXPECT_EQ(OneWayIci(*t), 24576);
  EXPECT_EQ(DiameterHops(*t), 24);
}

TEST(Torus, GenericTorusWrapsDimensionsOfThreeOrMore) {
  // torus:3x5: both wrap. x: 3 x 5 = 15; y: 5 x 3 = 15; 60 one-way. Diameter 1 + 2 = 3.
  auto t = Build("torus:3x5");
  ASSERT_TRUE(t);
  EXPECT_EQ(OneWayIci(*t), 60);
  EXPECT_EQ(DiameterHops(*t), 3);
}

TEST(Torus, DimensionOrderShorterWayRound) {
  auto t = Build("tpu-v5e:16x16");
  ASSERT_TRUE(t);
  const Topology& topo = *t;
  // (0,0) -> (0,15): one hop backwards over the wraparound link.
  const auto& r1 = topo.Route(0, 15);
  ASSERT_EQ(r1.size(), 1u);
  EXPECT_EQ(topo.links()[r1[0]].dst, 15);
  // (0,0) -> (0,8): both ways are 8 hops; from an even coordinate a tie goes the positive way,
  // first hop to (0,1); from an odd one the negative way: (0,1) -> (0,9) first hops to (0,0).
  const auto& r2 = topo.Route(0, 8);
  ASSERT_EQ(r2.size(), 8u);
  EXPECT_EQ(topo.links()[r2[0]].dst, 1);
  const auto& r2b = topo.Route(1, 9);
  ASSERT_EQ(r2b.size(), 8u);
  EXPECT_EQ(topo.links()[r2b[0]].dst, 0);
  testing::ExpectWalk(topo, 1, 9, r2b);
  // (0,0) -> (3,2) = device 3*16+2 = 50: x first (to (1,0) = 16), then y; 3 + 2 = 5 hops.
  const auto& r3 = topo.Route(0, 50);
  ASSERT_EQ(r3.size(), 5u);
  EXPECT_EQ(topo.links()[r3[0]].dst, 16);
  EXPECT_EQ(topo.links()[r3[2]].dst, 48);
  EXPECT_EQ(topo.links()[r3[3]].dst, 49);
  testing::ExpectWalk(topo, 0, 50, r3);
  // (2,0) -> (14,0) = 32 -> 224: 12 forward or 4 back over the wrap; 4 hops, first to (1,0).
  const auto& r4 = topo.Route(32, 224);
  ASSERT_EQ(r4.size(), 4u);
  EXPECT_EQ(topo.links()[r4[0]].dst, 16);
  for (LinkId l : r4) EXPECT_EQ(topo.links()[l].kind, LinkKind::kIci);
}

// Every route of small tori (with, without and with partial wraparound) is a walk from a to b
// whose length equals the breadth-first distance in the graph: routes are minimal.
class TorusRoutesMinimal : public ::testing::TestWithParam<const char*> {};

TEST_P(TorusRoutesMinimal, AllPairs) {
  auto t = Build(GetParam());
  ASSERT_TRUE(t);
  const Topology& topo = *t;
  std::vector<LinkId> route;
  for (DeviceId a = 0; a < topo.num_devices(); ++a) {
    const std::vector<int64_t> dist = GraphHopDistances(topo, a);
    for (DeviceId b = 0; b < topo.num_devices(); ++b) {
      ASSERT_GE(dist[static_cast<size_t>(b)], 0) << "unreachable " << a << " -> " << b;
      if (a == b) continue;
      topo.ComputeRoute(a, b, &route);
      testing::ExpectWalk(topo, a, b, route);
      ASSERT_EQ(static_cast<int64_t>(route.size()), dist[static_cast<size_t>(b)])
          << a << " -> " << b;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, TorusRoutesMinimal,
                         ::testing::Values("tpu-v4:4x4x4", "tpu-v4:4x4x2", "tpu-v4:2x2x1",
                                           "tpu-v5e:8x16", "tpu-v5e:4x4", "tpu-v5p:4x4x8",
                                           "torus:3x5", "torus:5x4x3,wrap=101"));

TEST(Torus, EveryDeviceReachable) {
  // Finish() checks strong connectivity; here by BFS from device 0 of the largest pod.
  auto t = Build("tpu-v4:16x16x16");
  ASSERT_TRUE(t);
  const auto dist = GraphHopDistances(*t, 0);
  for (DeviceId d = 0; d < t->num_devices(); ++d) ASSERT_GE(dist[static_cast<size_t>(d)], 0);
  // BFS agrees with the diameter: the farthest chip from a corner is 8 + 8 + 8 = 24 away.
  EXPECT_EQ(*std::max_element(dist.begin(), dist.end()), 24);
}

TEST(Torus, MultiSliceJoinsSlicesThroughHostNics) {
  // 2 slices of 16x16 v5e. Hosts of 8 chips (2 x 4 block): 256 / 8 = 32 hosts per slice, 64 NIC
  // vertices and one DCN switch: 512 + 64 + 1 = 577 vertices. Host NIC = 8 chips x 25/8 GB/s =
  // 25 GB/s (2 x 100 Gb/s per host, hardware.md).
  auto t = Build("tpu-v5e:16x16*2");
  ASSERT_TRUE(t);
  const Topology& topo = *t;
  EXPECT_EQ(topo.num_devices(), 512);
  EXPECT_EQ(topo.num_vertices(), 577);
  const auto counts = topo.LinkCountsByKind();
  EXPECT_EQ(counts[static_cast<size_t>(LinkKind::kIci)], 2 * 1024);
  EXPECT_EQ(counts[static_cast<size_t>(LinkKind::kPcie)], 2 * 512);
  EXPECT_EQ(counts[static_cast<size_t>(LinkKind::kDcn)], 2 * 64);
  // Chip (0,0) of slice 0 -> chip (0,0) of slice 1 (device 256): PCIe, DCN, DCN, PCIe.
  const auto& r = topo.Route(0, 256);
  ASSERT_EQ(r.size(), 4u);
  testing::ExpectWalk(topo, 0, 256, r);
  EXPECT_EQ(topo.links()[r[0]].kind, LinkKind::kPcie);
  EXPECT_EQ(topo.links()[r[1]].kind, LinkKind::kDcn);
  EXPECT_EQ(topo.links()[r[1]].bytes_per_s, 25e9);
  EXPECT_EQ(topo.links()[r[3]].kind, LinkKind::kPcie);
  // Chips (0,3) and (1,0) share chip (0,0)'s host (x 0..1, y 0..3); (0,4) does not.
  const VertexId nic0 = topo.links()[r[0]].dst;
  EXPECT_EQ(topo.links()[topo.Route(3, 259)[0]].dst, nic0);
  EXPECT_EQ(topo.links()[topo.Route(16, 272)[0]].dst, nic0);
  EXPECT_NE(topo.links()[topo.Route(4, 260)[0]].dst, nic0);
  // Inside a slice routes stay on ICI: diameter 16 (not the 4 hops of a detour through DCN).
  EXPECT_EQ(topo.Route(0, 136).size(), 16u);  // (0,0) -> (8,8)
  EXPECT_EQ(DiameterHops(topo), 16);
  ASSERT_EQ(topo.physical_dims().size(), 3u);
  EXPECT_EQ(topo.physical_dims()[0].name, "slice");
  EXPECT_EQ(topo.physical_dims()[0].speed_class, 1);
}

TEST(Torus, V4MultiSliceHostsOfFourChips) {
  // v4 hosts are 4 chips (1x2x2 block): 64 / 4 = 16 hosts per 4x4x4 slice; NIC = 4 x 6.25 GB/s.
  auto t = Build("tpu-v4:4x4x4*2");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->num_vertices(), 128 + 32 + 1);
  const auto& r = t->Route(0, 64);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_DOUBLE_EQ(t->links()[r[1]].bytes_per_s, 2.5e10);
  // Chip (0,1,1) = 5 shares the host of chip 0; (0,0,2) = 2 does not.
  EXPECT_EQ(t->links()[t->Route(5, 69)[0]].dst, t->links()[r[0]].dst);
  EXPECT_NE(t->links()[t->Route(2, 66)[0]].dst, t->links()[r[0]].dst);
}

TEST(TorusErrors, Messages) {
  EXPECT_EQ(BuildError("tpu-v4:0x4x4"),
            "topology \"tpu-v4:0x4x4\": size \"0\" is not a positive "
            "integer");
  EXPECT_EQ(BuildError("tpu-v5e:8x16,wrap=11"),
            "topology \"tpu-v5e:8x16,wrap=11\": tpu-v5e has wraparound only on a full 16-chip "
            "dimension; dimension 0 has size 8");
  EXPECT_EQ(BuildError("tpu-v6e:16x8,wrap=all"),
            "topology \"tpu-v6e:16x8,wrap=all\": tpu-v6e has wraparound only on a full 16-chip "
            "dimension; dimension 1 has size 8");
  EXPECT_EQ(BuildError("tpu-v4:4x4x2,wrap=111"),
            "topology \"tpu-v4:4x4x2,wrap=111\": tpu-v4 has wraparound only on slices made of "
            "full 4x4x4 cubes (every dimension a multiple of 4), not on 4x4x2");
  EXPECT_EQ(BuildError("torus:4x2,wrap=11"),
            "topology \"torus:4x2,wrap=11\": wraparound needs at least 3 chips along a "
            "dimension; dimension 1 has size 2");
  EXPECT_EQ(BuildError("tpu-v5e:16x16,wrap=1"),
            "topology \"tpu-v5e:16x16,wrap=1\": wrap=\"1\" must be auto, none, all or one 0/1 "
            "per dimension (e.g. wrap=11)");
  EXPECT_EQ(BuildError("tpu-v5e:16x16,twist=1"),
            "topology \"tpu-v5e:16x16,twist=1\": unknown option \"twist\" (tpu-v5e accepts: "
            "chip, wrap)");
  EXPECT_EQ(
      BuildError("tpu-v9:4x4").rfind("topology \"tpu-v9:4x4\": unknown family \"tpu-v9\" (", 0),
      0u);
  EXPECT_EQ(BuildError("tpu-v5e:16x16x16"),
            "topology \"tpu-v5e:16x16x16\": tpu-v5e takes 2 dimensions, got 3");
  // Turning wraparound off where the system has it is a what-if, not an error.
  EXPECT_EQ(BuildError("tpu-v4:4x4x4,wrap=010"), "");
}

TEST(Torus, AllToAllOnARingLoadsBothDirectionsEqually) {
  // All-to-all over one 16-chip row (wraps): on each link direction, pairs 1..7 apart that go
  // that way cross it 1 + 2 + ... + 7 = 28 times, and the 8-apart pairs from the 8 even (+) or 8
  // odd (-) sources, 8 hops each, cross each link 8 x 8 / 16 = 4 times: 32 either way.
  auto t = Build("tpu-v5e:16x16");
  ASSERT_TRUE(t);
  std::vector<double> pairs(t->links().size(), 0);
  for (DeviceId a = 0; a < 16; ++a) {
    for (DeviceId b = 0; b < 16; ++b) {
      if (a == b) continue;
      for (LinkId l : t->Route(a, b)) pairs[static_cast<size_t>(l)] += 1;
    }
  }
  int ring_links = 0;
  for (size_t l = 0; l < pairs.size(); ++l) {
    const Link& link = t->links()[l];
    if (link.src < 16 && link.dst < 16 && link.kind == LinkKind::kIci) {
      ++ring_links;
      EXPECT_EQ(pairs[l], 32) << link.src << " -> " << link.dst;
    } else {
      EXPECT_EQ(pairs[l], 0);
    }
  }
  EXPECT_EQ(ring_links, 32);
}

}  // namespace
}  // namespace moesim
