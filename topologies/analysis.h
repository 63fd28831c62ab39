// analysis.h
//
// Whole-topology figures, computed on the graph with Boost.Graph algorithms:
//   - hop distances: breadth-first search;
//   - diameter: the longest route between two devices, in links. Routes are minimal in the
//     network they use (tested against BFS distances), so on a single slice, a fat-tree or an
//     NVLink domain this is the graph diameter; on multi-slice pods it is the longest path traffic
//     actually takes (intra-slice traffic does not detour through DCN). Evaluated from the
//     topology's diameter_sources() (the family's symmetry; all devices for file graphs);
//   - bisection bandwidth: for each of the topology's candidate bisections (bisection_orders()),
//     the maximum flow (Boost push-relabel, which equals the minimum cut) from one half of the
//     devices to the other, ONE direction, in bytes/s; the smallest over candidates. Switches and
//     NICs may fall on either side of the cut.
// Thread safety: pure functions of a const Topology (Route() is itself thread-safe).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "topologies/topology.h"

namespace moesim {

// Hop distances (links) from `source` to every vertex by breadth-first search; -1 = unreachable.
std::vector<int64_t> GraphHopDistances(const Topology& topo, VertexId source);

// The longest route between two devices, in links (0 for a single device).
int64_t DiameterHops(const Topology& topo);

// Maximum flow from the devices in `from` to the devices in `to` over all links, one direction,
// bytes/s (= the minimum cut separating them). REQUIRES: disjoint, non-empty device lists.
double MaxFlowBytesPerS(const Topology& topo, const std::vector<DeviceId>& from,
                        const std::vector<DeviceId>& to);

// The minimum over the candidate bisections of MaxFlowBytesPerS(first half, second half);
// 0 for a single device.
double BisectionBytesPerS(const Topology& topo);

struct TopologySummary {
  int64_t num_devices = 0;
  int64_t num_vertices = 0;
  int64_t num_links = 0;  // one-way links
  std::array<int64_t, kNumLinkKinds> links_by_kind{};
  // -1: not computed, its searches (diameter sources x (vertices + links)) being past
  // limits::kMaxDiameterSearchSteps; a graph without symmetry (a file) needs one per device.
  int64_t diameter_hops = 0;
  double bisection_bytes_per_s = 0;
};
TopologySummary Summarize(const Topology& topo);

}  // namespace moesim
