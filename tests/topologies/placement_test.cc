// Placement of mesh axes on devices, groups, per-axis ring figures, and the error messages.
#include "topologies/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "tests/topologies/test_util.h"

namespace moesim {
namespace {

using testing::Build;

MeshPlacement Place(const Topology& topo, const std::vector<std::string>& names,
                    const std::vector<int64_t>& sizes) {
  auto p = PlaceMesh(topo, names, sizes);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? *p : MeshPlacement{};
}

void ExpectPermutation(const MeshPlacement& p, int64_t n) {
  ASSERT_EQ(static_cast<int64_t>(p.device_of.size()), n);
  std::vector<DeviceId> sorted = p.device_of;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i);
}

TEST(MeshPlacementGroups, RowMajorByHand) {
  // Mesh 2 x 3, device_of = 10..15 row-major: (0,0)=10 (0,1)=11 (0,2)=12 (1,0)=13 ...
  MeshPlacement p;
  p.axis_names = {"a", "b"};
  p.axis_sizes = {2, 3};
  p.device_of = {10, 11, 12, 13, 14, 15};
  EXPECT_EQ(p.Groups(0), (std::vector<std::vector<DeviceId>>{{10, 13}, {11, 14}, {12, 15}}));
  EXPECT_EQ(p.Groups(1), (std::vector<std::vector<DeviceId>>{{10, 11, 12}, {13, 14, 15}}));
}

TEST(Placement, InnermostSize8AxisInsideOneDgxNode) {
  auto t = Build("dgx-h100:4");
  ASSERT_TRUE(t);
  const MeshPlacement p = Place(*t, {"data", "expert", "model"}, {2, 2, 8});
  ExpectPermutation(p, 32);
  const auto groups = p.Groups(2);
  ASSERT_EQ(groups.size(), 4u);
  for (const auto& g : groups) {
    ASSERT_EQ(g.size(), 8u);
    std::set<DeviceId> members(g.begin(), g.end());
    EXPECT_EQ(members.size(), 8u);
    for (DeviceId d : g) EXPECT_EQ(d / 8, g[0] / 8) << "model group leaves node " << g[0] / 8;
  }
  // Ring figures: each model ring step is GPU -> NVSwitch -> GPU, one flow per link: 450 GB/s,
  // 2 hops. Expert (size 2, two nodes, same GPU index): NIC -> leaf -> NIC, one flow per link
  // each way: 50 GB/s, 2 hops.
  const auto rings = AxisRings(*t, p);
  ASSERT_EQ(rings.size(), 3u);
  EXPECT_EQ(rings[2].name, "model");
  EXPECT_DOUBLE_EQ(rings[2].ring_bytes_per_s, 450e9);
  EXPECT_EQ(rings[2].max_hops, 2);
  EXPECT_DOUBLE_EQ(rings[1].ring_bytes_per_s, 50e9);
  EXPECT_EQ(rings[1].max_hops, 2);
}

TEST(Placement, AxisAcrossTwoNodesSnakesOntoOneRail) {
  // model = 16 spans GPUs 0..7 of node 0 then node 1 in reverse, so the two cross-node steps
  // join GPU 7 to GPU 7 and GPU 0 to GPU 0: same rail, 2 hops, never through a spine.
  auto t = Build("dgx-h100:4");
  ASSERT_TRUE(t);
  const MeshPlacement p = Place(*t, {"data", "model"}, {2, 16});
  ExpectPermutation(p, 32);
  const auto g = p.Groups(1)[0];
  EXPECT_EQ(g, (std::vector<DeviceId>{0, 1, 2, 3, 4, 5, 6, 7, 15, 14, 13, 12, 11, 10, 9, 8}));
  const auto rings = AxisRings(*t, p);
  EXPECT_EQ(rings[1].max_hops, 2);
  EXPECT_DOUBLE_EQ(rings[1].ring_bytes_per_s, 50e9);  // the cross-node steps: one NIC each
}

TEST(Placement, Size16AxisOnOneRingOfAV5eTorus) {
  auto t = Build("tpu-v5e:16x16");
  ASSERT_TRUE(t);
  const MeshPlacement p = Place(*t, {"data", "model"}, {16, 16});
  ExpectPermutation(p, 256);
  // Each model group is one row of the torus (fixed x, y = 0..15 in order): a ring closed by the
  // wraparound link, so every step, 15 -> 0 included, is one hop.
  for (const auto& g : p.Groups(1)) {
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(g[static_cast<size_t>(j)], g[0] + j);
      EXPECT_EQ(t->Route(g[static_cast<size_t>(j)], g[static_cast<size_t>((j + 1) % 16)]).size(),
                1u);
    }
    EXPECT_EQ(g[0] % 16, 0);
  }
  const auto rings = AxisRings(*t, p);
  EXPECT_EQ(rings[1].max_hops, 1);
  EXPECT_DOUBLE_EQ(rings[1].ring_bytes_per_s, 50e9);
  EXPECT_EQ(rings[0].max_hops, 1);  // data: the columns, also rings
}

TEST(Placement, AxisSpanningBothV5eDimensionsIsASnake) {
  // One axis of 256: rows in alternating directions; every step one hop, and the last chip
  // (15, 0) returns to (0, 0) over the x wraparound.
  auto t = Build("tpu-v5e:16x16");
  ASSERT_TRUE(t);
  const MeshPlacement p = Place(*t, {"expert"}, {256});
  const auto rings = AxisRings(*t, p);
  EXPECT_EQ(rings[0].max_hops, 1);
  EXPECT_DOUBLE_EQ(rings[0].ring_bytes_per_s, 50e9);
}

TEST(Placement, AppleDataExpertOnV5eStridedDataRing) {
  // data,expert,model = 4,64,1: expert takes y (16) and the inner 4 of x; data the outer factor
  // of x, i.e. x in {a, a+4, a+8, a+12}. A data ring steps 4 hops forward (12 back), and the 4
  // data rings of a column (a = 0..3) together use every forward x link of that column 4 times:
  // 50 / 4 = 12.5 GB/s each. Expert: a snake through a 4x16 block, one flow per link, closing
  // from x = 3 back to x = 0 in 3 hops.
  auto t = Build("tpu-v5e:16x16");
  ASSERT_TRUE(t);
  const MeshPlacement p = Place(*t, {"data", "expert", "model"}, {4, 64, 1});
  ExpectPermutation(p, 256);
  const auto rings = AxisRings(*t, p);
  EXPECT_DOUBLE_EQ(rings[0].ring_bytes_per_s, 50e9 / 4);
  EXPECT_EQ(rings[0].max_hops, 4);
  EXPECT_DOUBLE_EQ(rings[1].ring_bytes_per_s, 50e9);
  EXPECT_EQ(rings[1].max_hops, 3);
  EXPECT_EQ(rings[2].ring_bytes_per_s, 0);  // size 1: no communication
  EXPECT_EQ(rings[2].max_hops, 0);
}

TEST(Placement, PrefersWholeDimensions) {
  // v5e 8x16 with model = 8 innermost: the 8-chip x dimension fits it whole (taking 8 of the
  // 16-chip y ring would split y). Model groups: fixed y, x = 0..7 -> devices y, y+16, ...
  auto t = Build("tpu-v5e:8x16");
  ASSERT_TRUE(t);
  const MeshPlacement p = Place(*t, {"data", "model"}, {16, 8});
  for (const auto& g : p.Groups(1)) {
    for (int j = 0; j < 8; ++j) EXPECT_EQ(g[static_cast<size_t>(j)], g[0] + 16 * j);
  }
  EXPECT_EQ(p.axis_spans[1], "x(8)");
  EXPECT_EQ(p.axis_spans[0], "y(16)");
}

TEST(Placement, AxisTakesFactorsOfSeveralDimensions) {
  // torus:6x6, mesh a,b = 4,9: b (innermost) takes 3 of y and 3 of x, a block of 3x3, laid as a
  // snake: (0,0) (0,1) (0,2) (1,2) (1,1) (1,0) (2,0) (2,1) (2,2); a takes the remaining factor 2
  // of each dimension (stride 3).
  auto t = Build("torus:6x6");
  ASSERT_TRUE(t);
  const MeshPlacement p = Place(*t, {"a", "b"}, {4, 9});
  ExpectPermutation(p, 36);
  EXPECT_EQ(p.Groups(1)[0], (std::vector<DeviceId>{0, 1, 2, 8, 7, 6, 12, 13, 14}));
  EXPECT_EQ(p.Groups(0)[0], (std::vector<DeviceId>{0, 3, 21, 18}));  // (0,0) (0,3) (3,3) (3,0)
  EXPECT_EQ(p.axis_spans[1], "x(3 of 6) y(3 of 6)");
}

TEST(Placement, DataAcrossSlices) {
  // tpu-v5e:16x16*4 with data innermost: data still takes the 4 slices (DCN); each data group is
  // one chip position in every slice, in slice order. Expert takes the 256 chips of a slice.
  auto t = Build("tpu-v5e:16x16*4");
  ASSERT_TRUE(t);
  const MeshPlacement p = Place(*t, {"expert", "data"}, {256, 4});
  ExpectPermutation(p, 1024);
  for (const auto& g : p.Groups(1)) {
    for (int s = 0; s < 4; ++s) EXPECT_EQ(g[static_cast<size_t>(s)], g[0] + 256 * s);
  }
  for (const auto& g : p.Groups(0)) {
    for (DeviceId d : g) EXPECT_EQ(d / 256, g[0] / 256);
  }
  // Data ring over DCN: each step chip -> host NIC -> DCN -> host NIC -> chip (4 hops); the 8
  // chips of a host share its 25 GB/s NIC: 25 / 8 = 3.125 GB/s per ring flow.
  const auto rings = AxisRings(*t, p);
  EXPECT_EQ(rings[1].max_hops, 4);
  EXPECT_DOUBLE_EQ(rings[1].ring_bytes_per_s, 25e9 / 8);
  EXPECT_EQ(rings[0].max_hops, 1);
}

TEST(Placement, V4PodAxesOnePerDimension) {
  auto t = Build("tpu-v4:16x16x16");
  ASSERT_TRUE(t);
  const MeshPlacement p = Place(*t, {"data", "expert", "model"}, {16, 16, 16});
  EXPECT_EQ(p.axis_spans, (std::vector<std::string>{"x(16)", "y(16)", "z(16)"}));
  for (const auto& r : AxisRings(*t, p)) {
    EXPECT_EQ(r.max_hops, 1) << r.name;
    EXPECT_DOUBLE_EQ(r.ring_bytes_per_s, 45e9) << r.name;
  }
}

TEST(Placement, ExplicitDeviceOrder) {
  auto t = Build("tpu-v5e:2x2");
  ASSERT_TRUE(t);
  auto p = PlaceMeshExplicit(*t, {"data", "model"}, {2, 2}, {3, 2, 1, 0});
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->Groups(1), (std::vector<std::vector<DeviceId>>{{3, 2}, {1, 0}}));
  EXPECT_EQ(PlaceMeshExplicit(*t, {"data", "model"}, {2, 2}, {0, 1, 1, 2}).status().message(),
            "explicit placement lists device 1 twice");
  EXPECT_EQ(PlaceMeshExplicit(*t, {"data", "model"}, {2, 2}, {0, 1, 2}).status().message(),
            "explicit placement lists 3 devices; mesh data,model=2,2 has 4");
  EXPECT_EQ(PlaceMeshExplicit(*t, {"data", "model"}, {2, 2}, {0, 1, 2, 9}).status().message(),
            "explicit placement: device 9 is out of range [0, 4)");
}

TEST(PlacementErrors, Messages) {
  auto t = Build("tpu-v5e:16x16");
  ASSERT_TRUE(t);
  auto bad = PlaceMesh(*t, {"data", "expert", "model"}, {4, 64, 2});
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidInput);
  EXPECT_EQ(bad.status().message(),
            "mesh data,expert,model=4,64,2 needs 512 devices; topology \"tpu-v5e:16x16\" has 256");
  EXPECT_EQ(PlaceMesh(*t, {"data", "data"}, {16, 16}).status().message(),
            "mesh: axis \"data\" given twice");
  EXPECT_EQ(PlaceMesh(*t, {"data", "model"}, {256, 0}).status().message(),
            "mesh: axis model=0 must be >= 1");
  std::vector<std::string> names;
  std::vector<int64_t> sizes;
  ASSERT_TRUE(ParseMeshSpec("data,expert,model=4,64,1", &names, &sizes).ok());
  EXPECT_EQ(names, (std::vector<std::string>{"data", "expert", "model"}));
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 64, 1}));
  EXPECT_EQ(ParseMeshSpec("data,model=4", &names, &sizes).message(),
            "placement \"data,model=4\": expected AXES=SIZES, e.g. data,expert,model=4,64,1");
}

}  // namespace
}  // namespace moesim
