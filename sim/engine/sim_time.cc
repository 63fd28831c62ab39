#include "sim/engine/sim_time.h"

#include <cmath>

namespace moesim::sim {
namespace {

// Largest double below 2^63 picoseconds; anything above saturates.
constexpr double kMaxPs = 9.2e18;

SimTime FromPs(double ps) {
  if (!(ps > 0)) return SimTime::Zero();  // also NaN
  if (ps >= kMaxPs) return SimTime::Max();
  return SimTime::FromPicoseconds(static_cast<int64_t>(ps));
}

}  // namespace

SimTime SimTime::FromSeconds(double s) { return FromPs(std::round(s * 1e12)); }

SimTime SimTime::CeilSeconds(double s) { return FromPs(std::ceil(s * 1e12)); }

}  // namespace moesim::sim
