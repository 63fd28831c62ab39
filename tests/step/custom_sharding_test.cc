// Hand-written sharding rules (sharding.rules, strategy CUSTOM): a scenario may also write its
// sharding specs by hand. Checked against the preset they transcribe and against memory
// worked out by hand.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "costmodel/memory.h"
#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"

namespace moesim {
namespace {

std::string Read(const std::string& rel) {
  std::ifstream in(std::string(MOESIM_SOURCE_DIR) + "/" + rel);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

Scenario Load(const std::string& text) {
  auto sc = LoadScenarioFromText(text, "t.textproto", {}, MOESIM_SOURCE_DIR);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return sc.ok() ? *sc : Scenario{};
}

int CountOps(const OpGraph& g, const std::string& part) {
  int n = 0;
  for (const Op& op : g.ops) n += op.name.find(part) != std::string::npos ? 1 : 0;
  return n;
}

// Du et al. 2024, Table 1, written out as rules by hand: dense weights (Expert, Model) with
// Expert as FSDP over d_model; dense activations ((Data, Expert), None, Model); expert weights
// [E, M, H] (Expert, None, Model); MoE activations [O, G, S, M] (Data, Expert, None, Model) and
// the dispatched / expert tensors (Data, Expert, ..., Model). Heads, FFN hidden and vocabulary
// go to Model wherever they appear.
constexpr char kTable1Rules[] = R"(  strategy: CUSTOM
  rules { tensor_class: DENSE_WEIGHTS dim: "embed" axes: EXPERT }
  rules { tensor_class: DENSE_WEIGHTS dim: "heads" axes: MODEL }
  rules { tensor_class: DENSE_WEIGHTS dim: "kv_heads" axes: MODEL }
  rules { tensor_class: DENSE_WEIGHTS dim: "mlp" axes: MODEL }
  rules { tensor_class: DENSE_WEIGHTS dim: "vocab" axes: MODEL }
  rules { tensor_class: DENSE_ACTIVATIONS dim: "batch" axes: [DATA, EXPERT] }
  rules { tensor_class: DENSE_ACTIVATIONS dim: "embed" axes: MODEL }
  rules { tensor_class: DENSE_ACTIVATIONS dim: "heads" axes: MODEL }
  rules { tensor_class: DENSE_ACTIVATIONS dim: "kv_heads" axes: MODEL }
  rules { tensor_class: DENSE_ACTIVATIONS dim: "mlp" axes: MODEL }
  rules { tensor_class: DENSE_ACTIVATIONS dim: "vocab" axes: MODEL }
  rules { tensor_class: MOE_WEIGHTS dim: "experts" axes: EXPERT }
  rules { tensor_class: MOE_WEIGHTS dim: "expert_mlp" axes: MODEL }
  rules { tensor_class: MOE_ACTIVATIONS dim: "outer" axes: DATA }
  rules { tensor_class: MOE_ACTIVATIONS dim: "groups" axes: EXPERT }
  rules { tensor_class: MOE_ACTIVATIONS dim: "experts" axes: EXPERT }
  rules { tensor_class: MOE_ACTIVATIONS dim: "embed" axes: MODEL }
  rules { tensor_class: MOE_ACTIVATIONS dim: "expert_mlp" axes: MODEL }
)";

TEST(CustomSharding, Table1WrittenOutByHandSimulatesAsTheApple3dPreset) {
  const std::string preset_text = Read("scenarios/apple2024/moe-1.6b-64e.textproto");
  const Scenario preset = Load(preset_text);
  const Scenario custom = Load(Replace(preset_text, "  strategy: APPLE_3D\n", kTable1Rules));
  ASSERT_EQ(custom.sharding.strategy, ShardingStrategy::kCustom);
  auto a = SimulateScenario(preset, {});
  auto b = SimulateScenario(custom, {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->num_ops, b->num_ops);
  EXPECT_EQ(a->step_time_s, b->step_time_s);  // bit for bit
  EXPECT_EQ(a->memory.peak_bytes, b->memory.peak_bytes);
}

TEST(CustomSharding, ARuleReplacesThePresetsRuleForItsDimension) {
  // 6.4B dense on (1, 256, 1): APPLE_3D shards dense weights' d_model over Expert (FSDP). A rule
  // with no axes for that dimension replicates them instead. By hand: per layer
  // 4 x 4096^2 + 3 x 4096 x 10240 + 2 x 4096 = 192,946,176 parameters, x 32 = 6,174,277,632;
  // embeddings 2 x 32,000 x 4096 = 262,144,000; final norm 4096: 6,436,425,728, 2 bytes each.
  const std::string text = Read("scenarios/apple2024/dense-6.4b.textproto");
  const Scenario fsdp = Load(text);
  const Scenario replicated = Load(
      Replace(text, "  strategy: APPLE_3D\n",
              "  strategy: APPLE_3D\n  rules { tensor_class: DENSE_WEIGHTS dim: \"embed\" }\n"));
  EXPECT_EQ(ComputeMemory(replicated).weights_bytes, 2.0 * 6436425728);
  EXPECT_EQ(ComputeMemory(fsdp).weights_bytes, 2.0 * 6436425728 / 256);
  // Replicated weights need no gathers before use.
  EXPECT_GT(CountOps(BuildStepGraph(fsdp), "allgather"), 0);
  EXPECT_EQ(CountOps(BuildStepGraph(replicated), "allgather"), 0);
}

}  // namespace
}  // namespace moesim
