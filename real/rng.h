// rng.h
//
// Rng: a small, portable, seedable generator (SplitMix64; Steele, Lea & Flood 2014) whose whole
// state is one uint64, so a checkpoint can save and restore it exactly. Unlike the
// <random> distributions, Normal() and Uniform() are defined here, so the same seed gives the
// same numbers with every standard library. DeriveSeed() mixes a seed with a name and an index,
// so a tensor's initial values depend only on (seed, name, index), not on which rank builds it.
// Thread safety: an Rng is a value; share none.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace moesim::real {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n). REQUIRES: n > 0.
  uint64_t Below(uint64_t n) { return Next() % n; }
  // Standard normal (Box-Muller; uses two draws per value, no cached second value, so the
  // state alone determines the sequence).
  double Normal() {
    const double u1 = 1.0 - Uniform();  // (0, 1]
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  uint64_t state() const { return state_; }
  void set_state(uint64_t s) { state_ = s; }

 private:
  uint64_t state_;
};

// FNV-1a of `name`, mixed with `seed` and `index` through SplitMix64.
inline uint64_t DeriveSeed(uint64_t seed, std::string_view name, uint64_t index = 0) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ULL;
  }
  Rng r(seed ^ h);
  r.Next();
  Rng r2(r.Next() ^ (index * 0xD1B54A32D192ED03ULL));
  return r2.Next();
}

}  // namespace moesim::real
