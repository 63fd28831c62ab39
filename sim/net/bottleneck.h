// bottleneck.h
//
// BottleneckTimer: the analytical (`analytical` network level) time of a set of transfers that
// start together on an otherwise idle network, alpha-beta style:
//
//     T = max over transfers t of latency(route_t)                      (alpha: per-hop latencies)
//       + max over links l of (sum of bytes of transfers crossing l) / C_l   (beta: bottleneck)
//
// No contention with anything else is modelled, and within the set each link is assumed busy
// from start to end. For transfers that each cross their set's most loaded link (a ring step, a
// tree level, a symmetric all-to-all on a torus) this is the max-min (FlowNetwork) answer exactly;
// otherwise it is a lower bound on the bandwidth term.
//
// Usage: Add() every transfer, then Finish(), which returns T and resets the timer for the next
// set. Complexity: O(total route length) per set; scratch is reused.
// Thread safety: none; one per thread (it holds scratch).
#pragma once

#include <span>
#include <vector>

#include "sim/net/network.h"

namespace moesim::sim {

class BottleneckTimer {
 public:
  // REQUIRES: every link's bytes_per_s > 0. `links` must outlive the timer.
  explicit BottleneckTimer(const std::vector<LinkSpec>* links);

  // REQUIRES: every id in route is a valid link; bytes >= 0.
  void Add(std::span<const LinkId> route, double bytes);
  // T for the transfers added since the last Finish(); 0 when none.
  double Finish();

 private:
  const std::vector<LinkSpec>* links_;
  std::vector<double> load_;  // bytes per link in the current set
  std::vector<LinkId> touched_;
  double max_latency_s_ = 0;
};

}  // namespace moesim::sim
