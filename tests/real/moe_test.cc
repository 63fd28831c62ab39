// MoE routing and the MoE layer: routing worked out by hand (top-k order, capacity, dropping,
// load-balancing and z losses), invariants on random logits, the router gradient and the whole
// layer's gradients against central differences, and the forward against a per-token
// reference that never builds the dispatch layout.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "real/kernels/cpu_device.h"
#include "real/layers/moe.h"
#include "real/layers/routing.h"
#include "tests/real/grad_check.h"

namespace moesim::real {
namespace {

using testing::Dot;
using testing::ExpectGradientMatches;
using testing::RandomVector;

TEST(Routing, TopOneWithCapacityOneDropsTheSecondToken) {
  // Both tokens prefer expert 0 with p = (3/4, 1/4); capacity 1 keeps token 0 only.
  const std::vector<double> logits = {std::log(3.0), 0, std::log(3.0), 0};
  const Routing r = Route(logits.data(), 2, RouterConfig{2, 1, 1, 2});
  EXPECT_EQ(r.pos, (std::vector<int32_t>{0, -1}));
  EXPECT_EQ(r.slot_token, (std::vector<int32_t>{0}));
  EXPECT_EQ(r.expert_rows, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(r.dropped, 1);
  EXPECT_NEAR(r.probs[0], 0.75, 1e-15);
  // f = (1, 0), P = (3/4, 1/4): lb = E sum f P = 2 * 3/4.
  EXPECT_NEAR(r.load_balance_loss, 1.5, 1e-15);
  // logsumexp = ln(3 + 1) for both tokens.
  EXPECT_NEAR(r.z_loss, std::log(4.0) * std::log(4.0), 1e-14);
}

TEST(Routing, FirstChoicesArePlacedBeforeSecondChoices) {
  // Three tokens, three experts, top-2, capacity 2. Preferences: t0 (e0, e1), t1 (e0, e2),
  // t2 (e0, e1). First choices: e0 takes t0, t1 and is full, so t2's first choice is dropped.
  // Second choices: e1 takes t0, t2; e2 takes t1.
  const std::vector<double> logits = {2, 1, 0, 2, 0, 1, 2, 1, 0};
  const Routing r = Route(logits.data(), 3, RouterConfig{3, 2, 2, 3});
  EXPECT_EQ(r.choice, (std::vector<int32_t>{0, 1, 0, 2, 0, 1}));
  // Rows, expert-major: e0 {t0, t1}, e1 {t0, t2}, e2 {t1}.
  EXPECT_EQ(r.slot_token, (std::vector<int32_t>{0, 1, 0, 2, 1}));
  EXPECT_EQ(r.slot_expert, (std::vector<int32_t>{0, 0, 1, 1, 2}));
  EXPECT_EQ(r.pos, (std::vector<int32_t>{0, 2, 1, 4, -1, 3}));
  EXPECT_EQ(r.expert_offset, (std::vector<int64_t>{0, 2, 4, 5}));
  EXPECT_EQ(r.dropped, 1);
  // lb = 3 sum_e f_e P_e with f = (3, 2, 1) / 6 (choices before dropping) and P the mean prob.
  const double z = std::exp(2.0) + std::exp(1.0) + 1.0;
  const double p_hi = std::exp(2.0) / z, p_mid = std::exp(1.0) / z, p_lo = 1.0 / z;
  const double P0 = p_hi, P1 = (p_mid + p_lo + p_mid) / 3, P2 = (p_lo + p_mid + p_lo) / 3;
  EXPECT_NEAR(r.load_balance_loss, 3 * (0.5 * P0 + P1 / 3 + P2 / 6), 1e-14);
}

TEST(Routing, InvariantsOnRandomLogits) {
  const RouterConfig cfg{8, 2, 4, 16};  // capacity = ceil(1.0 x 2 x 16 / 8) = 4
  const int64_t n = 64;
  const std::vector<double> logits = RandomVector(n * cfg.num_experts, 77, 2.0);
  const Routing r = Route(logits.data(), n, cfg);
  EXPECT_EQ(r.rows() + r.dropped, n * cfg.top_k);
  for (int64_t g = 0; g < n / cfg.group_size; ++g) {
    std::vector<int64_t> per_expert(static_cast<size_t>(cfg.num_experts), 0);
    for (int64_t row = 0; row < r.rows(); ++row) {
      const int32_t t = r.slot_token[static_cast<size_t>(row)];
      if (t / cfg.group_size == g)
        ++per_expert[static_cast<size_t>(r.slot_expert[static_cast<size_t>(row)])];
    }
    for (int64_t c : per_expert) EXPECT_LE(c, cfg.capacity) << "group " << g;
  }
  for (int64_t t = 0; t < n; ++t) {
    std::set<int32_t> experts;
    double best = 0;
    for (int64_t e = 0; e < cfg.num_experts; ++e)
      best = std::max(best, r.probs[static_cast<size_t>(t * cfg.num_experts + e)]);
    EXPECT_EQ(
        r.probs[static_cast<size_t>(t * cfg.num_experts + r.choice[static_cast<size_t>(t * 2)])],
        best);
    for (int64_t j = 0; j < cfg.top_k; ++j) {
      const int32_t e = r.choice[static_cast<size_t>(t * 2 + j)];
      experts.insert(e);
      const int32_t p = r.pos[static_cast<size_t>(t * 2 + j)];
      if (p < 0) continue;
      EXPECT_EQ(r.slot_token[static_cast<size_t>(p)], t);
      EXPECT_EQ(r.slot_expert[static_cast<size_t>(p)], e);
      EXPECT_GE(p, r.expert_offset[static_cast<size_t>(e)]);
      EXPECT_LT(p, r.expert_offset[static_cast<size_t>(e) + 1]);
    }
    EXPECT_EQ(experts.size(), 2u) << "token " << t << " picked one expert twice";
  }
}

TEST(Routing, RouterBackwardMatchesFiniteDifferences) {
  const RouterConfig cfg{4, 2, 3, 6};
  const int64_t n = 12;
  std::vector<double> logits = RandomVector(n * cfg.num_experts, 5);
  const Routing fixed = Route(logits.data(), n, cfg);
  const std::vector<double> c = RandomVector(fixed.rows(), 6);
  const double aux = 0.3, zc = 0.2;
  auto f = [&]() {
    const Routing r = Route(logits.data(), n, cfg);
    EXPECT_EQ(r.pos, fixed.pos) << "step changed the routing";
    double s = 0;
    for (int64_t row = 0; row < r.rows(); ++row) {
      s += c[static_cast<size_t>(row)] *
           r.probs[static_cast<size_t>(r.slot_token[static_cast<size_t>(row)] * cfg.num_experts +
                                       r.slot_expert[static_cast<size_t>(row)])];
    }
    return s + aux * r.load_balance_loss + zc * r.z_loss;
  };
  const std::vector<double> grad = RouterBackward(fixed, cfg, c, aux, zc);
  ExpectGradientMatches("router logits", &logits, grad, f);
}

struct MoeFixture {
  explicit MoeFixture(const MoeShape& s) : shape(s), moe(s, "moe", 0, 0.5, 0.5, &params) {
    EXPECT_TRUE(params.Allocate(&dev).ok());
    params.Initialize(&dev, 3);
    EXPECT_TRUE(moe.AllocateActivations(&dev).ok());
    EXPECT_TRUE(ws.Allocate(&dev, moe.ScratchElems()).ok());
    ctx.dev = &dev;
    ctx.ws = &ws;
  }
  std::vector<double> Run(const std::vector<double>& x) {
    std::vector<double> out(x.size());
    EXPECT_TRUE(moe.Forward(ctx, x.data(), out.data()).ok());
    return out;
  }
  const double* Param(const std::string& suffix) {
    for (const ParamEntry& e : params.entries()) {
      if (e.name == "moe." + suffix) return params.params().data() + e.offset;
    }
    ADD_FAILURE() << suffix;
    return nullptr;
  }
  MoeShape shape;
  CpuDevice<double> dev;
  ParamSet<double> params;
  MoeLayer<double> moe;
  Workspace<double> ws;
  Context<double> ctx;
};

MoeShape SmallMoe(double capacity_factor_times_ek, int64_t top_k, int64_t shared) {
  MoeShape s;
  s.tokens = 12;
  s.d_model = 6;
  s.num_experts = 4;
  s.top_k = top_k;
  s.expert_hidden = 5;
  s.group_size = 6;
  s.capacity = static_cast<int64_t>(
      std::ceil(capacity_factor_times_ek * static_cast<double>(top_k) * 6.0 / 4.0));
  s.num_shared_experts = shared;
  s.aux_coef = 0.3;
  s.z_coef = 0.2;
  return s;
}

TEST(MoeLayer, ForwardMatchesPerTokenReference) {
  MoeFixture fx(SmallMoe(1.0, 2, 0));
  const std::vector<double> x = RandomVector(fx.shape.tokens * fx.shape.d_model, 8);
  const std::vector<double> out = fx.Run(x);
  const Routing& r = fx.moe.routing();
  const int64_t m = fx.shape.d_model, h = fx.shape.expert_hidden, e_n = fx.shape.num_experts;
  const double *w1 = fx.Param("w1"), *w3 = fx.Param("w3"), *w2 = fx.Param("w2"),
               *wr = fx.Param("router");
  for (int64_t t = 0; t < fx.shape.tokens; ++t) {
    // Router probabilities from x Wr.
    std::vector<double> logit(static_cast<size_t>(e_n), 0.0);
    for (int64_t e = 0; e < e_n; ++e) {
      for (int64_t i = 0; i < m; ++i)
        logit[static_cast<size_t>(e)] += x[static_cast<size_t>(t * m + i)] * wr[i * e_n + e];
    }
    double z = 0;
    for (double l : logit) z += std::exp(l);
    std::vector<double> want(static_cast<size_t>(m), 0.0);
    for (int64_t j = 0; j < fx.shape.top_k; ++j) {
      if (r.pos[static_cast<size_t>(t * 2 + j)] < 0) continue;
      const int64_t e = r.choice[static_cast<size_t>(t * 2 + j)];
      const double gate = std::exp(logit[static_cast<size_t>(e)]) / z;
      for (int64_t k = 0; k < h; ++k) {
        double a = 0, b = 0;
        for (int64_t i = 0; i < m; ++i) {
          a += x[static_cast<size_t>(t * m + i)] * w1[(e * m + i) * h + k];
          b += x[static_cast<size_t>(t * m + i)] * w3[(e * m + i) * h + k];
        }
        const double act = a / (1 + std::exp(-a)) * b;
        for (int64_t i = 0; i < m; ++i)
          want[static_cast<size_t>(i)] += gate * act * w2[(e * h + k) * m + i];
      }
    }
    for (int64_t i = 0; i < m; ++i)
      EXPECT_NEAR(out[static_cast<size_t>(t * m + i)], want[static_cast<size_t>(i)], 1e-13);
  }
}

TEST(MoeLayer, FullyDroppedTokensGetZeroOutput) {
  // Top-1 with capacity 1 per expert per group of 6: at most 4 of 6 tokens are kept.
  MoeShape s = SmallMoe(0.5, 1, 0);
  ASSERT_EQ(s.capacity, 1);
  MoeFixture fx(s);
  const std::vector<double> x = RandomVector(s.tokens * s.d_model, 9);
  const std::vector<double> out = fx.Run(x);
  int dropped_tokens = 0;
  for (int64_t t = 0; t < s.tokens; ++t) {
    if (fx.moe.routing().pos[static_cast<size_t>(t)] >= 0) continue;
    ++dropped_tokens;
    for (int64_t i = 0; i < s.d_model; ++i)
      EXPECT_EQ(out[static_cast<size_t>(t * s.d_model + i)], 0.0);
  }
  EXPECT_GE(dropped_tokens, 4);  // 12 tokens, at most 2 groups x 4 experts x 1 kept
}

TEST(MoeLayer, BackwardMatchesFiniteDifferences) {
  for (int64_t shared : {0, 1}) {
    MoeFixture fx(SmallMoe(1.0, 2, shared));
    std::vector<double> x = RandomVector(fx.shape.tokens * fx.shape.d_model, 10);
    const std::vector<double> probe = RandomVector(fx.shape.tokens * fx.shape.d_model, 11);
    fx.Run(x);
    ASSERT_GT(fx.moe.routing().dropped, 0) << "the check should cover dropped assignments";
    const std::vector<int32_t> routing = fx.moe.routing().pos;
    auto f = [&]() {
      const double v = Dot(fx.Run(x), probe) + fx.moe.aux_loss();
      EXPECT_EQ(fx.moe.routing().pos, routing);
      return v;
    };
    fx.Run(x);
    std::vector<double> dx(x.size(), 0.0);
    ASSERT_TRUE(fx.moe.Backward(fx.ctx, probe.data(), dx.data(), false).ok());
    ExpectGradientMatches("moe dx", &x, dx, f);
    for (const ParamEntry& e : fx.params.entries()) {
      ExpectGradientMatches(e.name, fx.params.params().data() + e.offset,
                            static_cast<size_t>(e.count), fx.params.grads().data() + e.offset, f,
                            3);
    }
  }
}

}  // namespace
}  // namespace moesim::real
