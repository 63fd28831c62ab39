// routing.h
//
// How an MoE layer's routed tokens spread over the ranks of one expert-parallel group, and so
// what the busiest rank carries: it paces the grouped GEMM and the all-to-all(v) of every rank.
//
// Two descriptions of imbalance (moesim.proto Moe.routing):
//   - per-expert shares (UNIFORM, ZIPF, HISTOGRAM: MoeSpec::expert_load), experts placed on ranks
//     round-robin (expert e on rank e % ranks), each expert taking at most its capacity;
//   - a per-rank distribution (LOGNORMAL, dropless only): rank r carries mean x X_r with X_r
//     independent, log-normal, E[X] = 1 (log-space mean -sigma^2/2, deviation sigma); the
//     busiest rank carries mean x E[max_r X_r].
//
// Units: tokens (routed token-expert pairs) unless stated; fractions are dimensionless.
// Thread safety: pure functions.
#pragma once

#include <cstdint>

#include "proto/scenario.h"

namespace moesim {

struct RoutingStats {
  double busiest = 0;           // routed pairs on the busiest rank
  double mean = 0;              // routed pairs per rank
  double dropped_fraction = 0;  // of the pairs asked for, over capacity (0 when dropless)
};

// The routing of `group_tokens` tokens (all ranks of the EP group together), top_k pairs each,
// over `ranks` ranks; each expert takes at most `expert_capacity` pairs unless moe.dropless.
// REQUIRES: ranks >= 1; moe.expert_load has num_experts entries summing to 1.
RoutingStats RouteOverExpertGroup(const MoeSpec& moe, double group_tokens, double expert_capacity,
                                  int64_t ranks);

// E[max of n independent log-normal factors of mean 1 and log-space deviation sigma], by
// quadrature of E[max] = integral over x > 0 of (1 - F(x)^n) dx in log space (tests: 1 for n = 1
// to 1e-9, and a Monte Carlo estimate to 0.5%). 1 for n = 1 or sigma = 0.
double ExpectedMaxLogNormal(int64_t n, double sigma);

}  // namespace moesim
