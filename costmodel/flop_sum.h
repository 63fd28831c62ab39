// flop_sum.h
//
// FlopSum: the total of a step's FLOPs, exactly. Each addend is rounded once to a multiple of
// 2^-20 FLOP and the multiples are summed in a 128-bit integer, so the total does not depend on
// the order of the additions: the step program op by op (BuildStepGraph) and the compact program
// unit by unit (SimulateCompactSchedule: each unit's sum times its instances) give the same
// double, bit for bit. A sum of doubles would round differently in each order.
//
// Units: FLOPs. Range: totals below 2^100 FLOPs (far above any step within common/limits.h);
// addends must be finite and >= 0 (FLOP counts).
// Thread safety: a value type.
#pragma once

#include <cmath>

namespace moesim {

class FlopSum {
 public:
  void Add(double flops) { fixed_ += ToFixed(flops); }
  void Add(const FlopSum& other) { fixed_ += other.fixed_; }
  // The sum, rounded once to a double.
  double Value() const { return static_cast<double>(fixed_) * 0x1p-20; }

 private:
  __extension__ using Fixed = __int128;
  static Fixed ToFixed(double flops) { return static_cast<Fixed>(std::nearbyint(flops * 0x1p20)); }
  Fixed fixed_ = 0;
};

}  // namespace moesim
