// Collectives on real topologies (topologies/ + sim/topology): calibration against nccl-tests,
// the torus algorithm against a single ring, agreement of the two network levels, group shapes.
#include <gtest/gtest.h>

#include <numeric>

#include "sim/collectives/algorithms.h"
#include "sim/collectives/runner.h"
#include "sim/topology/topology_network.h"
#include "topologies/topology.h"

namespace moesim::sim {
namespace {

struct Built {
  HardwareProfile hw;
  TopologyNetwork net;
};

Built Build(const std::string& name, const LinkEfficiencies& eff = {}) {
  auto hw = DefaultHardwareFor(name);
  EXPECT_TRUE(hw.ok()) << hw.status().message();
  auto topo = BuildTopology(name, *hw);
  EXPECT_TRUE(topo.ok()) << topo.status().message();
  return Built{*hw, TopologyNetwork::Make(*topo, *hw, eff)};
}

CollectivePlan Plan(const Topology& topo, CollectiveOp op, const std::vector<DeviceId>& group,
                    double bytes, std::optional<Algorithm> algo = std::nullopt) {
  CollectiveSpec spec;
  spec.op = op;
  spec.group = group;
  spec.bytes = bytes;
  const GroupShape shape = GroupShapeOf(topo, group);
  auto plan = BuildCollectivePlan(spec, algo.value_or(DefaultAlgorithm(op, shape)), shape);
  EXPECT_TRUE(plan.ok()) << plan.status().message();
  return *plan;
}

std::vector<DeviceId> Iota(int n) {
  std::vector<DeviceId> g(static_cast<size_t>(n));
  std::iota(g.begin(), g.end(), 0);
  return g;
}

TEST(CollectiveTopo, H100NodeRingAllReduceBusBandwidthMatchesNcclTests) {
  // nccl-tests on 8xH100 SXM, Ring (NVLS off), >= 1 GB: busbw ~365-370 GB/s (hardware.md;
  // NVIDIA/nccl#1455, nccl-tests#212). Ours: each GPU's NVLink bundle to the NVSwitch is
  // 450 GB/s one way x link_efficiency; a ring step crosses two links (GPU -> switch -> GPU),
  // each carrying one flow, so B = 450e9 x eff and alpha = link_latency_s.
  //   T = 2(n-1)/n S/B + 2(n-1) alpha;  busbw = 2(n-1)/n S / T.
  const Built b = Build("dgx-h100:1");
  const double B = 450e9 * b.hw.link_efficiency, alpha = b.hw.link_latency_s;
  AnalyticalCollectiveTimer analytical(&b.net.links, b.net.route);
  for (double S : {1.0 * (1 << 30), 2.0 * (1 << 30), 8.0 * (1 << 30)}) {
    const CollectivePlan plan = Plan(*b.net.topology, CollectiveOp::kAllReduce, Iota(8), S);
    EXPECT_EQ(plan.algorithm, "ring");
    const double expect_t = 14.0 / 8 * S / B + 14 * alpha;
    const double t = analytical.Seconds(plan);
    EXPECT_NEAR(t, expect_t, 1e-12 * expect_t);
    auto flow = FlowCollectiveSeconds(plan, b.net.links, b.net.route);
    ASSERT_TRUE(flow.ok());
    EXPECT_NEAR(*flow, expect_t, 14e-12 + 1e-12 * expect_t);  // 14 steps, each rounded up to 1 ps
    const double busbw = 14.0 / 8 * S / t;
    EXPECT_GE(busbw, 350e9) << S;  // the acceptance band
    EXPECT_LE(busbw, 380e9) << S;
  }
}

TEST(CollectiveTopo, InterNodeRingOverNdrGetsTheNicRate) {
  // Two DGX H100 nodes, the GPU 0 of each (one rail): a ring of 2 over their NDR NICs
  // (50 GB/s line rate, through the rail leaf). nccl-tests measures 46-48 GB/s per NIC
  // (hardware.md; nccl-tests#290, #267): an InfiniBand efficiency of ~0.94, which the profile's
  // single link_efficiency (0.8, an NVLink figure) cannot express, so it is given per kind here.
  // busbw of an all-reduce of n = 2 = algbw x 2(n-1)/n = S / T with T = S/(2B) x 2 + 2 alpha.
  LinkEfficiencies eff;
  eff.by_kind[static_cast<size_t>(LinkKind::kInfiniband)] = 0.94;
  const Built b = Build("dgx-h100:2", eff);
  auto group = ParseDeviceGroup(*b.net.topology, "node");
  ASSERT_TRUE(group.ok());
  EXPECT_EQ(*group, (std::vector<DeviceId>{0, 8}));
  const double S = 4.0 * (1 << 30);
  const CollectivePlan plan = Plan(*b.net.topology, CollectiveOp::kAllReduce, *group, S);
  auto t = FlowCollectiveSeconds(plan, b.net.links, b.net.route);
  ASSERT_TRUE(t.ok());
  const double busbw = S / *t;
  EXPECT_GE(busbw, 46e9);
  EXPECT_LE(busbw, 48e9);
}

TEST(CollectiveTopo, TorusAllReduceBeatsOneRingByTheArithmetic) {
  // 256 chips of a v5e 16x16 torus (both dimensions wrap). Per ICI link one way: B = line rate
  // x efficiency, alpha = per-hop latency.
  //  One ring through all 256 chips (a snake: every hop one link, all hops distinct links):
  //    T_ring  = 2 x 255/256 x S/B + 510 alpha.
  //  Torus scheme: two halves of S, one per dimension order, each a bidirectional ring per
  //  dimension (16 chips, 15 steps, each step moves chunk/2 per direction on its own link):
  //    reduce-scatter dim A on S/2: 15 steps of (S/2)/16/2 = S/64 bytes per link;
  //    reduce-scatter dim B on S/32: 15 steps of S/1024; all-gather back: the same again.
  //    The halves use different dimensions' links at every moment, so they overlap fully:
  //    T_torus = 2 x 15 x (S/64 + S/1024)/B + 60 alpha = 510/1024 S/B + 60 alpha.
  //  Bandwidth terms: (510/256) / (510/1024) = 4: a factor 2 from using both directions and
  //  a factor 2 from using both dimensions at once.
  const Built b = Build("tpu-v5e:16x16");
  const double B = b.hw.link_bytes_per_s * b.hw.link_efficiency, alpha = b.hw.link_latency_s;
  std::vector<DeviceId> snake;
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) snake.push_back(r * 16 + (r % 2 == 0 ? c : 15 - c));
  }
  const double S = 1.0 * (1 << 30);
  const CollectivePlan ring =
      Plan(*b.net.topology, CollectiveOp::kAllReduce, snake, S, Algorithm::kRing);
  const CollectivePlan torus = Plan(*b.net.topology, CollectiveOp::kAllReduce, Iota(256), S);
  EXPECT_EQ(torus.algorithm, "torus");
  const double t_ring = 510.0 / 256 * S / B + 510 * alpha;
  const double t_torus = 510.0 / 1024 * S / B + 60 * alpha;
  AnalyticalCollectiveTimer analytical(&b.net.links, b.net.route);
  EXPECT_NEAR(analytical.Seconds(ring), t_ring, 1e-9 * t_ring);
  EXPECT_NEAR(analytical.Seconds(torus), t_torus, 1e-9 * t_torus);
  const double f_ring = *FlowCollectiveSeconds(ring, b.net.links, b.net.route);
  const double f_torus = *FlowCollectiveSeconds(torus, b.net.links, b.net.route);
  EXPECT_NEAR(f_ring, t_ring, 1e-6 * t_ring);
  EXPECT_NEAR(f_torus, t_torus, 1e-6 * t_torus);
  EXPECT_NEAR(f_ring / f_torus, t_ring / t_torus, 1e-4);
  EXPECT_GT(f_ring / f_torus, 3.9);  // ~4 at 1 GiB (latency terms are small)
}

TEST(CollectiveTopo, FlowAndAnalyticalAgreeWithin2PercentWithoutContention) {
  struct Case {
    std::string topology;
    std::string group;
    CollectiveOp op;
    double bytes;
  };
  const std::vector<Case> cases = {
      {"dgx-h100:1", "8", CollectiveOp::kAllReduce, 1 << 28},
      {"dgx-h100:1", "8", CollectiveOp::kAllGather, 1 << 28},
      {"dgx-h100:1", "8", CollectiveOp::kAllToAll, 1 << 28},
      {"dgx-h100:4", "32", CollectiveOp::kAllReduce, 1 << 28},
      {"dgx-h100:4", "32", CollectiveOp::kReduceScatter, 1 << 28},
      {"tpu-v5e:16x16", "x", CollectiveOp::kAllReduce, 1 << 26},
      {"tpu-v5e:16x16", "256", CollectiveOp::kAllReduce, 1 << 28},
      {"tpu-v5e:16x16", "256", CollectiveOp::kAllGather, 1 << 28},
      {"tpu-v5e:4x4", "16", CollectiveOp::kAllToAll, 1 << 24},
      {"tpu-v4:4x4x4", "64", CollectiveOp::kAllReduce, 1 << 28},
  };
  for (const Case& c : cases) {
    const Built b = Build(c.topology);
    auto group = ParseDeviceGroup(*b.net.topology, c.group);
    ASSERT_TRUE(group.ok()) << group.status().message();
    const CollectivePlan plan = Plan(*b.net.topology, c.op, *group, c.bytes);
    AnalyticalCollectiveTimer analytical(&b.net.links, b.net.route);
    const double a = analytical.Seconds(plan);
    auto f = FlowCollectiveSeconds(plan, b.net.links, b.net.route);
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_NEAR(*f / a, 1.0, 0.02)
        << c.topology << " " << c.group << " " << CollectiveOpName(c.op) << " " << plan.algorithm;
  }
}

TEST(CollectiveTopo, GroupShapesComeFromThePhysicalDimensions) {
  const Built v5e = Build("tpu-v5e:16x16");
  const Topology& t = *v5e.net.topology;
  auto shape_text = [&](const std::vector<DeviceId>& g) {
    std::string s;
    for (const GroupDim& d : GroupShapeOf(t, g).dims) {
      s += (s.empty() ? "" : " ") + std::to_string(d.size) + (d.wraps ? "w" : "") + "c" +
           std::to_string(d.speed_class);
    }
    return s;
  };
  EXPECT_EQ(shape_text(Iota(256)), "16wc0 16wc0");
  EXPECT_EQ(shape_text(Iota(16)), "1c0 16wc0");  // one row: its dimension wraps
  EXPECT_EQ(shape_text(Iota(8)), "1c0 8c0");     // half a row: no wraparound
  EXPECT_EQ(shape_text(Iota(64)), "4c0 16wc0");
  EXPECT_EQ(shape_text({0, 16, 32, 48}), "4c0 1c0");
  EXPECT_EQ(shape_text({3, 1, 2}), "3c0");  // not in row-major order: one plain dimension
  auto y = ParseDeviceGroup(t, "x");
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(y->size(), 16u);
  EXPECT_EQ((*y)[1], 16);  // x is the outer dimension: stride 16
  EXPECT_EQ(ParseDeviceGroup(t, "gpu").status().message(),
            "--group gpu: \"gpu\" is neither a device count nor a dimension of topology "
            "\"tpu-v5e:16x16\" (dimensions: x(16), y(16))");
  EXPECT_EQ(ParseDeviceGroup(t, "300").status().message(),
            "--group 300: topology \"tpu-v5e:16x16\" has 256 devices");

  const Built dgx = Build("dgx-h100:4");
  const Topology& d = *dgx.net.topology;
  EXPECT_EQ(GroupShapeOf(d, Iota(32)).dims.size(), 2u);
  EXPECT_EQ(DefaultAlgorithm(CollectiveOp::kAllReduce, GroupShapeOf(d, Iota(32))),
            Algorithm::kHierarchical);
  EXPECT_EQ(DefaultAlgorithm(CollectiveOp::kAllReduce, GroupShapeOf(d, Iota(8))), Algorithm::kRing);
}

}  // namespace
}  // namespace moesim::sim
