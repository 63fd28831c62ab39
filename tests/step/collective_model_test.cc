// One collective model (sim/step/analytical_network.h): every collective of a step is lowered to a
// sim::CollectivePlan built by sim/collectives' algorithms over all its groups at once, and the
// analytical level's closed form equals the plan runner (sim::AnalyticalCollectiveTimer) on that
// plan, over a grid of topologies (torus with and without wraparound, DGX nodes on a fat-tree,
// NVL72 domains, TPU slices over DCN), mesh shapes, axis sets, sizes and collective kinds.
#include <gtest/gtest.h>

#include "proto/hardware_profiles.h"
#include "sim/collectives/runner.h"
#include "sim/step/analytical_network.h"
#include "sim/step/simulate.h"
#include "topologies/placement.h"
#include "topologies/topology.h"

namespace moesim {
namespace {

struct Grid {
  const char* chip;
  const char* topology;
  std::vector<int64_t> mesh;  // pipeline, data, expert, model
};

std::shared_ptr<AnalyticalNetwork> Make(const Grid& g) {
  auto hw = BuiltinHardwareProfile(g.chip);
  EXPECT_TRUE(hw.ok());
  auto topo = BuildTopology(g.topology, *hw);
  EXPECT_TRUE(topo.ok()) << topo.status().message();
  if (!topo.ok()) return nullptr;
  auto placement = PlaceMesh(**topo, MeshAxisOrder(), g.mesh);
  EXPECT_TRUE(placement.ok()) << g.topology << ": " << placement.status().message();
  if (!placement.ok()) return nullptr;
  return std::make_shared<AnalyticalNetwork>(*topo, *placement, hw->link_efficiency);
}

const std::vector<Grid>& Topologies() {
  static const std::vector<Grid> grid = {
      {"tpu-v4", "tpu-v4:4x4x4", {1, 4, 4, 4}},              // 3D torus, every dimension wrapped
      {"tpu-v4", "tpu-v4:4x4x4", {2, 8, 2, 2}},              // ... with pipeline stages
      {"tpu-v5e", "tpu-v5e:16x16", {1, 4, 64, 1}},           // 2D torus without wraparound
      {"tpu-v5e", "tpu-v5e:16x16", {1, 16, 4, 4}},           // ... axes splitting one dimension
      {"tpu-v6e", "tpu-v6e:16x16,wrap=all", {1, 8, 32, 1}},  // 2D, wrapped
      {"h100-sxm", "dgx-h100:4", {1, 4, 2, 4}},              // DGX nodes on a fat-tree
      {"h100-sxm", "dgx-h100:4", {2, 2, 4, 2}},              // ... strided groups across nodes
      {"gb200", "gb200-nvl72:2", {1, 2, 8, 9}},              // NVL72 domains
      {"tpu-v5e", "tpu-v5e:16x16*4", {1, 4, 16, 16}},        // four slices over DCN
  };
  return grid;
}

TEST(CollectiveModel, ClosedFormEqualsThePlanRunner) {
  const std::vector<std::vector<MeshAxis>> axis_sets = {
      {MeshAxis::kData},
      {MeshAxis::kExpert},
      {MeshAxis::kModel},
      {MeshAxis::kData, MeshAxis::kExpert},
      {MeshAxis::kExpert, MeshAxis::kModel},
      {MeshAxis::kData, MeshAxis::kExpert, MeshAxis::kModel},
  };
  const std::vector<CollectiveKind> kinds = {CollectiveKind::kAllReduce, CollectiveKind::kAllGather,
                                             CollectiveKind::kReduceScatter,
                                             CollectiveKind::kAllToAll, CollectiveKind::kRingShift};
  const std::vector<double> sizes = {4096, 16e6, 1e9};
  int checked = 0, hierarchical = 0, torus = 0, rings = 0;
  for (const Grid& g : Topologies()) {
    auto net = Make(g);
    ASSERT_NE(net, nullptr);
    sim::AnalyticalCollectiveTimer runner(&net->links(), net->route());
    std::vector<CollectiveWork> works;
    for (const auto& axes : axis_sets) {
      for (CollectiveKind kind : kinds) {
        for (double bytes : sizes) {
          CollectiveWork w;
          w.kind = kind;
          w.axes = axes;
          w.bytes = bytes;
          if (kind == CollectiveKind::kAllToAll) w.max_over_mean = 1.25;
          works.push_back(w);
        }
      }
    }
    if (g.mesh[0] > 1) {
      CollectiveWork send;
      send.kind = CollectiveKind::kSendRecv;
      send.axes = {MeshAxis::kPipeline};
      send.bytes = 8e6;
      works.push_back(send);
    }
    for (const CollectiveWork& w : works) {
      auto plan = net->Plan(w);
      ASSERT_TRUE(plan.ok()) << plan.status().message();
      const double closed = net->Time(w);
      const double run = runner.Seconds(*plan);
      const std::string what = std::string(g.topology) + " " + CollectiveKindName(w.kind) + " " +
                               std::to_string(w.bytes) + " B over " +
                               std::to_string(w.axes.size()) + " axes (" + plan->algorithm + ")";
      if (closed == 0) {
        EXPECT_EQ(run, 0) << what;
        continue;
      }
      EXPECT_NEAR(run / closed, 1.0, 1e-9)
          << what << ": plan " << run << " s, closed form " << closed << " s";
      ++checked;
      hierarchical += plan->algorithm == "hierarchical";
      torus += plan->algorithm == "torus";
      rings += plan->algorithm == "ring" || plan->algorithm == "bidir_ring";
    }
  }
  // The grid reaches every algorithm the step path uses.
  EXPECT_GT(checked, 500);
  EXPECT_GT(hierarchical, 0);
  EXPECT_GT(torus, 0);
  EXPECT_GT(rings, 0);
}

TEST(CollectiveModel, StepCollectivesUseTheAlgorithmsTheShapeCallsFor) {
  // DGX H100 x 4 with data 4 x model 8: model (tensor parallel) is one NVSwitch node: a ring
  // (NCCL's Ring); data spans the four nodes, one GPU each: a ring over InfiniBand; data x model
  // spans both speed classes: hierarchical.
  auto dgx = Make({"h100-sxm", "dgx-h100:4", {1, 4, 1, 8}});
  ASSERT_NE(dgx, nullptr);
  auto algorithm = [](const AnalyticalNetwork& net, std::vector<MeshAxis> axes) {
    CollectiveWork w;
    w.kind = CollectiveKind::kAllReduce;
    w.axes = std::move(axes);
    w.bytes = 1e6;
    auto plan = net.Plan(w);
    return plan.ok() ? plan->algorithm : plan.status().message();
  };
  EXPECT_EQ(algorithm(*dgx, {MeshAxis::kModel}), "ring");
  EXPECT_EQ(algorithm(*dgx, {MeshAxis::kData}), "ring");
  EXPECT_EQ(algorithm(*dgx, {MeshAxis::kData, MeshAxis::kModel}), "hierarchical");
  // TPU v4 4x4x4 (wrapped) with data 4 x expert 16: expert spans two wrapped dimensions: torus;
  // data one: bidir_ring.
  auto v4 = Make({"tpu-v4", "tpu-v4:4x4x4", {1, 4, 16, 1}});
  ASSERT_NE(v4, nullptr);
  EXPECT_EQ(algorithm(*v4, {MeshAxis::kExpert}), "torus");
  EXPECT_EQ(algorithm(*v4, {MeshAxis::kData}), "bidir_ring");
}

TEST(CollectiveModel, HierarchicalAllReduceByHand) {
  // DGX H100 x 4, data 4 x model 8, all-reduce of S = 1 GB over data x model (32 GPUs):
  // reduce-scatter in each node over NVLink (7/8 S at the NVLink rate), all-reduce of S/8 across
  // the four nodes over InfiniBand (2 x 3/4 x S/8 at the NIC rate), all-gather in the node
  // (7/8 S). With the profile's rates: NVLink 450 GB/s per direction per GPU, NIC 50 GB/s, both
  // x link_efficiency; at 10 GB the ~60 us of ring-step latencies are under 0.1%.
  auto hw = BuiltinHardwareProfile("h100-sxm");
  ASSERT_TRUE(hw.ok());
  auto net = Make({"h100-sxm", "dgx-h100:4", {1, 4, 1, 8}});
  ASSERT_NE(net, nullptr);
  CollectiveWork w;
  w.kind = CollectiveKind::kAllReduce;
  w.axes = {MeshAxis::kData, MeshAxis::kModel};
  w.bytes = 1e10;
  const double e = hw->link_efficiency;
  const double nvlink = hw->link_bytes_per_s * e, nic = hw->scaleout_bytes_per_s * e;
  const double hand = 2 * (7.0 / 8 * 1e10 / nvlink) + 2 * (3.0 / 4 * 1e10 / 8 / nic);
  EXPECT_NEAR(net->Time(w) / hand, 1.0, 1e-3) << net->Time(w) << " s vs " << hand << " s";
}

}  // namespace
}  // namespace moesim
