// FP8 training (training.fp8_recipe, costmodel/fp8.h): which GEMMs run in FP8, the cast
// kernels around them, the memory FP8 saves and adds, and the refusals. Every number below is
// arithmetic on the model's dimensions, written out.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "costmodel/costmodel.h"
#include "costmodel/fp8.h"
#include "costmodel/opgraph.h"
#include "costmodel/step_plan.h"
#include "proto/megatron_args.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

// 2 layers, d_model 256, 4 heads of 64, SwiGLU 1024, vocab 1000, seq 128; 8 H100s, data
// parallel, one sequence per device.
const char* const kSmall = R"(
model { num_layers: 2 d_model: 256 num_heads: 4 d_ff: 1024 vocab_size: 1000 seq_len: 128
        ffn_kind: SWIGLU }
cluster { topology: "dgx-h100:1" }
sharding { strategy: DATA_PARALLEL mesh { data: 8 } }
training { global_batch_tokens: 1024 }
)";

Scenario Load(const std::vector<std::string>& overrides) {
  auto sc = LoadScenarioFromText(kSmall, "small", overrides);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return sc.ok() ? *sc : Scenario{};
}

const OpDesc* Find(const std::vector<OpDesc>& ops, const std::string& name) {
  auto it = std::find_if(ops.begin(), ops.end(), [&](const OpDesc& d) { return d.name == name; });
  return it == ops.end() ? nullptr : &*it;
}

TEST(Fp8, CastBytesPerElement) {
  // Read BF16 (2) + two FP8 copies (1 + 1); current scaling reads once more (2); block scales:
  // fp32 per 128 elements x 2 copies = 8/128, E8M0 per 32 x 2 copies = 2/32 = 1/16.
  EXPECT_DOUBLE_EQ(Fp8CastBytesPerElement(Fp8Recipe::kNone), 0);
  EXPECT_DOUBLE_EQ(Fp8CastBytesPerElement(Fp8Recipe::kDelayed), 4);
  EXPECT_DOUBLE_EQ(Fp8CastBytesPerElement(Fp8Recipe::kTensorwise), 6);
  EXPECT_DOUBLE_EQ(Fp8CastBytesPerElement(Fp8Recipe::kBlockwise), 4.0625);
  EXPECT_DOUBLE_EQ(Fp8CastBytesPerElement(Fp8Recipe::kMxfp8), 4.0625);
  // After a norm (Transformer Engine's normalization.cpp): delayed scaling's norm writes FP8
  // (0); current scaling's takes the amax, leaving read + two copies (4); block quantizers
  // run unfused (the whole cast).
  EXPECT_DOUBLE_EQ(Fp8CastAfterNormBytesPerElement(Fp8Recipe::kNone), 0);
  EXPECT_DOUBLE_EQ(Fp8CastAfterNormBytesPerElement(Fp8Recipe::kDelayed), 0);
  EXPECT_DOUBLE_EQ(Fp8CastAfterNormBytesPerElement(Fp8Recipe::kTensorwise), 4);
  EXPECT_DOUBLE_EQ(Fp8CastAfterNormBytesPerElement(Fp8Recipe::kBlockwise), 4.0625);
  EXPECT_DOUBLE_EQ(Fp8CastAfterNormBytesPerElement(Fp8Recipe::kMxfp8), 4.0625);
}

TEST(Fp8, CastsAfterANormFollowTheRecipe) {
  // q, k, v after the attention norm, [128 tokens x 256]: delayed scaling casts nothing forward
  // (backward-only op of the 3 output gradients, 3 x 128 x 256 x 4 = 393,216 B); current
  // scaling casts the input at 4 B (131,072 B) and the gradients at 6 (589,824 B: factor 4.5);
  // blockwise at 4.0625 both ways (133,120 B; gradients 399,360 B: factor 3).
  const StepPlan delayed_plan = MakeStepPlan(Load({"training.fp8_recipe=DELAYED"}));
  const OpDesc* delayed = Find(delayed_plan.dense_ops, "attn.q.fp8_cast");
  ASSERT_NE(delayed, nullptr);
  EXPECT_EQ(delayed->passes, Passes::kBackwardOnly);
  EXPECT_DOUBLE_EQ(delayed->compute.bytes, 393216);
  // In the step program, the backward op moves those bytes once.
  const OpGraph g = BuildStepGraph(Load({"training.fp8_recipe=DELAYED"}));
  int found = 0;
  for (const Op& op : g.ops) {
    if (op.name.find("attn.q.fp8_cast") == std::string::npos) continue;
    EXPECT_NE(op.name.find(".bwd"), std::string::npos) << op.name;  // no forward op
    EXPECT_DOUBLE_EQ(op.compute.bytes, 393216) << op.name;
    ++found;
  }
  EXPECT_GT(found, 0);
  const StepPlan tensor = MakeStepPlan(Load({"training.fp8_recipe=TENSORWISE"}));
  const OpDesc* t = Find(tensor.dense_ops, "attn.q.fp8_cast");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->passes, Passes::kBoth);
  EXPECT_DOUBLE_EQ(t->compute.bytes, 131072);
  EXPECT_DOUBLE_EQ(t->backward_bytes_factor, 4.5);
  const StepPlan block = MakeStepPlan(Load({"training.fp8_recipe=BLOCKWISE"}));
  const OpDesc* b = Find(block.dense_ops, "attn.q.fp8_cast");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->passes, Passes::kBoth);
  EXPECT_DOUBLE_EQ(b->compute.bytes, 133120);
  EXPECT_DOUBLE_EQ(b->backward_bytes_factor, 3);
}

TEST(Fp8, LinearLayersRunInFp8WithTheirCasts) {
  const StepPlan bf16 = MakeStepPlan(Load({}));
  const StepPlan p = MakeStepPlan(Load({"training.fp8_recipe=DELAYED"}));
  const auto& ops = p.dense_ops;
  for (const char* g : {"attn.q", "attn.k", "attn.v", "attn.out", "ffn.w1", "ffn.w3", "ffn.w2"}) {
    const OpDesc* d = Find(ops, g);
    ASSERT_NE(d, nullptr) << g;
    EXPECT_TRUE(d->compute.fp8) << g;
    EXPECT_DOUBLE_EQ(d->compute.flops, Find(bf16.dense_ops, g)->compute.flops) << g;
  }
  // Attention's core and the head stay BF16.
  for (const OpDesc& d : ops) {
    if (d.name == "attn.scores" || d.name == "attn.context") {
      EXPECT_FALSE(d.compute.fp8) << d.name;
    }
  }
  for (const OpDesc& d : p.head_ops) EXPECT_FALSE(d.compute.fp8) << d.name;
  // q: [128 tokens x 256] x [256 x 256]: operands 32,768 + 65,536 at 1 byte, output 32,768 at 2
  // = 163,840 B (BF16: 2 x 131,072 = 262,144).
  EXPECT_DOUBLE_EQ(Find(bf16.dense_ops, "attn.q")->compute.bytes, 262144);
  EXPECT_DOUBLE_EQ(Find(ops, "attn.q")->compute.bytes, 163840);
  // q, k, v follow the norm (fused under delayed scaling): only their output gradients are
  // cast, in backward:
  // 3 x 128 x 256 x 4 B = 393,216.
  const OpDesc* qkv = Find(ops, "attn.q.fp8_cast");
  ASSERT_NE(qkv, nullptr);
  EXPECT_EQ(qkv->passes, Passes::kBackwardOnly);
  EXPECT_DOUBLE_EQ(qkv->compute.bytes, 393216);
  EXPECT_EQ(Find(ops, "attn.k.fp8_cast"), nullptr);  // one cast for the run on one input
  // The output projection's input (attention's context) is cast: 128 x 256 x 4 = 131,072 B;
  // its output gradient is the same size.
  const OpDesc* out = Find(ops, "attn.out.fp8_cast");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->passes, Passes::kBoth);
  EXPECT_DOUBLE_EQ(out->compute.bytes, 131072);
  EXPECT_DOUBLE_EQ(out->backward_bytes_factor, 1);
  // w1, w3 after the norm: backward casts of 2 x 128 x 1024 x 4 = 1,048,576 B. w2's input
  // [128 x 1024] x 4 = 524,288 B; its output gradient [128 x 256] x 4 is a quarter of that.
  EXPECT_DOUBLE_EQ(Find(ops, "ffn.w1.fp8_cast")->compute.bytes, 1048576);
  EXPECT_EQ(Find(ops, "ffn.w1.fp8_cast")->passes, Passes::kBackwardOnly);
  EXPECT_DOUBLE_EQ(Find(ops, "ffn.w2.fp8_cast")->compute.bytes, 524288);
  EXPECT_DOUBLE_EQ(Find(ops, "ffn.w2.fp8_cast")->backward_bytes_factor, 0.25);
}

TEST(Fp8, MemoryKeepsGemmInputsInFp8AndCachesFp8Weights) {
  const MemoryReport bf16 = ComputeMemory(Load({}));
  const MemoryReport fp8 = ComputeMemory(Load({"training.fp8_recipe=BLOCKWISE"}));
  // Layer parameters: 2 x (4 x 256^2 + 3 x 256 x 1024 + 2 x 256) = 2,098,176; two FP8 copies
  // of each: 4,196,352 B more.
  EXPECT_DOUBLE_EQ(fp8.weights_bytes - bf16.weights_bytes, 4196352);
  // Per layer, attn.normed and ffn.normed [128 x 256] and ffn.act [128 x 1024] at 1 byte
  // instead of 2: 32,768 + 32,768 + 131,072 = 196,608 B less, two layers.
  EXPECT_DOUBLE_EQ(bf16.activations_bytes - fp8.activations_bytes, 2 * 196608);
}

TEST(Fp8, Refusals) {
  auto a100 = LoadScenarioFromText(kSmall, "small.textproto",
                                   {"cluster.topology=dgx-a100:1", "training.fp8_recipe=DELAYED"});
  ASSERT_FALSE(a100.ok());
  EXPECT_NE(a100.status().message().find("training.fp8_recipe=DELAYED runs GEMMs in FP8"),
            std::string::npos)
      << a100.status().message();
  EXPECT_NE(a100.status().message().find("a100"), std::string::npos);
  auto mx = LoadScenarioFromText(kSmall, "small.textproto", {"training.fp8_recipe=MXFP8"});
  ASSERT_FALSE(mx.ok());
  EXPECT_NE(mx.status().message().find("Blackwell"), std::string::npos) << mx.status().message();
  EXPECT_TRUE(
      LoadScenarioFromText(kSmall, "small.textproto",
                           {"cluster.topology=gb200-nvl72:1", "sharding.mesh.data=72",
                            "training.global_batch_tokens=9216", "training.fp8_recipe=MXFP8"})
          .ok());
}

}  // namespace
}  // namespace moesim
