// Where the expert all-to-all of the GB200 and TPU v6e scenarios runs: on the placed devices of
// each expert-parallel group, the links their routes cross. Qwen3-235B on 4 NVLink domains of 64
// GB200s: the 32 EP groups of 8 (the innermost data-parallel ranks) stay on NVLink; the outer
// data-parallel groups (dp_out 4 x 8 = 32 consecutive ranks, half a domain) do too, and the
// pipeline's 8 stages span the 4 domains, so its groups cross InfiniBand. Mixtral 8x22B on a
// v6e-256 in MaxText's fsdp 64 x expert 4: the 64 expert groups of 4 chips are ICI only.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"
#include "topologies/topology.h"

namespace moesim {
namespace {

MeshAxis AxisNamed(const Mesh& mesh, const std::string& name) {
  for (int a = 0; a < mesh.num_axes; ++a) {
    if (mesh.Name(static_cast<MeshAxis>(a)) == name) return static_cast<MeshAxis>(a);
  }
  ADD_FAILURE() << "no axis " << name;
  return MeshAxis::kData;
}

// The forward all-to-all's axes: the expert-parallel group.
std::vector<MeshAxis> A2aAxes(const Scenario& sc) {
  const OpGraph g = BuildStepGraph(sc);
  for (const Op& op : g.ops) {
    if (op.is_collective && op.collective.kind == CollectiveKind::kAllToAll) {
      return op.collective.axes;
    }
  }
  return {};
}

// Devices whose coordinates differ only along `axes`.
std::vector<std::vector<DeviceId>> GroupsOver(const Mesh& mesh, const MeshPlacement& p,
                                              const std::vector<MeshAxis>& axes) {
  std::vector<bool> in(p.axis_sizes.size(), false);
  for (MeshAxis a : axes) {
    for (size_t i = 0; i < p.axis_names.size(); ++i) {
      if (p.axis_names[i] == mesh.Name(a)) in[i] = true;
    }
  }
  std::map<std::vector<int64_t>, std::vector<DeviceId>> groups;
  for (size_t idx = 0; idx < p.device_of.size(); ++idx) {
    std::vector<int64_t> key;
    int64_t rest = static_cast<int64_t>(idx);
    for (size_t i = p.axis_sizes.size(); i-- > 0;) {
      if (!in[i]) key.push_back(rest % p.axis_sizes[i]);
      rest /= p.axis_sizes[i];
    }
    groups[key].push_back(p.device_of[idx]);
  }
  std::vector<std::vector<DeviceId>> out;
  for (auto& [k, g] : groups) out.push_back(g);
  return out;
}

std::set<LinkKind> KindsWithin(const Topology& topo, const std::vector<DeviceId>& g) {
  std::set<LinkKind> kinds;
  for (DeviceId a : g) {
    for (DeviceId b : g) {
      if (a == b) continue;
      for (LinkId l : topo.Route(a, b)) kinds.insert(topo.links()[static_cast<size_t>(l)].kind);
    }
  }
  return kinds;
}

struct Placed {
  Scenario sc;
  std::shared_ptr<const Topology> topo;
  MeshPlacement placement;
};

Placed Place(const std::string& rel) {
  auto sc = LoadScenario({std::string(MOESIM_SOURCE_DIR) + "/" + rel, {}});
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  auto topo = BuildTopology(sc->cluster.topology, sc->hardware);
  EXPECT_TRUE(topo.ok()) << topo.status().message();
  auto placement = PlaceScenarioMesh(**topo, sc->sharding.mesh);
  EXPECT_TRUE(placement.ok()) << placement.status().message();
  return {*sc, std::move(*topo), *placement};
}

TEST(MoePublicPlacement, Gb200ExpertGroupsStayInsideOneNvlinkDomain) {
  const Placed p = Place("scenarios/moe_public/mzoo-q3-gb200-4096-bf16.textproto");
  const Mesh& mesh = p.sc.sharding.mesh;
  EXPECT_EQ(mesh.NumDevices(), 256);
  ASSERT_EQ(A2aAxes(p.sc), std::vector<MeshAxis>{AxisNamed(mesh, "dp_in")});
  const auto ep = GroupsOver(mesh, p.placement, {AxisNamed(mesh, "dp_in")});
  ASSERT_EQ(ep.size(), 32u);
  for (const auto& g : ep) {
    ASSERT_EQ(g.size(), 8u);
    EXPECT_EQ(KindsWithin(*p.topo, g), (std::set<LinkKind>{LinkKind::kNvlink}));
  }
  const auto dp =
      GroupsOver(mesh, p.placement, {AxisNamed(mesh, "dp_out"), AxisNamed(mesh, "dp_in")});
  ASSERT_EQ(dp.size(), 8u);
  for (const auto& g : dp)
    EXPECT_EQ(KindsWithin(*p.topo, g), (std::set<LinkKind>{LinkKind::kNvlink}));
  for (const auto& g : GroupsOver(mesh, p.placement, {AxisNamed(mesh, "pp")})) {
    EXPECT_TRUE(KindsWithin(*p.topo, g).count(LinkKind::kInfiniband) > 0);
  }
}

TEST(MoePublicPlacement, MaxTextMixtralExpertGroupsAreIciOnly) {
  const Placed p = Place("scenarios/mixtral/mixtral-8x22b-v6e-256.textproto");
  const Mesh& mesh = p.sc.sharding.mesh;
  ASSERT_EQ(A2aAxes(p.sc), std::vector<MeshAxis>{AxisNamed(mesh, "expert")});
  const auto ep = GroupsOver(mesh, p.placement, {AxisNamed(mesh, "expert")});
  ASSERT_EQ(ep.size(), 64u);
  for (const auto& g : ep) {
    ASSERT_EQ(g.size(), 4u);
    EXPECT_EQ(KindsWithin(*p.topo, g), (std::set<LinkKind>{LinkKind::kIci}));
  }
}

}  // namespace
}  // namespace moesim
