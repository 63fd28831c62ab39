// test_util.h: helpers shared by the topologies tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "proto/hardware_profiles.h"
#include "topologies/topology.h"

namespace moesim::testing {

// The topology `name` built with its chip's built-in profile; fails the test on error.
inline std::shared_ptr<const Topology> Build(const std::string& name) {
  auto hw = DefaultHardwareFor(name);
  EXPECT_TRUE(hw.ok()) << hw.status().message();
  if (!hw.ok()) return nullptr;
  auto t = BuildTopology(name, *hw);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? *t : nullptr;
}

// As Build with a profile whose per-link rate is replaced (vendor figures).
inline std::shared_ptr<const Topology> BuildWithLinkRate(const std::string& name,
                                                         double link_bytes_per_s) {
  auto hw = DefaultHardwareFor(name);
  EXPECT_TRUE(hw.ok()) << hw.status().message();
  if (!hw.ok()) return nullptr;
  HardwareProfile p = *hw;
  p.link_bytes_per_s = link_bytes_per_s;
  auto t = BuildTopology(name, p);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? *t : nullptr;
}

// The error message of building `name` ("" when it builds).
inline std::string BuildError(const std::string& name) {
  auto hw = DefaultHardwareFor(name);
  if (!hw.ok()) return hw.status().message();
  auto t = BuildTopology(name, *hw);
  return t.ok() ? "" : t.status().message();
}

// Checks that `route` is a connected walk of links from a to b.
inline void ExpectWalk(const Topology& topo, DeviceId a, DeviceId b,
                       const std::vector<LinkId>& route) {
  ASSERT_FALSE(route.empty());
  VertexId at = a;
  for (LinkId l : route) {
    ASSERT_GE(l, 0);
    ASSERT_EQ(topo.links()[static_cast<size_t>(l)].src, at);
    at = topo.links()[static_cast<size_t>(l)].dst;
  }
  EXPECT_EQ(at, b);
}

}  // namespace moesim::testing
