// Hostile and absurd scenarios: numbers outside an enum, sizes past the documented limits
// (common/limits.h, docs/limits.md), products that would overflow int64. Each is refused as bad
// input naming the file, line and field, before anything is sized from it. Tests are named after
// the input that used to crash, hang or exhaust memory.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/checked_math.h"
#include "common/limits.h"
#include "proto/scenario_loader.h"
#include "proto/topology_name.h"

namespace moesim {
namespace {

// Line numbers below refer to this text.
const char* const kBase = R"(name: "limits"
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
  }
}
cluster { topology: "tpu-v5e:4x4" }
sharding {
  strategy: APPLE_3D
  mesh { data: 2 expert: 8 model: 1 }
  RULES
}
training { global_batch_tokens: 65536 }
)";

std::string WithRules(const std::string& rules) {
  std::string text = kBase;
  text.replace(text.find("RULES"), 5, rules);
  return text;
}

// The message of loading `text` with `overrides`; "" when it loads.
std::string Error(const std::string& text, std::vector<std::string> overrides = {}) {
  auto sc = LoadScenarioFromText(text, "t.textproto", overrides);
  if (sc.ok()) return "";
  EXPECT_EQ(sc.status().exit_code(), 2) << sc.status().message();
  return sc.status().message();
}
std::string SetError(std::vector<std::string> overrides) { return Error(WithRules(""), overrides); }

const char* const kAxes = "(AXIS_UNSPECIFIED, DATA, EXPERT, MODEL, PIPELINE)";

TEST(EnumRange, RuleAxesMinusOneFiveAndSeven) {
  // proto3's text format accepts any number for an enum field; these used to read past the mesh
  // (SIGFPE for -1, a result that changed between runs for 5, garbage memory in a message for 7).
  for (const char* v : {"-1", "5", "7"}) {
    const std::string rules =
        std::string("rules { tensor_class: DENSE_WEIGHTS dim: \"embed\" ") + "axes: " + v + " }";
    EXPECT_EQ(Error(WithRules(rules)), std::string("t.textproto:20: sharding.rules[0].axes[0]=") +
                                           v + " is not a value of Axis " + kAxes);
  }
}

TEST(EnumRange, EveryEnumOfTheFileIsChecked) {
  // A tensor class, a model enum and a nested MoE enum, all reported at once, in field order.
  std::string text = WithRules("rules { tensor_class: 9 dim: \"embed\" axes: DATA }");
  text.replace(text.find("ffn_kind: SWIGLU"), 16, "ffn_kind: 12");
  text.replace(text.find("top_k: 2"), 8, "top_k: 2 routing: 40");
  const std::string e = Error(text);
  EXPECT_NE(e.find("t.textproto:9: model.ffn_kind=12 is not a value of FfnKind"), std::string::npos)
      << e;
  EXPECT_NE(e.find("t.textproto:12: model.moe.routing=40 is not a value of Routing"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("t.textproto:20: sharding.rules[0].tensor_class=9 is not a value of "
                   "TensorClass"),
            std::string::npos)
      << e;
}

TEST(Limits, NumLayersInt64MaxAndOneMillion) {
  // INT64_MAX never finished; 2^31 - 1 took 45 s; 10^6 grew past 8.8 GB.
  for (const char* v : {"9223372036854775807", "2147483647", "1000000", "4097"}) {
    EXPECT_EQ(SetError({std::string("model.num_layers=") + v}),
              std::string("t.textproto (--set model.num_layers=") + v + "): model.num_layers=" + v +
                  " exceeds the limit of 4096 (docs/limits.md)");
  }
  EXPECT_EQ(SetError({"model.num_layers=4096"}), "");
}

TEST(Limits, NumExpertsTwoToThe30And31And1e12AndInt64Max) {
  // 2^30 allocated 10.5 GB before failing; the others ended in bad_alloc (exit 1).
  for (const char* v : {"1073741824", "2147483648", "1000000000000", "9223372036854775807"}) {
    EXPECT_EQ(SetError({std::string("model.moe.num_experts=") + v}),
              std::string("t.textproto (--set model.moe.num_experts=") + v +
                  "): model.moe.num_experts=" + v + " exceeds the limit of 1048576 " +
                  "(docs/limits.md)");
  }
}

TEST(Limits, WidthsAndCountsAtInt64Max) {
  // Each overflowed an int64 product in the cost model (einsum LocalShape, LayerWeights).
  const std::pair<const char*, int64_t> fields[] = {
      {"model.d_ff", limits::kMaxWidth},
      {"model.vocab_size", limits::kMaxVocab},
      {"model.moe.expert_d_ff", limits::kMaxWidth},
      {"model.head_dim", limits::kMaxWidth},
      {"model.moe.num_shared_experts", limits::kMaxSharedExperts},
      {"model.seq_len", limits::kMaxSeqLen},
      {"training.global_batch_tokens", limits::kMaxGlobalBatchTokens},
  };
  for (const auto& [field, limit] : fields) {
    const std::string set = std::string(field) + "=9223372036854775807";
    EXPECT_EQ(SetError({set}), "t.textproto (--set " + set + "): " + set +
                                   " exceeds the limit of " + std::to_string(limit) +
                                   " (docs/limits.md)");
  }
}

TEST(Limits, CapacityFactorAndZipfExponentNanAndHuge) {
  // NaN passed `<= 0`; a huge factor overflowed the capacity's cast to int64 in the cost model.
  // The text format reads "nan" (--set refuses it).
  std::string text = WithRules("");
  text.replace(text.find("capacity_factor: 1.25"), 21, "capacity_factor: nan");
  EXPECT_EQ(Error(text),
            "t.textproto:13: model.moe.capacity_factor=nan exceeds the limit of "
            "1048576 (docs/limits.md)");
  EXPECT_EQ(SetError({"model.moe.capacity_factor=1e300"}),
            "t.textproto (--set model.moe.capacity_factor=1e300): "
            "model.moe.capacity_factor=1e+300 exceeds the limit of 1048576 (docs/limits.md)");
  text = WithRules("");
  text.replace(text.find("top_k: 2"), 8, "top_k: 2 routing: ZIPF routing_zipf_exponent: nan");
  EXPECT_EQ(Error(text), "t.textproto:12: model.moe.routing_zipf_exponent=nan must be >= 0");
}

TEST(Limits, WeightTensorPastTwoToThe44Elements) {
  // Each field within its own limit, their product not: 2^20 x 2^16 x 2^20 > 2^44.
  EXPECT_EQ(SetError({"model.d_model=1048576", "model.num_heads=65536", "model.head_dim=1048576"}),
            "t.textproto (--set model.d_model=1048576): the attention projection (model.d_model x "
            "model.num_heads x model.head_dim) exceeds the limit of 17592186044416 elements per "
            "tensor (docs/limits.md)");
  EXPECT_EQ(SetError({"model.moe.num_experts=1048576", "model.moe.expert_d_ff=1048576"}),
            "t.textproto (--set model.moe.num_experts=1048576): one layer's experts "
            "((model.moe.num_experts + num_shared_experts) x model.d_model x "
            "model.moe.expert_d_ff) exceeds the limit of 17592186044416 elements per tensor "
            "(docs/limits.md)");
}

TEST(Limits, GlobalBatchOfTwoToThe30TokensWithMicroBatchOne) {
  // 2^30 tokens of 128-token sequences over the 16 batch shards of APPLE_3D (data x expert):
  // 524,288 micro-batches of one sequence per step, which allocated until bad_alloc.
  EXPECT_EQ(SetError({"training.global_batch_tokens=1073741824", "training.micro_batch_size=1"}),
            "t.textproto (--set training.micro_batch_size=1): model.num_layers=4 x 524288 "
            "micro-batches of training.micro_batch_size=1 per step exceed the limit of 131072 "
            "layer micro-batches (docs/limits.md): use larger micro-batches");
  // 2^27 tokens: 65,536 micro-batches x 4 layers, twice the limit; 2^26 is exactly at it.
  EXPECT_NE(SetError({"training.global_batch_tokens=134217728", "training.micro_batch_size=1"}),
            "");
  EXPECT_EQ(SetError({"training.global_batch_tokens=67108864", "training.micro_batch_size=1"}), "");
  // 2^35 tokens: 2^24 micro-batches, past the micro-batch limit itself.
  EXPECT_EQ(SetError({"training.global_batch_tokens=34359738368", "training.micro_batch_size=1"}),
            "t.textproto (--set training.micro_batch_size=1): the 16777216 sequences of each "
            "batch shard make 16777216 micro-batches of training.micro_batch_size=1, past the "
            "limit of 1048576 (docs/limits.md)");
}

TEST(Limits, HardwareFiguresOutOfRange) {
  EXPECT_EQ(SetError({"hardware.op_overhead_s=1e300"}),
            "t.textproto (--set hardware.op_overhead_s=1e300): hardware.op_overhead_s=1e+300 "
            "exceeds the limit of 1 (docs/limits.md)");
  EXPECT_EQ(SetError({"hardware.link_bytes_per_s=1e-300"}),
            "t.textproto (--set hardware.link_bytes_per_s=1e-300): "
            "hardware.link_bytes_per_s=1e-300 is below 1 (docs/limits.md)");
  // Used to surface as "link 72 -> 80: bytes_per_s must be > 0" with no location.
  std::string text = WithRules("");
  text.replace(text.find("cluster {"), 9, "hardware { scaleout_bytes_per_s: 1.7e308 }\ncluster {");
  EXPECT_EQ(Error(text),
            "t.textproto:16: hardware.scaleout_bytes_per_s=1.7e+308 exceeds the "
            "limit of 1e+15 (docs/limits.md)");
}

TEST(Limits, TopologyTpuV4Int64MaxBy8By8) {
  // Accepted as a cluster of -64 devices.
  EXPECT_EQ(SetError({"cluster.topology=tpu-v4:9223372036854775807x8x8"}),
            "t.textproto (--set cluster.topology=tpu-v4:9223372036854775807x8x8): "
            "cluster.topology=\"tpu-v4:9223372036854775807x8x8\": more devices than the limit of "
            "131072 (docs/limits.md)");
  auto name = ParseTopologyName("dgx-h100:16385");  // 131,080 GPUs
  ASSERT_FALSE(name.ok());
  EXPECT_EQ(name.status().message(),
            "topology \"dgx-h100:16385\": more devices than the limit of 131072 "
            "(docs/limits.md)");
  EXPECT_TRUE(ParseTopologyName("dgx-h100:16384").ok());
  EXPECT_FALSE(ParseTopologyName("tpu-v5e:16x16*9223372036854775807").ok());
}

TEST(Limits, TopologyNameOf300Characters) {
  // std::filesystem::exists threw "File name too long" (exit 1).
  const std::string name(300, 'a');
  EXPECT_EQ(SetError({"cluster.topology=" + name}),
            "t.textproto (--set cluster.topology=" + name + "): cluster.topology=\"" + name +
                "\" is neither a known topology name (" + TopologyNameForms() +
                ") nor an existing file");
  const std::string longer(5000, 'b');
  EXPECT_EQ(SetError({"cluster.topology=" + longer}),
            "t.textproto (--set cluster.topology=" + longer +
                "): cluster.topology is 5000 characters long, past the limit of 4096 "
                "(docs/limits.md)");
}

TEST(Limits, MeshAxisPastTheDeviceLimit) {
  EXPECT_EQ(SetError({"sharding.mesh.data=9223372036854775807"}),
            "t.textproto (--set sharding.mesh.data=9223372036854775807): "
            "sharding.mesh.data=9223372036854775807 exceeds the limit of 131072 "
            "(docs/limits.md)");
}

TEST(Loading, ScenarioPathIsADirectory) {
  auto sc = LoadScenario({std::string(MOESIM_SOURCE_DIR) + "/scenarios", {}});
  ASSERT_FALSE(sc.ok());
  EXPECT_EQ(sc.status().exit_code(), 2);
  EXPECT_EQ(sc.status().message(),
            std::string(MOESIM_SOURCE_DIR) + "/scenarios: is a directory, not a scenario file");
}

TEST(CheckedMath, OverflowAndNegativeOperandsAreRefused) {
  EXPECT_EQ(CheckedMul(int64_t{1} << 31, int64_t{1} << 31), int64_t{1} << 62);
  EXPECT_FALSE(CheckedMul(int64_t{1} << 32, int64_t{1} << 31));
  EXPECT_FALSE(CheckedMul(-1, 4));
  EXPECT_EQ(CheckedAdd(INT64_MAX - 1, 1), INT64_MAX);
  EXPECT_FALSE(CheckedAdd(INT64_MAX, 1));
  EXPECT_EQ(CheckedProduct({2, 3, 7}), 42);
  EXPECT_FALSE(CheckedProduct({INT64_MAX, 8, 8}));
  EXPECT_EQ(ProductWithin({16, 16}, 256), 256);
  EXPECT_FALSE(ProductWithin({16, 17}, 256));
}

}  // namespace
}  // namespace moesim
