// Topology::FindLink (a flat hash of (src, dst)) against a second index built here from links():
// every link found at its id, every other ordered vertex pair not found; and the builder's checks
// that use it (a link given twice) or replaced the graph library's components (devices that
// cannot reach each other), on hand-built topologies.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>

#include "test_util.h"

namespace moesim {
namespace {

void ExpectIndexMatchesLinks(const Topology& t) {
  std::map<std::pair<VertexId, VertexId>, LinkId> want;
  for (LinkId id = 0; id < static_cast<LinkId>(t.links().size()); ++id) {
    const Link& l = t.links()[static_cast<size_t>(id)];
    want[{l.src, l.dst}] = id;
    ASSERT_EQ(t.FindLink(l.src, l.dst), id) << t.name() << " link " << id;
  }
  const auto v = static_cast<VertexId>(t.num_vertices());
  for (VertexId a = 0; a < v; ++a) {
    for (VertexId b = 0; b < v; ++b) {
      auto it = want.find({a, b});
      ASSERT_EQ(t.FindLink(a, b), it == want.end() ? -1 : it->second)
          << t.name() << " " << a << " -> " << b;
    }
  }
  EXPECT_EQ(t.FindLink(-1, -1), -1);
  EXPECT_EQ(t.FindLink(v, 0), -1);
}

TEST(FindLink, EveryLinkAndNoOtherPair) {
  for (const char* name : {"dgx-h100:1", "dgx-h100:12,hosts_per_leaf=4", "gb200-nvl72:2",
                           "tpu-v4:4x4x4", "tpu-v5e:4x4*2", "fattree:64,k=8,levels=3"}) {
    auto t = testing::Build(name);
    ASSERT_NE(t, nullptr) << name;
    ExpectIndexMatchesLinks(*t);
  }
}

TEST(FindLink, BuilderRejectsALinkTwiceAndDisconnectedDevices) {
  HardwareProfile hw;
  TopologyBuilder twice("twice", 2, hw);
  ASSERT_TRUE(twice.AddDuplex(0, 1, 1e9, 0, LinkKind::kEthernet).ok());
  const Status again = twice.AddLink(1, 0, 1e9, 0, LinkKind::kEthernet);
  EXPECT_FALSE(again.ok());
  EXPECT_NE(again.message().find("link 1 -> 0 given twice"), std::string::npos) << again.message();

  // 0 -> 1 -> 2 -> 0 is one cycle; device 3 is reached from 0 but cannot get back.
  TopologyBuilder one_way("one-way", 4, hw);
  for (auto [a, b] : {std::pair{0, 1}, {1, 2}, {2, 0}, {2, 3}}) {
    ASSERT_TRUE(one_way.AddLink(a, b, 1e9, 0, LinkKind::kEthernet).ok());
  }
  auto t = std::move(one_way).Finish();
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(),
            "topology \"one-way\": device 3 and device 0 cannot reach each other");

  // Through a switch both ways: connected, and the graph view is built on demand.
  TopologyBuilder star("star", 3, hw);
  const VertexId sw = star.AddVertex(VertexKind::kSwitch);
  for (DeviceId d = 0; d < 3; ++d) {
    ASSERT_TRUE(star.AddDuplex(d, sw, 1e9, 0, LinkKind::kEthernet).ok());
  }
  auto s = std::move(star).Finish();
  ASSERT_TRUE(s.ok()) << s.status().message();
  ExpectIndexMatchesLinks(**s);
  EXPECT_EQ((*s)->Route(0, 2).size(), 2u);
}

}  // namespace
}  // namespace moesim
