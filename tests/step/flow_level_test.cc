// The flow network level of a step (sim/step/flow_level.h): alone on the network a collective
// takes what the analytical level charges; collectives in flight together share links; a whole
// step without contention agrees with the analytical level to 2%.
#include "sim/step/flow_level.h"

#include <gtest/gtest.h>

#include "proto/hardware_profiles.h"
#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"

namespace moesim {
namespace {

struct Fixture {
  HardwareProfile hw;
  std::shared_ptr<AnalyticalNetwork> net;
};

// A (pipeline, data, expert, model) mesh placed on `topology` as the simulator places it.
Fixture Make(const std::string& chip, const std::string& topology, std::vector<int64_t> mesh) {
  Fixture f;
  auto hw = BuiltinHardwareProfile(chip);
  EXPECT_TRUE(hw.ok());
  f.hw = *hw;
  auto topo = BuildTopology(topology, f.hw);
  EXPECT_TRUE(topo.ok()) << topo.status().message();
  auto placement = PlaceMesh(**topo, MeshAxisOrder(), mesh);
  EXPECT_TRUE(placement.ok()) << placement.status().message();
  f.net = std::make_shared<AnalyticalNetwork>(*topo, *placement, f.hw.link_efficiency);
  return f;
}

Op Collective(int32_t id, CollectiveKind kind, std::vector<MeshAxis> axes, double bytes,
              int32_t stream = kCommStream, std::vector<int32_t> deps = {}) {
  Op op;
  op.id = id;
  op.name = "c" + std::to_string(id);
  op.stream = stream;
  op.is_collective = true;
  op.collective.kind = kind;
  op.collective.axes = std::move(axes);
  op.collective.bytes = bytes;
  op.deps = std::move(deps);
  return op;
}

TEST(FlowLevel, AloneEachCollectiveTakesTheAnalyticalTime) {
  // 256 TPU-v5e (16x16 torus) with mesh data 4 x expert 64: the Expert axis spans a full wrapped
  // dimension and part of the other, Data the rest.
  Fixture f = Make("tpu-v5e", "tpu-v5e:16x16", {1, 4, 64, 1});
  struct Case {
    CollectiveKind kind;
    std::vector<MeshAxis> axes;
    double bytes;
  };
  const std::vector<Case> cases = {
      {CollectiveKind::kAllReduce, {MeshAxis::kData}, 256e6},
      {CollectiveKind::kAllReduce, {MeshAxis::kExpert}, 64e6},
      {CollectiveKind::kReduceScatter, {MeshAxis::kData, MeshAxis::kExpert}, 512e6},
      {CollectiveKind::kAllGather, {MeshAxis::kExpert}, 32e6},
      {CollectiveKind::kAllToAll, {MeshAxis::kExpert}, 16e6},
      {CollectiveKind::kAllReduce, {MeshAxis::kData}, 64e3},  // latency-dominated
  };
  for (const Case& c : cases) {
    OpGraph g;
    g.ops.push_back(Collective(0, c.kind, c.axes, c.bytes));
    FlowStats stats;
    auto r = SimulateScheduleFlow(g, f.hw, *f.net, &stats);
    ASSERT_TRUE(r.ok()) << r.status().message();
    const double analytical = f.net->Time(g.ops[0].collective);
    EXPECT_NEAR(r->step_time_s / analytical, 1.0, 0.01)
        << CollectiveLabel(g.ops[0].collective) << " " << c.bytes << " B: flow " << r->step_time_s
        << " s, analytical " << analytical << " s";
    EXPECT_EQ(stats.replayed, 1);  // alone: timed in isolation, not re-run with others
  }
}

TEST(FlowLevel, TwoAllReducesSharingLinksEachTakeTwiceAsLong) {
  // Two all-reduces over the same Data axis at once (comm and grad streams). Each group's ring
  // links carry both, so max-min gives each half the bandwidth: both end at ~2x the time of one
  // (bandwidth term; 1 GB makes the latency term negligible). The analytical level ignores the
  // contention and ends both at 1x.
  Fixture f = Make("tpu-v5e", "tpu-v5e:16x16", {1, 16, 16, 1});
  OpGraph g;
  g.ops.push_back(Collective(0, CollectiveKind::kAllReduce, {MeshAxis::kData}, 1e9, kCommStream));
  g.ops.push_back(Collective(1, CollectiveKind::kAllReduce, {MeshAxis::kData}, 1e9, kGradStream));
  const double one = f.net->Time(g.ops[0].collective);
  auto analytical =
      SimulateSchedule(g, f.hw, [&](const CollectiveWork& w, int32_t) { return f.net->Time(w); });
  EXPECT_NEAR(analytical.step_time_s / one, 1.0, 1e-9);
  FlowStats stats;
  auto flow = SimulateScheduleFlow(g, f.hw, *f.net, &stats);
  ASSERT_TRUE(flow.ok()) << flow.status().message();
  EXPECT_NEAR(flow->step_time_s / one, 2.0, 0.02);
  EXPECT_NEAR(flow->timing[0].end_s / one, 2.0, 0.02);
  EXPECT_EQ(stats.flow_runs, 2);  // they overlapped, so both ran as flows
}

TEST(FlowLevel, CollectivesOnDisjointLinksDoNotSlowEachOther) {
  // Data and Expert all-reduces at once on (data 16, expert 16): the Expert axis is the inner
  // torus dimension (x), Data the outer (y); their rings use disjoint links, so running both
  // together costs no more than the slower alone.
  Fixture f = Make("tpu-v5e", "tpu-v5e:16x16", {1, 16, 16, 1});
  OpGraph g;
  g.ops.push_back(Collective(0, CollectiveKind::kAllReduce, {MeshAxis::kData}, 1e9, kCommStream));
  g.ops.push_back(Collective(1, CollectiveKind::kAllReduce, {MeshAxis::kExpert}, 1e9, kGradStream));
  const double slower =
      std::max(f.net->Time(g.ops[0].collective), f.net->Time(g.ops[1].collective));
  auto flow = SimulateScheduleFlow(g, f.hw, *f.net);
  ASSERT_TRUE(flow.ok()) << flow.status().message();
  EXPECT_NEAR(flow->step_time_s / slower, 1.0, 0.01);
}

TEST(FlowLevel, SequentialCollectivesAreReplayedAndAddUp) {
  Fixture f = Make("tpu-v5e", "tpu-v5e:16x16", {1, 4, 64, 1});
  OpGraph g;
  g.ops.push_back(Collective(0, CollectiveKind::kAllToAll, {MeshAxis::kExpert}, 8e6));
  g.ops.push_back(Collective(1, CollectiveKind::kAllToAll, {MeshAxis::kExpert}, 8e6));
  g.ops.push_back(
      Collective(2, CollectiveKind::kAllReduce, {MeshAxis::kData}, 8e6, kGradStream, {1}));
  double sum = 0;
  for (const Op& op : g.ops) sum += f.net->Time(op.collective);
  FlowStats stats;
  auto flow = SimulateScheduleFlow(g, f.hw, *f.net, &stats);
  ASSERT_TRUE(flow.ok()) << flow.status().message();
  EXPECT_NEAR(flow->step_time_s / sum, 1.0, 0.01);
  EXPECT_EQ(stats.replayed, 3);
  EXPECT_EQ(stats.flow_runs, 0);
}

TEST(FlowLevel, PipelineSendsOnlyFromTheirStage) {
  // 4 stages x 64 data on 256 chips: a send from stage 1 to 2 is one flow per pipeline group,
  // 64 flows, not the 192 of every stage boundary.
  Fixture f = Make("tpu-v5e", "tpu-v5e:16x16", {4, 64, 1, 1});
  Op send = Collective(0, CollectiveKind::kSendRecv, {MeshAxis::kPipeline}, 1e6, kP2pStream);
  send.program = 1;
  send.collective.peer_program = 2;
  auto plan = f.net->Plan(send.collective, 1);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->stages.size(), 1u);
  const auto& transfers = plan->stages[0].streams.at(0).at(0).transfers;
  EXPECT_EQ(transfers.size(), 64u);
  for (const auto& t : transfers) {
    EXPECT_EQ(f.net->StageOf(t.src), 1);
    EXPECT_EQ(f.net->StageOf(t.dst), 2);
  }
  // And a data all-reduce of stage 2 has transfers inside stage 2 only.
  Op ar = Collective(1, CollectiveKind::kAllReduce, {MeshAxis::kData}, 1e6);
  auto ar_plan = f.net->Plan(ar.collective, 2);
  ASSERT_TRUE(ar_plan.ok());
  EXPECT_GT(ar_plan->TotalTransfers(), 0);
  for (const auto& stage : ar_plan->stages) {
    for (const auto& stream : stage.streams) {
      for (const auto& step : stream) {
        for (const auto& t : step.transfers) {
          EXPECT_EQ(f.net->StageOf(t.src), 2);
          EXPECT_EQ(f.net->StageOf(t.dst), 2);
        }
      }
    }
  }
}

TEST(FlowLevel, WholeStepWithoutOverlapAgreesWithAnalytical) {
  // The default scenario (1.6B, 64 experts, 256 v5e) with its overlaps switched off, so no two
  // collectives are in flight together: the two levels must agree to 2%.
  auto sc = LoadScenario({"", {"training.overlap_grad_reduce=false"}});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  SimulateOptions a, fl;
  fl.network = NetworkLevel::kFlow;
  auto ra = SimulateScenario(*sc, a);
  auto rf = SimulateScenario(*sc, fl);
  ASSERT_TRUE(ra.ok() && rf.ok()) << (ra.ok() ? rf.status().message() : ra.status().message());
  EXPECT_EQ(rf->network, "flow");
  EXPECT_NEAR(rf->step_time_s / ra->step_time_s, 1.0, 0.02)
      << "flow " << rf->step_time_s << " s, analytical " << ra->step_time_s << " s";
}

TEST(FlowLevel, SameInputSameOutputBitForBit) {
  auto sc = LoadScenario({});
  ASSERT_TRUE(sc.ok());
  SimulateOptions fl;
  fl.network = NetworkLevel::kFlow;
  auto r1 = SimulateScenario(*sc, fl);
  auto r2 = SimulateScenario(*sc, fl);
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_EQ(r1->step_time_s, r2->step_time_s);
  EXPECT_EQ(r1->breakdown.exposed_comm_s, r2->breakdown.exposed_comm_s);
}

TEST(FlowLevel, CommSmFractionSlowsTheComputeUnderACollective) {
  // Hardware.comm_sm_fraction on the flow level, as on the analytical one: a compute op of
  // twice an all-reduce's length, beside it from time 0, is slowed by fraction x the time they
  // overlap (the whole all-reduce): alone + 0.5 x t_collective.
  Fixture f = Make("tpu-v5e", "tpu-v5e:16x16", {1, 16, 16, 1});
  OpGraph g;
  g.ops.push_back(Collective(0, CollectiveKind::kAllReduce, {MeshAxis::kData}, 1e9));
  const double t_collective = f.net->Time(g.ops[0].collective);
  Op c;
  c.id = 1;
  c.name = "c";
  c.compute.flops = 1e12;
  c.compute.flops *= 2 * t_collective / ComputeTimeS(c.compute, f.hw);
  g.ops.push_back(c);
  const double alone = ComputeTimeS(c.compute, f.hw);
  HardwareProfile hw = f.hw;
  hw.comm_sm_fraction = 0.5;
  auto r = SimulateScheduleFlow(g, hw, *f.net);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const double flow_collective = r->timing[0].end_s - r->timing[0].start_s;
  EXPECT_NEAR(r->timing[1].end_s, alone + 0.5 * flow_collective, 1e-9 * alone);
  // And without it, the compute op takes its time alone.
  auto r0 = SimulateScheduleFlow(g, f.hw, *f.net);
  ASSERT_TRUE(r0.ok());
  EXPECT_NEAR(r0->timing[1].end_s, alone, 1e-9 * alone);
}

TEST(FlowLevel, IsolatedRunsMemoisedByCanonicalFormChangeNothing) {
  // Pipelines whose stages sit on alike nodes: a collective of stage p and the same collective
  // of stage q are one system of flows under a renaming of links, so one isolated run serves
  // both. Every op's start and end must be the same to the bit with the memo and without it,
  // and the memo must have been used: runs without it = runs with it + reuses.
  for (const std::string file : {"scenarios/mixtral/mixtral-8x22b-128xh100.textproto",
                                 "scenarios/moe_public/mzoo-mixtral8x22b.textproto",
                                 "scenarios/published/megatron-h100-177b.textproto"}) {
    auto sc = LoadScenario({std::string(MOESIM_SOURCE_DIR) + "/" + file, {}});
    ASSERT_TRUE(sc.ok()) << sc.status().message();
    auto topo = BuildTopology(sc->cluster.topology, sc->hardware);
    ASSERT_TRUE(topo.ok());
    auto placement = PlaceScenarioMesh(**topo, sc->sharding.mesh);
    ASSERT_TRUE(placement.ok());
    const AnalyticalNetwork net(*topo, *placement, sc->hardware.link_efficiency, sc->sharding.mesh);
    const OpGraph g = BuildStepGraph(*sc);
    FlowStats with, without;
    auto a = SimulateScheduleFlow(g, sc->hardware, net, &with);
    auto b = SimulateScheduleFlow(g, sc->hardware, net, &without, {.memoise_isolated = false});
    ASSERT_TRUE(a.ok() && b.ok()) << file;
    EXPECT_EQ(a->step_time_s, b->step_time_s) << file;
    ASSERT_EQ(a->timing.size(), b->timing.size());
    for (size_t i = 0; i < a->timing.size(); ++i) {
      ASSERT_EQ(a->timing[i].start_s, b->timing[i].start_s) << file << " op " << i;
      ASSERT_EQ(a->timing[i].end_s, b->timing[i].end_s) << file << " op " << i;
    }
    EXPECT_GT(with.isolated_reused, 0) << file;
    EXPECT_EQ(without.isolated_reused, 0);
    EXPECT_EQ(with.isolated_runs + with.isolated_reused, without.isolated_runs) << file;
  }
}

}  // namespace
}  // namespace moesim
