#include "sim/net/bottleneck.h"

#include <algorithm>

namespace moesim::sim {

BottleneckTimer::BottleneckTimer(const std::vector<LinkSpec>* links)
    : links_(links), load_(links->size(), 0.0) {}

void BottleneckTimer::Add(std::span<const LinkId> route, double bytes) {
  double latency = 0;
  for (LinkId l : route) {
    latency += (*links_)[l].latency_s;
    if (bytes <= 0) continue;
    if (load_[l] == 0) touched_.push_back(l);
    load_[l] += bytes;
  }
  max_latency_s_ = std::max(max_latency_s_, latency);
}

double BottleneckTimer::Finish() {
  double beta = 0;
  for (LinkId l : touched_) {
    beta = std::max(beta, load_[l] / (*links_)[l].bytes_per_s);
    load_[l] = 0;
  }
  touched_.clear();
  const double t = max_latency_s_ + beta;
  max_latency_s_ = 0;
  return t;
}

}  // namespace moesim::sim
