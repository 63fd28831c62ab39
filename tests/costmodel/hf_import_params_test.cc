// Parameter counts of the Hugging Face configs shipped in tests/data/hf/, imported with
// ImportHfConfig and counted by ComputeModelCost, against the totals their authors publish.
// moesim's `activated` counts the token embedding (a lookup, no compute) and the output head;
// where the authors leave the lookup out (DeepSeek, OpenAI), the comparison does too, and says so.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "costmodel/model_cost.h"
#include "proto/hf_import.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

struct Counted {
  ModelSpec model;
  ParamCount params;
  double lookup = 0;  // the token embedding: vocab x d_model
};

Counted Count(const std::string& name) {
  std::ifstream in(std::string(MOESIM_SOURCE_DIR) + "/tests/data/hf/" + name, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  Counted c;
  auto r = ImportHfConfig(text.str(), name);
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return c;
  auto sc = LoadScenarioFromText(r->scenario_text, name, {});
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  if (!sc.ok()) return c;
  c.model = sc->model;
  c.params = ComputeModelCost(sc->model, sc->training).params;
  c.lookup = static_cast<double>(sc->model.vocab_size) * static_cast<double>(sc->model.d_model);
  return c;
}

// Mistral AI's model card of Mixtral-8x7B: 46.7B parameters, 12.9B used per token.
TEST(HfImportParams, Mixtral8x7BIs46p7BTotalAnd12p9BActivated) {
  const Counted c = Count("mixtral-8x7b.json");
  EXPECT_NEAR(c.params.total / 46.7e9, 1.0, 0.01);
  EXPECT_NEAR(c.params.activated / 12.9e9, 1.0, 0.01);
}

// arXiv 2412.19437: 671B total, 37B activated; the DeepSeek-V3 repository's README_WEIGHTS.md
// gives the activated count as 36.6B with the 0.9B output head and without the embedding lookup
// (the paper rounds to 37B). The MTP module is counted apart (ParamCount::mtp), as there.
TEST(HfImportParams, DeepSeekV3Is671BTotalAnd37BActivated) {
  const Counted c = Count("deepseek-v3.json");
  EXPECT_NEAR(c.params.total / 671e9, 1.0, 0.01);
  EXPECT_NEAR((c.params.activated - c.lookup) / 36.6e9, 1.0, 0.01);
  EXPECT_GT(c.params.mtp, 0);
}

// Qwen3-235B-A22B's model card: 235B parameters in total, 22B activated, 234B without the
// embeddings. Its QK-norm weights (2 x 128 per layer) are not counted.
TEST(HfImportParams, Qwen3_235B_A22BIs235BTotalAnd22BActivated) {
  const Counted c = Count("qwen3-235b-a22b.json");
  EXPECT_NEAR(c.params.total / 235e9, 1.0, 0.01);
  EXPECT_NEAR(c.params.activated / 22e9, 1.0, 0.01);
  EXPECT_NEAR((c.params.total - c.params.embedding) / 234e9, 1.0, 0.01);
}

// Qwen's blog "Qwen1.5-MoE: Matching 7B Model Performance with 1/3 Activated Parameters" and model
// card: 14.3B total, 2.7B activated. Qwen2's query/key/value biases (no config key; left out, see
// docs/import.md) are 24 x 3 x 2048 = 147k parameters, far under 1%.
TEST(HfImportParams, Qwen15MoeA2p7BIs14p3BTotalAnd2p7BActivated) {
  const Counted c = Count("qwen1.5-moe-a2.7b.json");
  EXPECT_NEAR(c.params.total / 14.3e9, 1.0, 0.01);
  EXPECT_NEAR(c.params.activated / 2.7e9, 1.0, 0.01);
}

// arXiv 2405.04434 (DeepSeek-V2), appendix: DeepSeek-V2-Lite has 15.7B parameters, 2.4B activated
// per token. The total matches within 1%. The activated count does not: ours is 2.66B, 2.45B
// without the embedding lookup (DeepSeek's convention, as for V3): 2% above the published 2.4B,
// which is given to two figures (it truncates 2.45B). The check is at that precision, said here.
TEST(HfImportParams, DeepSeekV2LiteIs15p7BTotalAnd2p4BActivated) {
  const Counted c = Count("deepseek-v2-lite.json");
  EXPECT_NEAR(c.params.total / 15.7e9, 1.0, 0.01);
  const double activated = c.params.activated - c.lookup;
  EXPECT_GE(activated, 2.4e9);
  EXPECT_LT(activated, 2.5e9);  // "2.4B" to two figures
}

// OpenAI's gpt-oss model card (Table 1): gpt-oss-120b has 116.83B parameters, 5.13B active per
// token, counting the unembedding but not the embedding lookup.
TEST(HfImportParams, GptOss120BIs116p8BTotalAnd5p13BActive) {
  const Counted c = Count("gpt-oss-120b.json");
  EXPECT_NEAR(c.params.total / 116.83e9, 1.0, 0.01);
  EXPECT_NEAR((c.params.activated - c.lookup) / 5.13e9, 1.0, 0.01);
}

// Meta's Llama 3.1 8B: 8.03B parameters (the checkpoint's count on its model page).
TEST(HfImportParams, Llama31_8BIs8p03B) {
  const Counted c = Count("llama-3.1-8b.json");
  EXPECT_NEAR(c.params.total / 8.03e9, 1.0, 0.01);
  EXPECT_DOUBLE_EQ(c.params.activated, c.params.total);
}

// Qwen3-8B's model card: 8.2B parameters, 6.95B without the embeddings (input and output, untied).
// Its QK-norm weights (2 x 128 per layer) are not counted.
TEST(HfImportParams, Qwen3_8BIs8p2BAnd6p95BNonEmbedding) {
  const Counted c = Count("qwen3-8b.json");
  EXPECT_NEAR(c.params.total / 8.2e9, 1.0, 0.01);
  EXPECT_NEAR((c.params.total - c.params.embedding) / 6.95e9, 1.0, 0.01);
}

// Mistral 7B: 7.24B parameters (v0.1, vocabulary 32000). v0.3's vocabulary of 32768 adds
// 2 x 768 x 4096 = 6.3M, 0.09%.
TEST(HfImportParams, Mistral7BIs7p24B) {
  const Counted c = Count("mistral-7b-v0.3.json");
  EXPECT_NEAR(c.params.total / 7.24e9, 1.0, 0.01);
}

// DBRX's model card (databricks/dbrx-instruct, dbrx-base): 132B total parameters, 36B active on
// any input. The total matches within 1%. The active count is given to two figures: ours is
// 36.47B with the embedding lookup and 35.85B without it, both "36B"; the check is at that
// precision and holds either way (the lookup counted, moesim's convention, or not).
TEST(HfImportParams, DbrxIs132BTotalAnd36BActive) {
  const Counted c = Count("dbrx.json");
  EXPECT_NEAR(c.params.total / 132e9, 1.0, 0.01);
  EXPECT_GE(c.params.activated - c.lookup, 35.5e9);
  EXPECT_LT(c.params.activated, 36.5e9);  // "36B" to two figures
}

// arXiv 2409.02060 (OLMoE), Table 1: OLMoE-1B-7B has 6.9B parameters, 1.3B active per token. The
// total matches within 1%; the active count is given to two figures (ours: 1.28B), and is checked
// at that precision. OLMoE's QK-norm (2 x 2048 per layer) is not counted. The 0125 release has
// the same shapes.
TEST(HfImportParams, Olmoe1B7BIs6p9BTotalAnd1p3BActive) {
  for (const char* name : {"olmoe-1b-7b-0924.json", "olmoe-1b-7b-0125-instruct.json"}) {
    SCOPED_TRACE(name);
    const Counted c = Count(name);
    EXPECT_NEAR(c.params.total / 6.9e9, 1.0, 0.01);
    EXPECT_GE(c.params.activated, 1.25e9);
    EXPECT_LT(c.params.activated, 1.35e9);  // "1.3B" to two figures
  }
}

// Meta's model cards: Llama 4 Maverick has 400B total parameters and Scout 109B, 17B active each.
// Those totals include the vision encoder, which is not imported (vision_config: 34 layers of width
// 1408 and MLP 5632, 34 x (4 x 1408^2 + 2 x 1408 x 5632) = 0.81B, plus its projector to the text
// model). Maverick's text model is still within 1% of 400B. Scout's is 1.1% under 109B, so it is
// checked to two figures and to be under the published total. The active count is given to two
// figures; it holds with the embedding lookup counted (without it ours is 16.1B).
TEST(HfImportParams, Llama4MaverickIs400BTotalAnd17BActive) {
  const Counted c = Count("llama-4-maverick-17b-128e-instruct.json");
  EXPECT_NEAR(c.params.total / 400e9, 1.0, 0.01);
  EXPECT_GE(c.params.activated, 16.5e9);
  EXPECT_LT(c.params.activated, 17.5e9);  // "17B" to two figures
}

TEST(HfImportParams, Llama4ScoutIs109BTotalAnd17BActive) {
  const Counted c = Count("llama-4-scout-17b-16e-instruct.json");
  EXPECT_GE(c.params.total, 105e9);  // 1.1e11 to two figures
  EXPECT_LT(c.params.total, 109e9);  // under the published total, which adds the vision encoder
  EXPECT_GE(c.params.activated, 16.5e9);
  EXPECT_LT(c.params.activated, 17.5e9);  // "17B" to two figures
}

// GPT-2 (small): 124M parameters with the output projection tied to the token embedding and a
// learned position table of 1024 rows.
TEST(HfImportParams, Gpt2Is124M) {
  const Counted c = Count("gpt2.json");
  EXPECT_NEAR(c.params.total / 124e6, 1.0, 0.01);
}

}  // namespace
}  // namespace moesim
