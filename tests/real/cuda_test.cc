// The CUDA backend against the CPU backend: every op on random inputs, the whole model's loss
// and gradients (strict fp32 mode: tight; bf16 compute: within bf16 tolerance), training on
// the GPU (the loss falls; two runs give the same bits), and the out-of-memory message.
// Every test skips with the reason where no GPU (or no driver) is present.
#include <gtest/gtest.h>

#include <cmath>

#include "proto/scenario_loader.h"
#include "real/comm/self_comm.h"
#include "real/kernels/cpu_device.h"
#include "real/kernels/cuda_device.h"
#include "real/layers/transformer.h"
#include "real/train/trainer.h"
#include "tests/real/grad_check.h"

namespace moesim::real {
namespace {

#define REQUIRE_GPU()                            \
  do {                                           \
    std::string why;                             \
    if (CudaDevice::DeviceCount(&why) == 0) {    \
      GTEST_SKIP() << "no CUDA device: " << why; \
    }                                            \
  } while (0)

std::vector<float> Random(int64_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(scale * rng.Normal());
  return v;
}

double RelErr(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// A buffer on the GPU holding `host`.
template <typename E>
Tensor<E> OnGpu(CudaDevice* dev, const std::vector<E>& host) {
  Expected<Tensor<E>> t = Tensor<E>::Make(dev, "test", static_cast<int64_t>(host.size()));
  EXPECT_TRUE(t.ok()) << t.status().message();
  t->Upload(host);
  return std::move(*t);
}

std::unique_ptr<CudaDevice> Gpu(bool bf16) {
  Expected<std::unique_ptr<CudaDevice>> d = CudaDevice::Create(0, bf16);
  EXPECT_TRUE(d.ok()) << d.status().message();
  return d.ok() ? std::move(*d) : nullptr;
}

TEST(CudaOps, GemmsMatchTheCpu) {
  REQUIRE_GPU();
  CpuDevice<float> cpu;
  for (bool bf16 : {false, true}) {
    auto gpu = Gpu(bf16);
    ASSERT_TRUE(gpu);
    const int64_t m = 67, n = 45, k = 129;
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const std::vector<float> a = Random(m * k, 1), b = Random(k * n, 2), c0 = Random(m * n, 3);
        std::vector<float> want = c0;
        cpu.Gemm(ta, tb, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n, 1.0f,
                 want.data(), n);
        Tensor<float> ga = OnGpu(gpu.get(), a), gb = OnGpu(gpu.get(), b), gc = OnGpu(gpu.get(), c0);
        gpu->Gemm(ta, tb, m, n, k, 0.5f, ga.data(), ta ? m : k, gb.data(), tb ? k : n, 1.0f,
                  gc.data(), n);
        // bf16 operands carry 8 significant bits: ~0.4% per product, averaging over k.
        EXPECT_LT(RelErr(gc.Download(), want), bf16 ? 1e-2 : 1e-5) << ta << tb << bf16;
      }
    }
    // Strided batched, as attention uses it.
    const std::vector<float> a = Random(3 * 8 * 4, 4), b = Random(3 * 4 * 8, 5);
    std::vector<float> want(3 * 8 * 8, 0.0f);
    cpu.GemmStridedBatched(false, true, 8, 8, 4, 1.0f, a.data(), 4, 32, b.data(), 4, 32, 0.0f,
                           want.data(), 8, 64, 3);
    Tensor<float> ga = OnGpu(gpu.get(), a), gb = OnGpu(gpu.get(), b),
                  gc = OnGpu(gpu.get(), std::vector<float>(want.size(), NAN));
    gpu->GemmStridedBatched(false, true, 8, 8, 4, 1.0f, ga.data(), 4, 32, gb.data(), 4, 32, 0.0f,
                            gc.data(), 8, 64, 3);
    EXPECT_LT(RelErr(gc.Download(), want), bf16 ? 1e-2 : 1e-5);
  }
}

TEST(CudaOps, EveryOtherOpMatchesTheCpu) {
  REQUIRE_GPU();
  CpuDevice<float> cpu;
  auto gpu = Gpu(true);
  ASSERT_TRUE(gpu);
  CudaDevice* g = gpu.get();
  const int64_t rows = 37, cols = 300;
  const std::vector<float> x = Random(rows * cols, 10), y = Random(rows * cols, 11),
                           gain = Random(cols, 12);
  auto check = [&](const char* what, const std::vector<float>& got, const std::vector<float>& want,
                   double tol = 1e-5) { EXPECT_LT(RelErr(got, want), tol) << what; };
  {  // RMSNorm forward and backward
    std::vector<float> yc(x.size()), rc(rows), dxc(x.size(), 0.5f), dgc(cols, 0.25f);
    cpu.RmsNormForward(x.data(), gain.data(), yc.data(), rc.data(), rows, cols, 1e-5);
    cpu.RmsNormBackward(x.data(), gain.data(), rc.data(), y.data(), dxc.data(), dgc.data(), rows,
                        cols);
    Tensor<float> gx = OnGpu(g, x), gg = OnGpu(g, gain), gy = OnGpu(g, y),
                  out = OnGpu(g, std::vector<float>(x.size())),
                  rs = OnGpu(g, std::vector<float>(rows)),
                  dx = OnGpu(g, std::vector<float>(x.size(), 0.5f)),
                  dg = OnGpu(g, std::vector<float>(cols, 0.25f));
    g->RmsNormForward(gx.data(), gg.data(), out.data(), rs.data(), rows, cols, 1e-5);
    g->RmsNormBackward(gx.data(), gg.data(), rs.data(), gy.data(), dx.data(), dg.data(), rows,
                       cols);
    check("rmsnorm y", out.Download(), yc);
    check("rmsnorm dx", dx.Download(), dxc);
    check("rmsnorm dgain", dg.Download(), dgc);
  }
  {  // RoPE both ways (rows of 3 heads x 100)
    for (bool inv : {false, true}) {
      std::vector<float> c = x;
      cpu.Rope(c.data(), rows, 3, 100, 16, 10000.0, inv);
      Tensor<float> gx = OnGpu(g, x);
      g->Rope(gx.data(), rows, 3, 100, 16, 10000.0, inv);
      check("rope", gx.Download(), c);
    }
  }
  {  // softmax (causal and not) and its backward
    for (bool causal : {false, true}) {
      const int64_t sr = 60, sc = 20;
      std::vector<float> p = Random(sr * sc, 13), dp = Random(sr * sc, 14), dx(p.size());
      Tensor<float> gp = OnGpu(g, p), gdp = OnGpu(g, dp);
      cpu.Softmax(p.data(), sr, sc, causal);
      cpu.SoftmaxBackward(p.data(), dp.data(), dx.data(), sr, sc);
      g->Softmax(gp.data(), sr, sc, causal);
      g->SoftmaxBackward(gp.data(), gdp.data(), gdp.data(), sr, sc);
      check("softmax", gp.Download(), p);
      check("softmax backward", gdp.Download(), dx);
    }
  }
  {  // SwiGLU, element-wise helpers, permute
    const int64_t n = rows * cols;
    std::vector<float> o(n), d1(n), d3(n);
    cpu.SwiGluForward(x.data(), y.data(), o.data(), n);
    Tensor<float> gx = OnGpu(g, x), gy = OnGpu(g, y), go = OnGpu(g, std::vector<float>(n));
    g->SwiGluForward(gx.data(), gy.data(), go.data(), n);
    check("swiglu", go.Download(), o);
    std::vector<float> dout = Random(n, 15);
    cpu.SwiGluBackward(x.data(), y.data(), dout.data(), d1.data(), d3.data(), n);
    Tensor<float> gd = OnGpu(g, dout), g1 = OnGpu(g, std::vector<float>(n)),
                  g3 = OnGpu(g, std::vector<float>(n));
    g->SwiGluBackward(gx.data(), gy.data(), gd.data(), g1.data(), g3.data(), n);
    check("swiglu dh1", g1.Download(), d1);
    check("swiglu dh3", g3.Download(), d3);
    std::vector<float> perm(n);
    cpu.Permute0213(x.data(), perm.data(), 1, rows, 3, 100);
    Tensor<float> gperm = OnGpu(g, std::vector<float>(n));
    g->Permute0213(gx.data(), gperm.data(), 1, rows, 3, 100);
    EXPECT_EQ(gperm.Download(), perm);
    EXPECT_NEAR(g->SumSquares(gx.data(), n), cpu.SumSquares(x.data(), n),
                1e-6 * cpu.SumSquares(x.data(), n));
  }
  {  // MoE gather / combine / dot, embedding scatter
    const std::vector<int32_t> idx = {3, -1, 0, 36, 5};
    const std::vector<float> w = {0.5f, 2.0f, 1.0f, -1.0f, 0.25f};
    std::vector<float> gc(5 * cols), cc(2 * cols, 1.0f), dc(5);
    cpu.GatherRows(x.data(), idx.data(), w.data(), gc.data(), 5, cols);
    const std::vector<int32_t> pos = {0, 2, -1, 4};
    cpu.CombineRows(gc.data(), pos.data(), w.data(), cc.data(), 2, 2, cols, true);
    const std::vector<int32_t> didx = {1, 2, 3, 0, 4};
    cpu.GatherDot(x.data(), didx.data(), y.data(), dc.data(), 5, cols);
    Tensor<float> gx = OnGpu(g, x), gy = OnGpu(g, y), gw = OnGpu(g, w);
    Tensor<int32_t> gi = OnGpu(g, idx), gp = OnGpu(g, pos), gd = OnGpu(g, didx);
    Tensor<float> ggc = OnGpu(g, std::vector<float>(5 * cols)),
                  gcc = OnGpu(g, std::vector<float>(2 * cols, 1.0f)),
                  gdc = OnGpu(g, std::vector<float>(5));
    g->GatherRows(gx.data(), gi.data(), gw.data(), ggc.data(), 5, cols);
    g->CombineRows(ggc.data(), gp.data(), gw.data(), gcc.data(), 2, 2, cols, true);
    g->GatherDot(gx.data(), gd.data(), gy.data(), gdc.data(), 5, cols);
    check("gather", ggc.Download(), gc);
    check("combine", gcc.Download(), cc);
    check("gather dot", gdc.Download(), dc);
    const std::vector<int32_t> ids = {2, 7}, off = {0, 2, 3}, p = {4, 0, 9};
    std::vector<float> table(10 * cols, 0.5f);
    cpu.ScatterAddRows(x.data(), ids.data(), off.data(), p.data(), 2, table.data(), cols);
    Tensor<float> gt = OnGpu(g, std::vector<float>(10 * cols, 0.5f));
    Tensor<int32_t> gids = OnGpu(g, ids), goff = OnGpu(g, off), gpos = OnGpu(g, p);
    g->ScatterAddRows(gx.data(), gids.data(), goff.data(), gpos.data(), 2, gt.data(), cols);
    check("scatter add", gt.Download(), table);
  }
  {  // cross-entropy in place, AdamW
    std::vector<float> l = x, loss(rows);
    std::vector<int32_t> t(rows);
    for (int64_t r = 0; r < rows; ++r)
      t[static_cast<size_t>(r)] = static_cast<int32_t>((r * 7) % cols);
    t[3] = -1;
    Tensor<float> gl = OnGpu(g, x), gloss = OnGpu(g, std::vector<float>(rows));
    Tensor<int32_t> gt = OnGpu(g, t);
    cpu.CrossEntropy(l.data(), t.data(), loss.data(), l.data(), rows, cols, 0.1);
    g->CrossEntropy(gl.data(), gt.data(), gloss.data(), gl.data(), rows, cols, 0.1);
    check("cross-entropy loss", gloss.Download(), loss);
    check("cross-entropy grad", gl.Download(), l);
    std::vector<float> p = x, gr = y, m(x.size(), 0.01f), v(x.size(), 0.02f);
    Tensor<float> gp = OnGpu(g, p), ggr = OnGpu(g, gr), gm = OnGpu(g, m), gv = OnGpu(g, v);
    cpu.AdamW(p.data(), gr.data(), m.data(), v.data(), rows * cols, 1e-3, 0.9, 0.95, 1e-8, 0.1,
              0.19, 0.0975, 0.5);
    g->AdamW(gp.data(), ggr.data(), gm.data(), gv.data(), rows * cols, 1e-3, 0.9, 0.95, 1e-8, 0.1,
             0.19, 0.0975, 0.5);
    check("adamw p", gp.Download(), p, 1e-6);
    check("adamw m", gm.Download(), m, 1e-6);
    check("adamw v", gv.Download(), v, 1e-6);
  }
  EXPECT_TRUE(g->Synchronize().ok());
}

TEST(CudaDevice, OutOfMemoryNamesTheTensorAndTheSize) {
  REQUIRE_GPU();
  auto gpu = Gpu(true);
  ASSERT_TRUE(gpu);
  Expected<void*> p = gpu->AllocateBytes("layer 3 moe.expert_in", int64_t{1} << 50);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find(
                "CUDA out of memory allocating layer 3 moe.expert_in: 1125899906842624 bytes"),
            std::string::npos)
      << p.status().message();
  EXPECT_TRUE(gpu->Synchronize().ok()) << "an OOM must not poison the device";
}

ModelConfig SmallModel(bool moe) {
  ModelConfig c;
  c.name = "small";
  c.num_layers = 2;
  c.d_model = 64;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.d_ff = 128;
  c.vocab_size = 96;
  c.seq_len = 32;
  c.moe_layer = {false, moe};
  if (moe) {
    c.num_experts = 4;
    c.top_k = 2;
    c.expert_d_ff = 64;
    c.group_size = 32;
    c.capacity = 20;
  }
  return c;
}

// Loss and per-tensor gradient error of the GPU model against the CPU model.
void CompareModels(const ModelConfig& cfg, bool bf16, double loss_tol, double grad_tol) {
  CpuDevice<float> cpu;
  auto gpu = Gpu(bf16);
  ASSERT_TRUE(gpu);
  auto mc = Transformer<float>::Create(cfg, 4, 1, 0, &cpu);
  auto mg = Transformer<float>::Create(cfg, 4, 1, 0, gpu.get());
  ASSERT_TRUE(mc.ok() && mg.ok());
  (*mc)->Initialize(3);
  (*mg)->Initialize(3);
  std::vector<int32_t> tokens(4 * 32), targets(tokens.size());
  Rng rng(8);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>(rng.Below(96));
    targets[i] = static_cast<int32_t>(rng.Below(96));
  }
  Expected<LossParts> lc = (*mc)->Forward(nullptr, nullptr, tokens, targets);
  Expected<LossParts> lg = (*mg)->Forward(nullptr, nullptr, tokens, targets);
  ASSERT_TRUE(lc.ok() && lg.ok());
  EXPECT_NEAR(lg->total(), lc->total(), loss_tol * lc->total());
  ASSERT_TRUE((*mc)->Backward(nullptr, nullptr).ok());
  ASSERT_TRUE((*mg)->Backward(nullptr, nullptr).ok());
  ASSERT_TRUE(gpu->Synchronize().ok());
  const std::vector<float> gc = (*mc)->params().grads().Download();
  const std::vector<float> gg = (*mg)->params().grads().Download();
  for (const ParamEntry& e : (*mc)->params().entries()) {
    const std::vector<float> a(gg.begin() + e.offset, gg.begin() + e.offset + e.count);
    const std::vector<float> b(gc.begin() + e.offset, gc.begin() + e.offset + e.count);
    EXPECT_LT(RelErr(a, b), grad_tol) << e.name;
  }
}

TEST(CudaModel, Fp32MoeModelMatchesTheCpuTightly) {
  REQUIRE_GPU();
  CompareModels(SmallModel(true), /*bf16=*/false, 1e-5, 1e-3);
}

TEST(CudaModel, Bf16DenseModelMatchesTheCpuWithinBf16Tolerance) {
  REQUIRE_GPU();
  CompareModels(SmallModel(false), /*bf16=*/true, 1e-2, 5e-2);
}

TEST(CudaTrain, LossFallsAndTwoRunsGiveTheSameBits) {
  REQUIRE_GPU();
  LoadOptions lo;
  lo.path = std::string(MOESIM_SOURCE_DIR) + "/tests/real/tiny-moe.textproto";
  Expected<Scenario> sc = LoadScenario(lo);
  ASSERT_TRUE(sc.ok());
  TrainOptions o;
  o.steps = 30;
  std::vector<double> losses[2];
  for (int run = 0; run < 2; ++run) {
    auto gpu = Gpu(true);
    ASSERT_TRUE(gpu);
    SelfComm self(gpu.get());
    Expected<TrainResult> r = Train(*sc, o, gpu.get(), &self, nullptr);
    ASSERT_TRUE(r.ok()) << r.status().message();
    for (const StepLog& s : r->steps) losses[run].push_back(s.loss);
  }
  EXPECT_LT(losses[0].back(), 0.8 * losses[0].front());
  EXPECT_EQ(losses[0], losses[1]);
}

}  // namespace
}  // namespace moesim::real
