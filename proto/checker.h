// checker.h (internal to proto/)
//
// Checker collects validation errors, each prefixed with where the field came from
// (FieldLocator), so that a user sees every problem of a scenario at once.
#pragma once

#include <charconv>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/field_locator.h"

namespace moesim {

inline std::string Num(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, ptr);
}
inline std::string Num(int64_t v) { return std::to_string(v); }

class Checker {
 public:
  explicit Checker(const FieldLocator& loc) : loc_(loc) {}

  void Fail(const std::string& path, const std::string& message) {
    errors_.push_back(loc_.Where(path) + ": " + message);
  }
  // > 0; 0 means the field was not given.
  void Positive(const std::string& path, int64_t v) {
    if (v == 0 && !loc_.WasWritten(path)) Fail(path, path + " is missing (must be > 0)");
    if (v < 0 || (v == 0 && loc_.WasWritten(path))) {
      Fail(path, path + "=" + Num(v) + " must be > 0");
    }
  }
  bool WasWritten(const std::string& path) const { return loc_.WasWritten(path); }
  void NonNegative(const std::string& path, int64_t v) {
    if (v < 0) Fail(path, path + "=" + Num(v) + " must be >= 0");
  }
  void NonNegative(const std::string& path, double v) {
    if (v < 0) Fail(path, path + "=" + Num(v) + " must be >= 0");
  }
  // v <= limit, one of the documented limits of common/limits.h. False (and reported) when not.
  bool AtMost(const std::string& path, int64_t v, int64_t limit) {
    if (v <= limit) return true;
    Fail(path, path + "=" + Num(v) + " exceeds the limit of " + Num(limit) + " (docs/limits.md)");
    return false;
  }
  // A fraction in (0, 1]; 0 = not set.
  void Fraction(const std::string& path, double v) {
    if (v < 0 || v > 1) Fail(path, path + "=" + Num(v) + " must be in (0, 1]");
  }
  size_t count() const { return errors_.size(); }
  Status ToStatus() const {
    std::string msg;
    for (const auto& e : errors_) msg += (msg.empty() ? "" : "\n") + e;
    return Status::InvalidInput(msg);
  }

 private:
  const FieldLocator& loc_;
  std::vector<std::string> errors_;
};

}  // namespace moesim
