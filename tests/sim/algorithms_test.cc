// Collective algorithms as pure functions: the plans they produce, checked against hand counts.
#include "sim/collectives/algorithms.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

namespace moesim::sim {
namespace {

std::vector<DeviceId> Iota(int n) {
  std::vector<DeviceId> g(static_cast<size_t>(n));
  std::iota(g.begin(), g.end(), 0);
  return g;
}

CollectivePlan Build(CollectiveOp op, int n, double bytes, Algorithm a, GroupShape shape = {}) {
  CollectiveSpec spec;
  spec.op = op;
  spec.group = Iota(n);
  spec.bytes = bytes;
  auto plan = BuildCollectivePlan(spec, a, shape);
  EXPECT_TRUE(plan.ok()) << plan.status().message();
  return plan.ok() ? *plan : CollectivePlan{};
}

GroupShape Shape(std::vector<GroupDim> dims) { return GroupShape{std::move(dims)}; }

TEST(Algorithms, RingAllReduceIsOneStepRepeatedTwiceNMinusOne) {
  // n = 4, S = 4000: every device sends S/n = 1000 bytes to the next, 2(n-1) = 6 times.
  const CollectivePlan p = Build(CollectiveOp::kAllReduce, 4, 4000, Algorithm::kRing);
  ASSERT_EQ(p.stages.size(), 1u);
  ASSERT_EQ(p.stages[0].streams.size(), 1u);
  ASSERT_EQ(p.stages[0].streams[0].size(), 1u);
  const Step& s = p.stages[0].streams[0][0];
  EXPECT_EQ(s.repeat, 6);
  ASSERT_EQ(s.transfers.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(s.transfers[i].src, i);
    EXPECT_EQ(s.transfers[i].dst, (i + 1) % 4);
    EXPECT_DOUBLE_EQ(s.transfers[i].bytes, 1000);
  }
}

TEST(Algorithms, BidirectionalRingSendsHalfEachWay) {
  const CollectivePlan p =
      Build(CollectiveOp::kReduceScatter, 4, 4000, Algorithm::kBidirectionalRing);
  const Step& s = p.stages[0].streams[0][0];
  EXPECT_EQ(s.repeat, 3);  // n-1
  ASSERT_EQ(s.transfers.size(), 8u);
  EXPECT_EQ(s.transfers[0].dst, 1);
  EXPECT_EQ(s.transfers[1].dst, 3);
  EXPECT_DOUBLE_EQ(s.transfers[0].bytes, 500);
}

// Every bandwidth-optimal all-reduce has each device send 2(n-1)/n x S bytes in all, so the
// plan's total is n x 2(n-1)/n x S = 2(n-1) S.
TEST(Algorithms, AllReduceAlgorithmsSendTheOptimalBytes) {
  const double S = 1 << 20;
  struct Case {
    Algorithm a;
    int n;
    GroupShape shape;
  };
  const std::vector<Case> cases = {
      {Algorithm::kRing, 8, {}},
      {Algorithm::kBidirectionalRing, 8, {}},
      {Algorithm::kHalvingDoubling, 16, {}},
      {Algorithm::kTorus, 16, Shape({{4, true, 0}, {4, true, 0}})},
      {Algorithm::kTorus, 48, Shape({{4, true, 0}, {3, true, 0}, {4, true, 0}})},
      {Algorithm::kHierarchical, 32, Shape({{4, false, 1}, {8, false, 0}})},
  };
  for (const Case& c : cases) {
    const CollectivePlan p = Build(CollectiveOp::kAllReduce, c.n, S, c.a, c.shape);
    EXPECT_NEAR(p.TotalBytes(), 2.0 * (c.n - 1) * S, 1e-6 * S)
        << AlgorithmName(c.a) << " n=" << c.n;
  }
}

TEST(Algorithms, TorusSplitsTheDataOverDimensionsAndRotatesTheOrder) {
  // 4x4 torus, S = 32 KiB. Two parts of S/2 = 16384.
  //   part 0: RS along dim 0 (columns: lines {0,4,8,12} ...): 16384/4 = 4096 per step, 2048 each
  //           way, 3 steps; then RS along dim 1 (rows) on 4096 bytes: 1024 per step, 512 each way;
  //           then AG back: rows (512 each way), columns (2048 each way).
  //   part 1: the same with the dimensions swapped.
  // In rounds: one stage per round (RS round 0, RS round 1, AG round 1, AG round 0), each with
  // both parts as streams of one step, on different dimensions.
  const CollectivePlan p = Build(CollectiveOp::kAllReduce, 16, 32768, Algorithm::kTorus,
                                 Shape({{4, true, 0}, {4, true, 0}}));
  ASSERT_EQ(p.stages.size(), 4u);
  const double bytes[] = {2048, 512, 512, 2048};
  for (int k = 0; k < 4; ++k) {
    ASSERT_EQ(p.stages[k].streams.size(), 2u);
    for (int part = 0; part < 2; ++part) {
      const Stream& s = p.stages[k].streams[part];
      ASSERT_EQ(s.size(), 1u);
      EXPECT_EQ(s[0].repeat, 3);
      ASSERT_EQ(s[0].transfers.size(), 32u);  // 16 devices x 2 directions
      EXPECT_DOUBLE_EQ(s[0].transfers[0].bytes, bytes[k]);
    }
  }
  // Round 0: part 0 along dim 0 (stride 4): device 0 sends to 4 and 12; part 1 along dim 1: 1, 3.
  // Round 1 swaps them.
  EXPECT_EQ(p.stages[0].streams[0][0].transfers[0].dst, 4);
  EXPECT_EQ(p.stages[0].streams[0][0].transfers[1].dst, 12);
  EXPECT_EQ(p.stages[0].streams[1][0].transfers[0].dst, 1);
  EXPECT_EQ(p.stages[0].streams[1][0].transfers[1].dst, 3);
  EXPECT_EQ(p.stages[1].streams[0][0].transfers[0].dst, 1);
  EXPECT_EQ(p.stages[1].streams[1][0].transfers[0].dst, 4);
}

TEST(Algorithms, HierarchicalReducesInsideNodesThenAcrossThenBack) {
  // 2 nodes x 4 GPUs, S = 8000. Stage 1: ring RS inside each node: 8000/4 = 2000 per step, 3
  // steps. Stage 2: 4 rings across nodes (GPU r of node 0 with GPU r of node 1) all-reduce
  // S/4 = 2000 bytes: 1000 per step, 2 steps. Stage 3: ring AG inside nodes, as stage 1.
  const CollectivePlan p = Build(CollectiveOp::kAllReduce, 8, 8000, Algorithm::kHierarchical,
                                 Shape({{2, false, 1}, {4, false, 0}}));
  ASSERT_EQ(p.stages.size(), 3u);
  const Step& inner = p.stages[0].streams[0][0];
  EXPECT_EQ(inner.repeat, 3);
  EXPECT_EQ(inner.transfers.size(), 8u);
  EXPECT_DOUBLE_EQ(inner.transfers[0].bytes, 2000);
  const Step& outer = p.stages[1].streams[0][0];
  EXPECT_EQ(outer.repeat, 2);
  ASSERT_EQ(outer.transfers.size(), 8u);
  EXPECT_DOUBLE_EQ(outer.transfers[0].bytes, 1000);
  for (const Transfer& t : outer.transfers) EXPECT_EQ(t.dst % 4, t.src % 4);  // same local rank
  EXPECT_EQ(p.stages[2].streams[0][0].repeat, 3);
}

TEST(Algorithms, DoubleBinaryTreesAreComplementary) {
  // n = 8: tree 1 interior = positions 0..3 = devices 0..3; tree 2 runs over the reversed order,
  // interior = devices 7..4. No device receives (is a parent) in both trees.
  CollectiveSpec spec;
  spec.group = Iota(8);
  spec.bytes = 1 << 20;
  AlgorithmOptions opt;
  opt.pipeline_chunks = 4;
  auto plan = BuildCollectivePlan(spec, Algorithm::kDoubleBinaryTree, {}, opt);
  ASSERT_TRUE(plan.ok());
  const Step& up = plan->stages[0].streams[0][0];
  EXPECT_EQ(up.repeat, 4 + 3 - 1);  // K + depth - 1, depth = floor(log2 8) = 3
  std::set<DeviceId> parents1, parents2;
  for (size_t i = 0; i < up.transfers.size(); ++i) {
    (i % 2 == 0 ? parents1 : parents2).insert(up.transfers[i].dst);
    EXPECT_DOUBLE_EQ(up.transfers[i].bytes, (1 << 20) / 2.0 / 4);
  }
  EXPECT_EQ(parents1, (std::set<DeviceId>{0, 1, 2, 3}));
  EXPECT_EQ(parents2, (std::set<DeviceId>{4, 5, 6, 7}));
}

TEST(Algorithms, HalvingDoublingExchangesWithXorPartners) {
  // n = 8 reduce-scatter of S = 8000: partners at distance 4, 2, 1 with S/2, S/4, S/8.
  const CollectivePlan p =
      Build(CollectiveOp::kReduceScatter, 8, 8000, Algorithm::kHalvingDoubling);
  const Stream& s = p.stages[0].streams[0];
  ASSERT_EQ(s.size(), 3u);
  const int dist[] = {4, 2, 1};
  const double bytes[] = {4000, 2000, 1000};
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(s[k].transfers[0].dst, dist[k]);
    EXPECT_EQ(s[k].transfers[5].dst, 5 ^ dist[k]);
    EXPECT_DOUBLE_EQ(s[k].transfers[0].bytes, bytes[k]);
  }
}

TEST(Algorithms, PairwiseAllToAllIsOnePermutationPerStep) {
  const CollectivePlan p = Build(CollectiveOp::kAllToAll, 5, 5000, Algorithm::kPairwise);
  const Stream& s = p.stages[0].streams[0];
  ASSERT_EQ(s.size(), 4u);
  for (size_t k = 0; k < s.size(); ++k) {
    std::set<DeviceId> dsts;
    for (const Transfer& t : s[k].transfers) {
      EXPECT_EQ(t.dst, (t.src + static_cast<int>(k) + 1) % 5);
      EXPECT_DOUBLE_EQ(t.bytes, 1000);  // S/n
      dsts.insert(t.dst);
    }
    EXPECT_EQ(dsts.size(), 5u);
  }
}

TEST(Algorithms, AllToAllVUsesTheMatrixAndSkipsZeros) {
  CollectiveSpec spec;
  spec.op = CollectiveOp::kAllToAllV;
  spec.group = {10, 11, 12};
  spec.matrix = {0, 5, 0,  //
                 7, 0, 1,  //
                 2, 3, 9};
  auto plan = BuildCollectivePlan(spec, Algorithm::kDirect);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  std::map<std::pair<int, int>, double> got;
  for (const Transfer& t : plan->stages[0].streams[0][0].transfers) got[{t.src, t.dst}] = t.bytes;
  const std::map<std::pair<int, int>, double> want = {
      {{10, 11}, 5}, {{11, 10}, 7}, {{11, 12}, 1}, {{12, 10}, 2}, {{12, 11}, 3}};
  EXPECT_EQ(got, want);
}

TEST(Algorithms, BroadcastIsAPipelinedChainFromTheRoot) {
  CollectiveSpec spec;
  spec.op = CollectiveOp::kBroadcast;
  spec.group = Iota(4);
  spec.bytes = 4096;
  spec.root = 2;
  AlgorithmOptions opt;
  opt.pipeline_chunks = 8;
  auto plan = BuildCollectivePlan(spec, Algorithm::kRing, {}, opt);
  ASSERT_TRUE(plan.ok());
  const Step& s = plan->stages[0].streams[0][0];
  EXPECT_EQ(s.repeat, 8 + 4 - 2);  // K + n - 2
  ASSERT_EQ(s.transfers.size(), 3u);
  EXPECT_EQ(s.transfers[0].src, 2);
  EXPECT_EQ(s.transfers[0].dst, 3);
  EXPECT_EQ(s.transfers[2].dst, 1);
  EXPECT_DOUBLE_EQ(s.transfers[0].bytes, 512);
}

TEST(Algorithms, SingleDeviceGroupsHaveNothingToDo) {
  EXPECT_TRUE(Build(CollectiveOp::kAllReduce, 1, 100, Algorithm::kRing).stages.empty());
  EXPECT_TRUE(Build(CollectiveOp::kAllToAll, 1, 100, Algorithm::kDirect).stages.empty());
}

TEST(Algorithms, ErrorsNameTheProblem) {
  CollectiveSpec spec;
  spec.group = Iota(6);
  spec.bytes = 100;
  auto hd = BuildCollectivePlan(spec, Algorithm::kHalvingDoubling);
  EXPECT_EQ(hd.status().message(), "halving_doubling needs a power-of-two group; got 6 devices");
  auto bad = BuildCollectivePlan(spec, Algorithm::kDirect);
  EXPECT_EQ(bad.status().message(),
            "algorithm direct does not implement all_reduce (choose one of: ring, bidir_ring, "
            "torus, double_binary_tree, halving_doubling, hierarchical)");
  auto shape = BuildCollectivePlan(spec, Algorithm::kTorus, Shape({{4, true, 0}, {2, true, 0}}));
  EXPECT_EQ(shape.status().message(), "group shape 4x2 has 8 members; the group has 6");
  spec.group = {1, 2, 1};
  EXPECT_EQ(BuildCollectivePlan(spec, Algorithm::kRing).status().message(),
            "collective group lists device 1 twice");
  EXPECT_EQ(ParseAlgorithm("tree").status().message(),
            "unknown algorithm \"tree\" (one of: ring, bidir_ring, torus, double_binary_tree, "
            "halving_doubling, hierarchical, direct, pairwise)");
  EXPECT_EQ(ParseCollectiveOp("allreduce").status().code(), Status::Code::kInvalidInput);
}

TEST(Algorithms, DefaultsFollowWhatNcclAndXlaPick) {
  const GroupShape nvswitch = Shape({{8, false, 0}});
  const GroupShape torus_row = Shape({{16, true, 0}});
  const GroupShape torus_2d = Shape({{16, true, 0}, {16, true, 0}});
  const GroupShape gpu_nodes = Shape({{4, false, 1}, {8, false, 0}});
  EXPECT_EQ(DefaultAlgorithm(CollectiveOp::kAllReduce, nvswitch), Algorithm::kRing);
  EXPECT_EQ(DefaultAlgorithm(CollectiveOp::kAllReduce, torus_row), Algorithm::kBidirectionalRing);
  EXPECT_EQ(DefaultAlgorithm(CollectiveOp::kAllGather, torus_2d), Algorithm::kTorus);
  EXPECT_EQ(DefaultAlgorithm(CollectiveOp::kReduceScatter, gpu_nodes), Algorithm::kHierarchical);
  EXPECT_EQ(DefaultAlgorithm(CollectiveOp::kAllToAll, torus_2d), Algorithm::kDirect);
  EXPECT_EQ(DefaultAlgorithm(CollectiveOp::kBroadcast, nvswitch), Algorithm::kRing);
}

TEST(Algorithms, BusBandwidthFactorsAreNcclTests) {
  EXPECT_DOUBLE_EQ(BusBandwidthFactor(CollectiveOp::kAllReduce, 8), 2.0 * 7 / 8);
  EXPECT_DOUBLE_EQ(BusBandwidthFactor(CollectiveOp::kAllGather, 8), 7.0 / 8);
  EXPECT_DOUBLE_EQ(BusBandwidthFactor(CollectiveOp::kAllToAll, 4), 3.0 / 4);
  EXPECT_DOUBLE_EQ(BusBandwidthFactor(CollectiveOp::kSendRecv, 2), 1.0);
}

}  // namespace
}  // namespace moesim::sim
