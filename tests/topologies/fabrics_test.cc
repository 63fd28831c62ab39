// GPU clusters on rail-optimized fat-trees and generic k-ary fat-trees: structure, routes, ECMP.
#include <gtest/gtest.h>

#include <map>

#include "tests/topologies/test_util.h"
#include "topologies/analysis.h"

namespace moesim {
namespace {

using testing::Build;
using testing::BuildError;

int64_t Count(const Topology& t, LinkKind k) {
  return t.LinkCountsByKind()[static_cast<size_t>(k)];
}

TEST(GpuCluster, DgxH100ScalableUnit) {
  // 32 nodes x 8 GPUs = 256. Vertices: 256 GPUs + 32 NVSwitch (one per node) + 8 rail leaves
  // (32 hosts, 32 per leaf -> 1 leaf per rail) + spines. Spines: each leaf has 32
  // uplink ports at 1:1; 8 x 32 = 256 ports over 64-port spines -> 4 spines, each leaf-spine pair
  // 32 x 50 GB/s / 4 = 400 GB/s. Links one-way: NVLink 2 x 256 = 512; IB 2 x 256 (NICs) +
  // 2 x 8 x 4 (leaf-spine) = 576.
  auto t = Build("dgx-h100:32");
  ASSERT_TRUE(t);
  const Topology& topo = *t;
  EXPECT_EQ(topo.num_devices(), 256);
  EXPECT_EQ(topo.num_vertices(), 256 + 32 + 8 + 4);
  EXPECT_EQ(Count(topo, LinkKind::kNvlink), 512);
  EXPECT_EQ(Count(topo, LinkKind::kInfiniband), 576);
  EXPECT_EQ(DiameterHops(topo), 4);

  // Same node: GPU -> NVSwitch -> GPU at 450 GB/s (18 NVLink4 x 25 GB/s) one way.
  const auto& in_node = topo.Route(0, 5);
  ASSERT_EQ(in_node.size(), 2u);
  testing::ExpectWalk(topo, 0, 5, in_node);
  EXPECT_EQ(topo.links()[in_node[0]].kind, LinkKind::kNvlink);
  EXPECT_DOUBLE_EQ(topo.links()[in_node[0]].bytes_per_s, 450e9);
  // Same rail (GPU 3 of node 0 and node 7): NIC -> rail leaf -> NIC at 50 GB/s (NDR 400 Gb/s).
  const auto& rail = topo.Route(3, 7 * 8 + 3);
  ASSERT_EQ(rail.size(), 2u);
  testing::ExpectWalk(topo, 3, 59, rail);
  EXPECT_EQ(topo.links()[rail[0]].kind, LinkKind::kInfiniband);
  EXPECT_DOUBLE_EQ(topo.links()[rail[0]].bytes_per_s, 50e9);
  // Different rail, different node: leaf -> spine -> leaf; the leaf-spine link is 400 GB/s.
  const auto& cross = topo.Route(3, 7 * 8 + 4);
  ASSERT_EQ(cross.size(), 4u);
  testing::ExpectWalk(topo, 3, 60, cross);
  EXPECT_DOUBLE_EQ(topo.links()[cross[1]].bytes_per_s, 400e9);
}

TEST(GpuCluster, SingleNodeHasNoFabric) {
  auto t = Build("dgx-h100:1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->num_vertices(), 9);
  EXPECT_EQ(Count(*t, LinkKind::kInfiniband), 0);
  EXPECT_EQ(DiameterHops(*t), 2);
}

TEST(GpuCluster, A100AndNvl72) {
  // DGX A100: 12 NVLink3 x 25 GB/s = 300 GB/s; HDR 200 Gb/s = 25 GB/s; leaves of 20 hosts.
  // 40 nodes -> 2 leaves per rail, 16 leaves.
  auto a = Build("dgx-a100:40");
  ASSERT_TRUE(a);
  EXPECT_DOUBLE_EQ(a->links()[a->Route(0, 1)[0]].bytes_per_s, 300e9);
  EXPECT_DOUBLE_EQ(a->links()[a->Route(0, 8)[0]].bytes_per_s, 25e9);
  // Node 0 and node 20 are on different leaves of rail 0: 4 hops even on the same rail.
  EXPECT_EQ(a->Route(0, 20 * 8).size(), 4u);
  EXPECT_EQ(a->Route(0, 19 * 8).size(), 2u);
  // GB200 NVL72: one 72-GPU NVLink domain per rack at 900 GB/s per GPU; GPU 0 and GPU 71 are
  // 2 hops apart through the rack's NVSwitch vertex.
  auto g = Build("gb200-nvl72:2");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->num_devices(), 144);
  const auto& r = g->Route(0, 71);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_DOUBLE_EQ(g->links()[r[0]].bytes_per_s, 900e9);
  EXPECT_EQ(g->links()[g->Route(0, 72)[0]].kind, LinkKind::kInfiniband);
}

// Counts the flows of a permutation on every link between leaves and spines.
std::map<LinkId, int> SpineLoads(const Topology& topo, const std::vector<DeviceId>& dst_of) {
  std::map<LinkId, int> load;
  for (DeviceId a = 0; a < static_cast<DeviceId>(dst_of.size()); ++a) {
    for (LinkId l : topo.Route(a, dst_of[static_cast<size_t>(a)])) {
      const Link& link = topo.links()[static_cast<size_t>(l)];
      if (link.src >= topo.num_devices() && link.dst >= topo.num_devices() &&
          link.kind == LinkKind::kInfiniband) {
        ++load[l];
      }
    }
  }
  return load;
}

TEST(GpuCluster, EcmpSpreadsAPermutationEvenlyOverSpines) {
  // dgx-h100:64: 512 GPUs, 2 leaves per rail (16 leaves), spines = 16 x 32 / 64 = 8. The
  // permutation node n -> node n+32 (same GPU index, so same rail) sends every flow from leaf 0
  // to leaf 1 of its rail (or back): 32 flows leave each leaf; spread evenly over 8 spines that
  // is 4 flows on each of the 16 x 8 up-links and 4 on each of the 16 x 8 down-links.
  auto t = Build("dgx-h100:64");
  ASSERT_TRUE(t);
  std::vector<DeviceId> dst(512);
  for (DeviceId g = 0; g < 512; ++g) dst[static_cast<size_t>(g)] = (g + 256) % 512;
  const auto load = SpineLoads(*t, dst);
  EXPECT_EQ(load.size(), 2u * 16 * 8);
  for (const auto& [link, flows] : load) EXPECT_EQ(flows, 4) << "link " << link;
}

TEST(GpuCluster, EcmpSpreadsACrossRailPermutationEvenly) {
  // dgx-h100:32 (4 spines): GPU i of node n -> GPU i+1 of node n+1 crosses rails, so every flow
  // goes leaf -> spine -> leaf: 32 flows per leaf over 4 spines = 8 per up-link and per
  // down-link (8 leaves x 4 spines each way).
  auto t = Build("dgx-h100:32");
  ASSERT_TRUE(t);
  std::vector<DeviceId> dst(256);
  for (DeviceId g = 0; g < 256; ++g) {
    dst[static_cast<size_t>(g)] = ((g / 8 + 1) % 32) * 8 + (g % 8 + 1) % 8;
  }
  const auto load = SpineLoads(*t, dst);
  EXPECT_EQ(load.size(), 2u * 8 * 4);
  for (const auto& [link, flows] : load) EXPECT_EQ(flows, 8) << "link " << link;
}

TEST(FatTree, AlFaresK4) {
  // k=4, 3 levels: 4 pods of 2 edge + 2 aggregation switches, 4 cores, 16 hosts.
  // Links (full duplex): 16 host-edge + 4 pods x 2 x 2 edge-agg + 8 aggs x 2 cores = 48 -> 96.
  auto t = Build("fattree:16,k=4,levels=3");
  ASSERT_TRUE(t);
  const Topology& topo = *t;
  EXPECT_EQ(topo.num_vertices(), 16 + 8 + 8 + 4);
  EXPECT_EQ(static_cast<int64_t>(topo.links().size()), 96);
  EXPECT_EQ(topo.Route(0, 1).size(), 2u);  // same edge switch
  EXPECT_EQ(topo.Route(0, 2).size(), 4u);  // same pod
  EXPECT_EQ(topo.Route(0, 4).size(), 6u);  // another pod, through a core
  EXPECT_EQ(DiameterHops(topo), 6);
  // Pod p -> pod p+2 for every host: each of the 4 cores carries 16 / 4 = 4 flows.
  std::map<VertexId, int> per_core;
  for (DeviceId h = 0; h < 16; ++h) {
    const auto& r = topo.Route(h, (h + 8) % 16);
    ASSERT_EQ(r.size(), 6u);
    testing::ExpectWalk(topo, h, (h + 8) % 16, r);
    ++per_core[topo.links()[r[2]].dst];
  }
  EXPECT_EQ(per_core.size(), 4u);
  for (const auto& [core, flows] : per_core) EXPECT_EQ(flows, 4);
}

TEST(FatTree, RoutesAreShortestPaths) {
  for (const char* name : {"fattree:16,k=4,levels=3", "fattree:24,k=8", "dgx-h100:3"}) {
    auto t = Build(name);
    ASSERT_TRUE(t);
    std::vector<LinkId> route;
    for (DeviceId a = 0; a < t->num_devices(); ++a) {
      const auto dist = GraphHopDistances(*t, a);
      for (DeviceId b = 0; b < t->num_devices(); ++b) {
        if (a == b) continue;
        t->ComputeRoute(a, b, &route);
        testing::ExpectWalk(*t, a, b, route);
        ASSERT_EQ(static_cast<int64_t>(route.size()), dist[static_cast<size_t>(b)])
            << name << " " << a << " -> " << b;
      }
    }
  }
}

TEST(FabricErrors, Messages) {
  EXPECT_EQ(BuildError("dgx-h100:4,foo=1"),
            "topology \"dgx-h100:4,foo=1\": unknown option \"foo\" (dgx-h100 accepts: chip, "
            "hosts_per_leaf, oversubscription)");
  EXPECT_EQ(BuildError("dgx-h100:4,oversubscription=-1"),
            "topology \"dgx-h100:4,oversubscription=-1\": oversubscription=\"-1\" is not a "
            "number > 0");
  EXPECT_EQ(BuildError("dgx-h100:0"),
            "topology \"dgx-h100:0\": size \"0\" is not a positive "
            "integer");
  EXPECT_EQ(BuildError("fattree:2000"),
            "topology \"fattree:2000\": a 3-level fat-tree of k=16 holds at most 1024 hosts; "
            "raise k");
  EXPECT_EQ(BuildError("fattree:8,k=3"),
            "topology \"fattree:8,k=3\": k must be an even number in [2, 1024]");
  EXPECT_EQ(BuildError("dgx-h100:200000"),
            "topology \"dgx-h100:200000\": more devices than the limit of 131072 "
            "(docs/limits.md)");
  EXPECT_EQ(BuildError("fattree:8,levels=4"),
            "topology \"fattree:8,levels=4\": levels must be 2 or 3");
}

}  // namespace
}  // namespace moesim
