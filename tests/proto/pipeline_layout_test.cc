// Pipeline layouts: the layout string parser (Megatron-LM's --pipeline-model-parallel-layout
// notation), first/last stage layer counts, and their validation in a scenario. Every expected
// layer list below is worked out by hand from the string, not taken from the code under test.
#include <gtest/gtest.h>

#include "common/limits.h"
#include "proto/pipeline_layout.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

// (first layer, layers, embedding, head) of one chunk, for compact expectations.
struct Chunk {
  int64_t first, n;
  bool embedding = false, head = false;
};

void ExpectChunk(const PipelineChunk& got, const Chunk& want, const std::string& where) {
  EXPECT_EQ(got.first_layer, want.first) << where;
  EXPECT_EQ(got.num_layers, want.n) << where;
  EXPECT_EQ(got.embedding, want.embedding) << where;
  EXPECT_EQ(got.head, want.head) << where;
}

std::string ParseError(const std::string& text) {
  auto p = ParsePipelineLayout(text);
  if (p.ok()) return "";
  EXPECT_EQ(p.status().code(), Status::Code::kInvalidInput);
  return p.status().message();
}

TEST(PipelineLayoutParser, GroupRepeatExpandsInVirtualStageOrder) {
  // "Et|(tt|)*2tL" = "Et|tt|tt|tL": 4 virtual stages, 6 layers. On 4 ranks, one chunk each:
  // rank 0 E + layer 0, rank 1 layers 1-2, rank 2 layers 3-4, rank 3 layer 5 + L.
  auto p = ParsePipelineLayout("Et|(tt|)*2tL");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->num_layers, 6);
  EXPECT_EQ(p->mtp_layers, 0);
  const PipelineLayout l = LayoutFromSegments(*p, 4);
  ASSERT_EQ(l.chunks, 1);
  ExpectChunk(l.At(0, 0), {0, 1, true, false}, "rank 0");
  ExpectChunk(l.At(1, 0), {1, 2}, "rank 1");
  ExpectChunk(l.At(2, 0), {3, 2}, "rank 2");
  ExpectChunk(l.At(3, 0), {5, 1, false, true}, "rank 3");
  EXPECT_EQ(DescribeRank(l, 0), "E,1");
  EXPECT_EQ(DescribeRank(l, 3), "1,L");
}

TEST(PipelineLayoutParser, TrailingStageAfterAGroupAddsAVirtualStage) {
  // "Et|(tt|)*2t|tL" = "Et|tt|tt|t|tL": 5 virtual stages of 1, 2, 2, 1, 1 layers (7 in all).
  auto p = ParsePipelineLayout("Et|(tt|)*2t|tL");
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_EQ(p->segments.size(), 5u);
  const int64_t first[] = {0, 1, 3, 5, 6}, n[] = {1, 2, 2, 1, 1};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(p->segments[i].first_layer, first[i]) << i;
    EXPECT_EQ(p->segments[i].num_layers, n[i]) << i;
  }
}

TEST(PipelineLayoutParser, SymbolRepeatCommasAndEmptyStages) {
  // "Et*3|,t*0|tt,L": commas ignored, t*0 is nothing: stages "Ettt", "" (empty), "ttL".
  auto p = ParsePipelineLayout("Et*3|,t*0|tt,L");
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_EQ(p->segments.size(), 3u);
  EXPECT_EQ(p->segments[0].num_layers, 3);
  EXPECT_EQ(p->segments[1].num_layers, 0);
  EXPECT_EQ(p->segments[1].first_layer, 3);
  EXPECT_EQ(p->segments[2].first_layer, 3);
  EXPECT_EQ(p->segments[2].num_layers, 2);
  EXPECT_TRUE(p->segments[2].head);
  // Nested groups: ((t|)*2)*2 = "t|t|t|t|".
  auto nested = ParsePipelineLayout("E((t|)*2)*2tL");
  ASSERT_TRUE(nested.ok()) << nested.status().message();
  EXPECT_EQ(nested->segments.size(), 5u);
  EXPECT_EQ(nested->num_layers, 5);
}

TEST(PipelineLayoutParser, InterleavedKimiK2Recipe) {
  // NVIDIA's Kimi-K2 / DeepSeek-V3 (no MTP) recipe "Et|(tt|)*30L", 61 layers, PP 16 x VPP 2:
  // 32 stages "Et", 30 x "tt", "L". Stage i (1..30) holds layers 2i-1, 2i. Rank 0 runs stage 0
  // (E, layer 0) and stage 16 (layers 31-32); rank 14 stages 14 (27-28) and 30 (59-60); rank 15
  // stages 15 (29-30) and 31 (the head only).
  auto p = ParsePipelineLayout("Et|(tt|)*30L");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->num_layers, 61);
  const PipelineLayout l = LayoutFromSegments(*p, 16);
  ASSERT_EQ(l.chunks, 2);
  ExpectChunk(l.At(0, 0), {0, 1, true, false}, "rank 0 chunk 0");
  ExpectChunk(l.At(0, 1), {31, 2}, "rank 0 chunk 1");
  ExpectChunk(l.At(14, 0), {27, 2}, "rank 14 chunk 0");
  ExpectChunk(l.At(14, 1), {59, 2}, "rank 14 chunk 1");
  ExpectChunk(l.At(15, 0), {29, 2}, "rank 15 chunk 0");
  ExpectChunk(l.At(15, 1), {61, 0, false, true}, "rank 15 chunk 1");
  EXPECT_EQ(l.LayersOnRank(0), 3);
  EXPECT_EQ(l.LayersOnRank(7), 4);
  EXPECT_EQ(l.LayersOnRank(15), 2);
  EXPECT_EQ(DescribeRank(l, 15), "2 | 0,L");
}

TEST(PipelineLayoutParser, Qwen3_235BOnPp8Vpp4) {
  // Qwen3-235B-A22B: 94 layers on PP 8 x VPP 4 = 32 virtual stages, 94 = 2 + 30 x 3 + 2: the
  // first virtual stage (with the embedding) and the last (with the head) get 2 layers.
  // "Ett|(ttt|)*30ttL": stage 0 layers 0-1; stage i (1..30) layers 3i-1 .. 3i+1; stage 31
  // layers 92-93. Rank 0 = stages 0, 8, 16, 24 = 2+3+3+3 = 11 layers; rank 7 = stages 7, 15, 23,
  // 31 = 3+3+3+2 = 11; ranks 1-6: 12.
  auto p = ParsePipelineLayout("Ett|(ttt|)*30ttL");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->num_layers, 94);
  const PipelineLayout l = LayoutFromSegments(*p, 8);
  ASSERT_EQ(l.chunks, 4);
  ExpectChunk(l.At(0, 0), {0, 2, true, false}, "rank 0 chunk 0");
  ExpectChunk(l.At(0, 1), {23, 3}, "rank 0 chunk 1");  // stage 8: 3*8-1 = 23
  ExpectChunk(l.At(7, 3), {92, 2, false, true}, "rank 7 chunk 3");
  ExpectChunk(l.At(3, 2), {56, 3}, "rank 3 chunk 2");  // stage 19: 3*19-1 = 56
  const int64_t per_rank[] = {11, 12, 12, 12, 12, 12, 12, 11};
  for (int64_t r = 0; r < 8; ++r) EXPECT_EQ(l.LayersOnRank(r), per_rank[r]) << r;
}

TEST(PipelineLayoutParser, ErrorsNameTheColumnAndWhatWasExpected) {
  EXPECT_EQ(ParseError("Et|(tt|*2L"), "column 11: expected ')' to close the '(' at column 4");
  EXPECT_EQ(ParseError("Et|tt)*2L"), "column 6: unexpected ')' with no '(' open");
  EXPECT_EQ(ParseError("Et|tx|L"),
            "column 5: unexpected 'x': expected E (embedding), t (transformer layer), m (MTP "
            "layer), L (loss), '|' (next virtual stage), '(' or ','");
  EXPECT_EQ(ParseError("Et |tL"),
            "column 3: unexpected character code 32: expected E (embedding), t (transformer "
            "layer), m (MTP layer), L (loss), '|' (next virtual stage), '(' or ','");
  EXPECT_EQ(ParseError("tE|tL"),
            "column 2: 'E' (embedding) must be the first symbol of the first virtual stage");
  EXPECT_EQ(ParseError("|Et|tL"),
            "column 2: 'E' (embedding) must be the first symbol of the first virtual stage");
  EXPECT_EQ(ParseError("Et|tL|t"),
            "column 5: 'L' (loss) must be the last symbol, but '|' at "
            "column 6 follows it");
  EXPECT_EQ(ParseError("Et|t"),
            "column 5: no 'L': the loss (head) must close the last virtual "
            "stage");
  EXPECT_EQ(ParseError("t|tL"),
            "column 1: no 'E': the embedding must open the first virtual stage");
  EXPECT_EQ(ParseError("EEt|tL"), "column 2: a second 'E': the embedding appears once");
  EXPECT_EQ(ParseError("Et|tLL"), "column 6: a second 'L': the loss appears once");
  EXPECT_EQ(ParseError("Etm|tL"),
            "column 5: transformer layer 't' after an MTP layer 'm' "
            "(column 3): MTP layers follow every 't'");
  EXPECT_EQ(ParseError("Et*|tL"),
            "column 4: expected a repeat count (digits) after the '*' at "
            "column 3");
  EXPECT_EQ(ParseError("E(t|)tL"),
            "column 6: expected '*' and a repeat count after the group "
            "opened at column 2");
  EXPECT_EQ(ParseError("Et*2*3L"),
            "column 5: unexpected '*': a repeat count follows one symbol or a group, once");
  EXPECT_EQ(ParseError("*2EtL"),
            "column 1: unexpected '*': a repeat count follows one symbol or a group, once");
}

TEST(PipelineLayoutParser, LimitsAreCheckedBeforeExpanding) {
  // A repeat count past the limit is refused while its digits are read: nothing is allocated.
  EXPECT_EQ(ParseError("E(t)*1000000000L"),
            "column 6: repeat count 1000000... exceeds the limit "
            "of 262144 (docs/limits.md)");
  // 1,000 x 1,000 = 1,000,000 symbols, each count within the limit: refused at the outer group.
  EXPECT_EQ(ParseError("E((t)*1000)*1000L"),
            "column 2: repeated 1000 times this expands to 1000000 layers and boundaries, past "
            "the limit of 262144 (docs/limits.md)");
  // Many items side by side add up: 2 x 200,000 = 400,000 > 262,144.
  EXPECT_EQ(ParseError("E(t)*200000(t)*200000L"),
            "column 12: the layout expands to more than 262144 layers and boundaries, the limit "
            "(docs/limits.md)");
  // Empty expansions cost nothing to walk, however often they repeat.
  EXPECT_EQ(ParseError("E(((t*0)*262144)*262144)*262144tL"), "");
  std::string deep = "E";
  for (int i = 0; i < 17; ++i) deep += "(";
  EXPECT_EQ(ParseError(deep + "t"),
            "column 18: groups nest deeper than 16 levels, the limit "
            "(docs/limits.md)");
  EXPECT_EQ(ParseError(std::string(limits::kMaxPipelineLayoutChars + 1, 't')),
            "65537 characters exceed the limit of 65536 (docs/limits.md)");
}

TEST(PipelineLayoutFirstLast, DeepSeekV3OnPp16) {
  // 61 layers, PP 16, first 3, last 2: 56 layers over the 14 middle ranks = 4 each. Rank 0:
  // layers 0-2; rank r in 1..14: 3 + 4(r-1) .. +3; rank 15: 59-60.
  auto l = FirstLastPipelineLayout(61, 16, 1, 3, 2);
  ASSERT_TRUE(l.ok()) << l.status().message();
  ExpectChunk(l->At(0, 0), {0, 3, true, false}, "rank 0");
  ExpectChunk(l->At(1, 0), {3, 4}, "rank 1");
  ExpectChunk(l->At(14, 0), {55, 4}, "rank 14");
  ExpectChunk(l->At(15, 0), {59, 2, false, true}, "rank 15");
}

TEST(PipelineLayoutFirstLast, OnlyOneGivenAndVirtualStages) {
  // 10 layers, PP 4, only last = 1: ranks 0-2 are middle ranks with 3 each.
  auto l = FirstLastPipelineLayout(10, 4, 1, std::nullopt, 1);
  ASSERT_TRUE(l.ok()) << l.status().message();
  EXPECT_EQ(l->LayersOnRank(0), 3);
  EXPECT_EQ(l->LayersOnRank(2), 3);
  ExpectChunk(l->At(3, 0), {9, 1, false, true}, "rank 3");
  // 14 layers, PP 2 x VPP 2, first 6, last 8: chunks of 3 on rank 0 and 4 on rank 1, in
  // virtual-stage order: stage 0 (rank 0) 0-2, stage 1 (rank 1) 3-6, stage 2 (rank 0) 7-9,
  // stage 3 (rank 1) 10-13.
  auto v = FirstLastPipelineLayout(14, 2, 2, 6, 8);
  ASSERT_TRUE(v.ok()) << v.status().message();
  ExpectChunk(v->At(0, 0), {0, 3, true, false}, "rank 0 chunk 0");
  ExpectChunk(v->At(1, 0), {3, 4}, "rank 1 chunk 0");
  ExpectChunk(v->At(0, 1), {7, 3}, "rank 0 chunk 1");
  ExpectChunk(v->At(1, 1), {10, 4, false, true}, "rank 1 chunk 1");
}

TEST(PipelineLayoutFirstLast, RemainderMustDivide) {
  auto l = FirstLastPipelineLayout(61, 16, 1, 2, 2);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().message(),
            "the other 57 of model.num_layers=61 layers do not split evenly "
            "over the 14 middle stages");
  auto none_left = FirstLastPipelineLayout(10, 2, 1, 4, 5);
  ASSERT_FALSE(none_left.ok());
  EXPECT_EQ(none_left.status().message(),
            "the first and last stages hold 9 of model.num_layers=10 layers and no middle stage "
            "is left for the other 1");
}

// --- In a scenario --------------------------------------------------------------------------

// 8 layers, dense, 8 chips; line numbers in messages refer to this text.
const char* const kScenario = R"(model { num_layers: 8 d_model: 256 num_heads: 4 d_ff: 1024
        vocab_size: 1000 seq_len: 128 ffn_kind: SWIGLU }
cluster { topology: "tpu-v5e:2x4" }
sharding { strategy: DATA_PARALLEL mesh { data: 2 pipeline: 4 } }
training { global_batch_tokens: 8192 micro_batch_size: 4
)";

Expected<Scenario> Load(const std::string& training_extra, std::vector<std::string> sets = {}) {
  return LoadScenarioFromText(std::string(kScenario) + training_extra + "}\n", "t.textproto", sets);
}

std::string LoadError(const std::string& training_extra, std::vector<std::string> sets = {}) {
  auto sc = Load(training_extra, std::move(sets));
  return sc.ok() ? "" : sc.status().message();
}

TEST(PipelineLayoutScenario, LayoutStringIsResolved) {
  auto sc = Load("pipeline_layout: \"Ett|ttt|tt|tL\"\n");
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const PipelineLayout l = ScenarioPipelineLayout(*sc);
  const int64_t want[] = {2, 3, 2, 1};
  for (int64_t r = 0; r < 4; ++r) EXPECT_EQ(l.LayersOnRank(r), want[r]) << r;
  // The default stays the even split, resolved on demand.
  auto even = Load("");
  ASSERT_TRUE(even.ok()) << even.status().message();
  EXPECT_TRUE(even->training.pipeline_layout.stages.empty());
  const PipelineLayout e = ScenarioPipelineLayout(*even);
  for (int64_t r = 0; r < 4; ++r) ExpectChunk(e.At(r, 0), {2 * r, 2, r == 0, r == 3}, "even");
}

TEST(PipelineLayoutScenario, FirstLastCountsAreResolved) {
  auto sc = Load("first_stage_layers: 1 last_stage_layers: 1\n");
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const PipelineLayout l = ScenarioPipelineLayout(*sc);
  const int64_t want[] = {1, 3, 3, 1};
  for (int64_t r = 0; r < 4; ++r) EXPECT_EQ(l.LayersOnRank(r), want[r]) << r;
  // 7 layers: refused evenly, placed with a first-stage count of 1 (2 on each other rank).
  EXPECT_TRUE(Load("", {"model.num_layers=7", "training.first_stage_layers=1"}).ok());
}

TEST(PipelineLayoutScenario, ErrorsNameFileLineAndField) {
  EXPECT_EQ(LoadError("pipeline_layout: \"Et|(tt|L\"\n"),
            "t.textproto:6: training.pipeline_layout=\"Et|(tt|L\" column 9: expected ')' to "
            "close the '(' at column 4");
  EXPECT_EQ(LoadError("pipeline_layout: \"Et|ttt|ttttL\"\n"),
            "t.textproto:6: training.pipeline_layout=\"Et|ttt|ttttL\" has 3 virtual stages ('|' "
            "separates them); sharding.mesh.pipeline=4 x training.virtual_stages=1 needs 4");
  EXPECT_EQ(LoadError("pipeline_layout: \"Et|tt|tt|tL\"\n"),
            "t.textproto:6: training.pipeline_layout=\"Et|tt|tt|tL\" has 6 transformer layers "
            "('t'), model.num_layers=8");
  // MTP layers: as many as model.mtp_depth, in the last virtual stage (with the loss).
  EXPECT_EQ(LoadError("pipeline_layout: \"Et|ttt|ttt|tmL\"\n"),
            "t.textproto:6: training.pipeline_layout=\"Et|ttt|ttt|tmL\" has 1 MTP layers ('m'), "
            "model.mtp_depth=0");
  auto mtp = Load("pipeline_layout: \"Et|ttt|ttt|tmL\"\n", {"model.mtp_depth=1"});
  ASSERT_TRUE(mtp.ok()) << mtp.status().message();
  EXPECT_EQ(DescribeRank(ScenarioPipelineLayout(*mtp), 3), "1,m1,L");
  // With first/last counts (or the even split) the MTP modules go with the head too.
  auto fl = Load("first_stage_layers: 1 last_stage_layers: 1\n", {"model.mtp_depth=1"});
  ASSERT_TRUE(fl.ok()) << fl.status().message();
  EXPECT_EQ(DescribeRank(ScenarioPipelineLayout(*fl), 3), "1,m1,L");
  EXPECT_EQ(LoadError("pipeline_layout: \"Et|ttt|ttttm|L\"\n", {"model.mtp_depth=1"}),
            "t.textproto:6: training.pipeline_layout=\"Et|ttt|ttttm|L\" column 12: MTP layers "
            "run with the loss here: every 'm' belongs in the last virtual stage, before 'L'");
  // 8 virtual stages on 4 ranks need virtual_stages 2 and the interleaved schedule.
  EXPECT_EQ(LoadError("pipeline_layout: \"Et|(t|)*6tL\" virtual_stages: 2\n"),
            "t.textproto:6: training.pipeline_layout=\"Et|(t|)*6tL\" gives each pipeline rank 2 "
            "model chunks, which only training.pipeline_schedule=INTERLEAVED runs, on "
            "sharding.mesh.pipeline > 1");
  EXPECT_EQ(LoadError("pipeline_layout: \"Et|(t|)*6tL\" virtual_stages: 2 "
                      "pipeline_schedule: INTERLEAVED\n"),
            "");
  EXPECT_EQ(LoadError("pipeline_layout: \"Ett|tt|tt|ttL\" first_stage_layers: 2\n"),
            "t.textproto:6: training.first_stage_layers and training.pipeline_layout both place "
            "the layers: give one");
  EXPECT_EQ(LoadError("first_stage_layers: 3\n"),
            "t.textproto:6: training.first_stage_layers: the other 5 of model.num_layers=8 layers "
            "do not split evenly over the 3 middle stages");
  EXPECT_EQ(LoadError("last_stage_layers: -1\n"),
            "t.textproto:6: training.last_stage_layers=-1 must be >= 0");
  EXPECT_EQ(
      LoadError("first_stage_layers: 1\n", {"sharding.mesh.pipeline=1", "sharding.mesh.data=8"}),
      "t.textproto:6: training.first_stage_layers=1 needs sharding.mesh.pipeline > 1 (one "
      "stage holds every layer)");
  EXPECT_EQ(LoadError("first_stage_layers: 3 virtual_stages: 2 pipeline_schedule: INTERLEAVED\n"),
            "t.textproto:6: training.first_stage_layers=3 does not split evenly over the 2 model "
            "chunks of a rank (training.virtual_stages)");
}

}  // namespace
}  // namespace moesim
