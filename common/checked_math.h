// checked_math.h
//
// Arithmetic on sizes that cannot overflow silently: the one helper every reader of user input
// uses to multiply or add counts taken from a file (devices of a mesh, tokens of a batch,
// elements of a tensor). Each returns std::nullopt on int64 overflow or when an operand is
// negative, so that a caller refuses the input instead of computing with a wrapped value.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>

namespace moesim {

// a * b, or nullopt when it overflows int64 or an operand is negative.
inline std::optional<int64_t> CheckedMul(int64_t a, int64_t b) {
  int64_t out = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// a + b, or nullopt when it overflows int64 or an operand is negative.
inline std::optional<int64_t> CheckedAdd(int64_t a, int64_t b) {
  int64_t out = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// The product of `factors`, or nullopt as CheckedMul.
inline std::optional<int64_t> CheckedProduct(std::initializer_list<int64_t> factors) {
  int64_t out = 1;
  for (int64_t f : factors) {
    const auto next = CheckedMul(out, f);
    if (!next) return std::nullopt;
    out = *next;
  }
  return out;
}

// The product of `factors` when it is at most `limit`, else nullopt (overflow included).
inline std::optional<int64_t> ProductWithin(std::initializer_list<int64_t> factors, int64_t limit) {
  const auto p = CheckedProduct(factors);
  if (!p || *p > limit) return std::nullopt;
  return p;
}

}  // namespace moesim
