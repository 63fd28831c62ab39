// network.h
//
// The network as sim/net sees it: links with an effective capacity and a latency, indexed by
// LinkId; a route is a sequence of link ids. Where the links come from (a topology graph, a test
// fixture) is the caller's business: sim/net depends on no topology code.
//
// Units are in names. A link is one direction of a full-duplex cable. bytes_per_s is what a
// transfer can actually use: the line rate times the link's efficiency (real NCCL reaches ~80%
// of NVLink line rate; see HardwareProfile::link_efficiency), applied by whoever builds the list.
// Thread safety: values.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace moesim::sim {

using LinkId = int32_t;
using DeviceId = int32_t;

struct LinkSpec {
  double bytes_per_s = 0;  // effective capacity, one direction; > 0
  double latency_s = 0;    // per hop, >= 0
};

// Sum of the latencies of the links of `route`.
inline double RouteLatencySeconds(const std::vector<LinkSpec>& links,
                                  std::span<const LinkId> route) {
  double s = 0;
  for (LinkId l : route) s += links[l].latency_s;
  return s;
}

}  // namespace moesim::sim
