// MoE dispatch / combine (sim/collectives/dispatch.h): the traffic formulas against probabilities
// worked out by hand, the plans' bytes against the formulas, per-node deduplication, node-limited
// routing on a DeepSeek-V3 layer, and the plans timed on a hand-made two-node network.
#include "sim/collectives/dispatch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "sim/collectives/runner.h"

namespace moesim::sim {
namespace {

std::vector<DeviceId> Iota(int n, int first = 0) {
  std::vector<DeviceId> g(static_cast<size_t>(n));
  std::iota(g.begin(), g.end(), first);
  return g;
}

// The small group of most tests: 4 ranks, 2 per node (2 nodes), 8 experts (2 per rank, 4 per
// node), top-2, 28 tokens per rank, hidden 128 in FP8: 128 + 1 scale x 4 = 132 bytes per token
// dispatched, 128 x 2 = 256 combined.
DispatchSpec Small(int64_t max_nodes = 0) {
  DispatchSpec s;
  s.group = Iota(4, 10);
  s.ranks_per_node = 2;
  s.tokens_per_rank = 28;
  s.hidden = 128;
  s.num_experts = 8;
  s.top_k = 2;
  s.max_nodes_per_token = max_nodes;
  return s;
}

TEST(DispatchTraffic, HypergeometricMissProbability) {
  // C(6,2)/C(8,2) = 15/28; C(4,2)/C(8,2) = 6/28; fewer items left than draws: 0.
  EXPECT_DOUBLE_EQ(MissAllProbability(8, 2, 2), 15.0 / 28);
  EXPECT_DOUBLE_EQ(MissAllProbability(8, 4, 2), 6.0 / 28);
  EXPECT_EQ(MissAllProbability(4, 4, 2), 0);
  EXPECT_EQ(MissAllProbability(8, 0, 2), 1);
}

TEST(DispatchTraffic, FanoutOfTheSmallGroupByHand) {
  // Unlimited: a rank (2 of 8 experts) is missed by both draws with 15/28, so P_rank = 13/28;
  // a node (4 of 8) with 6/28, P_node = 22/28.
  DispatchFanout f = ExpectedFanout(Small().Routing());
  EXPECT_DOUBLE_EQ(f.rank_probability, 13.0 / 28);
  EXPECT_DOUBLE_EQ(f.node_probability, 22.0 / 28);
  EXPECT_DOUBLE_EQ(f.ranks, 4 * 13.0 / 28);
  EXPECT_DOUBLE_EQ(f.other_ranks, 3 * 13.0 / 28);
  EXPECT_DOUBLE_EQ(f.nodes, 2 * 22.0 / 28);
  EXPECT_DOUBLE_EQ(f.other_nodes, 22.0 / 28);
  EXPECT_DOUBLE_EQ(f.remote_ranks, 2 * 13.0 / 28);
  // M = 1: the token's node is one of 2 (1/2), then 2 of its 4 experts: a rank is missed with
  // C(2,2)/C(4,2) = 1/6, so P_rank = 1/2 x 5/6 = 5/12; the chosen node always gets it, P_node =
  // 1/2. One node per token on average: every token crosses to the other node half the time.
  f = ExpectedFanout(Small(1).Routing());
  EXPECT_DOUBLE_EQ(f.rank_probability, 5.0 / 12);
  EXPECT_DOUBLE_EQ(f.node_probability, 0.5);
  EXPECT_DOUBLE_EQ(f.nodes, 1);
  // M larger than the number of nodes is no limit.
  EXPECT_DOUBLE_EQ(ExpectedFanout(Small(8).Routing()).node_probability, 22.0 / 28);
}

TEST(DispatchTraffic, PerRankBytesByHand) {
  // T = 28, B = 132. Hierarchical: RDMA = T (N-1) P_node B = 28 x 22/28 x 132 = 2904; NVLink =
  // (m-1) N T P_rank B = 1 x 2 x 13 x 132 = 3432. Flat: remote = (n-m) T P_rank B = 2 x 13 x 132
  // = 3432; local = (m-1) T P_rank B = 1716. Bottleneck (RDMA, own node included) = T N P_node B
  // = 2 x 22 x 132 = 5808.
  const DispatchTraffic d = ExpectedTraffic(Small(), DispatchDirection::kDispatch);
  EXPECT_DOUBLE_EQ(d.rdma_bytes, 2904);
  EXPECT_DOUBLE_EQ(d.nvlink_bytes, 3432);
  EXPECT_DOUBLE_EQ(d.flat_remote_bytes, 3432);
  EXPECT_DOUBLE_EQ(d.flat_local_bytes, 1716);
  EXPECT_DOUBLE_EQ(d.bottleneck_bytes, 5808);
  EXPECT_TRUE(d.bottleneck_is_rdma);
  // Combine: the same counts with 256 bytes per token (BF16, no scales).
  const DispatchTraffic c = ExpectedTraffic(Small(), DispatchDirection::kCombine);
  EXPECT_DOUBLE_EQ(c.rdma_bytes, 22 * 256);
  EXPECT_DOUBLE_EQ(c.nvlink_bytes, 26 * 256);
  // One node (ranks_per_node 4): no RDMA; the bottleneck is NVLink, received tokens including
  // the rank's own: T n P_rank B = 4 x 13 x 132 = 6864.
  DispatchSpec one = Small();
  one.ranks_per_node = 4;
  const DispatchTraffic i = ExpectedTraffic(one, DispatchDirection::kDispatch);
  EXPECT_EQ(i.rdma_bytes, 0);
  EXPECT_FALSE(i.bottleneck_is_rdma);
  EXPECT_DOUBLE_EQ(i.bottleneck_bytes, 6864);
}

TEST(DispatchPlan, HierarchicalSendsOneCopyPerNodeThenForwardsOverNvlink) {
  auto plan = BuildDispatchPlan(Small(), Dispatcher::kHierarchical, DispatchDirection::kDispatch);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  ASSERT_EQ(plan->stages.size(), 1u);
  ASSERT_EQ(plan->stages[0].streams.size(), 2u);  // RDMA and NVLink, concurrent
  // RDMA to the same local rank of the other node: 10 <-> 12, 11 <-> 13, 2904 bytes each.
  std::map<std::pair<DeviceId, DeviceId>, double> rdma, nvlink;
  for (const Transfer& t : plan->stages[0].streams[0][0].transfers) rdma[{t.src, t.dst}] = t.bytes;
  for (const Transfer& t : plan->stages[0].streams[1][0].transfers) {
    nvlink[{t.src, t.dst}] = t.bytes;
  }
  const std::map<std::pair<DeviceId, DeviceId>, double> want_rdma = {
      {{10, 12}, 2904}, {{11, 13}, 2904}, {{12, 10}, 2904}, {{13, 11}, 2904}};
  const std::map<std::pair<DeviceId, DeviceId>, double> want_nvlink = {
      {{10, 11}, 3432}, {{11, 10}, 3432}, {{12, 13}, 3432}, {{13, 12}, 3432}};
  EXPECT_EQ(rdma, want_rdma);
  EXPECT_EQ(nvlink, want_nvlink);
  // Combine: the same pairs reversed, 256 bytes per token.
  auto combine = BuildDispatchPlan(Small(), Dispatcher::kHierarchical, DispatchDirection::kCombine);
  ASSERT_TRUE(combine.ok());
  const Transfer& back = combine->stages[0].streams[0][0].transfers[0];
  EXPECT_EQ(back.src, 12);
  EXPECT_EQ(back.dst, 10);
  EXPECT_DOUBLE_EQ(back.bytes, 22 * 256);
}

TEST(DispatchPlan, PlanBytesEqualTheTrafficFormulas) {
  // DeepSeek-V3 on 64 ranks (8 nodes of 8), M = 4, and the small group: every plan moves n x the
  // per-rank bytes of ExpectedTraffic.
  DispatchSpec v3;
  v3.group = Iota(64);
  v3.max_nodes_per_token = 4;
  for (const DispatchSpec& s : {v3, Small(), Small(1)}) {
    for (DispatchDirection d : {DispatchDirection::kDispatch, DispatchDirection::kCombine}) {
      const double n = static_cast<double>(s.group.size());
      const DispatchTraffic t = ExpectedTraffic(s, d);
      auto h = BuildDispatchPlan(s, Dispatcher::kHierarchical, d);
      auto f = BuildDispatchPlan(s, Dispatcher::kFlat, d);
      auto a = BuildDispatchPlan(s, Dispatcher::kAllGather, d);
      ASSERT_TRUE(h.ok() && f.ok() && a.ok());
      EXPECT_NEAR(h->TotalBytes(), n * (t.rdma_bytes + t.nvlink_bytes), 1e-6 * h->TotalBytes());
      EXPECT_NEAR(f->TotalBytes(), n * (t.flat_remote_bytes + t.flat_local_bytes),
                  1e-6 * f->TotalBytes());
      // All-gather (ring): every rank receives the (n-1) T tokens of the others.
      EXPECT_NEAR(a->TotalBytes(),
                  n * (n - 1) * static_cast<double>(s.tokens_per_rank) * s.TokenBytes(d),
                  1e-6 * a->TotalBytes());
    }
  }
}

TEST(DispatchTraffic, DeepSeekV3NodeLimitCutsCrossNodeBytesByTheHandComputedFactor) {
  // DeepSeek-V3 layer: 256 routed experts, top-8, EP 64 = 8 nodes of 8 GPUs (4 experts per rank,
  // 32 per node). Cross-node bytes of the hierarchical (deduplicated) dispatch are T x (N-1)
  // P_node x B:
  //   unlimited: P_node = 1 - C(224,8)/C(256,8) = 1 - prod_{i<8} (224-i)/(256-i)
  //              = 1 - 0.875 x 0.87451 x 0.87402 x 0.87352 x 0.87302 x 0.87251 x 0.872 x 0.87149
  //              = 1 - 0.338168 = 0.661832; 7 x 0.661832 = 4.63282 remote nodes per token;
  //   M = 4:     k/M = 2, so every chosen node is reached (dispatch.h): P_node = 4/8, and
  //              7 x 0.5 = 3.5 remote nodes per token.
  //   factor 4.63282 / 3.5 = 1.32366.
  // The flat all-to-all gains little: one copy per rank, P_rank = 1 - C(252,8)/C(256,8) =
  // 0.119934 unlimited; at M = 4, P_rank = 0.5 x (1 - (1 - 4/32) x C(120,4)/C(124,4)) = 0.5 x
  // (1 - 0.875 x (120 x 119 x 118 x 117) / (124 x 123 x 122 x 121)) = 0.5 x (1 - 0.875 x
  // 0.875637) = 0.116909: a factor of 1.02587.
  DispatchSpec s;
  s.group = Iota(64);
  const DispatchTraffic unlimited = ExpectedTraffic(s, DispatchDirection::kDispatch);
  s.max_nodes_per_token = 4;
  const DispatchTraffic limited = ExpectedTraffic(s, DispatchDirection::kDispatch);
  const double b = 7168 + 56 * 4;  // FP8 + 56 fp32 scales = 7392 bytes per token
  EXPECT_NEAR(unlimited.rdma_bytes, 4096 * 4.63282 * b, 1e-5 * unlimited.rdma_bytes);
  EXPECT_DOUBLE_EQ(limited.rdma_bytes, 4096 * 3.5 * b);
  EXPECT_NEAR(unlimited.rdma_bytes / limited.rdma_bytes, 1.32366, 1e-5);
  EXPECT_NEAR(unlimited.flat_remote_bytes / limited.flat_remote_bytes, 1.02587, 1e-5);
  // Per-node deduplication: at M = 4 the flat dispatch sends 56 x 0.116909 = 6.54690 remote
  // copies per token, the hierarchical 3.5: 1.87054 x fewer bytes cross the network.
  EXPECT_NEAR(limited.flat_remote_bytes / limited.rdma_bytes, 1.87054, 1e-5);
}

// DeepEP's routing in tests/legacy/test_internode.py, drawn: scores |N(0,1)| + 1 per expert, the
// top-M nodes by their best score, the top-k experts of those nodes. The expected fan-out of
// dispatch.h is within 1% of the mean over 4,000 tokens (its standard error is ~0.2%).
TEST(DispatchTraffic, NodeLimitedFanoutMatchesAMonteCarloOfDeepEpsRouting) {
  for (const int nodes : {8, 16}) {
    ExpertRouting r;
    r.ranks = 8 * nodes;
    r.num_experts = 256;
    r.top_k = 8;
    r.max_nodes_per_token = 4;
    const int per_node = 256 / nodes, per_rank = 256 / static_cast<int>(r.ranks);
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal;
    const int tokens = 4000;
    double node_sum = 0, rank_sum = 0;
    std::vector<double> score(256);
    for (int t = 0; t < tokens; ++t) {
      for (double& x : score) x = std::abs(normal(rng)) + 1;
      std::vector<std::pair<double, int>> best(static_cast<size_t>(nodes));
      for (int b = 0; b < nodes; ++b) {
        best[static_cast<size_t>(b)] = {
            *std::max_element(score.begin() + b * per_node, score.begin() + (b + 1) * per_node), b};
      }
      std::sort(best.rbegin(), best.rend());
      std::vector<std::pair<double, int>> pool;
      for (int i = 0; i < 4; ++i) {
        const int b = best[static_cast<size_t>(i)].second;
        for (int x = b * per_node; x < (b + 1) * per_node; ++x) {
          pool.push_back({score[static_cast<size_t>(x)], x});
        }
      }
      std::partial_sort(pool.begin(), pool.begin() + 8, pool.end(), std::greater<>());
      std::set<int> hit_nodes, hit_ranks;
      for (int i = 0; i < 8; ++i) {
        hit_nodes.insert(pool[static_cast<size_t>(i)].second / per_node);
        hit_ranks.insert(pool[static_cast<size_t>(i)].second / per_rank);
      }
      node_sum += static_cast<double>(hit_nodes.size());
      rank_sum += static_cast<double>(hit_ranks.size());
    }
    const DispatchFanout f = ExpectedFanout(r);
    EXPECT_NEAR(f.nodes / (node_sum / tokens), 1, 0.01) << nodes << " nodes";
    EXPECT_NEAR(f.ranks / (rank_sum / tokens), 1, 0.01) << nodes << " nodes";
  }
}

// Two nodes of two devices: device d has NVLink up (id 4d) and down (4d+1) at `nvlink` B/s and
// IB up (4d+2) and down (4d+3) at `ib`; routes inside a node use NVLink, across nodes IB.
struct TwoNodes {
  std::vector<LinkSpec> links;
  std::map<std::pair<DeviceId, DeviceId>, std::vector<LinkId>> routes;
  TwoNodes(double nvlink, double ib, double latency) {
    for (int d = 0; d < 4; ++d) {
      links.insert(links.end(), {{nvlink, latency}, {nvlink, 0}, {ib, latency}, {ib, 0}});
    }
    for (int a = 0; a < 4; ++a) {
      for (int b = 0; b < 4; ++b) {
        if (a == b) continue;
        const int off = a / 2 == b / 2 ? 0 : 2;
        routes[{a + 10, b + 10}] = {4 * a + off, 4 * b + off + 1};
      }
    }
  }
  RouteFn Route() const {
    return [this](DeviceId a, DeviceId b) -> std::span<const LinkId> { return routes.at({a, b}); };
  }
};

TEST(DispatchPlan, HierarchicalTimeIsTheSlowerOfItsTwoStreams) {
  // RDMA 2904 bytes per link at 1,452 B/s = 2 s; NVLink 3432 bytes at 3,432 B/s = 1 s; the
  // streams overlap, so 2 s + the 1 us route latency, on both network levels.
  const TwoNodes net(3432, 1452, 1e-6);
  auto plan = BuildDispatchPlan(Small(), Dispatcher::kHierarchical, DispatchDirection::kDispatch);
  ASSERT_TRUE(plan.ok());
  AnalyticalCollectiveTimer timer(&net.links, net.Route());
  EXPECT_NEAR(timer.Seconds(*plan), 2 + 1e-6, 1e-9);
  auto flow = FlowCollectiveSeconds(*plan, net.links, net.Route());
  ASSERT_TRUE(flow.ok()) << flow.status().message();
  EXPECT_NEAR(*flow, 2 + 1e-6, 1e-6);
  // Flat: each device sends 13 x 132 = 1716 bytes to each of its 2 remote peers over its one IB
  // uplink: 3432 / 1452 = 2.3636 s; deduplication saves the difference.
  auto flat = BuildDispatchPlan(Small(), Dispatcher::kFlat, DispatchDirection::kDispatch);
  ASSERT_TRUE(flat.ok());
  EXPECT_NEAR(timer.Seconds(*flat), 3432.0 / 1452 + 1e-6, 1e-9);
}

TEST(DispatchPlan, LayoutExchangeIsOneSmallAllToAll) {
  // (1 + 2 experts per rank) int32 counts to each of the 3 peers: 12 bytes per pair.
  auto plan = BuildLayoutExchangePlan(Small());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->TotalTransfers(), 12);
  EXPECT_DOUBLE_EQ(plan->TotalBytes(), 12 * 12);
}

TEST(DispatchSpec, BadInputIsRejectedWithTheField) {
  struct Case {
    DispatchSpec spec;
    std::string message;
  };
  std::vector<Case> cases;
  DispatchSpec s = Small();
  s.num_experts = 6;
  cases.push_back({s, "num_experts=6 must be a positive multiple of ranks=4, at most 1048576"});
  s = Small();
  s.ranks_per_node = 3;
  cases.push_back({s, "ranks=4 is not a whole number of nodes of ranks_per_node=3"});
  s = Small(1);
  s.top_k = 5;
  cases.push_back({s, "top_k=5 must be in [1, 4] (the experts of the nodes a token may reach)"});
  s = Small();
  s.max_nodes_per_token = -1;
  cases.push_back({s, "max_nodes_per_token=-1 must be >= 0 (0 = unlimited)"});
  s = Small();
  s.group = {1, 2, 3, 1};
  cases.push_back({s, "the EP group lists a device twice"});
  s = Small();
  s.tokens_per_rank = 0;
  cases.push_back({s, "tokens_per_rank=0 must be in [1, 2^31]"});
  s = Small();
  s.dispatch_bytes_per_element = 0;
  cases.push_back({s, "dispatch_bytes_per_element=0 must be in (0, 8] bytes"});
  for (const Case& c : cases) {
    const Status st = ValidateDispatchSpec(c.spec);
    EXPECT_EQ(st.code(), Status::Code::kInvalidInput);
    EXPECT_EQ(st.message(), c.message);
    EXPECT_FALSE(BuildDispatchPlan(c.spec, Dispatcher::kFlat, DispatchDirection::kDispatch).ok());
  }
  EXPECT_EQ(ParseDispatcher("deepep").status().message(),
            "unknown dispatcher \"deepep\" (one of: hierarchical, flat, allgather)");
}

}  // namespace
}  // namespace moesim::sim
