// Collectives timed on both network levels over hand-made networks: closed forms, contention,
// skew, stuck detection.
#include "sim/collectives/runner.h"

#include <gtest/gtest.h>

#include <map>
#include <numeric>

#include "sim/collectives/algorithms.h"

namespace moesim::sim {
namespace {

// A network built by hand: links plus an explicit route table.
struct Fixture {
  std::vector<LinkSpec> links;
  std::map<std::pair<DeviceId, DeviceId>, std::vector<LinkId>> routes;
  RouteFn Route() const {
    return [this](DeviceId a, DeviceId b) -> std::span<const LinkId> { return routes.at({a, b}); };
  }
};

// n devices on a non-blocking switch: device i has an uplink (id 2i) and a downlink (id 2i+1),
// both of rate B; the uplink has latency alpha, the downlink none, so every route costs alpha.
Fixture Star(int n, double B, double alpha) {
  Fixture f;
  for (int i = 0; i < n; ++i) {
    f.links.push_back({B, alpha});
    f.links.push_back({B, 0});
  }
  for (int a = 0; a < n; ++a) {
    for (int b = 0; b < n; ++b) {
      if (a != b) f.routes[{a, b}] = {2 * a, 2 * b + 1};
    }
  }
  return f;
}

std::vector<DeviceId> Iota(int n, int first = 0) {
  std::vector<DeviceId> g(static_cast<size_t>(n));
  std::iota(g.begin(), g.end(), first);
  return g;
}

CollectivePlan Plan(CollectiveOp op, std::vector<DeviceId> group, double bytes, Algorithm a) {
  CollectiveSpec spec;
  spec.op = op;
  spec.group = std::move(group);
  spec.bytes = bytes;
  auto p = BuildCollectivePlan(spec, a);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return *p;
}

TEST(Collectives, RingAllReduceMatchesTheClosedForm) {
  // Ring all-reduce of S bytes over n devices: 2(n-1)/n * S/B + 2(n-1) * alpha.
  // n = 8, S = 1 GB, B = 100 GB/s, alpha = 1 us:
  //   14/8 * 1e9/1e11 = 17.5 ms;  14 * 1 us = 14 us;  T = 17.514 ms.
  const Fixture f = Star(8, 100e9, 1e-6);
  const CollectivePlan plan = Plan(CollectiveOp::kAllReduce, Iota(8), 1e9, Algorithm::kRing);
  AnalyticalCollectiveTimer analytical(&f.links, f.Route());
  EXPECT_NEAR(analytical.Seconds(plan), 17.514e-3, 1e-15);
  auto flow = FlowCollectiveSeconds(plan, f.links, f.Route());
  ASSERT_TRUE(flow.ok()) << flow.status().message();
  // Each of the 14 steps rounds its end up to a whole picosecond.
  EXPECT_NEAR(*flow, 17.514e-3, 14e-12);
}

TEST(Collectives, RingAllGatherAndReduceScatterAreHalfAnAllReduce) {
  // (n-1)/n * S/B + (n-1) alpha = 7/8 * 1e9/1e11 + 7 us = 8.757 ms.
  const Fixture f = Star(8, 100e9, 1e-6);
  AnalyticalCollectiveTimer analytical(&f.links, f.Route());
  for (CollectiveOp op : {CollectiveOp::kAllGather, CollectiveOp::kReduceScatter}) {
    const CollectivePlan plan = Plan(op, Iota(8), 1e9, Algorithm::kRing);
    EXPECT_NEAR(analytical.Seconds(plan), 8.757e-3, 1e-15);
    EXPECT_NEAR(*FlowCollectiveSeconds(plan, f.links, f.Route()), 8.757e-3, 7e-12);
  }
}

TEST(Collectives, FlowAndAnalyticalAgreeWithoutContention) {
  // Every algorithm alone on the star: within 2% (exactly, up to picosecond rounding, here).
  const Fixture f = Star(8, 50e9, 2e-6);
  AnalyticalCollectiveTimer analytical(&f.links, f.Route());
  const std::vector<std::pair<CollectiveOp, Algorithm>> cases = {
      {CollectiveOp::kAllReduce, Algorithm::kRing},
      {CollectiveOp::kAllReduce, Algorithm::kBidirectionalRing},
      {CollectiveOp::kAllReduce, Algorithm::kDoubleBinaryTree},
      {CollectiveOp::kAllReduce, Algorithm::kHalvingDoubling},
      {CollectiveOp::kAllGather, Algorithm::kRing},
      {CollectiveOp::kAllToAll, Algorithm::kDirect},
      {CollectiveOp::kAllToAll, Algorithm::kPairwise},
      {CollectiveOp::kBroadcast, Algorithm::kRing},
  };
  for (const auto& [op, algo] : cases) {
    const CollectivePlan plan = Plan(op, Iota(8), 256e6, algo);
    const double a = analytical.Seconds(plan);
    const double fl = *FlowCollectiveSeconds(plan, f.links, f.Route());
    EXPECT_NEAR(fl / a, 1.0, 0.02) << CollectiveOpName(op) << " " << AlgorithmName(algo);
  }
}

TEST(Collectives, TwoAllReducesSharingALinkTakeTwiceAsLongInFlowOnly) {
  // Ring A over devices 0-3 and ring B over devices 4-7, each hop its own link of B = 10 GB/s,
  // except that A's hop 3->0 and B's hop 7->4 both cross one shared link (id 6). No latency.
  // Alone, each ring step moves S/4 per hop at B: T = 6 * (S/4)/B = 6 * 2.5e8/1e10 = 150 ms
  // for S = 1 GB. Together, the shared link gives each of its two flows B/2, every step of both
  // rings waits for that hop: 300 ms each. The analytical level does not see the other ring.
  Fixture f;
  f.links.assign(7, LinkSpec{10e9, 0});
  for (int i = 0; i < 3; ++i) {
    f.routes[{i, i + 1}] = {i};          // links 0..2 for ring A
    f.routes[{4 + i, 5 + i}] = {3 + i};  // links 3..5 for ring B
  }
  f.routes[{3, 0}] = {6};
  f.routes[{7, 4}] = {6};
  const CollectivePlan a = Plan(CollectiveOp::kAllReduce, Iota(4), 1e9, Algorithm::kRing);
  const CollectivePlan b = Plan(CollectiveOp::kAllReduce, Iota(4, 4), 1e9, Algorithm::kRing);

  AnalyticalCollectiveTimer analytical(&f.links, f.Route());
  EXPECT_NEAR(analytical.Seconds(a), 0.150, 1e-12);
  EXPECT_NEAR(analytical.Seconds(b), 0.150, 1e-12);
  EXPECT_NEAR(*FlowCollectiveSeconds(a, f.links, f.Route()), 0.150, 1e-9);

  Engine engine;
  FlowNetwork net(&engine, f.links);
  SimTime end_a, end_b;
  StartCollective(
      &net, std::make_shared<const CollectivePlan>(a), f.Route(), [&] { end_a = engine.now(); },
      "A");
  StartCollective(
      &net, std::make_shared<const CollectivePlan>(b), f.Route(), [&] { end_b = engine.now(); },
      "B");
  ASSERT_TRUE(engine.Run().ok());
  EXPECT_NEAR(end_a.seconds(), 0.300, 1e-9);
  EXPECT_NEAR(end_b.seconds(), 0.300, 1e-9);
}

TEST(Collectives, SkewedAllToAllVFollowsTheHottestLink) {
  // 8 devices on the star (B = 10 GB/s, no latency). Every device sends b = 1 MB to each other
  // device, except that everyone sends 4b to device 0: device 0 receives 7 x 4b = 28 MB, four
  // times what any other device receives (7 x 1 MB = 7 MB).
  //   Hottest link: device 0's downlink, 28 MB / 10 GB/s = 2.8 ms.
  //   (Uplinks carry at most 4b + 6b = 10 MB: 1 ms.)
  // Flow level: all 56 flows get B/7 at first (every downlink has 7 flows); the 1 MB flows end
  // at 0.7 ms; the 4 MB flows to device 0 keep B/7 (its downlink still has 7) and end at 2.8 ms.
  // A uniform all-to-all of b per pair takes 7 MB / 10 GB/s = 0.7 ms: the skew costs 4x.
  const Fixture f = Star(8, 10e9, 0);
  CollectiveSpec spec;
  spec.op = CollectiveOp::kAllToAllV;
  spec.group = Iota(8);
  spec.matrix.assign(64, 1e6);
  for (int i = 0; i < 8; ++i) {
    spec.matrix[static_cast<size_t>(i * 8 + i)] = 0;
    if (i != 0) spec.matrix[static_cast<size_t>(i * 8)] = 4e6;
  }
  auto plan = BuildCollectivePlan(spec, Algorithm::kDirect);
  ASSERT_TRUE(plan.ok());
  AnalyticalCollectiveTimer analytical(&f.links, f.Route());
  EXPECT_NEAR(analytical.Seconds(*plan), 2.8e-3, 1e-15);
  EXPECT_NEAR(*FlowCollectiveSeconds(*plan, f.links, f.Route()), 2.8e-3, 1e-11);

  const CollectivePlan uniform = Plan(CollectiveOp::kAllToAll, Iota(8), 8e6, Algorithm::kDirect);
  EXPECT_NEAR(*FlowCollectiveSeconds(uniform, f.links, f.Route()), 0.7e-3, 1e-11);
}

TEST(Collectives, AStuckCollectiveIsReportedNotHung) {
  // Device 2's downlink is down (capacity 0): the ring's step into device 2 never ends.
  Fixture f = Star(4, 10e9, 0);
  f.links[5].bytes_per_s = 0;
  const CollectivePlan plan = Plan(CollectiveOp::kAllReduce, Iota(4), 4e6, Algorithm::kRing);
  auto t = FlowCollectiveSeconds(plan, f.links, f.Route());
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(),
            "simulation stuck at t=0.0001 s: no event left, but 2 item(s) wait: flow 1e+06 of "
            "1e+06 bytes left on links [2,5] with no bandwidth; collective ring (ring): stage 1/1 "
            "stream 1 step 1 (repeat 1/6) waits on 1 transfer(s)");
}

TEST(Collectives, EmptyPlanTakesNoTime) {
  const Fixture f = Star(2, 1e9, 1e-6);
  const CollectivePlan plan = Plan(CollectiveOp::kAllReduce, {0}, 1e6, Algorithm::kRing);
  EXPECT_EQ(*FlowCollectiveSeconds(plan, f.links, f.Route()), 0.0);
  AnalyticalCollectiveTimer analytical(&f.links, f.Route());
  EXPECT_EQ(analytical.Seconds(plan), 0.0);
}

}  // namespace
}  // namespace moesim::sim
