// Bad input gets a clear error naming the file, line and field path. Each test states the exact
// message a user sees (Ninja style: tests check the text, not just that it failed).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "proto/scenario_loader.h"
#include "proto/topology_name.h"

namespace moesim {
namespace {

// A small valid scenario; line numbers below refer to this text.
const char* const kBase = R"(name: "test"
model {
  num_layers: 4
  d_model: 256
  num_heads: 8
  d_ff: 1024
  vocab_size: 1024
  seq_len: 128
  ffn_kind: SWIGLU
  moe {
    num_experts: 8
    top_k: 2
    capacity_factor: 1.25
    placement: EVERY_K
    placement_k: 2
  }
}
cluster { topology: "tpu-v5e:4x4" }
sharding {
  strategy: APPLE_3D
  mesh { data: 2 expert: 8 model: 1 }
}
training { global_batch_tokens: 65536 }
)";

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// The message of loading `text` with `overrides`; "" when it loads.
std::string Error(const std::string& text, std::vector<std::string> overrides = {}) {
  auto sc = LoadScenarioFromText(text, "t.textproto", overrides);
  if (sc.ok()) return "";
  EXPECT_EQ(sc.status().code(), Status::Code::kInvalidInput);
  EXPECT_EQ(sc.status().exit_code(), 2);
  return sc.status().message();
}
std::string SetError(std::vector<std::string> overrides) { return Error(kBase, overrides); }

TEST(Validation, BaseScenarioLoads) {
  auto sc = LoadScenarioFromText(kBase, "t.textproto", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(sc->cluster.num_devices, 16);
  EXPECT_EQ(sc->model.head_dim, 32);
  EXPECT_EQ(sc->model.num_kv_heads, 8);
  EXPECT_EQ(sc->model.moe.outer_batch, 2);  // default: the Data axis size
  EXPECT_EQ(sc->model.moe.group_size_tokens, 128);
  EXPECT_EQ(sc->training.micro_batch_size, 32);  // 512 sequences over 16 batch shards
}

// --- Parse errors: file:line:column, the line, a caret.

TEST(Validation, UnknownFieldPointsAtTheName) {
  EXPECT_EQ(Error(Replace(kBase, "  d_ff: 1024", "  d_fff: 1024")),
            "t.textproto:6:3: Message type \"moesim.pb.Model\" has no field named \"d_fff\".\n"
            "    d_fff: 1024\n"
            "    ^");
}

TEST(Validation, WrongTypeString) {
  EXPECT_EQ(Error(Replace(kBase, "num_layers: 4", "num_layers: \"four\"")),
            "t.textproto:3:15: Expected integer, got: \"four\"\n"
            "    num_layers: \"four\"\n"
            "                ^");
}

TEST(Validation, WrongTypeFloatForInteger) {
  EXPECT_EQ(Error(Replace(kBase, "num_layers: 4", "num_layers: 4.5")),
            "t.textproto:3:15: Expected integer, got: 4.5\n"
            "    num_layers: 4.5\n"
            "                ^");
}

TEST(Validation, UnknownEnumValuePointsAtTheValue) {
  EXPECT_EQ(Error(Replace(kBase, "ffn_kind: SWIGLU", "ffn_kind: RELU")),
            "t.textproto:9:13: Unknown enumeration value of \"RELU\" for field \"ffn_kind\".\n"
            "    ffn_kind: RELU\n"
            "              ^");
}

TEST(Validation, UnexpectedEndOfFile) {
  EXPECT_EQ(Error("model {\n  num_layers: 2\n"),
            "t.textproto:3:1: Expected identifier, got: end of file");
}

// --- Values: file:line of the field, its path, the value and what is wrong.

TEST(Validation, NegativeSizeInFile) {
  EXPECT_EQ(Error(Replace(kBase, "num_layers: 4", "num_layers: -4")),
            "t.textproto:3: model.num_layers=-4 must be > 0");
}

TEST(Validation, MissingFieldNamesTheEnclosingMessage) {
  EXPECT_EQ(Error(Replace(kBase, "  d_model: 256\n", "")),
            "t.textproto:2: model.d_model is missing (must be > 0)");
}

TEST(Validation, ZeroGivenExplicitlyIsNotMissing) {
  EXPECT_EQ(SetError({"model.seq_len=0"}),
            "t.textproto (--set model.seq_len=0): model.seq_len=0 must be > 0");
}

TEST(Validation, HeadsNotDividingDModel) {
  EXPECT_EQ(SetError({"model.num_heads=6"}),
            "t.textproto (--set model.num_heads=6): model.num_heads=6 does not divide "
            "model.d_model=256 (set model.head_dim to use other head sizes)");
}

TEST(Validation, KvHeadsNotDividingHeads) {
  EXPECT_EQ(SetError({"model.num_kv_heads=3"}),
            "t.textproto (--set model.num_kv_heads=3): model.num_kv_heads=3 does not divide "
            "model.num_heads=8");
}

TEST(Validation, TopKExceedsExperts) {
  EXPECT_EQ(SetError({"model.moe.top_k=9"}),
            "t.textproto (--set model.moe.top_k=9): model.moe.top_k=9 exceeds "
            "model.moe.num_experts=8");
}

TEST(Validation, CapacityFactorNotPositive) {
  EXPECT_EQ(SetError({"model.moe.capacity_factor=-1"}),
            "t.textproto (--set model.moe.capacity_factor=-1): model.moe.capacity_factor=-1 "
            "must be > 0");
  EXPECT_EQ(Error(Replace(kBase, "    capacity_factor: 1.25\n", "")),
            "t.textproto:10: model.moe.capacity_factor is missing (must be > 0)");
}

TEST(Validation, PlacementKExceedsLayers) {
  EXPECT_EQ(SetError({"model.moe.placement_k=5"}),
            "t.textproto (--set model.moe.placement_k=5): model.moe.placement_k=5 exceeds "
            "model.num_layers=4");
}

TEST(Validation, MeshProductNotDeviceCount) {
  EXPECT_EQ(SetError({"sharding.mesh.data=4"}),
            "t.textproto (--set sharding.mesh.data=4): sharding.mesh data x expert x model x "
            "pipeline = 4 x 8 x 1 x 1 = 32 does not equal the 16 devices of the cluster");
}

TEST(Validation, MeshAxisNotDividingExperts) {
  EXPECT_EQ(SetError({"sharding.mesh.data=1", "sharding.mesh.expert=16"}),
            "t.textproto (--set sharding.mesh.expert=16): sharding.mesh.expert=16 does not divide "
            "model.moe.num_experts=8 (MOE_WEIGHTS experts is sharded over it)");
}

TEST(Validation, ModelAxisNotDividingVocab) {
  EXPECT_EQ(SetError({"sharding.mesh.data=1", "sharding.mesh.model=2", "model.vocab_size=1001"}),
            "t.textproto (--set sharding.mesh.model=2): sharding.mesh.model=2 does not divide "
            "model.vocab_size=1001 (DENSE_WEIGHTS vocab is sharded over it)");
}

TEST(Validation, NegativeMeshAxis) {
  EXPECT_EQ(SetError({"sharding.mesh.model=-1"}),
            "t.textproto (--set sharding.mesh.model=-1): sharding.mesh.model=-1 must be >= 0");
}

TEST(Validation, TwoDStrategyNeedsNoExpertAxis) {
  EXPECT_EQ(SetError({"sharding.strategy=NAIVE_2D"}),
            "t.textproto:21: sharding.mesh.expert=8 must be 1 with sharding.strategy=NAIVE_2D (a "
            "2D Data x Model mesh; experts shard over data)");
}

TEST(Validation, UnknownTopologyFamily) {
  EXPECT_EQ(SetError({"cluster.topology=tpu-v9:4x4"}),
            "t.textproto (--set cluster.topology=tpu-v9:4x4): cluster.topology=\"tpu-v9:4x4\": "
            "unknown family \"tpu-v9\" (tpu-v4:AxBxC, tpu-v5p:AxBxC, tpu-v5e:AxB, tpu-v6e:AxB "
            "(append *N for N slices over DCN), dgx-a100:N, dgx-h100:N, dgx-b200:N, "
            "gb200-nvl72:N, torus:AxB..., fattree:N, cpu-host:N, or a path to a .textproto "
            "file)");
}

TEST(Validation, TopologyNeitherNameNorFile) {
  EXPECT_EQ(SetError({"cluster.topology=no-such-cluster"}),
            "t.textproto (--set cluster.topology=no-such-cluster): "
            "cluster.topology=\"no-such-cluster\" is neither a known topology name "
            "(tpu-v4:AxBxC, tpu-v5p:AxBxC, tpu-v5e:AxB, tpu-v6e:AxB (append *N for N slices over "
            "DCN), dgx-a100:N, dgx-h100:N, dgx-b200:N, gb200-nvl72:N, torus:AxB..., fattree:N, "
            "cpu-host:N, or a path to a .textproto file) nor an existing file");
}

TEST(Validation, ZeroSizeTopologyDimension) {
  EXPECT_EQ(SetError({"cluster.topology=tpu-v5e:4x0"}),
            "t.textproto (--set cluster.topology=tpu-v5e:4x0): cluster.topology=\"tpu-v5e:4x0\": "
            "size \"0\" is not a positive integer");
}

TEST(Validation, TopologyWrongNumberOfDimensions) {
  EXPECT_EQ(SetError({"cluster.topology=tpu-v4:4x4"}),
            "t.textproto (--set cluster.topology=tpu-v4:4x4): cluster.topology=\"tpu-v4:4x4\": "
            "tpu-v4 takes 3 dimensions, got 2");
}

TEST(Validation, DeviceCountDisagreesWithTopology) {
  EXPECT_EQ(SetError({"cluster.num_devices=32"}),
            "t.textproto (--set cluster.num_devices=32): cluster.num_devices=32 does not match "
            "the 16 devices of cluster.topology=\"tpu-v5e:4x4\"");
}

TEST(Validation, UnknownChip) {
  EXPECT_EQ(SetError({"hardware.chip=tpu-v9"}),
            "t.textproto (--set hardware.chip=tpu-v9): hardware.chip=\"tpu-v9\": unknown chip "
            "\"tpu-v9\" (built-in profiles: a100-sxm, b200, cpu, gb200, h100-sxm, h200-sxm, "
            "tpu-v4, tpu-v5e, tpu-v5p, tpu-v6e)");
}

TEST(Validation, EfficiencyAboveOne) {
  EXPECT_EQ(SetError({"hardware.matmul_efficiency=1.5"}),
            "t.textproto (--set hardware.matmul_efficiency=1.5): hardware.matmul_efficiency=1.5 "
            "must be in (0, 1]");
}

// protobuf's text format reads "nan" and "inf"; neither may pass for a figure.
TEST(Validation, NonFiniteHardwareFiguresAreRefused) {
  const std::string text = Replace(kBase, "training { global_batch_tokens: 65536 }",
                                   "training { global_batch_tokens: 65536 }\n"
                                   "hardware {\n"
                                   "  memory_efficiency: nan\n"
                                   "  link_bytes_per_s: inf\n"
                                   "}");
  EXPECT_EQ(Error(text),
            "t.textproto:25: hardware.memory_efficiency=nan must be in (0, 1]\n"
            "t.textproto:26: hardware.link_bytes_per_s=inf must be >= 0");
}

TEST(Validation, KernelEfficienciesNameLineAndEntry) {
  const std::string text =
      Replace(kBase, "training { global_batch_tokens: 65536 }",
              "training { global_batch_tokens: 65536 }\n"
              "hardware {\n"
              "  kernel_memory_efficiency { kernel: \"softmax\" efficiency: 0.01 }\n"
              "  kernel_memory_efficiency { kernel: \"gelu\" efficiency: 0.5 }\n"
              "  kernel_memory_efficiency { kernel: \"copy\" efficiency: 2 }\n"
              "  kernel_memory_efficiency { kernel: \"softmax\" efficiency: 0.02 }\n"
              "}");
  EXPECT_EQ(Error(text),
            "t.textproto:26: hardware.kernel_memory_efficiency[1].kernel=\"gelu\" is not a kernel "
            "(copy, axpy, swiglu, rmsnorm, softmax, adamw, fp8_cast)\n"
            "t.textproto:27: hardware.kernel_memory_efficiency[2].efficiency=2 must be in (0, 1]\n"
            "t.textproto:28: hardware.kernel_memory_efficiency[3].kernel=\"softmax\" is listed "
            "twice");
  auto sc = LoadScenarioFromText(
      Replace(kBase, "training { global_batch_tokens: 65536 }",
              "training { global_batch_tokens: 65536 }\n"
              "hardware { kernel_memory_efficiency { kernel: \"softmax\" efficiency: 0.01 } }"),
      "t.textproto", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(sc->hardware.MemoryEfficiency(MemoryKernel::kSoftmax), 0.01);
  EXPECT_EQ(sc->hardware.MemoryEfficiency(MemoryKernel::kCopy), sc->hardware.memory_efficiency);
}

TEST(Validation, RopeNeedsAnEvenHeadDim) {
  EXPECT_EQ(SetError({"model.d_model=200"}),
            "t.textproto:5: model.head_dim=25 (model.d_model / model.num_heads) must be even for "
            "RoPE");
  EXPECT_EQ(SetError({"model.head_dim=33"}),
            "t.textproto (--set model.head_dim=33): model.head_dim=33 must be even for RoPE");
  EXPECT_EQ(SetError({"model.head_dim=33", "model.position_kind=LEARNED"}), "");
}

TEST(Validation, BatchNotMultipleOfSequence) {
  EXPECT_EQ(SetError({"training.global_batch_tokens=1000"}),
            "t.textproto (--set training.global_batch_tokens=1000): "
            "training.global_batch_tokens=1000 is not a multiple of model.seq_len=128");
}

TEST(Validation, BatchNotDividingOverShards) {
  // 1920 tokens = 15 sequences of 128; the batch is sharded over data x expert = 16.
  EXPECT_EQ(SetError({"training.global_batch_tokens=1920"}),
            "t.textproto (--set training.global_batch_tokens=1920): "
            "training.global_batch_tokens=1920 holds 15 sequences, which do not divide over the "
            "16 batch shards of the mesh");
}

TEST(Validation, MicroBatchNotDividingLocalBatch) {
  EXPECT_EQ(SetError({"training.micro_batch_size=5"}),
            "t.textproto (--set training.micro_batch_size=5): training.micro_batch_size=5 does "
            "not divide the 32 sequences of each batch shard");
}

TEST(Validation, LayersNotDividingPipelineStages) {
  EXPECT_EQ(SetError({"sharding.mesh.data=1", "sharding.mesh.pipeline=2", "model.num_layers=5"}),
            "t.textproto (--set sharding.mesh.pipeline=2): model.num_layers=5 does not divide "
            "into 2 pipeline stages (sharding.mesh.pipeline x training.virtual_stages)");
}

TEST(Validation, RuleWithUnknownDimension) {
  const std::string text =
      Replace(kBase, "  strategy: APPLE_3D\n",
              "  strategy: APPLE_3D\n  rules { tensor_class: DENSE_WEIGHTS dim: \"hidden\" "
              "axes: MODEL }\n");
  EXPECT_EQ(Error(text),
            "t.textproto:21: sharding.rules[0].dim=\"hidden\" is not a logical dimension (batch, "
            "seq, embed, heads, kv_heads, head_dim, mlp, vocab, experts, expert_mlp, capacity, "
            "groups, outer, router_experts, latent)");
}

TEST(Validation, RuleNamingAnAxisTwice) {
  const std::string text = Replace(
      kBase, "  strategy: APPLE_3D\n",
      "  strategy: APPLE_3D\n  rules { tensor_class: DENSE_WEIGHTS dim: \"embed\" axes: [DATA, "
      "DATA] }\n");
  EXPECT_EQ(Error(text), "t.textproto:21: sharding.rules[0].axes names DATA twice");
}

TEST(Validation, AllErrorsReportedOneALine) {
  EXPECT_EQ(SetError({"model.d_model=-1", "model.vocab_size=-2"}),
            "t.textproto (--set model.d_model=-1): model.d_model=-1 must be > 0\n"
            "t.textproto (--set model.vocab_size=-2): model.vocab_size=-2 must be > 0");
}

// --- --set: path, type and value errors.

TEST(Overrides, UnknownPathListsTheFields) {
  EXPECT_EQ(SetError({"model.moe.num_expert=4"}),
            "--set model.moe.num_expert=4: model.moe has no field \"num_expert\" (fields: "
            "num_experts, top_k, capacity_factor, placement, placement_k, expert_d_ff, "
            "num_shared_experts, omit_router_flops, dispatch, group_size_tokens, outer_batch, "
            "routing, routing_zipf_exponent, routing_histogram_file, capacity_convention, "
            "num_groups, dropless, routing_lognormal_sigma, dispatch_precision, "
            "shared_expert_overlap, token_dispatcher, router_num_groups, router_group_topk, "
            "ragged_buffer_factor, pad_expert_input_to_capacity)");
}

TEST(Overrides, NotAnInteger) {
  EXPECT_EQ(SetError({"model.d_model=abc"}), "--set model.d_model=abc: \"abc\" is not an integer");
  EXPECT_EQ(SetError({"model.d_model=12x"}), "--set model.d_model=12x: \"12x\" is not an integer");
}

TEST(Overrides, NotANumber) {
  EXPECT_EQ(SetError({"model.moe.capacity_factor=inf"}),
            "--set model.moe.capacity_factor=inf: \"inf\" is not a number");
}

TEST(Overrides, NotABool) {
  EXPECT_EQ(SetError({"model.tie_embeddings=yes"}),
            "--set model.tie_embeddings=yes: \"yes\" is not true or false");
}

TEST(Overrides, NotAnEnumValue) {
  EXPECT_EQ(SetError({"training.recompute=some"}),
            "--set training.recompute=some: \"some\" is not one of NONE, SELECTIVE, FULL");
}

TEST(Overrides, RepeatedAndMessageFieldsAreNotScalars) {
  EXPECT_EQ(SetError({"sharding.rules=x"}),
            "--set sharding.rules=x: sharding.rules is a repeated field; --set takes scalar "
            "fields only");
  EXPECT_EQ(SetError({"model.d_model.x=1"}),
            "--set model.d_model.x=1: model.d_model is a int64, not a message");
}

TEST(Overrides, MissingEquals) {
  EXPECT_EQ(SetError({"model.d_model"}), "--set \"model.d_model\": expected PATH=VALUE");
}

TEST(Overrides, EveryDesignFieldPathIsSettable) {
  // The scenario schema's field paths (proto/moesim.proto), each set to a valid value on the
  // base scenario.
  auto sc = LoadScenarioFromText(kBase, "t.textproto",
                                 {"model.num_layers=8",
                                  "model.d_model=512",
                                  "model.num_heads=8",
                                  "model.num_kv_heads=2",
                                  "model.d_ff=2048",
                                  "model.vocab_size=2048",
                                  "model.seq_len=256",
                                  "model.ffn_kind=gelu",
                                  "model.moe.num_experts=16",
                                  "model.moe.top_k=1",
                                  "model.moe.capacity_factor=2",
                                  "model.moe.placement=LAST_K",
                                  "model.moe.placement_k=2",
                                  "model.moe.expert_d_ff=512",
                                  "model.tie_embeddings=true",
                                  "training.global_batch_tokens=131072",
                                  "training.micro_batch_size=8",
                                  "training.recompute=selective",
                                  "training.pipeline_schedule=INTERLEAVED",
                                  "training.virtual_stages=2",
                                  "sharding.strategy=apple_3d",
                                  "sharding.mesh.data=1",
                                  "sharding.mesh.expert=16",
                                  "sharding.mesh.model=1",
                                  "sharding.mesh.pipeline=1",
                                  "cluster.topology=tpu-v5e:4x4",
                                  "cluster.num_devices=16"});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const Scenario& s = *sc;
  EXPECT_EQ(s.model.num_layers, 8);
  EXPECT_EQ(s.model.num_kv_heads, 2);
  EXPECT_EQ(s.model.ffn_kind, FfnKind::kGelu);
  EXPECT_EQ(s.model.norm_kind, NormKind::kLayerNorm);  // GPT style follows GELU
  EXPECT_EQ(s.model.moe.placement, MoePlacement::kLastK);
  EXPECT_EQ(s.model.NumMoeLayers(), 2);
  EXPECT_EQ(s.model.moe.expert_d_ff, 512);
  EXPECT_TRUE(s.model.tie_embeddings);
  EXPECT_EQ(s.training.recompute, Recompute::kSelective);
  EXPECT_EQ(s.training.pipeline_schedule, PipelineSchedule::kInterleaved);
  // 131072 / 256 = 512 sequences over 16 shards = 32 per shard, in micro-batches of 8.
  EXPECT_EQ(s.training.num_micro_batches, 4);
  EXPECT_EQ(s.sharding.mesh[MeshAxis::kExpert], 16);
}

TEST(Overrides, AppliesToTheDefaultScenario) {
  auto sc = LoadScenario(
      {"", {"model.moe.num_experts=32", "sharding.mesh.data=8", "sharding.mesh.expert=32"}});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(sc->model.moe.num_experts, 32);
  EXPECT_NE(sc->resolved_text.find("num_experts: 32"), std::string::npos);
  EXPECT_EQ(LoadScenario({"", {"model.d_model=-4"}}).status().message(),
            "<default> (--set model.d_model=-4): model.d_model=-4 must be > 0");
}

TEST(Routing, UniformAndZipfShares) {
  auto uniform = LoadScenarioFromText(kBase, "t.textproto", {});
  ASSERT_TRUE(uniform.ok());
  EXPECT_EQ(uniform->model.moe.expert_load, std::vector<double>(8, 0.125));
  auto zipf = LoadScenarioFromText(kBase, "t.textproto",
                                   {"model.moe.routing=ZIPF", "model.moe.routing_zipf_exponent=1"});
  ASSERT_TRUE(zipf.ok()) << zipf.status().message();
  // Shares 1/i for i = 1..8 over the harmonic number H_8 = 761/280.
  const double h8 = 761.0 / 280.0;
  EXPECT_DOUBLE_EQ(zipf->model.moe.expert_load[0], 1 / h8);
  EXPECT_DOUBLE_EQ(zipf->model.moe.expert_load[7], 1 / (8 * h8));
}

TEST(Routing, HistogramFile) {
  std::string dir = ::testing::TempDir();
  if (!dir.empty() && dir.back() == '/') dir.pop_back();
  {
    std::ofstream f(dir + "/hist.txt");
    f << "# tokens per expert\n1, 1, 2\n4 0 0 0 0\n";
  }
  auto sc = LoadScenarioFromText(
      kBase, "t.textproto",
      {"model.moe.routing=HISTOGRAM", "model.moe.routing_histogram_file=hist.txt"}, dir);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(sc->model.moe.expert_load, (std::vector<double>{0.125, 0.125, 0.25, 0.5, 0, 0, 0, 0}));
  {
    std::ofstream f(dir + "/short.txt");
    f << "1 2 x\n";
  }
  auto bad = LoadScenarioFromText(
      kBase, "t.textproto",
      {"model.moe.routing=HISTOGRAM", "model.moe.routing_histogram_file=short.txt"}, dir);
  EXPECT_EQ(bad.status().message(),
            "t.textproto (--set model.moe.routing_histogram_file=short.txt): " + dir +
                "/short.txt:1: \"x\" is not a non-negative number");
}

TEST(Routing, HistogramAndZipfRefusals) {
  std::string dir = ::testing::TempDir();
  if (!dir.empty() && dir.back() == '/') dir.pop_back();
  std::ofstream(dir + "/seven.txt") << "1 1 1 1 1 1 1\n";
  std::ofstream(dir + "/zeros.txt") << "0 0 0 0 0 0 0 0\n";
  auto load = [&](std::vector<std::string> o) {
    auto sc = LoadScenarioFromText(kBase, "t.textproto", o, dir);
    return sc.ok() ? std::string() : sc.status().message();
  };
  EXPECT_EQ(load({"model.moe.routing=HISTOGRAM", "model.moe.routing_histogram_file=seven.txt"}),
            "t.textproto (--set model.moe.routing_histogram_file=seven.txt): " + dir +
                "/seven.txt has 7 counts for 8 experts (model.moe.num_experts)");
  EXPECT_EQ(load({"model.moe.routing=HISTOGRAM", "model.moe.routing_histogram_file=zeros.txt"}),
            "t.textproto (--set model.moe.routing_histogram_file=zeros.txt): routing histogram "
            "sums to 0");
  EXPECT_EQ(load({"model.moe.routing=HISTOGRAM", "model.moe.routing_histogram_file=none.txt"}),
            "t.textproto (--set model.moe.routing_histogram_file=none.txt): "
            "model.moe.routing_histogram_file=\"none.txt\": cannot open " +
                dir + "/none.txt");
  EXPECT_EQ(load({"model.moe.routing=HISTOGRAM"}),
            "t.textproto:10: model.moe.routing_histogram_file is missing (required with routing "
            "HISTOGRAM)");  // the line of the moe block it belongs in
  EXPECT_EQ(load({"model.moe.routing=ZIPF", "model.moe.routing_zipf_exponent=-0.5"}),
            "t.textproto (--set model.moe.routing_zipf_exponent=-0.5): "
            "model.moe.routing_zipf_exponent=-0.5 must be >= 0");
}

TEST(Validation, ClusterFromATopologyFile) {
  // A topology file states its device count and (usually) its chip: the scenario may leave both
  // out, and a count it gives must agree with the file's, located at the scenario's line.
  const std::string file = std::string(MOESIM_SOURCE_DIR) + "/topologies/hgx-a100-4gpu.textproto";
  const std::string text =
      Replace(Replace(kBase, "cluster { topology: \"tpu-v5e:4x4\" }",
                      "cluster { topology: \"" + file + "\" }"),
              "mesh { data: 2 expert: 8 model: 1 }", "mesh { data: 1 expert: 4 model: 1 }");
  auto sc = LoadScenarioFromText(text, "t.textproto", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(sc->cluster.topology, file);
  EXPECT_EQ(sc->cluster.num_devices, 4);     // the file's num_devices: 4
  EXPECT_EQ(sc->hardware.chip, "a100-sxm");  // the file's chip
  // Two devices in a scenario were accepted by `cost` and failed `simulate` without a location.
  EXPECT_EQ(Error(text, {"cluster.num_devices=2"}),
            "t.textproto (--set cluster.num_devices=2): cluster.num_devices=2 does not match the 4 "
            "devices of cluster.topology=\"" +
                file + "\"");
  auto h100 = LoadScenarioFromText(text, "t.textproto", {"hardware.chip=h100-sxm"});
  ASSERT_TRUE(h100.ok()) << h100.status().message();
  EXPECT_EQ(h100->hardware.chip, "h100-sxm");  // the scenario's chip wins

  // A file without a chip needs the scenario's; a file's unknown chip is named at its line.
  const std::string dir = testing::TempDir() + "topology_chip";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/nochip.textproto")
      << "num_devices: 4\nlinks { a: \"0\" b: \"1\" kind: NVLINK }\n";
  std::ofstream(dir + "/badchip.textproto") << "num_devices: 4\nchip: \"tpu-v9\"\n";
  const std::string nochip = Replace(text, file, dir + "/nochip.textproto");
  EXPECT_EQ(Error(nochip),
            "t.textproto:18: hardware.chip is missing (required with a topology "
            "file that names no chip)");
  EXPECT_EQ(Error(nochip, {"hardware.chip=a100-sxm"}), "");
  const std::string badchip = Replace(text, file, dir + "/badchip.textproto");
  const std::string e = Error(badchip);
  EXPECT_EQ(e.rfind("t.textproto:18: cluster.topology=\"" + dir + "/badchip.textproto\": " + dir +
                        "/badchip.textproto:2: chip: unknown chip \"tpu-v9\" (built-in profiles: ",
                    0),
            0u)
      << e;
  EXPECT_EQ(Error(Replace(kBase, "cluster { topology: \"tpu-v5e:4x4\" }",
                          "cluster { topology: \"nowhere.textproto\" }")),
            std::string("t.textproto:18: cluster.topology=\"nowhere.textproto\" is neither a "
                        "known topology name (") +
                TopologyNameForms() + ") nor an existing file");
  EXPECT_EQ(
      Error(Replace(kBase, "cluster { topology: \"tpu-v5e:4x4\" }", "cluster { }")),
      "t.textproto:18: cluster.topology is missing (" + std::string(TopologyNameForms()) + ")");
}

TEST(Loading, MissingFile) {
  auto sc = LoadScenario({"/nonexistent/x.textproto", {}});
  ASSERT_FALSE(sc.ok());
  EXPECT_EQ(sc.status().message(), "/nonexistent/x.textproto: cannot open scenario file");
}

TEST(Loading, DefaultIsTheApple2024ScenarioFile) {
  auto file = LoadScenario(
      {std::string(MOESIM_SOURCE_DIR) + "/scenarios/apple2024/moe-1.6b-64e.textproto", {}});
  auto builtin = LoadScenario({});
  ASSERT_TRUE(file.ok() && builtin.ok());
  EXPECT_EQ(file->resolved_text, builtin->resolved_text);
  // BRIEF section 3: 64 experts, every-4, top-2, capacity 2.0, 2^20 tokens, 256 TPU-v5e
  // (16x16), mesh (4, 64, 1).
  EXPECT_EQ(builtin->model.moe.num_experts, 64);
  EXPECT_EQ(builtin->model.moe.placement_k, 4);
  EXPECT_EQ(builtin->model.moe.top_k, 2);
  EXPECT_DOUBLE_EQ(builtin->model.moe.capacity_factor, 2.0);
  EXPECT_EQ(builtin->training.global_batch_tokens, 1 << 20);
  EXPECT_EQ(builtin->cluster.topology, "tpu-v5e:16x16");
  EXPECT_EQ(builtin->hardware.chip, "tpu-v5e");
  EXPECT_EQ(builtin->sharding.mesh[MeshAxis::kData], 4);
  EXPECT_EQ(builtin->sharding.mesh[MeshAxis::kExpert], 64);
  EXPECT_EQ(builtin->sharding.mesh[MeshAxis::kModel], 1);
}

TEST(Validation, EveryKWithoutKIsAnErrorNotACrash) {
  // placement EVERY_K needs placement_k > 0; the MoE layer count (for per-layer routing
  // histograms) must not be taken from the invalid placement (a division by zero, found by the
  // scenario fuzzer: tests/fuzz/regressions/scenario/).
  std::ifstream in(
      std::string(MOESIM_SOURCE_DIR) +
      "/tests/fuzz/regressions/scenario/every-k-without-k-per-layer-histogram.textproto");
  std::stringstream text;
  text << in.rdbuf();
  auto sc = LoadScenarioFromText(text.str(), "t.textproto", {}, MOESIM_SOURCE_DIR);
  ASSERT_FALSE(sc.ok());
  EXPECT_NE(sc.status().message().find("model.moe.placement_k"), std::string::npos)
      << sc.status().message();
}

}  // namespace
}  // namespace moesim
