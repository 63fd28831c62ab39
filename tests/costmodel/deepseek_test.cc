// DeepSeek-V3-style layouts: first-k-dense MoE placement, Multi-head Latent Attention (MLA) and
// multi-token prediction (MTP), against numbers worked out by hand from DeepSeek-V3's published
// configuration (Hugging Face deepseek-ai/DeepSeek-V3 config.json: hidden 7168, 128 heads,
// q_lora_rank 1536, kv_lora_rank 512, qk_rope_head_dim 64, qk_nope_head_dim 128, v_head_dim 128,
// 61 layers of which the first 3 dense with intermediate 18432, moe_intermediate_size 2048, 256
// routed + 1 shared experts, top-8, vocab 129280, untied embeddings, one MTP module) and its
// reported sizes (arXiv 2412.19437: 671B total, 37B activated; README_WEIGHTS.md of the DeepSeek-V3
// repository: 36.6B activated including the 0.9B output head; 685B on Hugging Face with MTP).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "costmodel/costmodel.h"
#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

Scenario LoadFile(const std::string& rel) {
  auto sc = LoadScenario({std::string(MOESIM_SOURCE_DIR) + "/" + rel, {}});
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return sc.ok() ? *sc : Scenario{};
}

// --- Hand-worked DeepSeek-V3 sizes (d = 7168). -------------------------------------------------
// MLA, one layer:
//   W_DQ  7168 x 1536                   =  11,010,048
//   q norm 1536                         =       1,536
//   W_UQ  1536 x 128 x (128 + 64)       =  37,748,736
//   W_DKV 7168 x 512                    =   3,670,016
//   W_KR  7168 x 64                     =     458,752
//   kv norm 512                         =         512
//   W_UK  512 x 128 x 128               =   8,388,608
//   W_UV  512 x 128 x 128               =   8,388,608
//   W_O   128 x 128 x 7168              = 117,440,512
//   sum                                   187,107,328
// plus the two layer norms (attention, FFN) 2 x 7168 = 14,336: 187,121,664 per layer before the
// FFN.
constexpr double kMla = 187107328;
constexpr double kAttnAndNorms = kMla + 2 * 7168;
// Dense FFN (SwiGLU): 3 x 7168 x 18432 = 396,361,728.
constexpr double kDenseFfn = 3.0 * 7168 * 18432;
// One expert (SwiGLU): 3 x 7168 x 2048 = 44,040,192; router 7168 x 256 = 1,835,008.
constexpr double kExpert = 3.0 * 7168 * 2048;
constexpr double kRouter = 7168.0 * 256;
// Dense layer 583,483,392; MoE layer 187,121,664 + 257 x 44,040,192 + 1,835,008 = 11,507,286,016.
constexpr double kDenseLayer = kAttnAndNorms + kDenseFfn;
constexpr double kMoeLayer = kAttnAndNorms + 257 * kExpert + kRouter;
// Embedding and (untied) head: 129,280 x 7168 = 926,679,040 each; final norm 7168.
constexpr double kEmbedding = 129280.0 * 7168;
// Total: 3 x 583,483,392 + 58 x 11,507,286,016 + 2 x 926,679,040 + 7,168 = 671,026,404,352.
constexpr double kTotal = 3 * kDenseLayer + 58 * kMoeLayer + 2 * kEmbedding + 7168;
// Activated: MoE layers with 8 routed + 1 shared experts, 187,121,664 + 9 x 44,040,192 +
// 1,835,008 = 585,318,400 each: 3 x 583,483,392 + 58 x 585,318,400 + 2 x 926,679,040 + 7,168 =
// 37,552,282,624.
constexpr double kActivated =
    3 * kDenseLayer + 58 * (kAttnAndNorms + 9 * kExpert + kRouter) + 2 * kEmbedding + 7168;

TEST(DeepSeekV3, HandWorkedSumsAreWhatTheCommentsSay) {
  EXPECT_DOUBLE_EQ(kDenseLayer, 583483392);
  EXPECT_DOUBLE_EQ(kMoeLayer, 11507286016);
  EXPECT_DOUBLE_EQ(kTotal, 671026404352);
  EXPECT_DOUBLE_EQ(kActivated, 37552282624);
}

TEST(DeepSeekV3, ParametersMatchTheHandCountAndThePublished671BAnd37B) {
  const Scenario sc = LoadFile("scenarios/deepseek/deepseek-v3.textproto");
  const ModelCost c = ComputeModelCost(sc.model, sc.training);
  EXPECT_EQ(c.num_layers, 61);
  EXPECT_EQ(c.num_moe_layers, 58);
  EXPECT_DOUBLE_EQ(c.params.per_dense_layer, kDenseLayer);
  EXPECT_DOUBLE_EQ(c.params.per_moe_layer, kMoeLayer);
  EXPECT_DOUBLE_EQ(c.params.per_expert, kExpert);
  EXPECT_DOUBLE_EQ(c.params.total, kTotal);
  EXPECT_NEAR(c.params.total / 671e9, 1.0, 0.01);
  EXPECT_DOUBLE_EQ(c.params.activated, kActivated);
  // DeepSeek's activated count leaves out the input embedding (a lookup, no compute): the
  // repository's README_WEIGHTS.md gives 36.6B "including 0.9B for the output head", which the
  // paper rounds to 37B. Ours without the token embedding: 36,625,603,584.
  const double activated_without_lookup = c.params.activated - kEmbedding;
  EXPECT_NEAR(activated_without_lookup / 36.6e9, 1.0, 0.01);
  EXPECT_NEAR(activated_without_lookup / 37e9, 1.0, 0.015);
}

TEST(DeepSeekV3, FirstKDensePlacementMakesLayers0To2Dense) {
  ModelSpec m;
  m.num_layers = 61;
  m.moe.num_experts = 256;
  m.moe.placement = MoePlacement::kFirstKDense;
  m.moe.placement_k = 3;
  for (int64_t l = 0; l < 61; ++l) EXPECT_EQ(m.IsMoeLayer(l), l >= 3) << l;
  EXPECT_EQ(m.NumMoeLayers(), 58);
  m.moe.placement_k = 0;  // no dense layer
  EXPECT_EQ(m.NumMoeLayers(), 61);
  m.moe.placement_k = 61;  // no MoE layer
  EXPECT_EQ(m.NumMoeLayers(), 0);
  EXPECT_FALSE(m.MtpLayerIsMoe());
}

// One MLA layer of DeepSeek-V3 at sequence length 4,096, forward FLOPs per token (2 per
// multiply-add, attention over the full sequence):
//   q_down  2 x 7168 x 1536           =  22,020,096
//   q_up    2 x 1536 x 128 x 192      =  75,497,472
//   kv_down 2 x 7168 x 512            =   7,340,032
//   k_rope  2 x 7168 x 64             =     917,504
//   k_up    2 x 512 x 128 x 128       =  16,777,216
//   v_up    2 x 512 x 128 x 128       =  16,777,216
//   scores  2 x 4096 x 128 x 192      = 201,326,592
//   context 2 x 4096 x 128 x 128      = 134,217,728
//   out     2 x 128 x 128 x 7168      = 234,881,024
//   sum                                 709,754,880
ModelSpec OneMlaLayer() {
  ModelSpec m;
  m.num_layers = 1;
  m.d_model = 7168;
  m.num_heads = 128;
  m.num_kv_heads = 128;
  m.head_dim = 192;
  m.d_ff = 18432;
  m.vocab_size = 129280;
  m.seq_len = 4096;
  m.mla = {true, 1536, 512, 64, 128, 128};
  return m;
}

TEST(Mla, ForwardFlopsPerTokenOfOneLayerByHand) {
  const ModelCost c = ComputeModelCost(OneMlaLayer(), TrainingSpec{});
  const auto& f = c.flops_per_token.forward_by_op;
  EXPECT_DOUBLE_EQ(f.at("attn.q_down"), 22020096);
  EXPECT_DOUBLE_EQ(f.at("attn.q_up"), 75497472);
  EXPECT_DOUBLE_EQ(f.at("attn.kv_down"), 7340032);
  EXPECT_DOUBLE_EQ(f.at("attn.k_rope"), 917504);
  EXPECT_DOUBLE_EQ(f.at("attn.k_up"), 16777216);
  EXPECT_DOUBLE_EQ(f.at("attn.v_up"), 16777216);
  EXPECT_DOUBLE_EQ(f.at("attn.scores"), 201326592);
  EXPECT_DOUBLE_EQ(f.at("attn.context"), 134217728);
  EXPECT_DOUBLE_EQ(f.at("attn.out"), 234881024);
  double attn = 0;
  for (const auto& [name, flops] : f) {
    if (name.rfind("attn.", 0) == 0) attn += flops;
  }
  EXPECT_DOUBLE_EQ(attn, 709754880);
  // Parameters: the MLA sum above plus the two layer norms and the dense FFN.
  EXPECT_DOUBLE_EQ(c.params.per_dense_layer, kDenseLayer);
}

TEST(Mla, WithoutQueryCompressionQueriesComeFromTheInput) {
  // DeepSeek-V2-Lite style: W_Q 7168 x 128 x 192 = 176,160,768 replaces W_DQ, the q norm and W_UQ
  // (11,010,048 + 1,536 + 37,748,736 = 48,760,320).
  ModelSpec m = OneMlaLayer();
  m.mla.q_lora_rank = 0;
  const ModelCost c = ComputeModelCost(m, TrainingSpec{});
  EXPECT_DOUBLE_EQ(c.params.per_dense_layer, kDenseLayer - 48760320 + 176160768);
  EXPECT_DOUBLE_EQ(c.flops_per_token.forward_by_op.at("attn.q"), 2 * 176160768.0);
  EXPECT_EQ(c.flops_per_token.forward_by_op.count("attn.q_down"), 0u);
}

// --- MTP. ----------------------------------------------------------------------------------
// One module of DeepSeek-V3: hnorm, enorm and the final norm 3 x 7168 = 21,504; the projection
// 2 x 7168 x 7168 = 102,760,448; one MoE layer 11,507,286,016: 11,610,067,968. The embedding and
// head are shared. README_WEIGHTS.md says "11.5B unique parameters (excluding the shared 0.9B
// Embedding and 0.9B output Head)"; Hugging Face's 685B counts the checkpoint, which stores the
// module's embedding and head again: 671,026,404,352 + 11,610,067,968 + 2 x 926,679,040 =
// 684,489,830,400, within 0.1% of 685B (the rest: FP8 block scales).
constexpr double kMtpModule = 3 * 7168 + 2.0 * 7168 * 7168 + kMoeLayer;

TEST(Mtp, DeepSeekV3ModuleParametersCountedApart) {
  EXPECT_DOUBLE_EQ(kMtpModule, 11610067968);
  const Scenario sc = LoadFile("scenarios/deepseek/deepseek-v3.textproto");
  ASSERT_EQ(sc.model.mtp_depth, 1);
  const ModelCost c = ComputeModelCost(sc.model, sc.training);
  EXPECT_DOUBLE_EQ(c.params.mtp, kMtpModule);
  EXPECT_DOUBLE_EQ(c.params.total, kTotal);  // the main model only
  EXPECT_NEAR((c.params.total + c.params.mtp + 2 * kEmbedding) / 685e9, 1.0, 0.001);
  EXPECT_NEAR(c.params.mtp / 11.5e9, 1.0, 0.01);
}

TEST(Mtp, ForwardFlopsGrowByOneProjectionLayerAndHeadPerModule) {
  // Per token and module: the projection 2 x 14336 x 7168 = 205,520,896; the MoE layer: MLA
  // 709,754,880 (above) + router 2 x 7168 x 256 = 3,670,016 + 9 experts x 2 x 3 x 7168 x 2048 =
  // 792,723,456; the head 2 x 7168 x 129280 = 1,853,358,080. Sum 3,565,027,328.
  const Scenario sc = LoadFile("scenarios/deepseek/deepseek-v3.textproto");
  ModelSpec without = sc.model;
  without.mtp_depth = 0;
  ModelSpec two = sc.model;
  two.mtp_depth = 2;
  const TrainingSpec t = sc.training;
  const double base = ComputeModelCost(without, t).flops_per_token.forward;
  const double one = ComputeModelCost(sc.model, t).flops_per_token.forward;
  const double per_module = 3565027328;
  ASSERT_EQ(sc.model.seq_len, 4096);
  EXPECT_NEAR(one - base, per_module, 1e-6 * per_module);
  EXPECT_NEAR(ComputeModelCost(two, t).flops_per_token.forward - base, 2 * per_module,
              2e-6 * per_module);
  EXPECT_DOUBLE_EQ(ComputeModelCost(sc.model, t).flops_per_token.model, 3 * one);
  EXPECT_DOUBLE_EQ(ComputeModelCost(two, t).params.mtp, 2 * kMtpModule);
}

// --- The step program and memory of a small MLA + MTP model. --------------------------------
// 4 layers (the first dense), d_model 256, 8 heads, MLA ranks 64 / 32, rope 16, nope 32, v 32;
// 8 experts top-2 (the first layer dense); one MTP module. MEGATRON on 8 H100s: tensor (and
// sequence) parallel 2, expert 4.
const char* const kSmall = R"(
model { num_layers: 4 d_model: 256 num_heads: 8 d_ff: 1024 vocab_size: 1024 seq_len: 128
        ffn_kind: SWIGLU mtp_depth: 1
        mla { q_lora_rank: 64 kv_lora_rank: 32 qk_rope_head_dim: 16 qk_nope_head_dim: 32
              v_head_dim: 32 }
        moe { num_experts: 8 top_k: 2 capacity_factor: 2 expert_d_ff: 256 placement: FIRST_K_DENSE
              placement_k: 1 dispatch: PERMUTE } }
cluster { topology: "dgx-h100:1" }
sharding { strategy: MEGATRON mesh { expert: 4 model: 2 } }
training { global_batch_tokens: 4096 }
)";

Scenario LoadSmall(std::vector<std::string> overrides) {
  auto sc = LoadScenarioFromText(kSmall, "t", overrides);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return sc.ok() ? *sc : Scenario{};
}

TEST(MlaMtp, ProgramFlopsOverAllDevicesEqualModelFlopsUnderSequenceParallelism) {
  // Under sequence parallelism each tensor-parallel rank runs MLA's replicated down projections
  // and the MTP projection on its own tokens: summed over devices the program's FLOPs are the
  // model's (uniform routing, capacity 2: nothing dropped), but for the router, which MEGATRON's
  // rules leave unsplit over the model axis (MoE tokens are split over data and expert only): both
  // tensor-parallel ranks route every token, one extra 2 x 256 x 8 = 4,096 FLOPs per token in
  // each of the 4 MoE layers (3 + the MTP module's), x 3 for forward and backward. The graph
  // holds the MTP module's layer and head once per micro-batch.
  const Scenario sc = LoadSmall({});
  // 32 sequences over 4 batch shards (data x expert): one micro-batch of 8 per device.
  ASSERT_EQ(sc.training.micro_batch_size, 8);
  const OpGraph g = BuildStepGraph(sc);
  const double model = ComputeModelCost(sc.model, sc.training).flops_per_token.hardware;
  const double router_again = 3 * 4 * 4096.0;
  EXPECT_NEAR(g.hardware_flops_per_step / 4096.0 / (model + router_again), 1.0, 1e-12);
  int mtp_logits = 0, latent_gathers = 0;
  for (const Op& op : g.ops) {
    if (op.name == "mtp.head.logits") ++mtp_logits;
    if (op.name.find("attn.latents.allgather") != std::string::npos &&
        op.phase == Phase::kForward) {
      ++latent_gathers;
      // [b 8, s 128, 64 + 32 + 16] bf16, gathered over the model axis.
      EXPECT_DOUBLE_EQ(op.collective.bytes, 8.0 * 128 * 112 * 2);
    }
  }
  EXPECT_EQ(mtp_logits, static_cast<int>(sc.training.num_micro_batches));
  // 4 layers + the MTP module's, per micro-batch.
  EXPECT_EQ(latent_gathers, 5 * static_cast<int>(sc.training.num_micro_batches));
}

TEST(MlaMtp, WithoutSequenceParallelismTheDownProjectionsRepeatOnEveryRank) {
  // The same model with Megatron's sequence rule replaced by none: both tensor-parallel ranks run
  // W_DQ, W_DKV and W_KR on all their tokens, and the MTP projection too. Extra forward FLOPs per
  // token, summed over the 2 ranks (one extra copy): 2 x 256 x (64 + 32 + 16) = 57,344 per layer
  // for 5 layers (4 + the MTP module's) = 286,720, plus 2 x 512 x 256 = 262,144 for the
  // projection: 548,864; x 3 for forward and backward (two GEMMs each). The router repeats as in
  // the test above.
  std::string text = kSmall;
  text.replace(
      text.find("mesh { expert: 4 model: 2 }"), 27,
      "mesh { expert: 4 model: 2 } rules { tensor_class: DENSE_ACTIVATIONS dim: \"seq\" }");
  auto sc = LoadScenarioFromText(text, "t", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const OpGraph g = BuildStepGraph(*sc);
  const double model = ComputeModelCost(sc->model, sc->training).flops_per_token.hardware;
  EXPECT_NEAR(g.hardware_flops_per_step / 4096.0 / (model + 3 * 548864.0 + 3 * 4 * 4096.0), 1.0,
              1e-12);
  int allreduces = 0;
  for (const Op& op : g.ops) {
    if (op.name.find("attn.latents.input_allreduce") != std::string::npos) {
      EXPECT_EQ(op.phase, Phase::kBackward) << op.name;
      ++allreduces;
    }
  }
  EXPECT_EQ(allreduces, 5);
}

TEST(MlaMtp, MemoryCountsTheMtpModuleOnTheLastStage) {
  const Scenario sc = LoadSmall({});
  Scenario without = sc;
  without.model.mtp_depth = 0;
  const MemoryReport with_mtp = ComputeMemory(sc);
  const MemoryReport no_mtp = ComputeMemory(without);
  EXPECT_GT(with_mtp.weights_bytes, no_mtp.weights_bytes);
  EXPECT_GT(with_mtp.activations_bytes, no_mtp.activations_bytes);
}

// --- Validation. ---------------------------------------------------------------------------
const char* const kMlaBase = R"(model {
  num_layers: 4
  d_model: 256
  num_heads: 8
  d_ff: 1024
  vocab_size: 1024
  seq_len: 128
  ffn_kind: SWIGLU
  mla {
    q_lora_rank: 64
    kv_lora_rank: 32
    qk_rope_head_dim: 16
    qk_nope_head_dim: 32
    v_head_dim: 32
  }
}
cluster { topology: "dgx-h100:1" }
sharding { strategy: DATA_PARALLEL mesh { data: 8 } }
training { global_batch_tokens: 4096 }
)";

std::string Error(std::vector<std::string> overrides) {
  auto sc = LoadScenarioFromText(kMlaBase, "t.textproto", overrides);
  if (sc.ok()) return "";
  EXPECT_EQ(sc.status().exit_code(), 2);
  return sc.status().message();
}

TEST(MlaValidation, BaseLoadsAndImpliesHeadsAndHeadDim) {
  auto sc = LoadScenarioFromText(kMlaBase, "t.textproto", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_TRUE(sc->model.mla.enabled);
  EXPECT_EQ(sc->model.num_kv_heads, 8);
  EXPECT_EQ(sc->model.head_dim, 48);  // 32 + 16
}

TEST(MlaValidation, BadFieldsNameTheField) {
  EXPECT_EQ(Error({"model.mla.kv_lora_rank=0"}),
            "t.textproto (--set model.mla.kv_lora_rank=0): model.mla.kv_lora_rank=0 must be > 0");
  EXPECT_EQ(Error({"model.mla.q_lora_rank=-1"}),
            "t.textproto (--set model.mla.q_lora_rank=-1): model.mla.q_lora_rank=-1 must be >= 0");
  EXPECT_EQ(Error({"model.mla.qk_rope_head_dim=15"}),
            "t.textproto (--set model.mla.qk_rope_head_dim=15): model.mla.qk_rope_head_dim=15 "
            "must be even for RoPE (it rotates pairs)");
  EXPECT_EQ(Error({"model.mla.v_head_dim=2000000"}),
            "t.textproto (--set model.mla.v_head_dim=2000000): model.mla.v_head_dim=2000000 "
            "exceeds the limit of 1048576 (docs/limits.md)");
  EXPECT_EQ(Error({"model.num_kv_heads=4"}),
            "t.textproto (--set model.num_kv_heads=4): model.num_kv_heads=4 must be 0 or "
            "model.num_heads=8 with model.mla (every head's keys and values come from the shared "
            "latent)");
  EXPECT_EQ(Error({"model.head_dim=32"}),
            "t.textproto (--set model.head_dim=32): model.head_dim=32 must be 0 or "
            "model.mla.qk_nope_head_dim + qk_rope_head_dim = 48 with model.mla");
  EXPECT_EQ(Error({"model.position_kind=LEARNED"}),
            "t.textproto (--set model.position_kind=LEARNED): model.position_kind=LEARNED is not "
            "supported with model.mla (its decoupled key is rotary)");
  EXPECT_EQ(Error({"model.mtp_depth=-1"}),
            "t.textproto (--set model.mtp_depth=-1): model.mtp_depth=-1 must be >= 0");
}

TEST(MlaValidation, MissingRankPointsAtTheMlaMessage) {
  std::string text = kMlaBase;
  const std::string line = "    kv_lora_rank: 32\n";
  text.erase(text.find(line), line.size());
  auto sc = LoadScenarioFromText(text, "t.textproto", {});
  ASSERT_FALSE(sc.ok());
  // Line 9 is "  mla {".
  EXPECT_EQ(sc.status().message(),
            "t.textproto:9: model.mla.kv_lora_rank is missing (must be > 0)");
}

TEST(FirstKDenseValidation, PlacementKRange) {
  const std::string moe =
      "  moe { num_experts: 8 top_k: 2 capacity_factor: 2 placement: FIRST_K_DENSE }\n}";
  std::string text = kMlaBase;
  text.replace(text.find("  }\n}"), 5, "  }\n" + moe);
  auto ok = LoadScenarioFromText(text, "t.textproto", {});  // placement_k 0: every layer MoE
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->model.NumMoeLayers(), 4);
  auto sc = LoadScenarioFromText(text, "t.textproto", {"model.moe.placement_k=4"});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(sc->model.NumMoeLayers(), 0);
  auto past = LoadScenarioFromText(text, "t.textproto", {"model.moe.placement_k=5"});
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.status().message(),
            "t.textproto (--set model.moe.placement_k=5): model.moe.placement_k=5 exceeds "
            "model.num_layers=4");
  auto negative = LoadScenarioFromText(text, "t.textproto", {"model.moe.placement_k=-1"});
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.status().message(),
            "t.textproto (--set model.moe.placement_k=-1): model.moe.placement_k=-1 must be >= 0");
}

}  // namespace
}  // namespace moesim
