// FlowNetwork (the `flow` level) and BottleneckTimer (the `analytical` level) on hand-made links.
#include "sim/net/flow_network.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <span>
#include <vector>

#include "sim/net/bottleneck.h"

namespace moesim::sim {
namespace {

SimTime Seconds(double s) { return SimTime::FromSeconds(s); }

TEST(FlowNetwork, OneFlowTakesLatencyPlusBytesOverCapacity) {
  // 1 GB over two links of 100 and 50 GB/s with 1 us and 2 us latency:
  // 1e9 / 50e9 = 20 ms of bandwidth + 3 us of latency = 20.003 ms.
  Engine e;
  FlowNetwork net(&e, {{100e9, 1e-6}, {50e9, 2e-6}});
  SimTime done;
  const std::vector<LinkId> route = {0, 1};
  net.Start(route, 1e9, [&] { done = e.now(); });
  ASSERT_TRUE(e.Run().ok());
  EXPECT_EQ(done, Seconds(20.003e-3));
  EXPECT_DOUBLE_EQ(net.link_bytes()[0], 1e9);
  EXPECT_DOUBLE_EQ(net.link_bytes()[1], 1e9);
}

TEST(FlowNetwork, TwoFlowsOnOneLinkTakeTwiceAsLong) {
  // 100 B/s, 100 bytes each, no latency: alone 1 s; together 50 B/s each: 2 s.
  Engine e;
  FlowNetwork net(&e, {{100, 0}});
  std::vector<SimTime> done;
  const std::vector<LinkId> route = {0};
  for (int i = 0; i < 2; ++i) net.Start(route, 100, [&] { done.push_back(e.now()); });
  ASSERT_TRUE(e.Run().ok());
  EXPECT_EQ(done, (std::vector<SimTime>{Seconds(2), Seconds(2)}));
  EXPECT_EQ(net.solves(), 2);  // one at the start, one at the end: simultaneous changes batch
}

TEST(FlowNetwork, RatesChangeWhenAFlowJoinsAndLeaves) {
  // Link of 100 B/s. f1: 100 bytes from t=0; f2: 100 bytes from t=0.5.
  //   0 .. 0.5: f1 alone at 100 B/s -> 50 bytes sent.
  //   from 0.5: 50 B/s each; f1's last 50 bytes take 1 s -> f1 ends at 1.5; f2 has 50 sent.
  //   from 1.5: f2 alone at 100 B/s -> its last 50 bytes take 0.5 s -> ends at 2.0.
  Engine e;
  FlowNetwork net(&e, {{100, 0}});
  SimTime f1, f2;
  const std::vector<LinkId> route = {0};
  net.Start(route, 100, [&] { f1 = e.now(); });
  e.ScheduleAt(Seconds(0.5), [&] { net.Start(route, 100, [&] { f2 = e.now(); }); });
  ASSERT_TRUE(e.Run().ok());
  EXPECT_EQ(f1, Seconds(1.5));
  EXPECT_EQ(f2, Seconds(2.0));
}

TEST(FlowNetwork, ParkingLotTimes) {
  // Three links of 1 GB/s; a long flow over all three and one short flow on each, 1 GB each.
  // Max-min: everyone gets 0.5 GB/s, so all finish at 2 s.
  Engine e;
  FlowNetwork net(&e, {{1e9, 0}, {1e9, 0}, {1e9, 0}});
  std::vector<SimTime> done;
  const std::vector<LinkId> all = {0, 1, 2}, l0 = {0}, l1 = {1}, l2 = {2};
  for (const auto* r : {&all, &l0, &l1, &l2}) {
    net.Start(*r, 1e9, [&] { done.push_back(e.now()); });
  }
  ASSERT_TRUE(e.Run().ok());
  ASSERT_EQ(done.size(), 4u);
  for (SimTime t : done) EXPECT_EQ(t, Seconds(2));
}

TEST(FlowNetwork, EmptyRouteAndZeroBytesAreDeliveredAfterTheLatency) {
  Engine e;
  FlowNetwork net(&e, {{100, 1e-6}});
  SimTime a = SimTime::Max(), b = SimTime::Max();
  net.Start({}, 1e9, [&] { a = e.now(); });
  const std::vector<LinkId> route = {0};
  net.Start(route, 0, [&] { b = e.now(); });
  ASSERT_TRUE(e.Run().ok());
  EXPECT_EQ(a, SimTime::Zero());
  EXPECT_EQ(b, Seconds(1e-6));
  EXPECT_EQ(net.solves(), 0);
}

TEST(FlowNetwork, AGroupIsDoneWhenItsLastFlowIsDelivered) {
  // Links: 0 of 100 B/s (1 s latency), 1 of 50 B/s (no latency). The group: 100 bytes on {0},
  // 100 bytes on {0, 1}, 0 bytes on {1}, an empty route. Max-min: 50 B/s each on link 0 (the
  // second flow's 50 B/s fits on link 1), so both send their 100 bytes in 2 s and are delivered
  // at 3 s (latency 1 s each); the zero-byte ones at once: the group is done at 3 s.
  Engine e;
  FlowNetwork net(&e, {{100, 1}, {50, 0}});
  const std::vector<LinkId> a = {0}, b = {0, 1}, c = {1}, none = {};
  const std::vector<std::span<const LinkId>> routes = {a, b, c, none};
  const std::vector<double> bytes = {100, 100, 0, 0};
  int calls = 0;
  SimTime done;
  net.StartGroup(routes, bytes, [&] {
    ++calls;
    done = e.now();
  });
  ASSERT_TRUE(e.Run().ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(done, Seconds(3));
  EXPECT_DOUBLE_EQ(net.link_bytes()[0], 200);
  EXPECT_DOUBLE_EQ(net.link_bytes()[1], 100);
  // The same flows started one by one: the last is delivered at the same instant.
  Engine e2;
  FlowNetwork net2(&e2, {{100, 1}, {50, 0}});
  SimTime last;
  for (size_t i = 0; i < routes.size(); ++i) {
    net2.Start(routes[i], bytes[i], [&] { last = std::max(last, e2.now()); });
  }
  ASSERT_TRUE(e2.Run().ok());
  EXPECT_EQ(last, done);
  // No routes: done at once, as an event.
  Engine e3;
  FlowNetwork net3(&e3, {{100, 0}});
  bool ran = false;
  net3.StartGroup({}, {}, [&] { ran = true; });
  EXPECT_FALSE(ran);
  ASSERT_TRUE(e3.Run().ok());
  EXPECT_TRUE(ran);
}

TEST(FlowNetwork, AFlowOnADeadLinkIsReportedStuck) {
  // Link 1 has capacity 0 (down). The flow across it never finishes; the run must end with an
  // error naming it instead of hanging or returning as if done.
  Engine e;
  FlowNetwork net(&e, {{100, 0}, {0, 0}});
  bool delivered = false;
  const std::vector<LinkId> route = {0, 1};
  net.Start(
      route, 64, [&] { delivered = true; }, "gpu3->gpu4");
  const Status st = e.Run();
  EXPECT_FALSE(delivered);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(),
            "simulation stuck at t=0 s: no event left, but 1 item(s) wait: flow gpu3->gpu4: 64 "
            "of 64 bytes left on links [0,1] with no bandwidth");
}

TEST(FlowNetwork, SameInputSameTimesBitForBit) {
  auto run = [] {
    Engine e;
    FlowNetwork net(&e, {{3e9, 1e-7}, {7e9, 3e-7}, {5e9, 2e-7}});
    std::vector<int64_t> t;
    const std::vector<std::vector<LinkId>> routes = {{0, 1}, {1, 2}, {0, 2}, {2}, {0, 1, 2}};
    for (int i = 0; i < 40; ++i) {
      const auto& r = routes[static_cast<size_t>(i) % routes.size()];
      e.ScheduleAt(SimTime::FromPicoseconds(i * 1234567), [&e, &net, &t, &r, i] {
        net.Start(r, 1e6 * (1 + i % 7), [&e, &t] { t.push_back(e.now().picoseconds()); });
      });
    }
    EXPECT_TRUE(e.Run().ok());
    return t;
  };
  EXPECT_EQ(run(), run());
}

TEST(BottleneckTimer, RingStepIsAlphaPlusBytesOverRate) {
  // Four links of 10 GB/s and 1 us; a ring step puts one 1 MB transfer on each:
  // T = 1 us + 1e6 / 10e9 = 101 us.
  const std::vector<LinkSpec> links(4, LinkSpec{10e9, 1e-6});
  BottleneckTimer t(&links);
  for (LinkId l = 0; l < 4; ++l) t.Add(std::vector<LinkId>{l}, 1e6);
  EXPECT_DOUBLE_EQ(t.Finish(), 101e-6);
  EXPECT_DOUBLE_EQ(t.Finish(), 0);  // reset
}

TEST(BottleneckTimer, TheMostLoadedLinkSetsBeta) {
  // Transfers: 1 MB on [0,1], 1 MB on [1], 2 MB on [2] (links 10, 10, 40 GB/s; latencies
  // 1, 2, 4 us). Loads: link 0: 1 MB/10 GB/s = 100 us; link 1: 2 MB/10 = 200 us; link 2:
  // 2 MB/40 = 50 us. Longest latency: route [2] = 4 us (route [0,1] = 3 us). T = 204 us.
  const std::vector<LinkSpec> links = {{10e9, 1e-6}, {10e9, 2e-6}, {40e9, 4e-6}};
  BottleneckTimer t(&links);
  t.Add(std::vector<LinkId>{0, 1}, 1e6);
  t.Add(std::vector<LinkId>{1}, 1e6);
  t.Add(std::vector<LinkId>{2}, 2e6);
  EXPECT_NEAR(t.Finish(), 204e-6, 1e-15);
}

}  // namespace
}  // namespace moesim::sim
