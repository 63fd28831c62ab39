// grad_check.h
//
// Finite-difference helpers for the backward tests: central differences in double precision
// against the analytical gradient, with a combined relative/absolute tolerance.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "real/rng.h"

namespace moesim::real::testing {

inline std::vector<double> RandomVector(int64_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = scale * rng.Normal();
  return v;
}

// Central difference of f at x[i] with step h.
inline double NumericalDerivative(const std::function<double()>& f, double* x, double h = 1e-5) {
  const double saved = *x;
  *x = saved + h;
  const double up = f();
  *x = saved - h;
  const double down = f();
  *x = saved;
  return (up - down) / (2 * h);
}

// Checks every `stride`-th element of an analytical gradient against central differences of
// f, perturbing x[0..n) in place (f must read x).
inline void ExpectGradientMatches(const std::string& what, double* x, size_t n,
                                  const double* analytic, const std::function<double()>& f,
                                  size_t stride = 1, double rel_tol = 1e-6, double abs_tol = 1e-8) {
  int checked = 0;
  for (size_t i = 0; i < n; i += std::max<size_t>(stride, 1)) {
    const double num = NumericalDerivative(f, &x[i]);
    const double tol = abs_tol + rel_tol * std::max(std::abs(num), std::abs(analytic[i]));
    EXPECT_NEAR(analytic[i], num, tol) << what << " element " << i;
    ++checked;
  }
  EXPECT_GT(checked, 0) << what;
}

inline void ExpectGradientMatches(const std::string& what, std::vector<double>* x,
                                  const std::vector<double>& analytic,
                                  const std::function<double()>& f, size_t stride = 1) {
  ASSERT_EQ(x->size(), analytic.size()) << what;
  ExpectGradientMatches(what, x->data(), x->size(), analytic.data(), f, stride);
}

inline double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace moesim::real::testing
