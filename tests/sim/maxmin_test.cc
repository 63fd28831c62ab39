// MaxMinSystem: textbook max-min systems worked by hand ("System / Expect"), incremental
// re-solving, and the defining property checked on random systems.
#include "sim/net/maxmin.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace moesim::sim {
namespace {

using C = MaxMinSystem::ConstraintId;
using V = MaxMinSystem::VariableId;

V Add(MaxMinSystem* s, std::vector<C> cons, double weight = 1,
      double bound = MaxMinSystem::kNoBound) {
  return s->AddVariable(cons, weight, bound);
}

TEST(MaxMin, TwoFlowsShareOneLink) {
  // System: x1 + x2 <= 100 GB/s.  Expect: x1 = x2 = 50 GB/s.
  MaxMinSystem s;
  C l = s.AddConstraint(100e9);
  V x1 = Add(&s, {l}), x2 = Add(&s, {l});
  s.Solve();
  EXPECT_DOUBLE_EQ(s.rate(x1), 50e9);
  EXPECT_DOUBLE_EQ(s.rate(x2), 50e9);
  EXPECT_DOUBLE_EQ(s.usage(l), 100e9);
}

TEST(MaxMin, FlowCrossingTwoBottlenecks) {
  // System: x1 + x2 + x3 <= 100 (link A);  x3 <= 30 (link B).
  // Link B's share (30/1) is below link A's (100/3), so B saturates first: x3 = 30.
  // Link A then has 70 left for x1, x2.  Expect: x1 = x2 = 35, x3 = 30.
  MaxMinSystem s;
  C a = s.AddConstraint(100), b = s.AddConstraint(30);
  V x1 = Add(&s, {a}), x2 = Add(&s, {a}), x3 = Add(&s, {a, b});
  s.Solve();
  EXPECT_DOUBLE_EQ(s.rate(x1), 35);
  EXPECT_DOUBLE_EQ(s.rate(x2), 35);
  EXPECT_DOUBLE_EQ(s.rate(x3), 30);
}

TEST(MaxMin, ParkingLot) {
  // System: a long flow x0 crosses links 1, 2, 3 (capacity 1 each); x1, x2, x3 each use one.
  //   x0 + x1 <= 1;  x0 + x2 <= 1;  x0 + x3 <= 1.
  // All three links have share 1/2.  Expect: every flow 0.5 (not 1/4 for the long flow).
  MaxMinSystem s;
  C l1 = s.AddConstraint(1), l2 = s.AddConstraint(1), l3 = s.AddConstraint(1);
  V x0 = Add(&s, {l1, l2, l3}), x1 = Add(&s, {l1}), x2 = Add(&s, {l2}), x3 = Add(&s, {l3});
  s.Solve();
  for (V v : {x0, x1, x2, x3}) EXPECT_DOUBLE_EQ(s.rate(v), 0.5);
}

TEST(MaxMin, BottleneckLevelsCascade) {
  // System: x1 + x2 <= 10 (L1);  x2 + x3 + x4 <= 4 (L2).
  // L2's share 4/3 < L1's 10/2: x2 = x3 = x4 = 4/3; then L1 gives x1 = 10 - 4/3 = 26/3.
  MaxMinSystem s;
  C l1 = s.AddConstraint(10), l2 = s.AddConstraint(4);
  V x1 = Add(&s, {l1}), x2 = Add(&s, {l1, l2}), x3 = Add(&s, {l2}), x4 = Add(&s, {l2});
  s.Solve();
  EXPECT_DOUBLE_EQ(s.rate(x2), 4.0 / 3);
  EXPECT_DOUBLE_EQ(s.rate(x3), 4.0 / 3);
  EXPECT_DOUBLE_EQ(s.rate(x4), 4.0 / 3);
  EXPECT_NEAR(s.rate(x1), 26.0 / 3, 1e-12);
}

TEST(MaxMin, WeightsSplitInProportion) {
  // System: x1 + x2 <= 100 with weights 1 and 3.  Expect: x1 = 25, x2 = 75.
  MaxMinSystem s;
  C l = s.AddConstraint(100);
  V x1 = Add(&s, {l}, 1), x2 = Add(&s, {l}, 3);
  s.Solve();
  EXPECT_DOUBLE_EQ(s.rate(x1), 25);
  EXPECT_DOUBLE_EQ(s.rate(x2), 75);
}

TEST(MaxMin, BoundedVariableLeavesTheRestToOthers) {
  // System: x1 + x2 <= 100; x1 <= 10.  Expect: x1 = 10, x2 = 90.
  MaxMinSystem s;
  C l = s.AddConstraint(100);
  V x1 = Add(&s, {l}, 1, 10), x2 = Add(&s, {l});
  s.Solve();
  EXPECT_DOUBLE_EQ(s.rate(x1), 10);
  EXPECT_DOUBLE_EQ(s.rate(x2), 90);
}

TEST(MaxMin, ALinkListedTwiceIsChargedTwice) {
  // System: a route that crosses link L twice (2 x1 <= 12) next to x2 on L (x1 + x2 share).
  //   2 x1 + x2 <= 12: L's weight sum is 3, share 4.  Expect: x1 = x2 = 4.
  MaxMinSystem s;
  C l = s.AddConstraint(12);
  V x1 = Add(&s, {l, l}), x2 = Add(&s, {l});
  s.Solve();
  EXPECT_DOUBLE_EQ(s.rate(x1), 4);
  EXPECT_DOUBLE_EQ(s.rate(x2), 4);
}

TEST(MaxMin, RemovingAFlowGivesItsShareBack) {
  // As FlowCrossingTwoBottlenecks, then x3 leaves: x1 + x2 <= 100.  Expect: 50 each.
  MaxMinSystem s;
  C a = s.AddConstraint(100), b = s.AddConstraint(30);
  V x1 = Add(&s, {a}), x2 = Add(&s, {a}), x3 = Add(&s, {a, b});
  s.Solve();
  s.RemoveVariable(x3);
  std::vector<V> changed;
  s.Solve(&changed);
  EXPECT_DOUBLE_EQ(s.rate(x1), 50);
  EXPECT_DOUBLE_EQ(s.rate(x2), 50);
  EXPECT_EQ(changed.size(), 2u);
  EXPECT_DOUBLE_EQ(s.usage(b), 0);
}

TEST(MaxMin, OnlyTheTouchedComponentIsResolved) {
  // Two independent links, two flows each. Adding a flow to link B re-solves B's flows only.
  MaxMinSystem s;
  C a = s.AddConstraint(100), b = s.AddConstraint(60);
  V a1 = Add(&s, {a}), a2 = Add(&s, {a});
  Add(&s, {b});
  Add(&s, {b});
  s.Solve();
  EXPECT_EQ(s.last_solved_variables(), 4);
  V b3 = Add(&s, {b});
  std::vector<V> changed;
  s.Solve(&changed);
  EXPECT_EQ(s.last_solved_variables(), 3);  // b's three flows, not a's two
  EXPECT_EQ(changed.size(), 3u);
  EXPECT_DOUBLE_EQ(s.rate(b3), 20);
  EXPECT_DOUBLE_EQ(s.rate(a1), 50);
  EXPECT_DOUBLE_EQ(s.rate(a2), 50);
  s.Solve();
  EXPECT_EQ(s.last_solved_variables(), 0);  // nothing changed: nothing re-solved
}

TEST(MaxMin, CapacityChangeResolves) {
  // System: x1 + x2 <= 100, then the capacity drops to 40.  Expect: 20 each.
  MaxMinSystem s;
  C l = s.AddConstraint(100);
  V x1 = Add(&s, {l}), x2 = Add(&s, {l});
  s.Solve();
  s.SetCapacity(l, 40);
  s.Solve();
  EXPECT_DOUBLE_EQ(s.rate(x1), 20);
  EXPECT_DOUBLE_EQ(s.rate(x2), 20);
}

// The defining property of max-min fairness (unit weights): the allocation is feasible, and
// every flow crosses a saturated link on which no flow has a larger rate (its bottleneck).
void ExpectMaxMinFair(const MaxMinSystem& s, const std::vector<std::vector<C>>& routes,
                      const std::vector<V>& vars) {
  for (C c = 0; c < s.num_constraints(); ++c) {
    ASSERT_LE(s.usage(c), s.capacity(c) * (1 + 1e-9)) << "link " << c;
  }
  for (size_t i = 0; i < vars.size(); ++i) {
    bool has_bottleneck = false;
    for (C c : routes[i]) {
      if (s.usage(c) < s.capacity(c) * (1 - 1e-9)) continue;
      bool largest = true;
      for (size_t j = 0; j < vars.size(); ++j) {
        for (C c2 : routes[j]) {
          if (c2 == c && s.rate(vars[j]) > s.rate(vars[i]) * (1 + 1e-9)) largest = false;
        }
      }
      has_bottleneck = has_bottleneck || largest;
    }
    ASSERT_TRUE(has_bottleneck) << "flow " << i << " rate " << s.rate(vars[i]);
  }
}

TEST(MaxMin, RandomSystemsAreMaxMinFairAndIncrementalMatchesFull) {
  uint64_t x = 42;
  auto next = [&x](uint64_t mod) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return (x >> 33) % mod;
  };
  for (int trial = 0; trial < 20; ++trial) {
    MaxMinSystem inc;
    const int links = 12;
    for (int l = 0; l < links; ++l) inc.AddConstraint(static_cast<double>(1 + next(100)));
    std::vector<std::vector<C>> routes;
    std::vector<V> vars;
    for (int step = 0; step < 60; ++step) {
      if (!vars.empty() && next(3) == 0) {
        const size_t k = next(vars.size());
        inc.RemoveVariable(vars[k]);
        vars.erase(vars.begin() + static_cast<long>(k));
        routes.erase(routes.begin() + static_cast<long>(k));
      } else {
        std::vector<C> r;
        const int hops = 1 + static_cast<int>(next(4));
        for (int h = 0; h < hops; ++h) r.push_back(static_cast<C>(next(links)));
        std::sort(r.begin(), r.end());
        r.erase(std::unique(r.begin(), r.end()), r.end());
        vars.push_back(inc.AddVariable(r));
        routes.push_back(r);
      }
      inc.Solve();
    }
    ExpectMaxMinFair(inc, routes, vars);
    // A fresh system with the surviving flows, solved in one go, gives the same rates.
    MaxMinSystem full;
    for (int l = 0; l < links; ++l) full.AddConstraint(inc.capacity(l));
    std::vector<V> fvars;
    for (const auto& r : routes) fvars.push_back(full.AddVariable(r));
    full.Solve();
    for (size_t i = 0; i < vars.size(); ++i) {
      EXPECT_NEAR(inc.rate(vars[i]), full.rate(fvars[i]), 1e-9 * full.rate(fvars[i]));
    }
  }
}

TEST(MaxMin, TenThousandFlowsResolveQuickly) {
  // A scale check (the benchmark measures it precisely): 10,000 flows of 8 hops over 1,024
  // links re-solve; each flow gets a positive rate and the system is feasible.
  MaxMinSystem s;
  for (int l = 0; l < 1024; ++l) s.AddConstraint(45e9);
  std::vector<V> vars;
  for (int f = 0; f < 10000; ++f) {
    std::vector<C> r;
    for (int h = 0; h < 8; ++h) r.push_back(static_cast<C>((f * 7 + h * 131) % 1024));
    vars.push_back(s.AddVariable(r));
  }
  s.Solve();
  for (V v : vars) ASSERT_GT(s.rate(v), 0);
  for (C c = 0; c < s.num_constraints(); ++c) ASSERT_LE(s.usage(c), 45e9 * (1 + 1e-9));
}

}  // namespace
}  // namespace moesim::sim
