// sharding.megatron: Megatron-LM's sizes expanded into named mesh axes, checked against layouts
// worked out by hand from Megatron-Core's rank order (tp innermost, then cp, dp, pp; MoE layers
// etp, ep, edp, pp), and its Megatron-LM arguments read back.
#include <gtest/gtest.h>

#include <algorithm>

#include "proto/megatron_args.h"
#include "proto/megatron_preset.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

using D = MegatronDenseRole;
using M = MegatronMoeRole;

std::string Show(const std::vector<MegatronAxis>& axes) {
  std::string s;
  for (const MegatronAxis& a : axes) {
    s += (s.empty() ? "" : " ") + a.name + "=" + std::to_string(a.size);
  }
  return s;
}

TEST(MegatronPreset, Tp2Ep8On16RanksFoldsTheExpertsOverDataWithExpertTensorTwo) {
  // Ranks 0..15, tp innermost: dense groups {0,1}, {2,3}, ...; dp = 16 / 2 = 8 over stride 2.
  // MoE: etp defaults to tp = 2 (the same pairs), ep = 8 over stride 2: all 16 ranks, edp 1.
  // Breakpoints 2 (tp, etp), 16 (dp, ep): axes tp 2 (TENSOR, expert tensor) and dp_ep 8.
  MegatronSizes s;
  s.tensor = 2;
  s.expert = 8;
  auto axes = MegatronMeshAxes(s, 16, 8);
  ASSERT_TRUE(axes.ok()) << axes.status().message();
  EXPECT_EQ(Show(*axes), "dp_ep=8 tp=2");
  EXPECT_EQ((*axes)[0].dense, D::kData);
  EXPECT_EQ((*axes)[0].moe, M::kExpert);
  EXPECT_EQ((*axes)[1].dense, D::kTensor);
  EXPECT_EQ((*axes)[1].moe, M::kExpertTensor);
}

TEST(MegatronPreset, Tp2Ep8Etp1On16RanksFoldsTheExpertsOverTensorAndHalfTheData) {
  // MoE ranks with etp 1: ep groups of 8 consecutive ranks {0..7}, {8..15}; edp 2 over stride 8.
  // Dense: tp pairs, dp over stride 2. Breakpoints 2 (tp), 8 (etp x ep), 16: axes, innermost
  // first, [0,2) tp & ep = "tp_ep" 2, [2,8) dp & ep = "dp_ep" 4, [8,16) dp & edp = "dp" 2.
  MegatronSizes s;
  s.tensor = 2;
  s.expert = 8;
  s.expert_tensor = 1;
  auto axes = MegatronMeshAxes(s, 16, 8);
  ASSERT_TRUE(axes.ok()) << axes.status().message();
  EXPECT_EQ(Show(*axes), "dp=2 dp_ep=4 tp_ep=2");
  EXPECT_EQ((*axes)[0].moe, M::kExpertData);
  EXPECT_EQ((*axes)[1].moe, M::kExpert);
  EXPECT_EQ((*axes)[2].dense, D::kTensor);
  EXPECT_EQ((*axes)[2].moe, M::kExpert);
}

TEST(MegatronPreset, NemoMixtral8x22bLayoutWithContextAndPipeline) {
  // 128 GPUs, TP 2, CP 2, PP 4, EP 8 (etp = tp = 2): a stage has 32 ranks, dp = 8, edp = 2.
  // Dense breakpoints 2, 4, 32; MoE 2, 16, 32. Axes outermost first: pp 4, [16,32) dp 2,
  // [4,16) dp & ep 4, [2,4) cp & ep 2, [0,2) tp 2.
  MegatronSizes s;
  s.tensor = 2;
  s.context = 2;
  s.pipeline = 4;
  s.expert = 8;
  auto axes = MegatronMeshAxes(s, 128, 8);
  ASSERT_TRUE(axes.ok()) << axes.status().message();
  EXPECT_EQ(Show(*axes), "pp=4 dp=2 dp_ep=4 cp_ep=2 tp=2");
  EXPECT_EQ((*axes)[3].dense, D::kContext);
  EXPECT_EQ(MegatronDataParallel(s, 128), 8);
}

TEST(MegatronPreset, DenseModelAndSingleDevice) {
  MegatronSizes s;
  s.tensor = 4;
  auto axes = MegatronMeshAxes(s, 16, 0);
  ASSERT_TRUE(axes.ok());
  EXPECT_EQ(Show(*axes), "dp=4 tp=4");
  auto one = MegatronMeshAxes(MegatronSizes{}, 1, 8);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(Show(*one), "dp=1");
}

TEST(MegatronPreset, RefusesBreakpointsThatDoNotNestNamingTheField) {
  // 24 ranks, TP 4, ETP 1, EP 6: expert groups of 6 consecutive ranks cut the tensor groups of 4
  // (breakpoints 4 and 6).
  MegatronSizes s;
  s.tensor = 4;
  s.expert_tensor = 1;
  s.expert = 6;
  std::string field;
  auto axes = MegatronMeshAxes(s, 24, 12, &field);
  ASSERT_FALSE(axes.ok());
  EXPECT_EQ(field, "sharding.megatron.expert");
  EXPECT_NE(axes.status().message().find("group boundaries at 4 and 6 ranks"), std::string::npos)
      << axes.status().message();
  // ETP 6 beside TP 4 on 24 ranks: the expert tensor groups themselves cut the tensor groups.
  s.expert_tensor = 6;
  s.expert = 1;
  EXPECT_FALSE(MegatronMeshAxes(s, 24, 12, &field).ok());
  EXPECT_EQ(field, "sharding.megatron.expert_tensor");
  s = MegatronSizes{};
  s.expert = 3;
  EXPECT_FALSE(MegatronMeshAxes(s, 24, 8, &field).ok());
  EXPECT_EQ(field, "sharding.megatron.expert");  // 3 does not divide 8 experts
  EXPECT_FALSE(MegatronMeshAxes(MegatronSizes{}, 0, 8, &field).ok());  // no devices
  s = MegatronSizes{};
  s.pipeline = 5;
  EXPECT_FALSE(MegatronMeshAxes(s, 24, 8, &field).ok());
  EXPECT_EQ(field, "sharding.megatron.pipeline");
}

const char* const kScenario = R"(name: "m"
model {
  num_layers: 4
  d_model: 256
  num_heads: 8
  d_ff: 1024
  vocab_size: 1024
  seq_len: 128
  ffn_kind: SWIGLU
  moe { num_experts: 8 top_k: 2 capacity_factor: 2 placement: EVERY_K placement_k: 1 }
}
cluster { topology: "dgx-h100:2" }
sharding {
  megatron { tensor: 2 expert: 8 expert_tensor: 1 distributed_optimizer: true }
}
training { global_batch_tokens: 16384 micro_batch_size: 2 }
)";

TEST(MegatronPreset, ScenarioExpandsToTheNamedMeshWithFoldedMoeLayers) {
  auto sc = LoadScenarioFromText(kScenario, "m.textproto", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const ShardingSpec& sh = sc->sharding;
  EXPECT_EQ(sh.mesh.Key(), "_pipeline=1,dp=2,dp_ep=4,tp_ep=2");
  EXPECT_TRUE(sh.shard_optimizer_over_data);
  // Dense: TP over tp_ep (2), batch over dp x dp_ep (8); MoE: experts over dp_ep x tp_ep (8).
  EXPECT_EQ(sh.ShardsFor(TensorClass::kDenseWeights, "heads"), 2);
  EXPECT_EQ(sh.ShardsFor(TensorClass::kDenseActivations, "batch"), 8);
  EXPECT_EQ(sh.ShardsFor(TensorClass::kMoeWeights, "experts"), 8);
  EXPECT_EQ(sh.ShardsFor(TensorClass::kMoeActivations, "outer"), 2);
  EXPECT_EQ(sh.ShardsFor(TensorClass::kMoeWeights, "expert_mlp"), 1);
  // Megatron FSDP: the data axes become FSDP. Dense weights are sharded over both (2 x 4 = 8);
  // expert weights over the expert-data axis dp only (2): dp_ep splits the experts themselves.
  auto fsdp = LoadScenarioFromText(kScenario, "m.textproto", {"sharding.megatron.fsdp=true"});
  ASSERT_TRUE(fsdp.ok()) << fsdp.status().message();
  EXPECT_EQ(fsdp->sharding.ShardsFor(TensorClass::kDenseWeights, "embed"), 8);
  EXPECT_EQ(fsdp->sharding.ShardsFor(TensorClass::kMoeWeights, "embed"), 2);
  EXPECT_EQ(sh.ShardsFor(TensorClass::kDenseWeights, "embed"), 1);
  // --set reaches the scalar fields.
  auto tp4 = LoadScenarioFromText(kScenario, "m.textproto",
                                  {"sharding.megatron.tensor=4", "sharding.megatron.expert=4"});
  ASSERT_TRUE(tp4.ok()) << tp4.status().message();
  EXPECT_EQ(tp4->sharding.mesh.Key(), "_pipeline=1,_2=1,dp=4,tp_ep=4");
}

TEST(MegatronPreset, RefusesAMeshBesideItAndBadSizesWithFileAndLine) {
  const std::string both = std::string(kScenario).replace(
      std::string(kScenario).find("  megatron {"), 0, "  strategy: MEGATRON\n");
  auto sc = LoadScenarioFromText(both, "m.textproto", {});
  ASSERT_FALSE(sc.ok());
  EXPECT_NE(sc.status().message().find("m.textproto:14: sharding.strategy and sharding.megatron "
                                       "both describe the parallelism"),
            std::string::npos)
      << sc.status().message();
  auto bad = LoadScenarioFromText(kScenario, "m.textproto", {"sharding.megatron.expert=6"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().exit_code(), 2);
  EXPECT_NE(bad.status().message().find(
                "m.textproto (--set sharding.megatron.expert=6): sharding.megatron.expert=6 does "
                "not divide model.moe.num_experts=8"),
            std::string::npos)
      << bad.status().message();
}

TEST(MegatronArgs, WrittenAndReadBackGiveTheSameScenario) {
  auto sc = LoadScenarioFromText(kScenario, "m.textproto", {"training.recompute=FULL"});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  auto args = MegatronArgs(*sc);
  ASSERT_TRUE(args.ok()) << args.status().message();
  const std::string line = JoinShellArgs(*args);
  for (const char* want :
       {"--tensor-model-parallel-size 2 --sequence-parallel --context-parallel-size 1 "
        "--pipeline-model-parallel-size 1 --expert-model-parallel-size 8 "
        "--expert-tensor-parallel-size 1 --use-distributed-optimizer",
        "--micro-batch-size 2 --global-batch-size 128 --recompute-granularity full "
        "--recompute-method uniform --recompute-num-layers 1 --bf16"}) {
    EXPECT_NE(line.find(want), std::string::npos) << line;
  }
  auto back = ParseMegatronArgs(line);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->ignored.empty());
  // Read back onto a scenario with another layout, they restore this one.
  auto again = LoadScenarioFromText(kScenario, "m.textproto", [&] {
    std::vector<std::string> o = {"sharding.megatron.tensor=1", "training.micro_batch_size=1"};
    o.insert(o.end(), back->overrides.begin(), back->overrides.end());
    return o;
  }());
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->sharding.mesh.Key(), sc->sharding.mesh.Key());
  EXPECT_EQ(again->training.micro_batch_size, 2);
  EXPECT_EQ(again->training.recompute, Recompute::kFull);
  EXPECT_EQ(again->model.moe.capacity_factor, 2.0);
}

TEST(MegatronArgs, OverlapSwitchesGoOutAndComeBack) {
  const std::vector<std::string> on = {"training.tp_comm_overlap=true",
                                       "model.moe.num_shared_experts=1",
                                       "model.moe.shared_expert_overlap=true"};
  auto sc = LoadScenarioFromText(kScenario, "m.textproto", on);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  auto args = MegatronArgs(*sc);
  ASSERT_TRUE(args.ok());
  const std::string line = JoinShellArgs(*args);
  EXPECT_NE(line.find(" --tp-comm-overlap "), std::string::npos) << line;
  EXPECT_NE(line.find(" --moe-shared-expert-overlap "), std::string::npos) << line;
  auto back = ParseMegatronArgs(line);
  ASSERT_TRUE(back.ok()) << back.status().message();
  auto again = LoadScenarioFromText(kScenario, "m.textproto", back->overrides);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_TRUE(again->training.tp_comm_overlap);
  EXPECT_TRUE(again->model.moe.shared_expert_overlap);
  EXPECT_EQ(again->model.moe.num_shared_experts, 1);
}

TEST(MegatronArgs, LeftOutFirstAndLastStageCountsClearTheScenarios) {
  // 4 layers on pipeline 2: the scenario's first/last counts 1 and 3 place them unevenly; the
  // arguments without --decoder-first/last-pipeline-num-layers clear them (an empty --set value)
  // and the even split, 2 and 2, comes back.
  const std::vector<std::string> uneven = {
      "sharding.megatron.pipeline=2", "sharding.megatron.expert=4", "training.first_stage_layers=1",
      "training.last_stage_layers=3"};
  auto sc = LoadScenarioFromText(kScenario, "m.textproto", uneven);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(ScenarioPipelineLayout(*sc).LayersOnRank(0), 1);
  auto p = ParseMegatronArgs(
      "--pipeline-model-parallel-size 2 --expert-model-parallel-size 4 "
      "--expert-tensor-parallel-size 1 --tensor-model-parallel-size 2");
  ASSERT_TRUE(p.ok()) << p.status().message();
  std::vector<std::string> o = uneven;
  o.insert(o.end(), p->overrides.begin(), p->overrides.end());
  auto even = LoadScenarioFromText(kScenario, "m.textproto", o);
  ASSERT_TRUE(even.ok()) << even.status().message();
  EXPECT_EQ(ScenarioPipelineLayout(*even).LayersOnRank(0), 2);
  EXPECT_EQ(ScenarioPipelineLayout(*even).LayersOnRank(1), 2);
}

TEST(MegatronArgs, ParsesQuotingEqualsFormsAndReportsWhatItIgnores) {
  auto p = ParseMegatronArgs(
      "torchrun pretrain_gpt.py --tensor-model-parallel-size=4 \\\n --lr 3e-4 "
      "--pipeline-model-parallel-size 2 --pipeline-model-parallel-layout \"Et|(tt|)*2tL\"");
  ASSERT_TRUE(p.ok()) << p.status().message();
  const auto& o = p->overrides;
  auto has = [&o](const std::string& s) { return std::find(o.begin(), o.end(), s) != o.end(); };
  EXPECT_TRUE(has("sharding.megatron.tensor=4"));
  EXPECT_TRUE(has("sharding.megatron.pipeline=2"));
  // "Et|tt|tt|tL": 4 virtual stages on 2 ranks = 2 per rank, interleaved.
  EXPECT_TRUE(has("training.virtual_stages=2"));
  EXPECT_TRUE(has("training.pipeline_schedule=INTERLEAVED"));
  EXPECT_TRUE(has("training.pipeline_layout=Et|(tt|)*2tL"));
  EXPECT_TRUE(has("training.recompute=NONE"));
  EXPECT_TRUE(has("sharding.megatron.distributed_optimizer=false"));
  ASSERT_EQ(p->ignored.size(), 3u);
  EXPECT_EQ(p->ignored[0], "torchrun");
  EXPECT_EQ(p->ignored[2], "--lr 3e-4");
  EXPECT_FALSE(ParseMegatronArgs("--tensor-model-parallel-size two").ok());
  EXPECT_FALSE(ParseMegatronArgs("--global-batch-size 64").ok());  // sequences of what length?
  EXPECT_FALSE(ParseMegatronArgs("--micro-batch-size").ok());
  EXPECT_FALSE(ParseMegatronArgs("--pipeline-model-parallel-size 0 "
                                 "--pipeline-model-parallel-layout 'Et|tL'")
                   .ok());
  EXPECT_FALSE(ParseMegatronArgs("--global-batch-size 9000000000 --seq-length 9000000000").ok());
}

}  // namespace
}  // namespace moesim
