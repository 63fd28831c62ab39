// format.h: human-readable numbers for the CLI's tables.
#pragma once

#include <cstdio>
#include <string>

namespace moesim::cli {

// 1.23e9 -> "1.23 B", 4.5e6 -> "4.50 M" (counts: parameters, FLOPs).
inline std::string Count(double v) {
  const char* units[] = {"", " K", " M", " B", " T", " P", " E", " Z"};
  int i = 0;
  while (v >= 1000 && i < 7) {
    v /= 1000;
    ++i;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), i == 0 ? "%.0f%s" : "%.2f%s", v, units[i]);
  return buf;
}

// Bytes in GiB with two decimals.
inline std::string GiB(double bytes) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

inline std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

// part / whole as a percentage with one decimal, "-" when whole is not positive.
inline std::string Pct(double part, double whole) {
  return whole > 0 ? Fixed(100 * part / whole, 1) + "%" : "-";
}

}  // namespace moesim::cli
