// sim_time.h
//
// SimTime: simulated time as an integer number of picoseconds, in a strong type so that it never
// mixes silently with seconds, byte counts or event counts. int64 picoseconds reach ~106 days of
// simulated time; a training step is milliseconds to seconds. Arithmetic saturates at Max().
// Integer time makes runs reproducible bit for bit: two events are simultaneous exactly when their
// integers are equal.
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
  // Saturating: a sum past Max() is Max() (never a wrapped, negative time), so a run whose
  // times blow up ends at Max(), which callers report against limits::kMaxSimulatedS.
  constexpr SimTime operator+(SimTime o) const {
    int64_t sum = 0;
    if (__builtin_add_overflow(ps_, o.ps_, &sum)) return o.ps_ > 0 ? Max() : SimTime(kMin);
    return SimTime(sum);
  }
  constexpr SimTime operator-(SimTime o) const {
    int64_t diff = 0;
    if (__builtin_sub_overflow(ps_, o.ps_, &diff)) return o.ps_ < 0 ? Max() : SimTime(kMin);
    return SimTime(diff);
  }
  constexpr SimTime& operator+=(SimTime o) { return *this = *this + o; }

 private:
  static constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr explicit SimTime(int64_t ps) : ps_(ps) {}
  int64_t ps_ = 0;
};

}  // namespace moesim::sim
