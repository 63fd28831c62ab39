// The named mesh form (sharding.mesh.axes with roles) and MoE parallel folding
// (sharding.moe_layers): where the expert-parallel groups land on the topology, and one folded
// layer's collectives and bytes worked by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "costmodel/model_cost.h"
#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"
#include "tests/scenario_text.h"
#include "topologies/topology.h"

namespace moesim {
namespace {

using namespace moesim::scenario_text;  // NOLINT

// The forward all-to-all's axes: the expert-parallel group.
std::vector<MeshAxis> A2aAxes(const Scenario& sc) {
  const OpGraph g = BuildStepGraph(sc);
  for (const Op& op : g.ops) {
    if (op.is_collective && op.collective.kind == CollectiveKind::kAllToAll) {
      return op.collective.axes;
    }
  }
  return {};
}

// The device groups over several mesh axes: devices whose coordinates differ only along `axes`.
std::vector<std::vector<DeviceId>> GroupsOver(const Mesh& mesh, const MeshPlacement& p,
                                              const std::vector<MeshAxis>& axes) {
  std::vector<bool> in(p.axis_sizes.size(), false);
  for (MeshAxis a : axes) {
    for (size_t i = 0; i < p.axis_names.size(); ++i) {
      if (p.axis_names[i] == mesh.Name(a)) in[i] = true;
    }
  }
  std::map<std::vector<int64_t>, std::vector<DeviceId>> groups;
  for (size_t idx = 0; idx < p.device_of.size(); ++idx) {
    std::vector<int64_t> key;
    int64_t rest = static_cast<int64_t>(idx);
    for (size_t i = p.axis_sizes.size(); i-- > 0;) {
      if (!in[i]) key.push_back(rest % p.axis_sizes[i]);
      rest /= p.axis_sizes[i];
    }
    groups[key].push_back(p.device_of[idx]);
  }
  std::vector<std::vector<DeviceId>> out;
  for (auto& [k, g] : groups) out.push_back(g);
  return out;
}

// Link kinds that routes between members of a group cross.
std::set<LinkKind> KindsWithin(const Topology& topo, const std::vector<DeviceId>& g) {
  std::set<LinkKind> kinds;
  for (DeviceId a : g) {
    for (DeviceId b : g) {
      if (a == b) continue;
      for (LinkId l : topo.Route(a, b)) kinds.insert(topo.links()[static_cast<size_t>(l)].kind);
    }
  }
  return kinds;
}

constexpr char kQwen[] = "scenarios/qwen3/qwen3-235b-a22b-256xh100.textproto";

TEST(NamedMesh, Qwen3FoldedExpertGroupsStayInsideOneNode) {
  auto sc = LoadText(Read(kQwen));
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const Mesh& mesh = sc->sharding.mesh;
  EXPECT_EQ(mesh.NumDevices(), 256);
  EXPECT_EQ(mesh.PipelineSize(), 1);
  const std::vector<MeshAxis> ep = A2aAxes(*sc);
  ASSERT_EQ(ep, (std::vector<MeshAxis>{AxisNamed(mesh, "dp_in"), AxisNamed(mesh, "tp")}));
  auto topo = BuildTopology(sc->cluster.topology, sc->hardware);
  ASSERT_TRUE(topo.ok()) << topo.status().message();
  auto placement = PlaceScenarioMesh(**topo, mesh);
  ASSERT_TRUE(placement.ok()) << placement.status().message();
  const auto groups = GroupsOver(mesh, *placement, ep);
  ASSERT_EQ(groups.size(), 32u);  // one EP group of 8 per DGX node
  for (const auto& g : groups) {
    ASSERT_EQ(g.size(), 8u);
    EXPECT_EQ(KindsWithin(**topo, g), (std::set<LinkKind>{LinkKind::kNvlink}));
  }
  // The TP pairs too; dp_out crosses nodes (InfiniBand).
  for (const auto& g : GroupsOver(mesh, *placement, {AxisNamed(mesh, "tp")})) {
    EXPECT_EQ(KindsWithin(**topo, g), (std::set<LinkKind>{LinkKind::kNvlink}));
  }
  for (const auto& g : GroupsOver(mesh, *placement, {AxisNamed(mesh, "dp_out")})) {
    EXPECT_TRUE(KindsWithin(**topo, g).count(LinkKind::kInfiniband) > 0);
  }
}

// The same ranks in the legacy form (MEGATRON, data 16 x expert 8 x model 2): the expert axis
// sits outside model, takes the node's remaining factor 4 and two nodes, so the all-to-all
// crosses InfiniBand. This is what folding avoids.
TEST(NamedMesh, LegacyExpertTimesModelSpansTwoNodes) {
  std::string text = Read(kQwen);
  const size_t from = text.find("sharding {"), to = text.find("training {");
  ASSERT_NE(from, std::string::npos);
  text.replace(from, to - from,
               "sharding { strategy: MEGATRON mesh { data: 16 expert: 8 model: 2 } }\n");
  auto sc = LoadText(text);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  auto topo = BuildTopology(sc->cluster.topology, sc->hardware);
  ASSERT_TRUE(topo.ok());
  auto placement = PlaceScenarioMesh(**topo, sc->sharding.mesh);
  ASSERT_TRUE(placement.ok());
  bool crosses = false;
  for (const auto& g : GroupsOver(sc->sharding.mesh, *placement, {MeshAxis::kExpert})) {
    crosses = crosses || KindsWithin(**topo, g).count(LinkKind::kInfiniband) > 0;
  }
  EXPECT_TRUE(crosses);
}

// 16 H100s (two DGX nodes): dp_out 2 x dp_in 4 (FSDP) x tp 2 for attention; MoE layers fold EP 8
// over [dp_in, tp] with no expert tensor parallelism, dp_out expert-data-parallel.
constexpr char kFolded16[] = R"(
name: "t/folded16"
model {
  name: "t" num_layers: 1 d_model: 1024 num_heads: 8 num_kv_heads: 8 head_dim: 128 d_ff: 4096
  vocab_size: 32000 seq_len: 1024 ffn_kind: SWIGLU
  moe { num_experts: 16 top_k: 2 expert_d_ff: 512 capacity_factor: 4.0 placement: EVERY_K
        placement_k: 1 dispatch: PERMUTE }
}
cluster { topology: "dgx-h100:2" }
sharding {
  mesh {
    axes { name: "dp_out" size: 2 role: FSDP }
    axes { name: "dp_in" size: 4 role: FSDP }
    axes { name: "tp" size: 2 role: TENSOR }
  }
  moe_layers { expert: ["dp_in", "tp"] }
}
training { global_batch_tokens: 16384 micro_batch_size: 2 recompute: NONE }
)";

TEST(NamedMesh, FoldedLayerCollectivesByHand) {
  auto sc = LoadText(kFolded16);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const Mesh& mesh = sc->sharding.mesh;
  const MeshAxis dp_out = AxisNamed(mesh, "dp_out"), dp_in = AxisNamed(mesh, "dp_in"),
                 tp = AxisNamed(mesh, "tp");
  const OpGraph g = BuildStepGraph(*sc);
  // Per data-parallel rank (dp_out x dp_in = 8): 16,384 / 8 = 2,048 tokens = one micro-batch of
  // 2 sequences of 1,024. Attention: the [b 2, s 1024, m 1024] bf16 activation is
  // 2 x 1024 x 1024 x 2 = 4,194,304 bytes whole; with sequence parallelism each tp rank holds
  // half and all-gathers the other half before the QKV projections, and reduce-scatters the
  // output projection's partial sums back to halves (the collective's bytes are the whole
  // tensor: each rank sends and receives 2,097,152 bytes over NVLink).
  // MoE: the tokens stay sequence-split over tp, so each rank routes b x s / tp = 1,024 tokens,
  // each to top-2 of 16 experts, 2 experts per rank of the EP group of 8. Permutation dispatch
  // sends each (token, expert) pair's d_model row: 1,024 x 2 x 1,024 x 2 bytes = 4,194,304 bytes
  // per rank and all-to-all (7/8 of it leaves the rank under uniform routing; capacity
  // 4.0 x 2 x 1,024 / 16 = 512 per group drops nothing).
  int ag = 0, rs = 0, a2a = 0, moe_tp = 0;
  for (const Op& op : g.ops) {
    if (!op.is_collective || op.phase != Phase::kForward) continue;
    const CollectiveWork& c = op.collective;
    if (op.name.find("attn.allgather") != std::string::npos) {
      ++ag;
      EXPECT_DOUBLE_EQ(c.bytes, 4194304.0);
      EXPECT_EQ(c.axes, (std::vector<MeshAxis>{tp}));
    }
    if (op.name.find("attn.reducescatter") != std::string::npos) {
      ++rs;
      EXPECT_DOUBLE_EQ(c.bytes, 4194304.0);
      EXPECT_EQ(c.axes, (std::vector<MeshAxis>{tp}));
    }
    if (c.kind == CollectiveKind::kAllToAll) {
      ++a2a;
      EXPECT_DOUBLE_EQ(c.bytes, 1024.0 * 2 * 1024 * 2);
      EXPECT_EQ(c.axes, (std::vector<MeshAxis>{dp_in, tp}));
    }
    if (op.name.find("moe.experts.") != std::string::npos) ++moe_tp;
  }
  EXPECT_EQ(ag, 1);
  EXPECT_EQ(rs, 1);
  EXPECT_EQ(a2a, 2);     // dispatch and combine
  EXPECT_EQ(moe_tp, 0);  // no expert tensor parallelism: the experts' GEMMs need no TP collective
  // Weights: dense (attention, norms) gathered over dp_out x dp_in (FSDP 8); experts sharded 2
  // per rank over EP and gathered over dp_out only (their FSDP axis outside the EP group).
  std::set<std::vector<MeshAxis>> gathers;
  for (const Op& op : g.ops) {
    if (op.is_collective && op.collective.kind == CollectiveKind::kAllGather &&
        op.name.find("attn.") == std::string::npos) {
      gathers.insert(op.collective.axes);
    }
  }
  EXPECT_TRUE(gathers.count({dp_out, dp_in}) > 0);
  EXPECT_TRUE(gathers.count({dp_out}) > 0);
}

// dcn: true claims an axis crosses the fast domain: on two DGX nodes an outer axis of 2 takes the
// nodes (accepted); an outer axis of 8 must take 4 GPUs of each node as well (refused).
TEST(NamedMesh, DcnAxisMustLandAcrossNodes) {
  auto place = [](const std::string& axes) {
    std::string text = kFolded16;
    const size_t from = text.find("sharding {"), to = text.find("training {");
    text.replace(from, to - from, "sharding { mesh { " + axes + " } }\n");
    text.replace(text.find("micro_batch_size: 2"), 19, "micro_batch_size: 1");
    auto sc = LoadText(text);
    EXPECT_TRUE(sc.ok()) << sc.status().message();
    if (!sc.ok()) return Expected<MeshPlacement>(sc.status());
    auto topo = BuildTopology(sc->cluster.topology, sc->hardware);
    EXPECT_TRUE(topo.ok());
    if (!topo.ok()) return Expected<MeshPlacement>(topo.status());
    return PlaceScenarioMesh(**topo, sc->sharding.mesh);
  };
  EXPECT_TRUE(place(R"(axes { name: "dp" size: 2 role: DATA dcn: true }
                       axes { name: "ep" size: 8 role: EXPERT })")
                  .ok());
  auto bad = place(R"(axes { name: "dp" size: 8 role: DATA dcn: true }
                      axes { name: "ep" size: 2 role: EXPERT })");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(
      bad.status().message().find(
          "sharding.mesh axis \"dp\" is dcn: true (across the fast domain) but is placed on "),
      std::string::npos)
      << bad.status().message();
}

TEST(NamedMesh, ValidationNamesTheField) {
  auto expect_error = [](const std::string& from, const std::string& to, const std::string& want) {
    std::string text = kFolded16;
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    auto sc = LoadText(text);
    ASSERT_FALSE(sc.ok()) << from;
    EXPECT_NE(sc.status().message().find(want), std::string::npos) << sc.status().message();
  };
  expect_error(R"(name: "tp")", R"(name: "dp_in")", "sharding.mesh.axes[2].name=\"dp_in\" repeats");
  expect_error(R"(name: "tp" size: 2)", R"(name: "tp" size: 0)",
               "t.textproto:14: sharding.mesh.axes[2].size=0 must be >= 1");
  expect_error(R"(name: "dp_out" size: 2)", R"(name: "dp_out" size: 4)",
               "= 32 devices, but the cluster has 16");
  expect_error("role: TENSOR", "", "sharding.mesh.axes[2].role is missing");
  expect_error(R"(["dp_in", "tp"])", R"(["dp_in", "tq"])",
               "sharding.moe_layers.expert[1]=\"tq\" is not an axis");
  expect_error("sharding {", "sharding {\n  strategy: MEGATRON", "sharding.strategy is for the");
}

// The legacy form: an axis of size > 1 that a layer kind's rules never name would repeat the same
// work on its devices (FSDP shards over data and expert only: model 4 would compute everything 4
// times). Refused, naming the field's line and the axis.
TEST(NamedMesh, LegacyAxisNoRuleUsesIsRefused) {
  std::string text = kFolded16;
  const size_t from = text.find("sharding {"), to = text.find("training {");
  text.replace(from, to - from, "sharding {\n  strategy: FSDP\n  mesh { data: 4 model: 4 }\n}\n");
  auto sc = LoadText(text);
  ASSERT_FALSE(sc.ok());
  EXPECT_NE(sc.status().message().find(
                "t.textproto:12: sharding.mesh.model=4: dense layers (attention, FFN, embedding) "
                "of sharding.strategy=FSDP shard nothing over the model axis"),
            std::string::npos)
      << sc.status().message();
  // MEGATRON shards over model (tensor parallelism): the same mesh is accepted.
  text.replace(text.find("FSDP"), 4, "MEGATRON");
  EXPECT_TRUE(LoadText(text).ok());
}

// MaxText's layout of Llama 4 Maverick (fsdp 32 x tensor 4 on 128 v5p): the layer's FLOPs are
// split four ways over tensor, not repeated. Summed over the 128 chips, the step program's FLOPs
// equal the model's hardware FLOPs (with full recomputation) plus exactly one thing every tensor
// rank repeats: the router. Its forward is 2 x d_model x experts = 2 x 5120 x 128 FLOPs per
// token per MoE layer; forward, recomputed forward and backward (2x) make 4x that; 24 MoE
// layers; repeated on the 3 other tensor ranks: 3 x 4 x 2 x 5120 x 128 x 24 = 377,487,360 FLOPs
// per token. (Written with strategy FSDP and mesh { data: 32 model: 4 }, the same chips would
// each have computed whole layers: 4x the FLOPs. That form is now refused.)
TEST(NamedMesh, MaverickMaxTextLayoutSplitsTheFlopsOverTensor) {
  auto sc = LoadText(Read("scenarios/llama4/llama4-maverick-128xv5p.textproto"));
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  ASSERT_EQ(sc->sharding.mesh.NumDevices(), 128);
  const OpGraph g = BuildStepGraph(*sc);
  const double tokens = static_cast<double>(sc->training.global_batch_tokens);
  const double model_hw = ComputeModelCost(sc->model, sc->training).flops_per_token.hardware;
  const double repeated_router = 3.0 * 4 * 2 * 5120 * 128 * 24;
  EXPECT_NEAR(g.hardware_flops_per_step / tokens, model_hw + repeated_router, model_hw * 1e-12);
  // Which is 0.24% over the model's: the split is four ways.
  EXPECT_LT(g.hardware_flops_per_step / tokens / model_hw, 1.003);
}

// The model zoo's Qwen3-235B layout: PP 8 x VPP 4 with 94 layers placed unevenly, TP 2, EP 32
// folded over TP 2 x DP 16. With TP innermost, dp next and pp outermost, an expert-parallel group
// of 32 is 4 whole DGX nodes (NVLink inside, InfiniBand between), and every pipeline rank runs
// 2,048 / 16 = 128 micro-batches of one sequence.
TEST(NamedMesh, Qwen3PipelinedLayoutFoldsExpertsOverFourNodes) {
  auto sc = LoadText(Read("scenarios/qwen3/qwen3-235b-a22b-pp8-ep32-256xh100.textproto"));
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const Mesh& mesh = sc->sharding.mesh;
  EXPECT_EQ(mesh.PipelineSize(), 8);
  EXPECT_EQ(sc->training.num_micro_batches, 128);
  const std::vector<MeshAxis> ep = A2aAxes(*sc);
  ASSERT_EQ(ep, (std::vector<MeshAxis>{AxisNamed(mesh, "dp"), AxisNamed(mesh, "tp")}));
  auto topo = BuildTopology(sc->cluster.topology, sc->hardware);
  ASSERT_TRUE(topo.ok()) << topo.status().message();
  auto placement = PlaceScenarioMesh(**topo, mesh);
  ASSERT_TRUE(placement.ok()) << placement.status().message();
  const auto groups = GroupsOver(mesh, *placement, ep);
  ASSERT_EQ(groups.size(), 8u);  // one per pipeline rank
  for (const auto& g : groups) {
    ASSERT_EQ(g.size(), 32u);
    std::set<int64_t> nodes;
    for (DeviceId d : g) nodes.insert(static_cast<int64_t>(d) / 8);
    EXPECT_EQ(nodes.size(), 4u);
    const std::set<LinkKind> kinds = KindsWithin(**topo, g);
    EXPECT_TRUE(kinds.count(LinkKind::kNvlink) > 0 && kinds.count(LinkKind::kInfiniband) > 0);
  }
  SimulateOptions opts;
  auto r = SimulateScenario(*sc, opts);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_GT(r->step_time_s, 0);
}

}  // namespace
}  // namespace moesim
