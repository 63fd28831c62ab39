// Attention and SwiGLU FFN layers: forward against naive reference loops written from the
// definitions, backward (input and every weight) against central differences in double.
#include <gtest/gtest.h>

#include <cmath>

#include "real/kernels/cpu_device.h"
#include "real/layers/attention.h"
#include "real/layers/ffn.h"
#include "tests/real/grad_check.h"

namespace moesim::real {
namespace {

using testing::Dot;
using testing::ExpectGradientMatches;
using testing::RandomVector;

// Attention from the textbook definition, one (batch, head, query) at a time.
std::vector<double> NaiveAttention(const AttentionShape& s, const std::vector<double>& a,
                                   const double* wq, const double* wk, const double* wv,
                                   const double* wo) {
  const int64_t B = s.batch, S = s.seq, M = s.d_model, H = s.heads, KV = s.kv_heads, D = s.head_dim,
                r = H / KV;
  auto project = [&](const double* w, int64_t heads, bool rotate) {
    std::vector<double> out(static_cast<size_t>(B * S * heads * D), 0.0);
    for (int64_t t = 0; t < B * S; ++t) {
      for (int64_t j = 0; j < heads * D; ++j) {
        double acc = 0;
        for (int64_t i = 0; i < M; ++i)
          acc += a[static_cast<size_t>(t * M + i)] * w[i * heads * D + j];
        out[static_cast<size_t>(t * heads * D + j)] = acc;
      }
      const double pos = static_cast<double>(t % S);
      for (int64_t h = 0; h < (rotate ? heads : 0); ++h) {
        for (int64_t i = 0; i < D / 2; ++i) {
          const double ang =
              pos * std::pow(s.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(D));
          double* v = &out[static_cast<size_t>(t * heads * D + h * D + 2 * i)];
          const double x0 = v[0], x1 = v[1];
          v[0] = x0 * std::cos(ang) - x1 * std::sin(ang);
          v[1] = x0 * std::sin(ang) + x1 * std::cos(ang);
        }
      }
    }
    return out;
  };
  const std::vector<double> q = project(wq, H, true), k = project(wk, KV, true),
                            v = project(wv, KV, false);
  std::vector<double> ctx(static_cast<size_t>(B * S * H * D), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / r;
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> w(static_cast<size_t>(i + 1));
        double mx = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) {
            dot += q[static_cast<size_t>(((b * S + i) * H + h) * D + d)] *
                   k[static_cast<size_t>(((b * S + j) * KV + g) * D + d)];
          }
          w[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, w[static_cast<size_t>(j)]);
        }
        double sum = 0;
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j <= i; ++j) {
          for (int64_t d = 0; d < D; ++d) {
            ctx[static_cast<size_t>(((b * S + i) * H + h) * D + d)] +=
                w[static_cast<size_t>(j)] / sum *
                v[static_cast<size_t>(((b * S + j) * KV + g) * D + d)];
          }
        }
      }
    }
  }
  std::vector<double> out(static_cast<size_t>(B * S * M), 0.0);
  for (int64_t t = 0; t < B * S; ++t) {
    for (int64_t j = 0; j < M; ++j) {
      for (int64_t i = 0; i < H * D; ++i) {
        out[static_cast<size_t>(t * M + j)] +=
            ctx[static_cast<size_t>(t * H * D + i)] * wo[i * M + j];
      }
    }
  }
  return out;
}

struct AttentionFixture {
  explicit AttentionFixture(const AttentionShape& s)
      : shape(s), attn(s, "attn", 0, 0.4, 0.4, &params) {
    EXPECT_TRUE(params.Allocate(&dev).ok());
    params.Initialize(&dev, 7);
    EXPECT_TRUE(attn.AllocateActivations(&dev).ok());
    EXPECT_TRUE(ws.Allocate(&dev, attn.ScratchElems()).ok());
    ctx.dev = &dev;
    ctx.ws = &ws;
  }
  std::vector<double> Run(const std::vector<double>& x) {
    std::vector<double> out(static_cast<size_t>(shape.tokens() * shape.d_model));
    attn.Forward(ctx, x.data(), out.data());
    return out;
  }
  double* W(int i) {
    return params.params().data() + params.entries()[static_cast<size_t>(i)].offset;
  }

  AttentionShape shape;
  CpuDevice<double> dev;
  ParamSet<double> params;
  Attention<double> attn;
  Workspace<double> ws;
  Context<double> ctx;
};

const AttentionShape kGqa{/*batch=*/2,    /*seq=*/5,           /*d_model=*/8,
                          /*heads=*/4,    /*kv_heads=*/2,
                          /*head_dim=*/4, /*rope_theta=*/100.0};

TEST(Attention, ForwardMatchesNaiveGroupedQueryAttention) {
  AttentionFixture fx(kGqa);
  const std::vector<double> x = RandomVector(kGqa.tokens() * kGqa.d_model, 1);
  const std::vector<double> got = fx.Run(x);
  const std::vector<double> want = NaiveAttention(kGqa, x, fx.W(0), fx.W(1), fx.W(2), fx.W(3));
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
}

TEST(Attention, IsCausal) {
  AttentionFixture fx(kGqa);
  std::vector<double> x = RandomVector(kGqa.tokens() * kGqa.d_model, 2);
  const std::vector<double> before = fx.Run(x);
  // Change the last token of sequence 0 (row seq-1): rows 0..seq-2 of that sequence and all
  // of sequence 1 keep their outputs.
  for (int64_t c = 0; c < kGqa.d_model; ++c)
    x[static_cast<size_t>((kGqa.seq - 1) * kGqa.d_model + c)] += 1.0;
  const std::vector<double> after = fx.Run(x);
  for (int64_t t = 0; t < kGqa.tokens(); ++t) {
    for (int64_t c = 0; c < kGqa.d_model; ++c) {
      const size_t i = static_cast<size_t>(t * kGqa.d_model + c);
      if (t == kGqa.seq - 1) continue;
      EXPECT_EQ(before[i], after[i]) << "token " << t;
    }
  }
}

TEST(Attention, BackwardMatchesFiniteDifferences) {
  AttentionFixture fx(kGqa);
  std::vector<double> x = RandomVector(kGqa.tokens() * kGqa.d_model, 3);
  const std::vector<double> probe = RandomVector(kGqa.tokens() * kGqa.d_model, 4);
  auto f = [&]() { return Dot(fx.Run(x), probe); };
  fx.Run(x);
  std::vector<double> dx(x.size(), 0.0);
  fx.attn.Backward(fx.ctx, probe.data(), dx.data(), /*accumulate=*/false);
  ExpectGradientMatches("attention dx", &x, dx, f);
  for (const ParamEntry& e : fx.params.entries()) {
    ExpectGradientMatches(e.name, fx.params.params().data() + e.offset,
                          static_cast<size_t>(e.count), fx.params.grads().data() + e.offset, f,
                          /*stride=*/3);
  }
}

TEST(Attention, BackwardAccumulatesWhenAsked) {
  AttentionFixture fx(kGqa);
  const std::vector<double> x = RandomVector(kGqa.tokens() * kGqa.d_model, 5);
  const std::vector<double> probe = RandomVector(kGqa.tokens() * kGqa.d_model, 6);
  fx.Run(x);
  std::vector<double> fresh(x.size(), 0.0), acc(x.size(), 1.5);
  fx.attn.Backward(fx.ctx, probe.data(), fresh.data(), false);
  fx.attn.Backward(fx.ctx, probe.data(), acc.data(), true);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(acc[i], fresh[i] + 1.5, 1e-12);
}

TEST(SwiGluFfnLayer, ForwardByDefinitionAndBackwardByFiniteDifferences) {
  CpuDevice<double> dev;
  ParamSet<double> params;
  const FfnShape s{/*tokens=*/6, /*d_model=*/5, /*hidden=*/7};
  SwiGluFfn<double> ffn(s, "ffn", kDenseFfnOps, 0, 0.5, 0.5, &params);
  ASSERT_TRUE(params.Allocate(&dev).ok());
  params.Initialize(&dev, 11);
  ASSERT_TRUE(ffn.AllocateActivations(&dev).ok());
  Workspace<double> ws;
  ASSERT_TRUE(ws.Allocate(&dev, ffn.ScratchElems()).ok());
  Context<double> ctx;
  ctx.dev = &dev;
  ctx.ws = &ws;
  std::vector<double> x = RandomVector(s.tokens * s.d_model, 12);
  const std::vector<double> probe = RandomVector(s.tokens * s.d_model, 13);
  auto run = [&]() {
    std::vector<double> out(x.size());
    ffn.Forward(ctx, x.data(), out.data());
    return out;
  };
  // Definition: out = (silu(x W1) * (x W3)) W2, token 4, output 2.
  const double* w1 = params.params().data() + params.entries()[0].offset;
  const double* w3 = params.params().data() + params.entries()[1].offset;
  const double* w2 = params.params().data() + params.entries()[2].offset;
  double want = 0;
  for (int64_t j = 0; j < s.hidden; ++j) {
    double a = 0, b = 0;
    for (int64_t i = 0; i < s.d_model; ++i) {
      a += x[static_cast<size_t>(4 * s.d_model + i)] * w1[i * s.hidden + j];
      b += x[static_cast<size_t>(4 * s.d_model + i)] * w3[i * s.hidden + j];
    }
    want += a / (1 + std::exp(-a)) * b * w2[j * s.d_model + 2];
  }
  EXPECT_NEAR(run()[static_cast<size_t>(4 * s.d_model + 2)], want, 1e-13);

  auto f = [&]() { return Dot(run(), probe); };
  run();
  std::vector<double> dx(x.size(), 0.0);
  ffn.Backward(ctx, probe.data(), dx.data(), false);
  ExpectGradientMatches("ffn dx", &x, dx, f);
  for (const ParamEntry& e : params.entries()) {
    ExpectGradientMatches(e.name, params.params().data() + e.offset, static_cast<size_t>(e.count),
                          params.grads().data() + e.offset, f, 2);
  }
}

}  // namespace
}  // namespace moesim::real
