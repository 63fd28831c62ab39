// Dropless routing and per-rank log-normal imbalance (costmodel/routing.h): the expected
// maximum against a closed form (two ranks) and a Monte Carlo estimate (eight ranks), the step
// plan's busiest rank paced by it, dropless against capacity on a Zipf routing worked by hand,
// and the validation of the new fields.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>

#include "costmodel/opgraph.h"
#include "costmodel/routing.h"
#include "costmodel/step_plan.h"
#include "proto/scenario_loader.h"
#include "tests/scenario_text.h"

namespace moesim {
namespace {

using namespace moesim::scenario_text;  // NOLINT

// Two ranks: E[max(X1, X2)] = 2 E[X1 1{X1 > X2}]; tilting by X1 = e^{mu + sigma Z1} with
// mu = -sigma^2 / 2 moves Z1 to N(sigma, 1), so E[X1 1{Z1 > Z2}] = P(N(sigma, 2) > 0) =
// Phi(sigma / sqrt 2): E[max] = 2 Phi(sigma / sqrt 2). sigma = 1: 2 x 0.760250 = 1.520500.
TEST(Routing, ExpectedMaxOfTwoLogNormalsClosedForm) {
  for (double sigma : {0.25, 0.5, 1.0, 2.0, 3.0}) {
    const double phi = 0.5 * std::erfc(-sigma / std::sqrt(2.0) / std::sqrt(2.0));
    EXPECT_NEAR(ExpectedMaxLogNormal(2, sigma), 2 * phi, 1e-7) << sigma;
  }
  EXPECT_NEAR(ExpectedMaxLogNormal(2, 1.0), 1.520500, 1e-6);
  EXPECT_EQ(ExpectedMaxLogNormal(1, 1.0), 1.0);
  EXPECT_EQ(ExpectedMaxLogNormal(8, 0.0), 1.0);
}

// Eight ranks, a second method: the mean over 200,000 draws of the largest of 8 log-normal
// factors (fixed seed), within 0.5%.
TEST(Routing, ExpectedMaxOfEightLogNormalsMatchesMonteCarlo) {
  for (double sigma : {0.3, 1.0}) {
    std::mt19937_64 rng(12345);
    std::normal_distribution<double> normal(0.0, 1.0);
    const int trials = 200000;
    double sum = 0;
    for (int t = 0; t < trials; ++t) {
      double best = 0;
      for (int r = 0; r < 8; ++r) {
        best = std::max(best, std::exp(-sigma * sigma / 2 + sigma * normal(rng)));
      }
      sum += best;
    }
    const double mc = sum / trials;
    EXPECT_NEAR(ExpectedMaxLogNormal(8, sigma) / mc, 1.0, 0.005) << sigma << " mc " << mc;
  }
}

// One DGX H100 node, EP 8 over 8 data-parallel ranks, 8 experts top-2, dropless.
constexpr char kEp8[] = R"(
name: "t/ep8"
model {
  name: "t" num_layers: 1 d_model: 1024 num_heads: 8 num_kv_heads: 8 head_dim: 128 d_ff: 4096
  vocab_size: 32000 seq_len: 1024 ffn_kind: SWIGLU
  moe { num_experts: 8 top_k: 2 dropless: true placement: EVERY_K placement_k: 1
        dispatch: PERMUTE routing: LOGNORMAL routing_lognormal_sigma: 0.5 }
}
cluster { topology: "dgx-h100:1" }
sharding { mesh { axes { name: "ep" size: 8 role: EXPERT } } }
training { global_batch_tokens: 16384 micro_batch_size: 2 recompute: NONE }
)";

// 16,384 tokens over 8 ranks: 2 sequences of 1,024 each = 2,048 tokens per rank, 4,096
// (token, expert) pairs. Dropless: all of them are routed, 4,096 per rank on average; the
// busiest rank carries 4,096 x E[max of 8 log-normal(0.5)] pairs, and its grouped GEMM and the
// all-to-all(v) run at that size.
TEST(Routing, DroplessLogNormalPacesTheBusiestRank) {
  auto sc = LoadText(kEp8);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const StepPlan p = MakeStepPlan(*sc);
  const double factor = ExpectedMaxLogNormal(8, 0.5);
  // Jensen: E[max X] >= exp(-sigma^2 / 2 + sigma E[max of 8 standard normals]) =
  // exp(-0.125 + 0.5 x 1.42360) = 1.7983 (the Monte Carlo test above checks the value itself).
  EXPECT_GT(factor, 1.7983);
  EXPECT_DOUBLE_EQ(p.routed, 4096.0);
  EXPECT_DOUBLE_EQ(p.slots, 4096.0 * factor);
  EXPECT_DOUBLE_EQ(p.busiest_rank_load, factor);
  EXPECT_DOUBLE_EQ(p.a2a_max_over_mean, factor);
  EXPECT_DOUBLE_EQ(p.dropped_fraction, 0);
  EXPECT_DOUBLE_EQ(p.a2a_bytes, 2048.0 * 2 * 1024 * 2);  // every pair's d_model row, bf16
  // Balanced (sigma 0): the mean itself.
  auto flat = LoadText(Replace(kEp8, "routing_lognormal_sigma: 0.5", "routing_lognormal_sigma: 0"));
  ASSERT_TRUE(flat.ok());
  EXPECT_DOUBLE_EQ(MakeStepPlan(*flat).slots, 4096.0);
}

// Zipf with exponent 1 over 8 experts, one per rank: expert 0 gets 1 / H_8 = 1 / 2.717857 =
// 0.367937 of the pairs: 0.367937 x 32,768 = 12,056.6 of them. Dropless, rank 0 computes all of
// those. With capacity_factor 2 (C = 2 x 2 x 1,024 / 8 = 512 per group of 1,024 tokens, 16
// groups in the EP group: 8,192), rank 0 keeps 8,192 and drops the rest; so do experts 1 (half
// of expert 0's share, 6,028.3 < 8,192: kept)... only expert 0 overflows: 3,864.6 of 32,768 pairs
// = 11.79% dropped.
TEST(Routing, DroplessKeepsWhatCapacityDrops) {
  const std::string zipf = Replace(kEp8, "routing: LOGNORMAL routing_lognormal_sigma: 0.5",
                                   "routing: ZIPF routing_zipf_exponent: 1");
  auto dropless = LoadText(zipf);
  ASSERT_TRUE(dropless.ok()) << dropless.status().message();
  const double h8 = 1 + 1.0 / 2 + 1.0 / 3 + 1.0 / 4 + 1.0 / 5 + 1.0 / 6 + 1.0 / 7 + 1.0 / 8;
  const StepPlan d = MakeStepPlan(*dropless);
  EXPECT_NEAR(d.slots, 32768.0 / h8, 1e-6);
  EXPECT_DOUBLE_EQ(d.dropped_fraction, 0);
  auto capped = LoadText(Replace(zipf, "dropless: true", "capacity_factor: 2"));
  ASSERT_TRUE(capped.ok()) << capped.status().message();
  const StepPlan c = MakeStepPlan(*capped);
  EXPECT_NEAR(c.slots, 8192.0, 1e-6);
  EXPECT_NEAR(c.dropped_fraction, (32768.0 / h8 - 8192.0) / 32768.0, 1e-12);
}

// FP8 dispatch (DeepEP's normal kernels): each of the 2,048 x 2 routed rows of d_model 1,024 goes
// out as 1,024 bytes plus 1,024 / 128 = 8 fp32 scales: 4,096 x 1,056 = 4,325,376 bytes, against
// 4,096 x 2,048 = 8,388,608 in bf16. The combine, and both all-to-alls of the backward, stay bf16.
TEST(Routing, Fp8DispatchBytesByHand) {
  auto sc =
      LoadText(Replace(kEp8, "dispatch: PERMUTE", "dispatch: PERMUTE dispatch_precision: FP8"));
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  std::map<std::string, double> bytes;
  for (const Op& op : BuildStepGraph(*sc).ops) {
    if (op.is_collective && op.collective.kind == CollectiveKind::kAllToAll &&
        op.micro_batch == 0) {
      bytes[op.name] = op.collective.bytes;
    }
  }
  EXPECT_DOUBLE_EQ(bytes["L0.moe.dispatch_a2a"], 4325376.0);
  EXPECT_DOUBLE_EQ(bytes["L0.moe.combine_a2a"], 8388608.0);
  EXPECT_DOUBLE_EQ(bytes["L0.moe.dispatch_a2a.bwd"], 8388608.0);
  EXPECT_DOUBLE_EQ(bytes["L0.moe.combine_a2a.bwd"], 8388608.0);
}

TEST(Routing, ValidationNamesTheField) {
  auto expect_error = [](const std::string& text, const std::string& want) {
    auto sc = LoadText(text);
    ASSERT_FALSE(sc.ok()) << want;
    EXPECT_NE(sc.status().message().find(want), std::string::npos) << sc.status().message();
  };
  expect_error(Replace(kEp8, "dispatch: PERMUTE", "dispatch: EINSUM"),
               "model.moe.dropless needs model.moe.dispatch: PERMUTE");
  expect_error(Replace(kEp8, "dropless: true", "dropless: true capacity_factor: 1.25"),
               "model.moe.capacity_factor=1.25 with model.moe.dropless");
  expect_error(Replace(kEp8, "dropless: true", "capacity_factor: 1.25"),
               "model.moe.routing=LOGNORMAL describes the load of dropless routing");
  expect_error(Replace(kEp8, "routing_lognormal_sigma: 0.5", "routing_lognormal_sigma: 7"),
               "t.textproto:7: model.moe.routing_lognormal_sigma=7 must be in [0, 3]");
  expect_error(Replace(kEp8, "routing: LOGNORMAL", "routing: UNIFORM"),
               "model.moe.routing_lognormal_sigma is for model.moe.routing=LOGNORMAL only");
}

}  // namespace
}  // namespace moesim
