// Topology::AddAllPairsLoads: the closed form for box groups on torus slices must give exactly
// the link loads and the longest route latency of routing every ordered pair (the second method,
// written out here independently of the topology's own fallback).
#include <gtest/gtest.h>

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
  for (DeviceId a : group) {
    for (DeviceId b : group) {
      if (a == b) continue;
      double lat = 0;
      for (LinkId l : t.Route(a, b)) {
        r.pairs[static_cast<size_t>(l)] += 1;
        lat += t.links()[static_cast<size_t>(l)].latency_s;
      }
      r.latency = std::max(r.latency, lat);
    }
  }
  return r;
}

// Devices whose row-major coordinates over `dims` lie in the given per-dimension sets.
std::vector<DeviceId> Box(const std::vector<int64_t>& dims,
                          const std::vector<std::vector<int64_t>>& sets, int64_t base = 0) {
  std::vector<DeviceId> out;
  std::vector<size_t> idx(dims.size(), 0);
  for (;;) {
    int64_t id = 0;
    for (size_t d = 0; d < dims.size(); ++d) id = id * dims[d] + sets[d][idx[d]];
    out.push_back(static_cast<DeviceId>(base + id));
    size_t d = dims.size();
    while (d-- > 0) {
      if (++idx[d] < sets[d].size()) break;
      idx[d] = 0;
    }
    if (d == static_cast<size_t>(-1)) break;
  }
  return out;
}

void ExpectSame(const Topology& t, const std::vector<DeviceId>& group, const std::string& what) {
  Loads want = ByEveryRoute(t, group);
  std::vector<double> got(t.links().size(), 0);
  double lat = 0;
  t.AddAllPairsLoads(group, &got, &lat);
  EXPECT_EQ(got, want.pairs) << what;
  EXPECT_DOUBLE_EQ(lat, want.latency) << what;
}

TEST(AllPairsLoads, BoxGroupsOnToriMatchRoutingEveryPair) {
  auto v4 = testing::Build("tpu-v4:4x4x8");  // wraps on every dimension
  ASSERT_NE(v4, nullptr);
  ExpectSame(*v4, Box({4, 4, 8}, {{0, 1, 2, 3}, {0, 1, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7}}),
             "whole v4 slice");
  ExpectSame(*v4, Box({4, 4, 8}, {{2}, {0, 1, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7}}), "v4 plane");
  ExpectSame(*v4, Box({4, 4, 8}, {{1}, {3}, {0, 2, 4, 6}}), "every other chip of a v4 ring");
  ExpectSame(*v4, Box({4, 4, 8}, {{0, 3}, {1, 2}, {5, 6, 7}}), "scattered v4 box");

  auto v5e = testing::Build("tpu-v5e:16x16");  // wraps on both
  ASSERT_NE(v5e, nullptr);
  ExpectSame(*v5e,
             Box({16, 16}, {{0, 1, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}}),
             "64 chips of a v5e pod");

  auto line = testing::Build("tpu-v5e:4x8");  // no wraparound: lines
  ASSERT_NE(line, nullptr);
  ExpectSame(*line, Box({4, 8}, {{0, 1, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7}}), "v5e 4x8, no wrap");
  ExpectSame(*line, Box({4, 8}, {{1, 3}, {0, 5, 7}}), "v5e 4x8, scattered box");
}

TEST(AllPairsLoads, OtherGroupsFallBackToRoutingEveryPair) {
  auto v4 = testing::Build("tpu-v4:4x4x4");
  ASSERT_NE(v4, nullptr);
  ExpectSame(*v4, {0, 1, 5, 22, 63}, "not a box");
  auto multi = testing::Build("tpu-v5e:4x4*2");  // two slices over DCN
  ASSERT_NE(multi, nullptr);
  ExpectSame(*multi, {0, 1, 16, 17}, "across slices");
  auto gpus = testing::Build("dgx-h100:2");
  ASSERT_NE(gpus, nullptr);
  ExpectSame(*gpus, {0, 1, 2, 3, 8, 9, 10, 11}, "fat-tree");
}

}  // namespace
}  // namespace moesim
