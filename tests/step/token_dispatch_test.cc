// MoE token dispatchers in the step (moesim.proto Moe.token_dispatcher, router groups): DeepEP's
// two-level exchange lowered on the placed expert-parallel groups, node-limited routing cutting
// the cross-node bytes of a DeepSeek-V3 layer by the hand-computed factor, Megatron's allgather
// dispatcher as the all-gather of the group's tokens, the scenario fields and Megatron flags.
#include <gtest/gtest.h>

#include <cmath>

#include "proto/hardware_profiles.h"
#include "proto/megatron_args.h"
#include "sim/step/analytical_network.h"
#include "sim/step/flow_level.h"
#include "sim/step/simulate.h"
#include "tests/scenario_text.h"
#include "topologies/placement.h"

namespace moesim {
namespace {

using scenario_text::LoadText;
using scenario_text::Read;
using scenario_text::Replace;

// 64 H100 in 8 DGX nodes, expert parallelism 64 (one DeepSeek-V3 MoE layer's EP group).
std::shared_ptr<AnalyticalNetwork> Ep64() {
  auto hw = BuiltinHardwareProfile("h100-sxm");
  EXPECT_TRUE(hw.ok());
  auto topo = BuildTopology("dgx-h100:8", *hw);
  EXPECT_TRUE(topo.ok());
  auto placement = PlaceMesh(**topo, MeshAxisOrder(), {1, 1, 64, 1});
  EXPECT_TRUE(placement.ok());
  return std::make_shared<AnalyticalNetwork>(*topo, *placement, hw->link_efficiency);
}

CollectiveWork DeepSeekDispatch(int64_t groups, int64_t group_topk) {
  CollectiveWork w;
  w.kind = CollectiveKind::kAllToAll;
  w.axes = {MeshAxis::kExpert};
  w.exchange.dispatcher = TokenDispatcher::kHierarchical;
  w.exchange.tokens = 4096;
  w.exchange.hidden = 7168;
  w.exchange.bytes_per_element = 2;
  w.exchange.num_experts = 256;
  w.exchange.top_k = 8;
  w.exchange.router_num_groups = groups;
  w.exchange.router_group_topk = group_topk;
  return w;
}

// Bytes the plan moves between different nodes (8 GPUs each), after DeepEP's layout exchange (the
// plan's first stage: a few int32 per pair of ranks).
double CrossNodeBytes(const sim::CollectivePlan& plan) {
  double total = 0;
  EXPECT_EQ(plan.stages.size(), 2u);
  for (size_t s = 1; s < plan.stages.size(); ++s) {
    const auto& stage = plan.stages[s];
    for (const auto& stream : stage.streams) {
      for (const auto& step : stream) {
        for (const auto& t : step.transfers) {
          if (t.src / 8 != t.dst / 8) total += t.bytes * static_cast<double>(step.repeat);
        }
      }
    }
  }
  return total;
}

TEST(TokenDispatch, NodeLimitedRoutingCutsCrossNodeBytesByTheHandFactor) {
  // DeepSeek-V3: 256 experts, top-8, 8 router groups (one per node of EP 64 on 8 nodes), top-4
  // groups. A token leaves its node once per other destination node (DeepEP deduplicates):
  //   unlimited: 8 draws from 256 experts, 32 per node: a node is hit with probability
  //     1 - C(224, 8) / C(256, 8) = 0.661832; the 7 other nodes: 4.632821 per token;
  //   limited to 4 nodes: all 4 chosen nodes receive (8 experts over 4 nodes), one of them the
  //     sender's own with probability 4/8: 3.5 other nodes per token.
  // Factor 4.632821 / 3.5 = 1.323663. Bytes: 64 ranks x 4096 tokens x that x 7168 x 2 B.
  auto net = Ep64();
  double hit = 1;
  for (int i = 0; i < 8; ++i) hit *= (224.0 - i) / (256.0 - i);
  const double unlimited_nodes = 7 * (1 - hit);
  const double row = 7168.0 * 2;
  auto open = net->Plan(DeepSeekDispatch(0, 0));
  auto limited = net->Plan(DeepSeekDispatch(8, 4));
  ASSERT_TRUE(open.ok() && limited.ok());
  const double a = CrossNodeBytes(*open), b = CrossNodeBytes(*limited);
  EXPECT_NEAR(a / (64 * 4096 * unlimited_nodes * row), 1.0, 1e-9);
  EXPECT_NEAR(b / (64 * 4096 * 3.5 * row), 1.0, 1e-9);
  EXPECT_NEAR(a / b, 1.323663, 1e-6);
  // And the exchange gets faster by no more than that (NVLink forwarding runs beside it).
  const double ta = net->Time(DeepSeekDispatch(0, 0)), tb = net->Time(DeepSeekDispatch(8, 4));
  EXPECT_GT(ta, tb);
  EXPECT_LE(ta / tb, 1.323663 + 1e-6);
}

TEST(TokenDispatch, HierarchicalBeatsTheFlatAllToAllAcrossNodes) {
  // The flat all-to-all sends one copy per (token, expert): 4096 x 8 x 14336 B per rank, 7/8 of
  // it to other nodes; DeepEP sends one copy per other node (4.63 per token, unlimited): the
  // scale-out bytes shrink by 7 / 4.63 = 1.51, and the exchange with them.
  auto net = Ep64();
  CollectiveWork flat;
  flat.kind = CollectiveKind::kAllToAll;
  flat.axes = {MeshAxis::kExpert};
  flat.bytes = 4096.0 * 8 * 7168 * 2;
  const double t_flat = net->Time(flat), t_deepep = net->Time(DeepSeekDispatch(0, 0));
  EXPECT_GT(t_flat / t_deepep, 1.3);
  EXPECT_LT(t_flat / t_deepep, 1.6);
}

TEST(TokenDispatch, AllGatherDispatcherIsTheAllGatherOfTheGroupsTokens) {
  // Megatron's allgather dispatcher on EP 64: every rank gathers 64 x 4096 rows of 14336 B
  // (3.76 GB); the combine reduce-scatters them.
  auto net = Ep64();
  CollectiveWork w = DeepSeekDispatch(0, 0);
  w.exchange.dispatcher = TokenDispatcher::kAllGather;
  CollectiveWork ag;
  ag.kind = CollectiveKind::kAllGather;
  ag.axes = {MeshAxis::kExpert};
  ag.bytes = 64 * 4096 * 7168.0 * 2;
  EXPECT_DOUBLE_EQ(net->Time(w), net->Time(ag));
  w.exchange.combine = true;
  ag.kind = CollectiveKind::kReduceScatter;
  EXPECT_DOUBLE_EQ(net->Time(w), net->Time(ag));
}

const char* kQwen3 = "scenarios/qwen3/qwen3-235b-a22b-pp8-ep32-256xh100.textproto";

TEST(TokenDispatch, DeepEpShortensTheQwen3Step) {
  // Qwen3-235B-A22B, EP 32 over 4 nodes (the scenario runs DeepEP, as the measured run did):
  // DeepEP's deduplicated two-level exchange moves fewer bytes over InfiniBand than the flat
  // all-to-all, so the step gets shorter.
  const std::string text = Read(kQwen3);
  auto flat =
      LoadText(Replace(text, "  token_dispatcher: DEEPEP\n", "  token_dispatcher: ALLTOALL\n"));
  auto deepep = LoadText(text);
  ASSERT_TRUE(flat.ok()) << flat.status().message();
  ASSERT_TRUE(deepep.ok()) << deepep.status().message();
  auto a = SimulateScenario(*flat, {});
  auto b = SimulateScenario(*deepep, {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(b->step_time_s, a->step_time_s);
}

TEST(TokenDispatch, FlowLevelRunsTheSameLoweredExchange) {
  // Alone on the network, the flow level's run of the DeepEP dispatch plan takes what the
  // analytical level charges.
  auto hw = BuiltinHardwareProfile("h100-sxm");
  ASSERT_TRUE(hw.ok());
  auto net = Ep64();
  for (int64_t groups : {0, 8}) {
    OpGraph g;
    Op op;
    op.is_collective = true;
    op.stream = kCommStream;
    op.collective = DeepSeekDispatch(groups, groups / 2);
    g.ops.push_back(op);
    auto flow = SimulateScheduleFlow(g, *hw, *net);
    ASSERT_TRUE(flow.ok()) << flow.status().message();
    const double analytical = net->Time(op.collective);
    EXPECT_NEAR(flow->step_time_s / analytical, 1.0, 0.01)
        << "flow " << flow->step_time_s << " s, analytical " << analytical << " s";
  }
}

TEST(TokenDispatch, BadFieldsAreRefusedWithTheirPath) {
  const std::string text = Read(kQwen3);
  auto einsum = LoadText(Replace(text, "dispatch: PERMUTE", "dispatch: EINSUM"));
  ASSERT_FALSE(einsum.ok());
  EXPECT_NE(einsum.status().message().find("model.moe.token_dispatcher"), std::string::npos)
      << einsum.status().message();
  auto topk_alone =
      LoadText(Replace(text, "dispatch: PERMUTE", "dispatch: PERMUTE router_group_topk: 4"));
  ASSERT_FALSE(topk_alone.ok());
  EXPECT_NE(topk_alone.status().message().find("model.moe.router_group_topk"), std::string::npos);
  // 128 experts in 8 groups of 16; top-8 fits in one group, so group_topk 1 is allowed, but 9
  // groups do not divide 128.
  auto odd = LoadText(Replace(text, "dispatch: PERMUTE",
                              "dispatch: PERMUTE router_num_groups: 9 router_group_topk: 1"));
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.status().message().find("model.moe.router_num_groups"), std::string::npos);
}

TEST(TokenDispatch, MegatronFlagsRoundTrip) {
  const std::string text = Read("scenarios/deepseek/deepseek-v3.textproto");
  // DeepSeek-V3 has router groups 8 / 4; run it with HybridEP.
  auto sc =
      LoadText(Replace(text, "  token_dispatcher: DEEPEP\n", "  token_dispatcher: HYBRIDEP\n"));
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  auto args = MegatronArgs(*sc);
  ASSERT_TRUE(args.ok()) << args.status().message();
  std::string joined;
  for (const auto& a : *args) joined += a + " ";
  EXPECT_NE(joined.find("--moe-token-dispatcher-type flex --moe-flex-dispatcher-backend hybridep"),
            std::string::npos)
      << joined;
  EXPECT_NE(joined.find("--moe-router-num-groups 8 --moe-router-group-topk 4"), std::string::npos);
  auto back = ParseMegatronArgs(joined);
  ASSERT_TRUE(back.ok()) << back.status().message();
  std::string overrides;
  for (const auto& o : back->overrides) overrides += o + "\n";
  EXPECT_NE(overrides.find("model.moe.token_dispatcher=HYBRIDEP"), std::string::npos) << overrides;
  EXPECT_NE(overrides.find("model.moe.router_num_groups=8"), std::string::npos);
  EXPECT_NE(overrides.find("model.moe.router_group_topk=4"), std::string::npos);
  // The older switch, and a backend moesim does not model.
  auto older = ParseMegatronArgs(
      Replace(joined, "--moe-flex-dispatcher-backend hybridep", "--moe-enable-deepep"));
  ASSERT_TRUE(older.ok()) << older.status().message();
  overrides.clear();
  for (const auto& o : older->overrides) overrides += o + "\n";
  EXPECT_NE(overrides.find("model.moe.token_dispatcher=DEEPEP"), std::string::npos) << overrides;
  // DeepSeek-V3 here has capacity factor 4: Megatron-Core's own capacity convention, and its
  // padding switch.
  EXPECT_NE(overrides.find("model.moe.capacity_convention=MEGATRON"), std::string::npos);
  EXPECT_NE(overrides.find("model.moe.pad_expert_input_to_capacity=false"), std::string::npos);
  auto padded = ParseMegatronArgs(joined + " --moe-pad-expert-input-to-capacity");
  ASSERT_TRUE(padded.ok()) << padded.status().message();
  overrides.clear();
  for (const auto& o : padded->overrides) overrides += o + "\n";
  EXPECT_NE(overrides.find("model.moe.pad_expert_input_to_capacity=true"), std::string::npos);
  auto mori = ParseMegatronArgs(Replace(joined, "hybridep", "mori"));
  ASSERT_FALSE(mori.ok());
  EXPECT_NE(mori.status().message().find("mori"), std::string::npos);
}

}  // namespace
}  // namespace moesim
