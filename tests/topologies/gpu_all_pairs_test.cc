// Topology::AddAllPairsLoads on GPU clusters (NVLink domains on a rail-optimized fat-tree): the
// counts per domain, leaf and spine must give exactly the link loads and the longest route latency
// of routing every ordered pair (the second method, written out here), on clusters with one and
// several leaves per rail and spines, and on groups that fill nodes, span partial nodes, stride
// across rails, or are odd-sized and scattered.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace moesim {
namespace {

struct Loads {
  std::vector<double> pairs;
  double latency = 0;
};

Loads ByEveryRoute(const Topology& t, const std::vector<DeviceId>& group) {
  Loads r;
  r.pairs.assign(t.links().size(), 0);
  std::vector<LinkId> route;
  for (DeviceId a : group) {
    for (DeviceId b : group) {
      if (a == b) continue;
      t.ComputeRoute(a, b, &route);
      double lat = 0;
      for (LinkId l : route) {
        r.pairs[static_cast<size_t>(l)] += 1;
        lat += t.links()[static_cast<size_t>(l)].latency_s;
      }
      r.latency = std::max(r.latency, lat);
    }
  }
  return r;
}

void ExpectSame(const Topology& t, const std::vector<DeviceId>& group, const std::string& what) {
  const Loads want = ByEveryRoute(t, group);
  std::vector<double> got(t.links().size(), 0);
  double lat = 0;
  t.AddAllPairsLoads(group, &got, &lat);
  EXPECT_EQ(got, want.pairs) << t.name() << ": " << what;
  EXPECT_EQ(lat, want.latency) << t.name() << ": " << what;
}

std::vector<DeviceId> Range(DeviceId first, DeviceId last, DeviceId stride = 1) {
  std::vector<DeviceId> out;
  for (DeviceId d = first; d < last; d += stride) out.push_back(d);
  return out;
}

TEST(GpuClusterAllPairsLoads, MatchRoutingEveryPair) {
  for (const char* name :
       {"dgx-h100:1", "dgx-h100:2", "dgx-h100:5", "dgx-a100:3", "dgx-h100:12,hosts_per_leaf=4",
        "dgx-h100:13,hosts_per_leaf=3,oversubscription=2", "dgx-b200:7,hosts_per_leaf=2",
        "gb200-nvl72:3,hosts_per_leaf=8"}) {
    auto t = testing::Build(name);
    ASSERT_NE(t, nullptr) << name;
    const auto n = static_cast<DeviceId>(t->num_devices());
    ExpectSame(*t, Range(0, n), "every GPU");
    ExpectSame(*t, Range(0, std::min<DeviceId>(n, 8)), "one node");
    ExpectSame(*t, Range(3, n, 8), "one rail (a data-parallel group)");
    ExpectSame(*t, Range(1, n, 3), "stride 3 across rails");
    ExpectSame(*t, Range(5, std::min<DeviceId>(n, 21)), "partial nodes");
    ExpectSame(*t, Range(0, n, 4), "every fourth GPU");
    ExpectSame(*t, {0, n - 1}, "two ends");
    std::mt19937 rng(7);
    for (int trial = 0; trial < 4; ++trial) {
      std::vector<DeviceId> g;
      for (DeviceId d = 0; d < n; ++d) {
        if (rng() % 3 == 0) g.push_back(d);
      }
      if (g.size() % 2 == 0 && !g.empty()) g.pop_back();  // odd sizes
      std::shuffle(g.begin(), g.end(), rng);              // any member order
      ExpectSame(*t, g, "random subset " + std::to_string(trial));
    }
  }
}

TEST(GpuClusterAllPairsLoads, RepeatedMembersFallBackToRoutingEveryPair) {
  auto t = testing::Build("dgx-h100:4,hosts_per_leaf=2");
  ASSERT_NE(t, nullptr);
  ExpectSame(*t, {0, 9, 9, 17}, "a member twice");
  ExpectSame(*t, {4}, "one member");
  ExpectSame(*t, {}, "empty");
}

TEST(GpuClusterAllPairsLoads, SumsOverGroupsLikeSeparateCalls) {
  // The analytical network adds every data-parallel group into one load vector.
  auto t = testing::Build("dgx-h100:12,hosts_per_leaf=4");
  ASSERT_NE(t, nullptr);
  std::vector<double> got(t->links().size(), 0), want(t->links().size(), 0);
  double lat = 0, want_lat = 0;
  for (DeviceId rail = 0; rail < 8; ++rail) {
    const auto g = Range(rail, 96, 8);
    t->AddAllPairsLoads(g, &got, &lat);
    const Loads one = ByEveryRoute(*t, g);
    for (size_t l = 0; l < want.size(); ++l) want[l] += one.pairs[l];
    want_lat = std::max(want_lat, one.latency);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(lat, want_lat);
}

}  // namespace
}  // namespace moesim
