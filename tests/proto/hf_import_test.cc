// ImportHfConfig (proto/hf_import.h): every shipped Hugging Face config (tests/data/hf/, sources
// in SOURCES.md) imports into a scenario that loads, with every key of the JSON in exactly one of
// mapped / not mapped / ignored; small synthetic configs written here (made-up sizes, for the
// mapping only) cover each family's layouts, including keys and values no shipped config has;
// bad input is refused with the file, the key and its line.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "proto/hf_import.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

std::string ReadData(const std::string& name) {
  std::ifstream in(std::string(MOESIM_SOURCE_DIR) + "/tests/data/hf/" + name, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const char* const kShipped[] = {
    "mixtral-8x7b.json",
    "qwen3-235b-a22b.json",
    "qwen1.5-moe-a2.7b.json",
    "deepseek-v2-lite.json",
    "deepseek-v3.json",
    "gpt-oss-120b.json",
    "llama-3.1-8b.json",
    "qwen3-8b.json",
    "mistral-7b-v0.3.json",
    "gpt2.json",
    "dbrx.json",
    "olmoe-1b-7b-0924.json",
    "olmoe-1b-7b-0125-instruct.json",
    "llama-4-scout-17b-16e-instruct.json",
    "llama-4-maverick-17b-128e-instruct.json",
};

// Every key the report names, with how many lists name it.
std::map<std::string, int> Reported(const HfImport& r) {
  std::map<std::string, int> n;
  for (const auto& k : r.mapped) ++n[k.key];
  for (const auto& k : r.not_mapped) ++n[k.key];
  for (const auto& k : r.ignored) ++n[k.key];
  return n;
}

// The keys of the JSON the report must name: the top level's, and those of each nested object
// the importer reads key by key (its container reported as mapped to "model").
std::set<std::string> Expected(const nlohmann::json& j, const HfImport& r) {
  std::set<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.insert(k);
  for (const auto& m : r.mapped) {
    if (m.field != "model") continue;
    for (const auto& [k, v] : j.at(m.key).items()) keys.insert(m.key + "." + k);
  }
  return keys;
}

void ExpectEveryKeyOnce(const std::string& text, const HfImport& r) {
  const auto n = Reported(r);
  for (const auto& [key, count] : n) EXPECT_EQ(count, 1) << key << " is in more than one list";
  const std::set<std::string> want = Expected(nlohmann::json::parse(text), r);
  for (const auto& k : want) EXPECT_EQ(n.count(k), 1u) << k << " is in no list";
  for (const auto& [k, count] : n) EXPECT_EQ(want.count(k), 1u) << k << " is not a key of the JSON";
}

TEST(HfImport, EveryShippedConfigImportsLoadsAndAccountsForEveryKey) {
  for (const char* name : kShipped) {
    SCOPED_TRACE(name);
    const std::string text = ReadData(name);
    ASSERT_FALSE(text.empty());
    auto r = ImportHfConfig(text, name);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ExpectEveryKeyOnce(text, *r);
    auto sc = LoadScenarioFromText(r->scenario_text, name, {});
    ASSERT_TRUE(sc.ok()) << sc.status().message() << "\n" << r->scenario_text;
  }
}

TEST(HfImport, MixtralMapsItsExpertsAndLeavesNothingUnmapped) {
  auto r = ImportHfConfig(ReadData("mixtral-8x7b.json"), "mixtral-8x7b.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->family, "mixtral");
  EXPECT_TRUE(r->not_mapped.empty());
  auto sc = LoadScenarioFromText(r->scenario_text, "m", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const ModelSpec& m = sc->model;
  EXPECT_EQ(m.num_layers, 32);
  EXPECT_EQ(m.d_model, 4096);
  EXPECT_EQ(m.num_heads, 32);
  EXPECT_EQ(m.num_kv_heads, 8);
  EXPECT_EQ(m.vocab_size, 32000);
  EXPECT_EQ(m.moe.num_experts, 8);
  EXPECT_EQ(m.moe.top_k, 2);
  EXPECT_EQ(m.moe.expert_d_ff, 14336);
  EXPECT_EQ(m.NumMoeLayers(), 32);
  EXPECT_FALSE(m.tie_embeddings);
}

TEST(HfImport, DeepSeekV3MapsMlaSharedExpertsDenseLayersGroupsAndMtp) {
  auto r = ImportHfConfig(ReadData("deepseek-v3.json"), "deepseek-v3.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto sc = LoadScenarioFromText(r->scenario_text, "d", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const ModelSpec& m = sc->model;
  EXPECT_TRUE(m.mla.enabled);
  EXPECT_EQ(m.mla.q_lora_rank, 1536);
  EXPECT_EQ(m.mla.kv_lora_rank, 512);
  EXPECT_EQ(m.mla.qk_rope_head_dim, 64);
  EXPECT_EQ(m.mla.qk_nope_head_dim, 128);
  EXPECT_EQ(m.mla.v_head_dim, 128);
  EXPECT_EQ(m.moe.num_shared_experts, 1);
  EXPECT_EQ(m.NumMoeLayers(), 58);  // 61 layers, the first 3 dense
  EXPECT_EQ(m.moe.router_num_groups, 8);
  EXPECT_EQ(m.moe.router_group_topk, 4);
  EXPECT_EQ(m.mtp_depth, 1);
  // The FP8 checkpoint is named, not silently dropped.
  bool quant = false;
  for (const auto& k : r->not_mapped) quant = quant || k.key == "quantization_config";
  EXPECT_TRUE(quant);
}

template <typename Key>
std::set<std::string> Keys(const std::vector<Key>& list) {
  std::set<std::string> keys;
  for (const auto& k : list) keys.insert(k.key);
  return keys;
}

// The shipped Llama 4 Maverick config: its dense and MoE layers alternate, attention_bias maps
// (false: no biases), and the image side (the vision tower, how images are tiled) and the chunked
// attention are all that is not mapped.
TEST(HfImport, Llama4MaverickAlternatesDenseAndMoeLayersAndNamesTheImageSide) {
  auto r = ImportHfConfig(ReadData("llama-4-maverick-17b-128e-instruct.json"), "maverick.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->family, "llama4");
  auto sc = LoadScenarioFromText(r->scenario_text, "l", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const ModelSpec& m = sc->model;
  EXPECT_EQ(m.num_layers, 48);
  EXPECT_EQ(m.d_model, 5120);
  EXPECT_EQ(m.num_heads, 40);
  EXPECT_EQ(m.num_kv_heads, 8);
  EXPECT_EQ(m.d_ff, 16384);            // intermediate_size_mlp: the dense layers
  EXPECT_EQ(m.moe.expert_d_ff, 8192);  // intermediate_size: routed and shared experts
  EXPECT_EQ(m.moe.num_experts, 128);
  EXPECT_EQ(m.moe.top_k, 1);
  EXPECT_EQ(m.moe.num_shared_experts, 1);
  EXPECT_EQ(m.NumMoeLayers(), 24);  // interleave_moe_layer_step 2
  EXPECT_FALSE(m.IsMoeLayer(0));
  EXPECT_TRUE(m.IsMoeLayer(1));
  EXPECT_FALSE(m.linear_bias);
  EXPECT_TRUE(Keys(r->mapped).count("text_config.attention_bias"));
  const auto not_mapped = Keys(r->not_mapped);
  EXPECT_EQ(not_mapped.size(), 3u);
  EXPECT_TRUE(not_mapped.count("vision_config"));
  EXPECT_TRUE(not_mapped.count("image_processor_config"));
  EXPECT_TRUE(not_mapped.count("text_config.attention_chunk_size"));
}

// Llama 4's attention_bias puts biases on the attention projections only (its MLPs have none):
// model.linear_bias cannot say that, so `true` is not mapped.
TEST(HfImport, Llama4AttentionBiasesAloneAreNotMapped) {
  const std::string json =
      R"({"model_type": "llama4_text", "hidden_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 32,
          "intermediate_size_mlp": 128, "num_local_experts": 4, "num_experts_per_tok": 1,
          "vocab_size": 1000, "attention_bias": true})";
  auto r = ImportHfConfig(json, "x.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ExpectEveryKeyOnce(json, *r);
  EXPECT_EQ(Keys(r->not_mapped), std::set<std::string>{"attention_bias"});
  auto sc = LoadScenarioFromText(r->scenario_text, "x", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_FALSE(sc->model.linear_bias);
}

// DBRX's experts and attention sit in nested objects; every one of their keys is accounted for,
// and nothing of the shipped config is left unmapped.
TEST(HfImport, DbrxReadsItsNestedAttentionAndExperts) {
  auto r = ImportHfConfig(ReadData("dbrx.json"), "dbrx.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->family, "dbrx");
  EXPECT_TRUE(r->not_mapped.empty());
  auto sc = LoadScenarioFromText(r->scenario_text, "d", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const ModelSpec& m = sc->model;
  EXPECT_EQ(m.num_layers, 40);
  EXPECT_EQ(m.d_model, 6144);
  EXPECT_EQ(m.num_heads, 48);
  EXPECT_EQ(m.num_kv_heads, 8);
  EXPECT_EQ(m.vocab_size, 100352);
  EXPECT_EQ(m.moe.num_experts, 16);
  EXPECT_EQ(m.moe.top_k, 4);
  EXPECT_EQ(m.moe.expert_d_ff, 10752);
  EXPECT_EQ(m.NumMoeLayers(), 40);
  EXPECT_EQ(m.norm_kind, NormKind::kLayerNorm);
  const auto ignored = Keys(r->ignored);
  EXPECT_TRUE(ignored.count("ffn_config.moe_jitter_eps"));
  EXPECT_TRUE(ignored.count("attn_config.model_type"));
}

// OLMoE's configs: the experts as Mixtral's; a checkpoint's `_name_or_path` is bookkeeping.
TEST(HfImport, OlmoeMapsItsExpertsAndIgnoresTheCheckpointName) {
  for (const char* name : {"olmoe-1b-7b-0924.json", "olmoe-1b-7b-0125-instruct.json"}) {
    SCOPED_TRACE(name);
    auto r = ImportHfConfig(ReadData(name), name);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->family, "olmoe");
    EXPECT_TRUE(r->not_mapped.empty());
    auto sc = LoadScenarioFromText(r->scenario_text, "o", {});
    ASSERT_TRUE(sc.ok()) << sc.status().message();
    const ModelSpec& m = sc->model;
    EXPECT_EQ(m.num_layers, 16);
    EXPECT_EQ(m.d_model, 2048);
    EXPECT_EQ(m.num_heads, 16);
    EXPECT_EQ(m.moe.num_experts, 64);
    EXPECT_EQ(m.moe.top_k, 8);
    EXPECT_EQ(m.moe.expert_d_ff, 1024);
    EXPECT_EQ(m.NumMoeLayers(), 16);
    EXPECT_FALSE(m.tie_embeddings);
  }
  auto r = ImportHfConfig(ReadData("olmoe-1b-7b-0125-instruct.json"), "o.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(Keys(r->ignored).count("_name_or_path"));
}

TEST(HfImport, AttentionLayoutsTheModelBlockCannotSayAreNotMapped) {
  auto r = ImportHfConfig(ReadData("gpt-oss-120b.json"), "gpt-oss-120b.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::set<std::string> not_mapped;
  for (const auto& k : r->not_mapped) not_mapped.insert(k.key);
  EXPECT_TRUE(not_mapped.count("layer_types"));
  EXPECT_TRUE(not_mapped.count("sliding_window"));
  EXPECT_TRUE(not_mapped.count("quantization_config"));
  bool sinks = false;
  for (const auto& n : r->notes) sinks = sinks || n.find("attention sinks") != std::string::npos;
  EXPECT_TRUE(sinks);
}

TEST(HfImport, Gpt2IsLearnedPositionsLayerNormGeluTiedWithBiases) {
  auto r = ImportHfConfig(ReadData("gpt2.json"), "gpt2.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto sc = LoadScenarioFromText(r->scenario_text, "g", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const ModelSpec& m = sc->model;
  EXPECT_EQ(m.position_kind, PositionKind::kLearned);
  EXPECT_EQ(m.norm_kind, NormKind::kLayerNorm);
  EXPECT_EQ(m.ffn_kind, FfnKind::kGelu);
  EXPECT_TRUE(m.tie_embeddings);
  EXPECT_TRUE(m.linear_bias);
  EXPECT_EQ(m.d_ff, 3072);     // n_inner null: 4 x n_embd
  EXPECT_EQ(m.seq_len, 1024);  // the position table's rows (n_positions)
}

TEST(HfImport, SeqLenDefaultsToTheContextCappedAt4096AndCanBeSet) {
  const std::string text = ReadData("llama-3.1-8b.json");
  auto r = ImportHfConfig(text, "l");
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->scenario_text.find("seq_len: 4096"), std::string::npos);
  HfImportOptions o;
  o.seq_len = 8192;
  r = ImportHfConfig(text, "l", o);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->scenario_text.find("seq_len: 8192"), std::string::npos);
}

// Small synthetic configs (made-up sizes) in each family's key layout, with keys and values no
// shipped config has (Llama 4's moe_layers and no_rope_layers, Qwen3-MoE's decoder_sparse_step 2),
// to check what maps where and that the scenario loads.
struct Synthetic {
  const char* family;
  const char* json;
};

const Synthetic kSynthetic[] = {
    {"qwen3_moe",
     R"({"model_type": "qwen3_moe", "hidden_size": 64, "num_hidden_layers": 4,
         "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
         "intermediate_size": 256, "moe_intermediate_size": 32, "num_experts": 8,
         "num_experts_per_tok": 2, "decoder_sparse_step": 2, "mlp_only_layers": [],
         "vocab_size": 1000, "use_sliding_window": false, "sliding_window": null,
         "max_window_layers": 4, "tie_word_embeddings": false})"},
    {"deepseek_v2",
     R"({"model_type": "deepseek_v2", "hidden_size": 64, "num_hidden_layers": 4,
         "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 256,
         "moe_intermediate_size": 32, "n_routed_experts": 8, "n_shared_experts": 2,
         "num_experts_per_tok": 2, "first_k_dense_replace": 1, "moe_layer_freq": 1,
         "n_group": 4, "topk_group": 2, "q_lora_rank": 48, "kv_lora_rank": 32,
         "qk_rope_head_dim": 8, "qk_nope_head_dim": 16, "v_head_dim": 16, "vocab_size": 1000})"},
    {"llama4",
     R"({"model_type": "llama4", "text_config": {"model_type": "llama4_text",
         "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 32,
         "intermediate_size_mlp": 128, "num_local_experts": 4, "num_experts_per_tok": 1,
         "interleave_moe_layer_step": 2, "moe_layers": [1, 3], "attention_chunk_size": 64,
         "no_rope_layers": [1, 1, 1, 0], "use_qk_norm": true, "vocab_size": 1000},
         "vision_config": {"hidden_size": 32}, "tie_word_embeddings": false})"},
    {"olmoe",
     R"({"model_type": "olmoe", "hidden_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 32,
         "num_experts": 8, "num_experts_per_tok": 2, "clip_qkv": null, "vocab_size": 1000})"},
    {"dbrx",
     R"({"model_type": "dbrx", "d_model": 64, "n_layers": 2, "n_heads": 4, "max_seq_len": 512,
         "vocab_size": 1000, "attn_config": {"kv_n_heads": 2, "clip_qkv": 8, "rope_theta": 1e4},
         "ffn_config": {"ffn_hidden_size": 32, "moe_num_experts": 4, "moe_top_k": 2,
         "ffn_act_fn": {"name": "silu"}}})"},
    {"qwen2",
     R"({"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
         "vocab_size": 1000, "use_sliding_window": false, "sliding_window": 4096,
         "tie_word_embeddings": true})"},
    {"mistral",
     R"({"model_type": "mistral", "hidden_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
         "vocab_size": 1000, "sliding_window": 4096})"},
};

TEST(HfImport, EveryFamilyImportsFromASyntheticConfigAndLoads) {
  for (const Synthetic& s : kSynthetic) {
    SCOPED_TRACE(s.family);
    auto r = ImportHfConfig(s.json, std::string(s.family) + ".json");
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->family, s.family);
    ExpectEveryKeyOnce(s.json, *r);
    auto sc = LoadScenarioFromText(r->scenario_text, s.family, {});
    ASSERT_TRUE(sc.ok()) << sc.status().message() << "\n" << r->scenario_text;
  }
}

Scenario Load(const Synthetic& s) {
  auto r = ImportHfConfig(s.json, "x.json");
  EXPECT_TRUE(r.ok()) << r.status().message();
  auto sc = LoadScenarioFromText(r->scenario_text, "x", {});
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return sc.ok() ? *sc : Scenario{};
}

std::set<std::string> NotMapped(const Synthetic& s) {
  auto r = ImportHfConfig(s.json, "x.json");
  std::set<std::string> keys;
  for (const auto& k : r->not_mapped) keys.insert(k.key);
  return keys;
}

TEST(HfImport, FamilyLayoutsMapToThePlacementsAndGroups) {
  const ModelSpec qwen3 = Load(kSynthetic[0]).model;
  EXPECT_EQ(qwen3.moe.expert_d_ff, 32);
  EXPECT_EQ(qwen3.NumMoeLayers(), 2);  // decoder_sparse_step 2: layers 1 and 3
  EXPECT_TRUE(qwen3.IsMoeLayer(1));
  EXPECT_FALSE(qwen3.IsMoeLayer(0));
  const ModelSpec v2 = Load(kSynthetic[1]).model;
  EXPECT_EQ(v2.NumMoeLayers(), 3);
  EXPECT_EQ(v2.moe.num_shared_experts, 2);
  EXPECT_EQ(v2.moe.router_num_groups, 4);
  EXPECT_EQ(v2.moe.router_group_topk, 2);
  EXPECT_EQ(v2.mla.q_lora_rank, 48);
  const ModelSpec l4 = Load(kSynthetic[2]).model;
  EXPECT_EQ(l4.d_ff, 128);            // intermediate_size_mlp: the dense layers
  EXPECT_EQ(l4.moe.expert_d_ff, 32);  // intermediate_size: the experts
  EXPECT_EQ(l4.moe.num_shared_experts, 1);
  EXPECT_TRUE(l4.IsMoeLayer(1));
  EXPECT_TRUE(l4.IsMoeLayer(3));
  EXPECT_FALSE(l4.IsMoeLayer(0));
  const auto l4_not = NotMapped(kSynthetic[2]);
  EXPECT_TRUE(l4_not.count("vision_config"));
  EXPECT_TRUE(l4_not.count("text_config.attention_chunk_size"));
  EXPECT_TRUE(l4_not.count("text_config.no_rope_layers"));
  const ModelSpec dbrx = Load(kSynthetic[4]).model;
  EXPECT_EQ(dbrx.num_kv_heads, 2);
  EXPECT_EQ(dbrx.moe.num_experts, 4);
  EXPECT_EQ(dbrx.moe.top_k, 2);
  EXPECT_EQ(dbrx.moe.expert_d_ff, 32);
  EXPECT_EQ(dbrx.norm_kind, NormKind::kLayerNorm);
  EXPECT_TRUE(Load(kSynthetic[5]).model.tie_embeddings);
  EXPECT_TRUE(NotMapped(kSynthetic[5]).empty());  // its window is off
  EXPECT_TRUE(NotMapped(kSynthetic[6]).count("sliding_window"));
}

TEST(HfImport, AnUnknownKeyIsNotMappedNeverDropped) {
  auto r = ImportHfConfig(
      R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 1000,
          "parallel_residual_blocks": 3})",
      "x.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->not_mapped.size(), 1u);
  EXPECT_EQ(r->not_mapped[0].key, "parallel_residual_blocks");
}

std::string Refusal(const std::string& text) {
  auto r = ImportHfConfig(text, "cfg.json");
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.status().exit_code(), 2);
  return r.status().message();
}

TEST(HfImport, RefusalsNameTheFileTheKeyAndItsLine) {
  std::string m = Refusal("{\n  \"model_type\": \"bert\"\n}");
  EXPECT_NE(m.find("cfg.json:2"), std::string::npos) << m;
  EXPECT_NE(m.find("\"model_type\""), std::string::npos) << m;
  EXPECT_NE(m.find("bert"), std::string::npos) << m;
  m = Refusal("{\"hidden_size\": 64}");
  EXPECT_NE(m.find("model_type"), std::string::npos) << m;
  m = Refusal(
      "{\n\"model_type\": \"mixtral\",\n\"hidden_size\": 64,\n\"num_hidden_layers\": 2,\n"
      "\"num_attention_heads\": 4,\n\"vocab_size\": 100,\n"
      "\"intermediate_size\": \"128\",\n\"num_local_experts\": 4,\n"
      "\"num_experts_per_tok\": 2\n}");
  EXPECT_NE(m.find("cfg.json:7"), std::string::npos) << m;
  EXPECT_NE(m.find("\"intermediate_size\""), std::string::npos) << m;
  EXPECT_NE(m.find("a string"), std::string::npos) << m;
  m = Refusal("{\"model_type\": \"mixtral\", \"hidden_size\": 64}");
  EXPECT_NE(m.find("\"num_hidden_layers\""), std::string::npos) << m;
  EXPECT_NE(m.find("missing"), std::string::npos) << m;
  m = Refusal(
      "{\"model_type\": \"dbrx\", \"d_model\": 64, \"n_layers\": 2, \"n_heads\": 4,\n"
      "\"vocab_size\": 100, \"attn_config\": {\"kv_n_heads\": -1}}");
  EXPECT_NE(m.find("attn_config.kv_n_heads"), std::string::npos) << m;
  m = Refusal("{\n\"model_type\": \"llama\",\n\"hidden_size\": 64,,\n}");
  EXPECT_NE(m.find("cfg.json:3"), std::string::npos) << m;
  EXPECT_NE(m.find("not JSON"), std::string::npos) << m;
  // Values each of the right type that together make no valid model: the loader's reason.
  m = Refusal(R"({"model_type": "deepseek_v3", "hidden_size": 64, "num_hidden_layers": 4,
      "num_attention_heads": 4, "intermediate_size": 256, "moe_intermediate_size": 32,
      "n_routed_experts": 8, "num_experts_per_tok": 2, "first_k_dense_replace": 9,
      "kv_lora_rank": 32, "qk_rope_head_dim": 8, "qk_nope_head_dim": 16, "v_head_dim": 16,
      "vocab_size": 1000})");
  EXPECT_NE(m.find("cfg.json"), std::string::npos) << m;
  EXPECT_NE(m.find("placement_k"), std::string::npos) << m;
  m = Refusal("[1, 2]");
  EXPECT_NE(m.find("object"), std::string::npos) << m;
}

}  // namespace
}  // namespace moesim
