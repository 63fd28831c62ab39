// Uneven pipelines in the cost model: each stage's program runs its own layers
// (training.pipeline_layout, first/last_stage_layers), per-stage memory counts them, and the op
// bound stays an upper bound. Memory figures are arithmetic on the model's dimensions, written
// out (the same small model as memory_test.cc).
#include <gtest/gtest.h>

#include <set>

#include "costmodel/costmodel.h"
#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

// LLaMA-style: 4 layers, d_model 256, 4 heads of 64, SwiGLU 1024, vocab 1000, seq 128, untied,
// RMSNorm; 8 TPU-v5e chips as data 4 x pipeline 2; 8 sequences per step, micro-batches of one
// sequence: 2 micro-batches per step; bf16 mixed AdamW, 1F1B.
const char* const kSmall = R"(
model { num_layers: 4 d_model: 256 num_heads: 4 d_ff: 1024 vocab_size: 1000 seq_len: 128
        ffn_kind: SWIGLU }
cluster { topology: "tpu-v5e:2x4" }
sharding { strategy: DATA_PARALLEL mesh { data: 4 pipeline: 2 } }
training { global_batch_tokens: 1024 micro_batch_size: 1 }
)";

Scenario Load(const std::vector<std::string>& overrides, const char* text = kSmall) {
  auto sc = LoadScenarioFromText(text, "small", overrides);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return sc.ok() ? *sc : Scenario{};
}

// Per layer: 4 x 256^2 + 3 x 256 x 1024 + 2 x 256 = 1,049,088 parameters. Embedding 256,000 on
// stage 0; untied head 256,000 and final norm 256 on the last stage.
constexpr double kLayerParams = 1049088, kEmbed = 256000, kHead = 256256;
// One layer's saved activations for one sequence (memory_test.cc): 1,312,768 B; fp32 logits of
// one sequence: 512,000 B.
constexpr double kLayerActs = 1312768, kLogits = 512000;
// bf16 weights + bf16 grads + 12 B optimizer state per parameter.
constexpr double kBytesPerParam = 2 + 2 + 12;

TEST(PipelineMemory, EachStageCountsItsOwnLayers) {
  // Even split (2 + 2): stage 0 holds 2 layers + embedding and 2 micro-batches in flight (1F1B,
  // p - stage = 2); stage 1 holds 2 layers + head, 1 in flight, and the logits.
  //   stage 0: 16 x (2 x 1,049,088 + 256,000) + 2 x 2 x 1,312,768 = 37,666,816 + 5,251,072
  //            = 42,917,888
  //   stage 1: 16 x (2 x 1,049,088 + 256,256) + 2 x 1,312,768 + 512,000 = 37,670,912
  //            + 2,625,536 + 512,000 = 40,808,448
  const MemoryReport even = ComputeMemory(Load({}));
  ASSERT_EQ(even.stage_peak_bytes.size(), 2u);
  EXPECT_DOUBLE_EQ(even.stage_peak_bytes[0], 42917888);
  EXPECT_DOUBLE_EQ(even.stage_peak_bytes[1], 40808448);
  EXPECT_DOUBLE_EQ(kBytesPerParam * (2 * kLayerParams + kEmbed) + 4 * kLayerActs, 42917888);
  EXPECT_EQ(even.stage, 0);
  EXPECT_EQ(even.layers_on_stage, 2);

  // "Ettt|tL": stage 0 = 3 layers + embedding, stage 1 = 1 layer + head.
  //   stage 0: 16 x (3 x 1,049,088 + 256,000) + 2 x 3 x 1,312,768 = 54,452,224 + 7,876,608
  //            = 62,328,832
  //   stage 1: 16 x (1,049,088 + 256,256) + 1,312,768 + 512,000 = 20,885,504 + 1,824,768
  //            = 22,710,272
  const MemoryReport uneven = ComputeMemory(Load({"training.pipeline_layout=Ettt|tL"}));
  ASSERT_EQ(uneven.stage_peak_bytes.size(), 2u);
  EXPECT_DOUBLE_EQ(uneven.stage_peak_bytes[0], 62328832);
  EXPECT_DOUBLE_EQ(uneven.stage_peak_bytes[1], 22710272);
  EXPECT_DOUBLE_EQ(kBytesPerParam * (kLayerParams + kHead) + kLayerActs + kLogits, 22710272);
  // The peak over stages decides: stage 0, 3 layers.
  EXPECT_EQ(uneven.stage, 0);
  EXPECT_EQ(uneven.layers_on_stage, 3);
  EXPECT_DOUBLE_EQ(uneven.peak_bytes, 62328832);
  EXPECT_DOUBLE_EQ(uneven.weights_bytes, 2 * (3 * kLayerParams + kEmbed));

  // "Et|tttL": the last stage is now the larger one: 16 x (3 x 1,049,088 + 256,256)
  // + 3 x 1,312,768 + 512,000 = 54,456,320 + 3,938,304 + 512,000 = 58,906,624.
  const MemoryReport last = ComputeMemory(Load({"training.first_stage_layers=1"}));
  EXPECT_EQ(last.stage, 1);
  EXPECT_DOUBLE_EQ(last.peak_bytes, 58906624);
}

// Transformer layers each program runs, from the ops' layer indices.
std::vector<std::set<int32_t>> LayersByProgram(const OpGraph& g) {
  std::vector<std::set<int32_t>> out(static_cast<size_t>(g.num_programs));
  for (const Op& op : g.ops) {
    if (op.layer >= 0) out[static_cast<size_t>(op.program)].insert(op.layer);
  }
  return out;
}

bool HasOpNamed(const OpGraph& g, int32_t program, const std::string& prefix) {
  for (const Op& op : g.ops) {
    if (op.program == program && op.name.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

TEST(PipelineGraph, ProgramsRunTheirOwnLayers) {
  const Scenario sc = Load({"training.pipeline_layout=Ettt|tL"});
  const OpGraph g = BuildStepGraph(sc);
  const auto layers = LayersByProgram(g);
  EXPECT_EQ(layers[0], (std::set<int32_t>{0, 1, 2}));
  EXPECT_EQ(layers[1], (std::set<int32_t>{3}));
  // Same layers in all: the step's FLOPs are those of the even split.
  const OpGraph even = BuildStepGraph(Load({}));
  EXPECT_DOUBLE_EQ(g.hardware_flops_per_step, even.hardware_flops_per_step);
  EXPECT_DOUBLE_EQ(g.model_flops_per_step, even.model_flops_per_step);
  EXPECT_LE(static_cast<double>(g.ops.size()), StepGraphOpBound(sc));
}

// 8 stages of 1 chip, one layer-heavy model of 61 layers (DeepSeek-V3's depth), dims tiny.
const char* const kDeep = R"(
model { num_layers: 61 d_model: 64 num_heads: 2 d_ff: 128 vocab_size: 256 seq_len: 32
        ffn_kind: SWIGLU
        moe { num_experts: 4 top_k: 2 capacity_factor: 1.25 placement: EVERY_K placement_k: 1 } }
cluster { topology: "dgx-h100:2" }
sharding { strategy: MEGATRON mesh { pipeline: 16 } }
training { global_batch_tokens: 1024 micro_batch_size: 2 }
)";

TEST(PipelineGraph, DeepSeekV3DepthOnSixteenStagesWithFirstAndLastCounts) {
  // 61 layers on PP 16: first 3, last 2, 4 on each of the 14 middle ranks (Megatron-LM's
  // --decoder-first/last-pipeline-num-layers). Rank r in 1..14 runs layers 3 + 4(r-1) .. +3.
  const Scenario sc =
      Load({"training.first_stage_layers=3", "training.last_stage_layers=2"}, kDeep);
  const OpGraph g = BuildStepGraph(sc);
  ASSERT_EQ(g.num_programs, 16);
  const auto layers = LayersByProgram(g);
  EXPECT_EQ(layers[0], (std::set<int32_t>{0, 1, 2}));
  EXPECT_EQ(layers[1], (std::set<int32_t>{3, 4, 5, 6}));
  EXPECT_EQ(layers[14], (std::set<int32_t>{55, 56, 57, 58}));
  EXPECT_EQ(layers[15], (std::set<int32_t>{59, 60}));
  EXPECT_TRUE(HasOpNamed(g, 0, "embed"));
  EXPECT_FALSE(HasOpNamed(g, 1, "embed"));
  EXPECT_TRUE(HasOpNamed(g, 15, "head"));
  EXPECT_FALSE(HasOpNamed(g, 14, "head"));
  EXPECT_LE(static_cast<double>(g.ops.size()), StepGraphOpBound(sc));
  const MemoryReport m = ComputeMemory(sc);
  ASSERT_EQ(m.stage_peak_bytes.size(), 16u);
  EXPECT_EQ(m.layers_on_stage, m.stage == 0 ? 3 : m.stage == 15 ? 2 : 4);
}

TEST(PipelineGraph, InterleavedLayoutWithAnEmptyChunk) {
  // "Et|(tt|)*30L" on PP 16 x VPP 2 (NVIDIA's Kimi-K2 recipe): rank 15's second chunk holds only
  // the head; rank 0 runs layers 0 and 31-32. Every cross-stage dependency is still emitted
  // first, and the empty chunk's send waits for its receive.
  const Scenario sc =
      Load({"training.pipeline_layout=Et|(tt|)*30L", "training.pipeline_schedule=INTERLEAVED",
            "training.virtual_stages=2", "training.micro_batch_size=1"},
           kDeep);
  const OpGraph g = BuildStepGraph(sc);
  const auto layers = LayersByProgram(g);
  EXPECT_EQ(layers[0], (std::set<int32_t>{0, 31, 32}));
  EXPECT_EQ(layers[15], (std::set<int32_t>{29, 30}));
  EXPECT_TRUE(HasOpNamed(g, 15, "head"));
  for (const Op& op : g.ops) {
    for (int32_t d : op.deps) {
      ASSERT_GE(d, 0) << op.name;
      ASSERT_LT(d, op.id) << op.name;
    }
  }
  EXPECT_LE(static_cast<double>(g.ops.size()), StepGraphOpBound(sc));
}

}  // namespace
}  // namespace moesim
