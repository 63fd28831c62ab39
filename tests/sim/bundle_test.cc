// Bundles: a variable charging a coefficient x its rate to each constraint (MaxMinSystem), and a
// bundle of identical flows moving at one rate (FlowNetwork::StartBundle). Systems worked by
// hand, plus the equivalence with explicit flows.
#include <gtest/gtest.h>

#include <vector>

#include "sim/net/flow_network.h"
#include "sim/net/maxmin.h"

namespace moesim::sim {
namespace {

using C = MaxMinSystem::ConstraintId;
using V = MaxMinSystem::VariableId;

TEST(MaxMinCoefficients, AloneABundleRunsAtItsBottleneck) {
  // System: 2 x <= 100 (link A), 1 x <= 80 (link B).  Shares: A 50, B 80.  Expect: x = 50.
  MaxMinSystem s;
  C a = s.AddConstraint(100), b = s.AddConstraint(80);
  const std::vector<C> cons = {a, b};
  const std::vector<double> coef = {2, 1};
  V x = s.AddVariable(cons, coef);
  s.Solve();
  EXPECT_DOUBLE_EQ(s.rate(x), 50);
  EXPECT_DOUBLE_EQ(s.usage(a), 100);
  EXPECT_DOUBLE_EQ(s.usage(b), 50);
}

TEST(MaxMinCoefficients, BundleAndFlowShareByProgressiveFilling) {
  // System: 3 x + y <= 90 (link A); y alone on link B <= 100.
  // A's share: 90 / (3 + 1) = 22.5 < B's 100, so A saturates first: x = y = 22.5.
  MaxMinSystem s;
  C a = s.AddConstraint(90), b = s.AddConstraint(100);
  const std::vector<C> ca = {a};
  const std::vector<double> three = {3};
  V x = s.AddVariable(ca, three);
  const std::vector<C> cab = {a, b};
  V y = s.AddVariable(cab);
  s.Solve();
  EXPECT_DOUBLE_EQ(s.rate(x), 22.5);
  EXPECT_DOUBLE_EQ(s.rate(y), 22.5);
  EXPECT_DOUBLE_EQ(s.usage(a), 90);
  // When the bundle leaves, y takes all of A (90 < B's 100).
  s.RemoveVariable(x);
  s.Solve();
  EXPECT_DOUBLE_EQ(s.rate(y), 90);
}

TEST(MaxMinCoefficients, IntegerCoefficientEqualsListingTheConstraintThatOften) {
  // The documented equivalence: coefficient k == the constraint listed k times.
  MaxMinSystem s1, s2;
  C a1 = s1.AddConstraint(70), b1 = s1.AddConstraint(40);
  C a2 = s2.AddConstraint(70), b2 = s2.AddConstraint(40);
  const std::vector<C> c1 = {a1, b1};
  const std::vector<double> k = {3, 1};
  V x1 = s1.AddVariable(c1, k);
  const std::vector<C> c2 = {a2, a2, a2, b2};
  V x2 = s2.AddVariable(c2);
  const std::vector<C> o1 = {b1}, o2 = {b2};
  V y1 = s1.AddVariable(o1), y2 = s2.AddVariable(o2);
  s1.Solve();
  s2.Solve();
  EXPECT_DOUBLE_EQ(s1.rate(x1), s2.rate(x2));
  EXPECT_DOUBLE_EQ(s1.rate(y1), s2.rate(y2));
  // 70 / 3 = 23.3 on A vs 40 / 2 = 20 on B: B first, x = y = 20.
  EXPECT_DOUBLE_EQ(s1.rate(x1), 20);
}

TEST(FlowNetworkBundle, FourFlowsOfARingAsOneBundle) {
  // A 4-member unidirectional ring on links 0..3 (100 B/s, 1 s latency each); each member sends
  // 300 bytes to its neighbour: as 4 flows, each alone on its link: 3 s + 1 s latency.
  // As a bundle: every link crossed once, rate 100 each: the same 4 s.
  std::vector<LinkSpec> links(4, {100, 1});
  Engine e1, e2;
  FlowNetwork flows(&e1, links), bundle(&e2, links);
  SimTime t1, t2;
  int left = 4;
  for (LinkId l = 0; l < 4; ++l) {
    const std::vector<LinkId> r = {l};
    flows.Start(r, 300, [&] {
      if (--left == 0) t1 = e1.now();
    });
  }
  const std::vector<LinkId> all = {0, 1, 2, 3};
  const std::vector<double> once = {1, 1, 1, 1};
  bundle.StartBundle(all, once, 300, SimTime::FromSeconds(1), [&] { t2 = e2.now(); });
  ASSERT_TRUE(e1.Run().ok());
  ASSERT_TRUE(e2.Run().ok());
  EXPECT_EQ(t1, SimTime::FromSeconds(4));
  EXPECT_EQ(t2, t1);
  EXPECT_DOUBLE_EQ(bundle.link_bytes()[2], 300);
}

TEST(FlowNetworkBundle, ABundleSlowsAFlowSharingItsLink) {
  // Link 0 at 100 B/s, no latency. A bundle crossing it twice (2 flows of 100 bytes) and one
  // plain flow of 100 bytes: shares 100 / (2 + 1) = 33.3 each. The flow and the bundle both
  // finish their 100 bytes at 3 s (the bundle's two flows carry 200 bytes in all: 3 x 66.7).
  Engine e;
  FlowNetwork net(&e, {{100, 0}});
  SimTime tb, tf;
  const std::vector<LinkId> l0 = {0};
  const std::vector<double> two = {2};
  net.StartBundle(l0, two, 100, SimTime::Zero(), [&] { tb = e.now(); });
  net.Start(l0, 100, [&] { tf = e.now(); });
  ASSERT_TRUE(e.Run().ok());
  EXPECT_NEAR(tb.seconds(), 3, 1e-9);
  EXPECT_NEAR(tf.seconds(), 3, 1e-9);
}

}  // namespace
}  // namespace moesim::sim
