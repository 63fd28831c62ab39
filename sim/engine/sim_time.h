// sim_time.h
//
// SimTime: simulated time as an integer number of picoseconds, in a strong type so that it never
// mixes silently with seconds, byte counts or event counts. int64 picoseconds reach ~106 days of
// simulated time; a training step is milliseconds to seconds. Integer time makes runs
// reproducible bit for bit: two events are simultaneous exactly when their integers are equal.
//
// Conversions from seconds round to the nearest picosecond (FromSeconds) or up (CeilSeconds, for
// "the first instant at which X is done"). Thread safety: a value type.
#pragma once

#include <compare>
#include <cstdint>
#include <limits>

namespace moesim::sim {

class SimTime {
 public:
  constexpr SimTime() = default;
  static constexpr SimTime Zero() { return SimTime(0); }
  static constexpr SimTime Max() { return SimTime(std::numeric_limits<int64_t>::max()); }
  static constexpr SimTime FromPicoseconds(int64_t ps) { return SimTime(ps); }
  // Nearest picosecond. REQUIRES: 0 <= s < ~9.2e6 (larger values saturate at Max()).
  static SimTime FromSeconds(double s);
  // Smallest whole picosecond >= s. REQUIRES as FromSeconds.
  static SimTime CeilSeconds(double s);

  constexpr int64_t picoseconds() const { return ps_; }
  constexpr double seconds() const { return static_cast<double>(ps_) * 1e-12; }

  constexpr auto operator<=>(const SimTime&) const = default;
  constexpr SimTime operator+(SimTime o) const { return SimTime(ps_ + o.ps_); }
  constexpr SimTime operator-(SimTime o) const { return SimTime(ps_ - o.ps_); }
  constexpr SimTime& operator+=(SimTime o) {
    ps_ += o.ps_;
    return *this;
  }

 private:
  constexpr explicit SimTime(int64_t ps) : ps_(ps) {}
  int64_t ps_ = 0;
};

}  // namespace moesim::sim
