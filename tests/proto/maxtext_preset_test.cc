// sharding.maxtext (proto/maxtext_preset.h): MaxText's ici_* / dcn_* mesh keys expanded into
// named mesh axes, worked out by hand from MaxText's base.yml (mesh order data, stage, fsdp,
// fsdp_transpose, sequence, context, tensor, expert; dcn axes outermost; -1 fills), the
// overrides written back and read again, and bad inputs refused with the field.
#include "proto/maxtext_preset.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "proto/named_mesh.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

const char* const kMixtral = "scenarios/mixtral/mixtral-8x22b-v6e-256.textproto";

std::string Read(const std::string& rel) {
  std::ifstream in(std::string(MOESIM_SOURCE_DIR) + "/" + rel);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A small MoE model (8 experts) that every mesh below divides.
std::string ScenarioText(const std::string& topology, const std::string& maxtext,
                         const std::string& extra_sharding = "") {
  return R"(model { num_layers: 4 d_model: 1024 num_heads: 16 num_kv_heads: 8 head_dim: 64
  d_ff: 4096 vocab_size: 32768 seq_len: 4096 ffn_kind: SWIGLU
  moe { num_experts: 8 top_k: 2 capacity_factor: 1.25 placement: EVERY_K placement_k: 1 } }
cluster { topology: ")" +
         topology + R"(" }
sharding {
  maxtext { )" +
         maxtext + "}\n" + extra_sharding + R"(
}
training { global_batch_tokens: 4194304 })";
}

Expected<moesim::Scenario> Load(const std::string& text,
                                const std::vector<std::string>& sets = {}) {
  return LoadScenarioFromText(text, "t.textproto", sets, MOESIM_SOURCE_DIR);
}

struct AxisView {
  std::string name;
  int64_t size;
  bool dcn;
  bool operator==(const AxisView& o) const {
    return name == o.name && size == o.size && dcn == o.dcn;
  }
};
std::ostream& operator<<(std::ostream& os, const AxisView& a) {
  return os << a.name << " " << a.size << (a.dcn ? " dcn" : "");
}

// The written axes, outermost first.
std::vector<AxisView> Axes(const Mesh& mesh) {
  std::vector<AxisView> out;
  for (MeshAxis a : mesh.placement_order) {
    if (IsPlaceholderAxis(mesh, a)) continue;
    out.push_back({mesh.Name(a), mesh[a], mesh.dcn[static_cast<size_t>(a)]});
  }
  return out;
}

std::vector<std::string> Names(const moesim::Scenario& s, TensorClass c, const std::string& dim) {
  std::vector<std::string> out;
  for (MeshAxis a : s.sharding.AxesFor(c, dim)) out.push_back(s.sharding.mesh.Name(a));
  return out;
}

using V = std::vector<std::string>;

// MaxText's Mixtral 8x22B recipe on a v6e-256: ici_fsdp 64 x ici_expert 4, dcn_data -1 filling
// the one slice with 1. Axes: fsdp 64 then expert 4 (expert after fsdp in mesh_axes), both ici.
// Dense layers shard batch and weights over both (MaxText's 'activation_batch' and 'embed' rules
// name fsdp and expert); MoE layers split the experts over expert and gather theirs over fsdp.
TEST(MaxTextPreset, Fsdp64Expert4) {
  auto sc = Load(Read(kMixtral));
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(Axes(sc->sharding.mesh),
            (std::vector<AxisView>{{"fsdp", 64, false}, {"expert", 4, false}}));
  EXPECT_EQ(Names(*sc, TensorClass::kDenseActivations, "batch"), (V{"fsdp", "expert"}));
  EXPECT_EQ(Names(*sc, TensorClass::kDenseWeights, "embed"), (V{"fsdp", "expert"}));
  EXPECT_EQ(Names(*sc, TensorClass::kDenseWeights, "heads"), V{});
  EXPECT_EQ(Names(*sc, TensorClass::kMoeWeights, "experts"), V{"expert"});
  EXPECT_EQ(Names(*sc, TensorClass::kMoeWeights, "embed"), V{"fsdp"});
  EXPECT_EQ(Names(*sc, TensorClass::kMoeWeights, "expert_mlp"), V{});
  EXPECT_EQ(Names(*sc, TensorClass::kMoeActivations, "outer"), V{"fsdp"});
  EXPECT_EQ(sc->sharding.mesh.PipelineSize(), 1);
  // 2,048 sequences over 64 x 4 batch shards: 8 each, one micro-batch.
  EXPECT_EQ(sc->training.micro_batch_size, 8);
  EXPECT_EQ(sc->training.num_micro_batches, 1);
}

// Two v5e slices of 8 x 4 chips: dcn_data 2 outermost (dcn), then fsdp 8 and tensor 4 in one
// slice. Written out, and again with MaxText's defaults filling: ici_fsdp -1 -> 32 / 4 = 8,
// dcn_data -1 -> 2 slices / 1 = 2.
TEST(MaxTextPreset, DcnData2IciFsdp8Tensor4) {
  const std::vector<AxisView> want = {
      {"dcn_data", 2, true}, {"fsdp", 8, false}, {"tensor", 4, false}};
  for (const std::string keys :
       {"dcn_data_parallelism: 2 ici_fsdp_parallelism: 8 ici_tensor_parallelism: 4 ",
        "ici_tensor_parallelism: 4 "}) {
    auto sc = Load(ScenarioText("tpu-v5e:8x4*2", keys));
    ASSERT_TRUE(sc.ok()) << sc.status().message();
    EXPECT_EQ(Axes(sc->sharding.mesh), want) << keys;
    EXPECT_EQ(Names(*sc, TensorClass::kDenseActivations, "batch"), (V{"dcn_data", "fsdp"}));
    EXPECT_EQ(Names(*sc, TensorClass::kDenseWeights, "embed"), V{"fsdp"});
    EXPECT_EQ(Names(*sc, TensorClass::kDenseWeights, "heads"), V{"tensor"});
    EXPECT_EQ(Names(*sc, TensorClass::kMoeWeights, "experts"), V{});
    EXPECT_EQ(Names(*sc, TensorClass::kMoeWeights, "expert_mlp"), V{"tensor"});
    EXPECT_EQ(Names(*sc, TensorClass::kMoeActivations, "outer"), (V{"dcn_data", "fsdp"}));
  }
}

// MaxText's slices of GPU clusters are nodes (NVL72 racks): dcn_fsdp 2 x ici_data 9 x
// ici_expert 8 on two racks (144 GPUs, 144 sequences) keeps the expert all-to-all in a rack.
TEST(MaxTextPreset, GpuSlicesAreNodes) {
  EXPECT_EQ(MaxTextSlices("gb200-nvl72:2"), 2);
  EXPECT_EQ(MaxTextSlices("dgx-h100:32"), 32);
  EXPECT_EQ(MaxTextSlices("tpu-v6e:16x16"), 1);
  EXPECT_EQ(MaxTextSlices("tpu-v5e:16x16*4"), 4);
  auto sc = Load(ScenarioText("gb200-nvl72:2",
                              "dcn_fsdp_parallelism: 2 ici_data_parallelism: 9 "
                              "ici_fsdp_parallelism: 1 ici_expert_parallelism: 8 "),
                 {"training.global_batch_tokens=589824"});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(
      Axes(sc->sharding.mesh),
      (std::vector<AxisView>{{"dcn_fsdp", 2, true}, {"data", 9, false}, {"expert", 8, false}}));
}

// MaxText's context (and deprecated sequence) axes are context parallelism: on a v6e-256,
// ici_context 2 leaves fsdp's -1 128 chips; context sits between fsdp and tensor in mesh_axes.
TEST(MaxTextPreset, ContextAxisIsContextParallel) {
  auto sc = Load(ScenarioText("tpu-v6e:16x16", "ici_context_parallelism: 2 "));
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(Axes(sc->sharding.mesh),
            (std::vector<AxisView>{{"fsdp", 128, false}, {"context", 2, false}}));
  std::vector<std::string> context;
  for (MeshAxis a : sc->sharding.ContextAxes()) context.push_back(sc->sharding.mesh.Name(a));
  EXPECT_EQ(context, V{"context"});
  EXPECT_EQ(Names(*sc, TensorClass::kDenseActivations, "batch"), V{"fsdp"});
}

// `--set` reaches every key.
TEST(MaxTextPreset, SetOverridesAKey) {
  auto sc = Load(Read(kMixtral), {"sharding.maxtext.ici_fsdp_parallelism=32",
                                  "sharding.maxtext.ici_expert_parallelism=8"});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(Axes(sc->sharding.mesh),
            (std::vector<AxisView>{{"fsdp", 32, false}, {"expert", 8, false}}));
}

void ExpectError(const Expected<moesim::Scenario>& sc, const std::vector<std::string>& parts) {
  ASSERT_FALSE(sc.ok());
  EXPECT_EQ(sc.status().exit_code(), 2);
  for (const auto& p : parts) {
    EXPECT_NE(sc.status().message().find(p), std::string::npos)
        << "missing \"" << p << "\" in: " << sc.status().message();
  }
}

TEST(MaxTextPreset, BadInputsNameTheField) {
  const std::string v6e = "tpu-v6e:16x16";
  // 64 x 8 = 512 chips on a slice of 256.
  ExpectError(Load(ScenarioText(v6e, "ici_fsdp_parallelism: 64 ici_expert_parallelism: 8 ")),
              {"t.textproto:6: ", "ici_fsdp_parallelism=64 x ici_expert_parallelism=8",
               "multiply to 512", "256"});
  // ici_data -1 and ici_fsdp's default -1: two axes to fill.
  ExpectError(Load(ScenarioText(v6e, "ici_data_parallelism: -1 ")),
              {"ici_data_parallelism and ici_fsdp_parallelism (-1 unless written) are both -1"});
  // 256 chips do not split into 3 tensor ranks.
  ExpectError(Load(ScenarioText(v6e, "ici_tensor_parallelism: 3 ")),
              {"sharding.maxtext.ici_fsdp_parallelism=-1 cannot fill", "multiply to 3"});
  ExpectError(Load(ScenarioText(v6e, "ici_fsdp_parallelism: 0 ")),
              {"sharding.maxtext.ici_fsdp_parallelism=0 must be >= 1, or -1"});
  // One slice: the dcn axes multiply to 1.
  ExpectError(Load(ScenarioText(v6e, "dcn_fsdp_parallelism: 2 ")),
              {"sharding.maxtext.dcn_data_parallelism=-1 cannot fill the slices of",
               "(dcn_fsdp_parallelism=2) multiply to 2"});
  ExpectError(Load(ScenarioText("tpu-v5e:8x4*2",
                                "dcn_pipeline_parallelism: 2 ici_pipeline_parallelism: 2 ")),
              {"sharding.maxtext.dcn_pipeline_parallelism=2 and ici_pipeline_parallelism=2"});
  // The mesh twice.
  ExpectError(Load(ScenarioText(v6e, "", "mesh { data: 256 }")),
              {"t.textproto:7: sharding.mesh: sharding.maxtext gives the mesh"});
  ExpectError(Load(ScenarioText(v6e, "", "strategy: FSDP")),
              {"sharding.strategy: sharding.maxtext gives the mesh"});
  ExpectError(Load(Read(kMixtral), {"sharding.mesh.data=256"}),
              {"sharding.maxtext gives the mesh"});
}

// The Mixtral scenario as MaxText overrides, by hand: ici_fsdp 64, ici_expert 4, dcn_data 1
// (written since its default is -1), 2,048 sequences / 256 chips = 8 per device, one step of
// accumulation, 4,096 tokens, full remat.
TEST(MaxTextPreset, OverridesRoundTrip) {
  const std::string want =
      "ici_fsdp_parallelism=64 ici_expert_parallelism=4 dcn_data_parallelism=1 "
      "per_device_batch_size=8 max_target_length=4096 remat_policy=full";
  auto sc = Load(Read(kMixtral));
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  auto text = MaxTextOverrides(*sc);
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text, want);

  // Another layout read back: 2 sequences per device x 2 accumulation steps on 256 chips =
  // 1,024 sequences (4,194,304 tokens); 32 x 8 batch shards take 1,024 / 256 / 2 = 2 sequences
  // per micro-batch.
  const std::string other =
      "ici_fsdp_parallelism=32 ici_expert_parallelism=8 dcn_data_parallelism=1 "
      "per_device_batch_size=2 gradient_accumulation_steps=2 max_target_length=4096 "
      "remat_policy=minimal";
  std::vector<std::string> sets;
  auto back =
      LoadScenarioWithMaxText({std::string(MOESIM_SOURCE_DIR) + "/" + kMixtral, {}}, other, &sets);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(sets, (V{"sharding.maxtext.ici_fsdp_parallelism=32",
                     "sharding.maxtext.ici_expert_parallelism=8",
                     "sharding.maxtext.dcn_data_parallelism=1", "model.seq_len=4096",
                     "training.recompute=SELECTIVE", "training.global_batch_tokens=4194304",
                     "training.micro_batch_size=2"}));
  EXPECT_EQ(back->training.num_micro_batches, 2);
  auto again = MaxTextOverrides(*back);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(*again, other);

  // And the written overrides load to the same scenario.
  auto same = LoadScenarioWithMaxText({std::string(MOESIM_SOURCE_DIR) + "/" + kMixtral, {}}, want);
  ASSERT_TRUE(same.ok()) << same.status().message();
  EXPECT_EQ(same->training.global_batch_tokens, sc->training.global_batch_tokens);
  EXPECT_EQ(same->training.micro_batch_size, sc->training.micro_batch_size);
  EXPECT_EQ(Axes(same->sharding.mesh), Axes(sc->sharding.mesh));
}

TEST(MaxTextPreset, ParserRefusesWhatItCannotRead) {
  auto expect = [](const std::string& text, const std::string& part) {
    auto r = ParseMaxTextOverrides(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().exit_code(), 2);
    EXPECT_NE(r.status().message().find(part), std::string::npos) << r.status().message();
  };
  expect("ici_tensor_sequence_parallelism=2", "tensor_sequence axis is not modelled");
  expect("ici_fsdp_parallelism=x", "--maxtext ici_fsdp_parallelism=x: expected an integer");
  expect("steps=10", "--maxtext steps=10: not a MaxText key moesim reads");
  expect("remat_policy=save_qkv_proj", "moesim models remat_policy full");
  expect("per_device_batch_size", "expected KEY=VALUE");
  // Sequences past limits::kMaxGlobalBatchTokens are refused before any integer arithmetic.
  auto huge = LoadScenarioWithMaxText({std::string(MOESIM_SOURCE_DIR) + "/" + kMixtral, {}},
                                      "per_device_batch_size=1e300");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("exceed the limit"), std::string::npos)
      << huge.status().message();
  // Half a sequence per chip: 128 sequences per step, fewer than the 64 x 4 batch shards.
  auto uneven = LoadScenarioWithMaxText({std::string(MOESIM_SOURCE_DIR) + "/" + kMixtral, {}},
                                        "per_device_batch_size=0.5");
  ASSERT_FALSE(uneven.ok());
  EXPECT_NE(uneven.status().message().find("128 sequences per step do not split into 1 "
                                           "micro-batches on each of the 256 batch shards"),
            std::string::npos)
      << uneven.status().message();
  auto ok = ParseMaxTextOverrides("ici_autoregressive_parallelism=1 remat_policy='full'");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->sets, V{"training.recompute=FULL"});
}

}  // namespace
}  // namespace moesim
