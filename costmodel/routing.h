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
#include <limits>

#include "proto/scenario.h"

namespace moesim {

struct RoutingStats {
  double busiest = 0;           // routed pairs on the busiest rank
  double mean = 0;              // routed pairs per rank
  double dropped_fraction = 0;  // of the pairs asked for, over capacity (0 when dropless)
};

// The routing of `group_tokens` tokens (all ranks of the EP group together), top_k pairs each,
// over `ranks` ranks; each expert takes at most `expert_capacity` pairs unless moe.dropless, and
// each rank receives at most `rank_buffer` pairs (MaxText's ragged receive buffer: the pairs past
// it are dropped; infinity = no buffer limit). With LOGNORMAL the buffer b (over the mean) cuts
// the busiest rank to E[min(max_r X_r, b)] and drops E[(X - b)+] of the pairs, which for X
// log-normal of mean 1 is Phi((sigma^2/2 - ln b) / sigma) - b Phi((-sigma^2/2 - ln b) / sigma).
// REQUIRES: ranks >= 1; moe.expert_load has num_experts entries summing to 1; rank_buffer > 0.
RoutingStats RouteOverExpertGroup(const MoeSpec& moe, double group_tokens, double expert_capacity,
                                  int64_t ranks,
                                  double rank_buffer = std::numeric_limits<double>::infinity());

// E[min(max of n independent log-normal factors of mean 1 and log-space deviation sigma, cap)],
// by quadrature of E[min(max, cap)] = integral over 0 < x < cap of (1 - F(x)^n) dx in log space
// (tests: 1 for n = 1 to 1e-9, and a Monte Carlo estimate to 0.5%). 1 for n = 1 or sigma = 0
// (cap < 1: cap).
double ExpectedMaxLogNormal(int64_t n, double sigma,
                            double cap = std::numeric_limits<double>::infinity());

// E[(X - b)+] for X log-normal of mean 1 and log-space deviation sigma: the share of a rank's
// mean load past a buffer of b times the mean.
double LogNormalExcess(double sigma, double b);

}  // namespace moesim
