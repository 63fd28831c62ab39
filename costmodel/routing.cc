#include "costmodel/routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace moesim {

RoutingStats RouteOverExpertGroup(const MoeSpec& moe, double group_tokens, double expert_capacity,
                                  int64_t ranks, double rank_buffer) {
  const double k = static_cast<double>(moe.top_k);
  const double n = static_cast<double>(ranks);
  RoutingStats r;
  if (moe.rank_load_sigma >= 0) {
    const double mean = k * group_tokens / n;
    const double b = rank_buffer / mean;  // the buffer over the mean load
    r.busiest = mean * ExpectedMaxLogNormal(ranks, moe.rank_load_sigma, b);
    r.dropped_fraction = std::isinf(b) ? 0 : LogNormalExcess(moe.rank_load_sigma, b);
    r.mean = mean * (1 - r.dropped_fraction);
    return r;
  }
  const double cap = moe.dropless ? std::numeric_limits<double>::infinity() : expert_capacity;
  std::vector<double> rank_load(static_cast<size_t>(ranks), 0);
  double routed_total = 0, dropped = 0;
  for (size_t e = 0; e < moe.expert_load.size(); ++e) {
    const double want = moe.expert_load[e] * k * group_tokens;
    const double got = std::min(want, cap);
    dropped += want - got;
    routed_total += got;
    rank_load[e % rank_load.size()] += got;
  }
  for (double& load : rank_load) {
    dropped += std::max(0.0, load - rank_buffer);
    routed_total -= std::max(0.0, load - rank_buffer);
    load = std::min(load, rank_buffer);
  }
  r.busiest = *std::max_element(rank_load.begin(), rank_load.end());
  r.mean = routed_total / n;
  r.dropped_fraction = dropped / (k * group_tokens);
  return r;
}

double LogNormalExcess(double sigma, double b) {
  if (sigma <= 0) return std::max(0.0, 1 - b);
  if (b <= 0) return 1;
  auto phi = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  const double lb = std::log(b);
  return phi((sigma * sigma / 2 - lb) / sigma) - b * phi((-sigma * sigma / 2 - lb) / sigma);
}

double ExpectedMaxLogNormal(int64_t n, double sigma, double cap) {
  if (n <= 1 || sigma <= 0) return std::min(1.0, cap);
  // x = exp(mu + sigma z), mu = -sigma^2 / 2: E[max] = integral of (1 - Phi(z)^n) dx, dx =
  // sigma x dz. The integrand vanishes like x Phi(z) n below (z -> -inf) and like x (1 - Phi(z))
  // above; z in [-12, 12 + sigma] holds all of it but [0, x(-12)], where it is 1. Trapezoid rule on
  // a fine uniform grid (h = 0.003 or so): the integrand is smooth, so its error falls as h^2 with
  // tiny constants; ~8,000 evaluations, tens of microseconds.
  const double mu = -sigma * sigma / 2;
  const double lo = -12;
  // Past the cap the integrand is 0: x = cap at z = (ln cap - mu) / sigma.
  const double hi = std::min(12 + sigma, (std::log(cap) - mu) / sigma);
  if (hi <= lo) return cap;  // the cap lies below x(lo), where the integrand is 1
  const int steps = 8000;
  const double h = (hi - lo) / steps;
  const double nn = static_cast<double>(n);
  double sum = 0;
  for (int i = 0; i <= steps; ++i) {
    const double z = lo + h * i;
    // 1 - Phi(z)^n without cancellation where Phi is near 1: with q = 1 - Phi(z) taken from
    // erfc directly, -expm1(n log1p(-q)).
    const double q = 0.5 * std::erfc(z / std::sqrt(2.0));
    const double tail = -std::expm1(nn * std::log1p(-q));
    const double f = tail * sigma * std::exp(mu + sigma * z);
    sum += (i == 0 || i == steps) ? f / 2 : f;
  }
  // Below z = lo, F(x)^n is below 1e-33: the integrand is 1 over [0, x(lo)].
  return sum * h + std::exp(mu + sigma * lo);
}

}  // namespace moesim
