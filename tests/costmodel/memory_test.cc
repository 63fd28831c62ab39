// Per-device memory against worked examples: every number below is arithmetic on the model's
// dimensions, written out, not output of the code under test.
#include <gtest/gtest.h>

#include "costmodel/costmodel.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

// LLaMA-style: 2 layers, d_model 256, 4 heads of 64, SwiGLU 1024, vocab 1000, seq 128, untied,
// RMSNorm, no biases; 8 TPU-v5e chips; 8 sequences per step (1 per device); bf16 mixed AdamW.
const char* const kSmall = R"(
model { num_layers: 2 d_model: 256 num_heads: 4 d_ff: 1024 vocab_size: 1000 seq_len: 128
        ffn_kind: SWIGLU }
cluster { topology: "tpu-v5e:2x4" }
sharding { strategy: DATA_PARALLEL mesh { data: 8 } }
training { global_batch_tokens: 1024 }
)";

Scenario Load(const std::vector<std::string>& overrides) {
  auto sc = LoadScenarioFromText(kSmall, "small", overrides);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return sc.ok() ? *sc : Scenario{};
}

// Parameters: per layer 4*256^2 (q,k,v,o) + 3*256*1024 (SwiGLU) + 2*256 (two RMSNorms)
// = 262,144 + 786,432 + 512 = 1,049,088; two layers 2,098,176; embedding 1000*256 = 256,000,
// untied head 256,000, final norm 256: total 2,610,432.
constexpr double kParams = 2610432;
// Saved activations of one dense layer for one sequence of 128 tokens (bf16 = 2 bytes):
// [1,128,256] tensors: attn input, normed, q, k, v, context, ffn input, normed = 8 x 65,536 B;
// flash attention's fp32 log-sum-exp [1,4,128] = 2,048 B; SwiGLU h1, h3, act [1,128,1024]
// = 3 x 262,144 B. Sum 524,288 + 2,048 + 786,432 = 1,312,768 B.
constexpr double kDenseLayerActs = 1312768;
// fp32 logits [1,128,1000] = 512,000 B.
constexpr double kLogits = 512000;

TEST(Memory, DenseDataParallelWorkedExample) {
  const MemoryReport m = ComputeMemory(Load({}));
  EXPECT_DOUBLE_EQ(m.weights_bytes, 2 * kParams);              // 5,220,864: replicated bf16
  EXPECT_DOUBLE_EQ(m.grads_bytes, 2 * kParams);                // bf16 gradients, whole
  EXPECT_DOUBLE_EQ(m.optimizer_bytes, 12 * kParams);           // fp32 master + m + v = 31,325,184
  EXPECT_DOUBLE_EQ(m.activations_bytes, 2 * kDenseLayerActs);  // 2,625,536
  EXPECT_DOUBLE_EQ(m.logits_bytes, kLogits);
  EXPECT_DOUBLE_EQ(m.peak_bytes, 44904448);  // 2*5,220,864 + 31,325,184 + 2,625,536 + 512,000
  EXPECT_TRUE(m.fits);
  EXPECT_EQ(m.capacity_bytes, 16LL << 30);  // v5e: 16 GiB
}

TEST(Memory, DenseFsdpOver8WorkedExample) {
  // FSDP shards every weight's embed dim (present in every tensor of this model) over 8
  // devices; gradients and optimizer state follow. Activations are unchanged.
  const MemoryReport m = ComputeMemory(Load({"sharding.strategy=FSDP"}));
  EXPECT_DOUBLE_EQ(m.weights_bytes, 2 * kParams / 8);     // 652,608
  EXPECT_DOUBLE_EQ(m.grads_bytes, 2 * kParams / 8);       // 652,608
  EXPECT_DOUBLE_EQ(m.optimizer_bytes, 12 * kParams / 8);  // 3,915,648
  EXPECT_DOUBLE_EQ(m.activations_bytes, 2 * kDenseLayerActs);
  EXPECT_DOUBLE_EQ(m.peak_bytes, 8358400);  // 652,608*2 + 3,915,648 + 2,625,536 + 512,000
}

TEST(Memory, Zero1ShardsOnlyTheOptimizerState) {
  const MemoryReport m = ComputeMemory(Load({"sharding.strategy=ZERO1"}));
  EXPECT_DOUBLE_EQ(m.weights_bytes, 2 * kParams);
  EXPECT_DOUBLE_EQ(m.optimizer_bytes, 12 * kParams / 8);
}

TEST(Memory, FullRecomputeKeepsLayerInputsPlusOneLayer) {
  const MemoryReport m = ComputeMemory(Load({"training.recompute=FULL"}));
  // Each layer keeps its input [1,128,256] bf16 = 65,536 B; one layer's full set is live
  // during its recomputation and backward: 2 x 65,536 + 1,312,768 = 1,443,840.
  EXPECT_DOUBLE_EQ(m.activations_bytes, 2 * 65536 + kDenseLayerActs);
  // The logits (512,000 B) are freed by the head's backward, before the last layer is
  // recomputed: the peak holds the larger of the two, 1,312,768, not both.
  // 2 x 5,220,864 + 31,325,184 + 131,072 + 1,312,768 = 43,210,752.
  EXPECT_DOUBLE_EQ(m.peak_bytes, 43210752);
}

TEST(Memory, WithoutFlashAttentionProbabilitiesAreKept) {
  const MemoryReport m = ComputeMemory(Load({"training.flash_attention=false"}));
  // lse (2,048 B) is replaced by the probabilities [1,4,128,128] bf16 = 131,072 B per layer.
  EXPECT_DOUBLE_EQ(m.activations_bytes, 2 * (kDenseLayerActs - 2048 + 131072));
  // SELECTIVE recompute drops exactly the probabilities again.
  const MemoryReport s =
      ComputeMemory(Load({"training.flash_attention=false", "training.recompute=SELECTIVE"}));
  EXPECT_DOUBLE_EQ(s.activations_bytes, 2 * (kDenseLayerActs - 2048));
}

TEST(Memory, MoeOneExpertPerDeviceWorkedExample) {
  // Layer 1 becomes MoE: 8 experts (one per device on the Expert axis), top-2, capacity 1.0.
  const MemoryReport m = ComputeMemory(
      Load({"model.moe.num_experts=8", "model.moe.top_k=2", "model.moe.capacity_factor=1",
            "model.moe.placement=EVERY_K", "model.moe.placement_k=2", "sharding.mesh.data=1",
            "sharding.mesh.expert=8"}));
  // Local parameters: dense layer 1,049,088; MoE layer attention + norms 4*256^2 + 512
  // = 262,656; router 256*8 = 2,048 (replicated); one expert 3*256*1024 = 786,432;
  // embeddings + head + final norm 512,256. Total 2,612,480.
  const double local = 1049088 + 262656 + 2048 + 786432 + 512256;
  EXPECT_DOUBLE_EQ(m.weights_bytes, 2 * local);
  EXPECT_DOUBLE_EQ(m.optimizer_bytes, 12 * local);
  // MoE layer activations, one device. Attention part as the dense layer without the FFN
  // hidden: 8 x 65,536 + 2,048 = 526,336. Tokens [O=1, G=8, S=128, M]: 8 sequences of 128 in
  // groups of 128; capacity C = ceil(1.0 * 2 * 128 / 8) = 32. Groups shard over Expert for
  // [O,G,S,E] and [O,G,S,E,C] tensors, experts over Expert for [O,E,G,C,*] ones:
  //   router probs [1,1,128,8] fp32          4,096
  //   combine      [1,1,128,8,32] bf16       65,536
  //   expert in    [1,1,8,32,256] bf16      131,072
  //   h1, h3, act  [1,1,8,32,1024] bf16   3 x 524,288
  //   expert out   [1,1,8,32,256] bf16      131,072
  const double moe_layer = 526336 + 4096 + 65536 + 131072 + 3 * 524288 + 131072;  // 2,430,976
  EXPECT_DOUBLE_EQ(m.activations_bytes, kDenseLayerActs + moe_layer);
  EXPECT_DOUBLE_EQ(m.moe_dispatch_bytes, 65536 + 131072 + 131072);
  EXPECT_DOUBLE_EQ(m.peak_bytes, 4 * local + 12 * local + kDenseLayerActs + moe_layer + kLogits);
}

TEST(Memory, PaddedExpertsHoldWeights) {
  // PADDED_2D on 8 devices: 6 experts padded to 8 along Data, one per device; a device's expert
  // is one expert's weights either way, but the model's stored total grows by 2 experts.
  const Scenario sc = Load({"model.moe.num_experts=6", "model.moe.top_k=2",
                            "model.moe.capacity_factor=1", "sharding.strategy=PADDED_2D"});
  EXPECT_EQ(sc.sharding.padded_num_experts, 8);
  const MemoryReport m = ComputeMemory(sc);
  bool found = false;
  for (const auto& t : m.tensors) {
    if (t.name == "moe.w1") {
      EXPECT_EQ(t.global_shape, (std::vector<int64_t>{8, 256, 1024}));
      EXPECT_EQ(t.local_shape, (std::vector<int64_t>{1, 256, 1024}));
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST(Memory, PipelineStagesSplitLayers) {
  // 2 stages of one layer each; GPipe holds all 4 micro-batches (of 1 sequence... per shard of
  // the 4-way data axis: 8 sequences / 4 = 2 per shard, micro-batch 1 -> 2 micro-batches).
  const MemoryReport m =
      ComputeMemory(Load({"sharding.mesh.data=4", "sharding.mesh.pipeline=2",
                          "training.micro_batch_size=1", "training.pipeline_schedule=GPIPE"}));
  EXPECT_EQ(m.layers_on_stage, 1);
  EXPECT_DOUBLE_EQ(m.micro_batches_in_flight, 2);
  // The larger stage is the last: layer 1 (1,049,088) + head 256,000 + final norm 256; the
  // first holds layer 0 + the 256,000 embedding. Last stage: 1,305,344 params.
  EXPECT_EQ(m.stage, 1);
  EXPECT_DOUBLE_EQ(m.weights_bytes, 2 * 1305344.0);
  EXPECT_DOUBLE_EQ(m.activations_bytes, 2 * kDenseLayerActs);
  EXPECT_DOUBLE_EQ(m.logits_bytes, kLogits);
}

TEST(Memory, Apple3dLocalShapesFollowTable1) {
  // Du et al. 2024 Table 1 on the default scenario with a (2, 64, 2) mesh.
  auto sc = LoadScenario({"", {"sharding.mesh.data=2", "sharding.mesh.model=2"}});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const MemoryReport m = ComputeMemory(*sc);
  std::map<std::string, std::vector<int64_t>> local;
  for (const auto& t : m.tensors) local[t.name] = t.local_shape;
  using V = std::vector<int64_t>;
  // attention weights (Expert, Model): [embed 2048/64, heads 16/2, head_dim 128]
  EXPECT_EQ(local["attn.wq"], (V{32, 8, 128}));
  // FFN_1 (Expert, Model), FFN_2 (Model, Expert)
  EXPECT_EQ(local["ffn.w1"], (V{32, 4096}));
  EXPECT_EQ(local["ffn.w2"], (V{4096, 32}));
  // router (None, None)
  EXPECT_EQ(local["moe.router"], (V{2048, 64}));
  // expert FFN_1 [E,M,H] (Expert, None, Model); FFN_2 [E,H,M] (Expert, Model, None)
  EXPECT_EQ(local["moe.w1"], (V{1, 2048, 4096}));
  EXPECT_EQ(local["moe.w2"], (V{1, 4096, 2048}));
  // Tokens: 2^20 = O 2 x G 256 (num_groups) x S 2048; capacity per token (AXLearn):
  // C = 2.0 * 2048 / 64 = 64.
  // combine [O,G,S,E,C] (Data, Expert, None, None, None)
  EXPECT_EQ(local["moe.combine"], (V{1, 4, 2048, 64, 64}));
  // expert input [O,E,G,C,M] (Data, Expert, None, None, Model)
  EXPECT_EQ(local["moe.expert_in"], (V{1, 1, 256, 64, 1024}));
  // expert hidden [O,E,G,C,H] (Data, Expert, None, None, Model)
  EXPECT_EQ(local["moe.h1"], (V{1, 1, 256, 64, 4096}));
  // FFN activations ((Data, Expert), None, Model): 512 sequences / 128, hidden 8192 / 2
  EXPECT_EQ(local["ffn.h1"], (V{4, 4096, 2048}));
}

}  // namespace
}  // namespace moesim
