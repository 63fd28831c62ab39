// topology_network.h
//
// The glue between topologies/ and the simulator core: a Topology and a HardwareProfile become
// the link list (sim/net/network.h) and the route function (sim/collectives/runner.h) that the
// network levels use, and a device group gets the GroupShape that the collective algorithms
// read. The only part of sim/ (besides sim/step) that depends on topologies/.
//
//   - capacity of link l = Topology line rate x efficiency of its kind; every kind defaults to
//     HardwareProfile::link_efficiency (the fraction of line rate NCCL / XLA reach, e.g. ~0.8 on
//     NVLink: ~370 of 450 GB/s), and a kind may be overridden (InfiniBand reaches 46-48 of
//     50 GB/s per NIC in nccl-tests, ~0.94);
//   - latency of link l = the topology's per-hop latency;
//   - routes = Topology::Route (cached, thread-safe, stable references);
//   - GroupShape: the group's members are checked against the topology's physical_dims()
//     (device ids are row-major over them): a group that is the product of the coordinates its
//     members take along each dimension (a box, or a strided subset such as GPUs 0, 2, 4, 6 of
//     every node), listed in row-major order, gets one dimension per physical dimension (the
//     number of coordinates taken), with wraparound where it takes a whole wrapping dimension,
//     and that dimension's speed class; any other group is one dimension.
// Thread safety: TopologyNetwork is immutable after Make(); share it across threads (its route
// function reads the Topology's thread-safe cache).
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/scenario.h"
#include "sim/collectives/algorithms.h"
#include "sim/collectives/runner.h"
#include "sim/net/network.h"
#include "topologies/topology.h"

namespace moesim::sim {

// Efficiency per LinkKind (indexed by static_cast<int>(LinkKind)); unset kinds use the
// profile's link_efficiency.
struct LinkEfficiencies {
  std::array<std::optional<double>, kNumLinkKinds> by_kind;
};

struct TopologyNetwork {
  std::shared_ptr<const Topology> topology;
  std::vector<LinkSpec> links;  // by LinkId, efficiencies applied
  RouteFn route;

  // REQUIRES: topology non-null; efficiencies in (0, 1].
  static TopologyNetwork Make(std::shared_ptr<const Topology> topology, const HardwareProfile& hw,
                              const LinkEfficiencies& eff = {});
  // The same with the default efficiency given directly (hw.link_efficiency above).
  static TopologyNetwork Make(std::shared_ptr<const Topology> topology, double link_efficiency,
                              const LinkEfficiencies& eff = {});
};

GroupShape GroupShapeOf(const Topology& topo, const std::vector<DeviceId>& group);

// A group from the command line: "N" = devices 0..N-1 (row-major over the physical
// dimensions, so N = 16 on tpu-v5e:16x16 is one wrapped row); "A[,B...]" = names of physical
// dimensions ("x,y", "gpu", "node,gpu", "slice"): the devices varying along those dimensions
// with the others at 0, row-major in the topology's order. Errors (kInvalidInput) name the
// dimensions that exist.
Expected<std::vector<DeviceId>> ParseDeviceGroup(const Topology& topo, const std::string& text);

}  // namespace moesim::sim
