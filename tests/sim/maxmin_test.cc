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

// Progressive filling written plainly (every share recomputed each round, no heap): the second
// method the solver's heap of lower-bound keys and its one-key-per-variable treatment of
// one-variable links are checked against.
struct PlainVar {
  std::vector<C> cons;
  std::vector<double> coefs;
  double weight = 1, bound = MaxMinSystem::kNoBound;
};
std::vector<double> PlainMaxMin(const std::vector<double>& capacity,
                                const std::vector<PlainVar>& vars) {
  std::vector<double> rate(vars.size(), 0);
  std::vector<bool> fixed(vars.size(), false);
  std::vector<double> used(capacity.size(), 0);
  for (size_t left = vars.size(); left > 0;) {
    double best = MaxMinSystem::kNoBound;
    for (size_t c = 0; c < capacity.size(); ++c) {
      double weights = 0;
      for (size_t v = 0; v < vars.size(); ++v) {
        for (size_t k = 0; k < vars[v].cons.size(); ++k) {
          if (!fixed[v] && vars[v].cons[k] == static_cast<C>(c)) {
            weights += vars[v].weight * vars[v].coefs[k];
          }
        }
      }
      if (weights > 0) best = std::min(best, std::max(0.0, capacity[c] - used[c]) / weights);
    }
    for (size_t v = 0; v < vars.size(); ++v) {
      if (!fixed[v]) best = std::min(best, vars[v].bound / vars[v].weight);
    }
    // Fix every variable that crosses a link at that share, or whose bound is that share.
    std::vector<size_t> now;
    for (size_t v = 0; v < vars.size(); ++v) {
      if (fixed[v]) continue;
      bool at = vars[v].bound / vars[v].weight <= best * (1 + 1e-12);
      for (size_t k = 0; k < vars[v].cons.size() && !at; ++k) {
        const C c = vars[v].cons[k];
        double weights = 0;
        for (size_t u = 0; u < vars.size(); ++u) {
          for (size_t j = 0; j < vars[u].cons.size(); ++j) {
            if (!fixed[u] && vars[u].cons[j] == c) weights += vars[u].weight * vars[u].coefs[j];
          }
        }
        at = std::max(0.0, capacity[c] - used[c]) / weights <= best * (1 + 1e-12);
      }
      if (at) now.push_back(v);
    }
    for (size_t v : now) {
      fixed[v] = true;
      rate[v] = std::min(vars[v].bound, best * vars[v].weight);
      for (size_t k = 0; k < vars[v].cons.size(); ++k) {
        used[vars[v].cons[k]] += rate[v] * vars[v].coefs[k];
      }
      --left;
    }
  }
  return rate;
}

TEST(MaxMin, RandomSystemsMatchPlainProgressiveFilling) {
  // Weights, coefficients (bundles), bounds, and links of one flow each (a flow's own NIC), which
  // the solver keeps out of its heap but for each variable's first.
  uint64_t x = 7;
  auto next = [&x](uint64_t mod) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return (x >> 33) % mod;
  };
  for (int trial = 0; trial < 40; ++trial) {
    const int shared = 1 + static_cast<int>(next(6));
    const int flows = 1 + static_cast<int>(next(12));
    MaxMinSystem s;
    std::vector<double> capacity;
    for (int l = 0; l < shared; ++l) capacity.push_back(static_cast<double>(1 + next(50)));
    std::vector<PlainVar> plain;
    for (int f = 0; f < flows; ++f) {
      PlainVar p;
      for (int l = 0; l < shared; ++l) {
        if (next(2) == 0) continue;
        p.cons.push_back(static_cast<C>(l));
        p.coefs.push_back(trial % 2 == 0 ? 1.0 : static_cast<double>(1 + next(4)));
      }
      for (int own = static_cast<int>(next(3)); own > 0; --own) {  // links only this flow uses
        p.cons.push_back(static_cast<C>(capacity.size()));
        p.coefs.push_back(1.0);
        capacity.push_back(static_cast<double>(1 + next(50)));
      }
      if (trial % 3 == 0) p.weight = static_cast<double>(1 + next(3));
      if (next(4) == 0 || p.cons.empty()) p.bound = static_cast<double>(1 + next(40));
      plain.push_back(p);
    }
    for (double cap : capacity) s.AddConstraint(cap);
    std::vector<V> vars;
    for (const PlainVar& p : plain)
      vars.push_back(s.AddVariable(p.cons, p.coefs, p.weight, p.bound));
    s.Solve();
    const std::vector<double> want = PlainMaxMin(capacity, plain);
    for (size_t v = 0; v < vars.size(); ++v) {
      EXPECT_NEAR(s.rate(vars[v]), want[v], 1e-9 * want[v]) << "trial " << trial << " flow " << v;
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
