// training.overlap_moe_expert_parallel_comm (Megatron-LM --overlap-moe-expert-parallel-comm,
// Megatron-Core's combined 1F1B step) with delay_wgrad_compute, read off the simulated timeline
// of one pair of layers and checked against the schedule's rule worked by hand; where it is
// refused; the Megatron-LM arguments both ways; and Hardware.comm_sm_fraction's slowdown of
// compute that overlaps a collective, on hand-made programs.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

#include "costmodel/opgraph.h"
#include "proto/megatron_args.h"
#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"
#include "sim/step/step_sim.h"
#include "tests/scenario_text.h"

namespace moesim {
namespace {

using namespace moesim::scenario_text;  // NOLINT

// One DGX H100 node, EP 8: one MoE layer (8 experts, top-2, permutation dispatch), two
// micro-batches of one sequence per device. Without a pipeline the combined step runs forward 0
// alone, then forward 1 paired with backward 0, then backward 1 alone.
constexpr char kEp8[] = R"(
name: "t/ep8"
model {
  name: "t" num_layers: 1 d_model: 4096 num_heads: 32 d_ff: 14336 vocab_size: 32000
  seq_len: 4096 ffn_kind: SWIGLU
  moe { num_experts: 8 top_k: 2 capacity_factor: 2 expert_d_ff: 14336 dispatch: PERMUTE }
}
cluster { topology: "dgx-h100:1" }
sharding { mesh { axes { name: "ep" size: 8 role: EXPERT } } }
training {
  global_batch_tokens: 65536 micro_batch_size: 1 recompute: NONE
  overlap_moe_expert_parallel_comm: true delay_wgrad_compute: true
}
)";

using Span = std::pair<double, double>;

// First op of each name in layer 0, keyed "F1 L0.moe.w1" (phase initial and micro-batch).
std::map<std::string, Span> Layer0(const SimReport& r) {
  std::map<std::string, Span> s;
  for (const Op& op : r.program->ops) {
    if (op.layer != 0) continue;
    const std::string key = std::string(op.phase == Phase::kForward ? "F" : "B") +
                            std::to_string(op.micro_batch) + " " + op.name;
    const auto& tm = r.timing[static_cast<size_t>(op.id)];
    s.emplace(key, Span{tm.start_s, tm.end_s});
  }
  return s;
}

SimReport Simulated(const std::string& text) {
  auto sc = LoadText(text);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  SimulateOptions opt;
  opt.keep_program = true;
  auto r = SimulateScenario(*sc, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(*r);
}

TEST(EpA2aOverlap, ForwardAndBackwardAllToAllsRunBesideTheOtherMicroBatch) {
  const SimReport r = Simulated(kEp8);
  const auto s = Layer0(r);
  auto at = [&](const std::string& k) {
    EXPECT_TRUE(s.count(k)) << k;
    return s.count(k) ? s.at(k) : Span{0, 0};
  };
  // The expert all-to-alls run on their own stream.
  for (const Op& op : r.program->ops) {
    if (op.is_collective && op.collective.kind == CollectiveKind::kAllToAll) {
      EXPECT_EQ(op.stream, kEpStream) << op.name;
    }
  }
  // Backward 0's combine starts with forward 1's attention.
  EXPECT_DOUBLE_EQ(at("B0 L0.moe.combine_a2a.bwd").first, at("F1 L0.attn.norm").first);
  // Forward 1's dispatch follows its permutation and backward 0's combine (one stream); the
  // experts' backward waits only for its combine (and the compute stream).
  const double d_start =
      std::max(at("F1 L0.moe.permute").second, at("B0 L0.moe.combine_a2a.bwd").second);
  EXPECT_DOUBLE_EQ(at("F1 L0.moe.dispatch_a2a").first, d_start);
  EXPECT_DOUBLE_EQ(at("B0 L0.moe.w2.dgrad").first, d_start);
  // delay_wgrad_compute: backward 0's dispatch follows its last input gradient (w1.dgrad) and
  // runs beside the weight gradients; forward 1's experts wait for their dispatch and for the
  // weight gradients on the compute stream.
  EXPECT_DOUBLE_EQ(at("B0 L0.moe.dispatch_a2a.bwd").first,
                   std::max(at("B0 L0.moe.w1.dgrad").second, at("F1 L0.moe.dispatch_a2a").second));
  EXPECT_GE(at("B0 L0.moe.w2.wgrad").first, at("B0 L0.moe.w1.dgrad").second);
  EXPECT_DOUBLE_EQ(at("F1 L0.moe.w1").first,
                   std::max(at("F1 L0.moe.dispatch_a2a").second, at("B0 L0.moe.w1.wgrad").second));
  // The slot worked by hand: the dispatch (a) and the experts' backward (c, input and weight
  // gradients back to back) start together, so the compute stream waits max(0, a - c) before
  // forward 1's experts.
  const double a = at("F1 L0.moe.dispatch_a2a").second - at("F1 L0.moe.dispatch_a2a").first;
  const double c = at("B0 L0.moe.w1.wgrad").second - at("B0 L0.moe.w2.dgrad").first;
  EXPECT_NEAR(at("F1 L0.moe.w1").first - at("B0 L0.moe.w1.wgrad").second, std::max(0.0, a - c),
              1e-12);
  // Forward 1's combine follows its experts and backward 0's dispatch; backward 0's attention
  // (from the permutation's gradient) waits for that dispatch and forward 1's experts.
  EXPECT_DOUBLE_EQ(at("F1 L0.moe.combine_a2a").first,
                   std::max(at("F1 L0.moe.w2").second, at("B0 L0.moe.dispatch_a2a.bwd").second));
  EXPECT_DOUBLE_EQ(at("B0 L0.moe.permute.bwd").first,
                   std::max(at("B0 L0.moe.dispatch_a2a.bwd").second, at("F1 L0.moe.w2").second));
}

// Without the overlap every all-to-all is exposed: the step is faster with it, by at most the
// all-to-all time of the pair (the only place the two micro-batches overlap).
TEST(EpA2aOverlap, SavesAtMostThePairsAllToAllTime) {
  const SimReport with = Simulated(kEp8);
  const SimReport without = Simulated(
      Replace(kEp8, "overlap_moe_expert_parallel_comm: true delay_wgrad_compute: true", ""));
  double a2a = 0;
  for (const Op& op : with.program->ops) {
    if (op.is_collective && op.collective.kind == CollectiveKind::kAllToAll &&
        ((op.phase == Phase::kForward && op.micro_batch == 1) ||
         (op.phase == Phase::kBackward && op.micro_batch == 0))) {
      const auto& tm = with.timing[static_cast<size_t>(op.id)];
      a2a += tm.end_s - tm.start_s;
    }
  }
  EXPECT_GT(a2a, 0);
  EXPECT_LT(with.step_time_s, without.step_time_s);
  EXPECT_GE(with.step_time_s, without.step_time_s - a2a - 1e-12);
  EXPECT_DOUBLE_EQ(with.breakdown.compute_s, without.breakdown.compute_s);
}

// Pipelined, 2 stages x 2 virtual stages, 16 micro-batches, 4 layers, EP 16 across two nodes:
// the same ops and compute; less all-to-all exposed, though a pair sends its forward's
// activations only when both its halves are done, which lengthens the bubble. Here the
// all-to-all over InfiniBand is long enough for the overlap to win.
TEST(EpA2aOverlap, InterleavedPipelineRunsTheSameWork) {
  std::string piped =
      Replace(Replace(kEp8, "num_layers: 1", "num_layers: 4"), "dgx-h100:1", "dgx-h100:4");
  piped = Replace(piped, R"(axes { name: "ep" size: 8)",
                  R"(axes { name: "pp" size: 2 role: PIPELINE } axes { name: "ep" size: 16)");
  piped = Replace(piped, "num_experts: 8", "num_experts: 16");
  piped = Replace(piped, "global_batch_tokens: 65536", "global_batch_tokens: 524288");
  piped = Replace(piped, "recompute: NONE",
                  "recompute: SELECTIVE pipeline_schedule: INTERLEAVED virtual_stages: 2");
  const SimReport with = Simulated(piped);
  const SimReport without = Simulated(
      Replace(piped, "overlap_moe_expert_parallel_comm: true delay_wgrad_compute: true", ""));
  EXPECT_EQ(with.program->ops.size(), without.program->ops.size());
  EXPECT_NEAR(with.breakdown.compute_s, without.breakdown.compute_s, 1e-9);
  EXPECT_LT(with.breakdown.exposed_comm_s, without.breakdown.exposed_comm_s);
  EXPECT_GT(with.breakdown.bubble_s, without.breakdown.bubble_s);
  EXPECT_LT(with.step_time_s, without.step_time_s);
}

TEST(EpA2aOverlap, RefusedWhereMegatronCoreRefusesIt) {
  auto refused = [](const std::string& text, const std::string& want) {
    auto sc = LoadText(text);
    ASSERT_FALSE(sc.ok()) << want;
    EXPECT_NE(sc.status().message().find(want), std::string::npos) << sc.status().message();
  };
  const std::string overlap = "t.textproto:12: training.overlap_moe_expert_parallel_comm ";
  refused(Replace(kEp8, "recompute: NONE", "recompute: FULL"),
          overlap + "overlaps the expert-parallel all-to-alls");
  refused(Replace(kEp8, "recompute: NONE", "recompute: FULL"), "full recomputation");
  refused(Replace(kEp8, "role: EXPERT", "role: DATA"), "no expert parallelism");
  refused(Replace(kEp8, " overlap_moe_expert_parallel_comm: true", ""),
          "t.textproto:12: training.delay_wgrad_compute delays weight gradients");
  refused(Replace(kEp8, "recompute: NONE", "recompute: NONE precision: FP32"), "bf16 or fp16");
  // Pipelined, Megatron-Core runs it only in the interleaved schedule.
  const std::string pp2 =
      Replace(Replace(kEp8, "num_layers: 1", "num_layers: 2"), "dgx-h100:1", "dgx-h100:2");
  const std::string mesh = R"(axes { name: "pp" size: 2 role: PIPELINE } axes { name: "ep")";
  const std::string piped = Replace(pp2, R"(axes { name: "ep")", mesh);
  refused(Replace(piped, "recompute: NONE", "recompute: NONE pipeline_schedule: ONE_F_ONE_B"),
          "interleaved schedule");
  auto ok = LoadText(Replace(piped, "recompute: NONE",
                             "recompute: NONE pipeline_schedule: INTERLEAVED virtual_stages: 1"));
  EXPECT_TRUE(ok.ok()) << ok.status().message();
}

constexpr char kMegatron[] = R"(name: "m"
model {
  num_layers: 4 d_model: 256 num_heads: 8 d_ff: 1024 vocab_size: 1024 seq_len: 128
  ffn_kind: SWIGLU
  moe { num_experts: 8 top_k: 2 capacity_factor: 2 placement: EVERY_K placement_k: 1 }
}
cluster { topology: "dgx-h100:2" }
sharding { megatron { tensor: 2 expert: 8 expert_tensor: 1 distributed_optimizer: true } }
training {
  global_batch_tokens: 16384 micro_batch_size: 2
  overlap_moe_expert_parallel_comm: true delay_wgrad_compute: true
}
)";

TEST(EpA2aOverlap, MegatronArgumentsGoOutAndComeBack) {
  auto sc = LoadScenarioFromText(kMegatron, "m.textproto", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  auto args = MegatronArgs(*sc);
  ASSERT_TRUE(args.ok()) << args.status().message();
  const std::string line = JoinShellArgs(*args) + " ";
  EXPECT_NE(line.find(" --overlap-moe-expert-parallel-comm "), std::string::npos) << line;
  EXPECT_NE(line.find(" --delay-wgrad-compute "), std::string::npos) << line;
  auto back = ParseMegatronArgs(line);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->ignored.empty());
  // Read back onto the scenario with both switches off, they come back on.
  std::vector<std::string> o = {"training.overlap_moe_expert_parallel_comm=false",
                                "training.delay_wgrad_compute=false"};
  o.insert(o.end(), back->overrides.begin(), back->overrides.end());
  auto again = LoadScenarioFromText(kMegatron, "m.textproto", o);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_TRUE(again->training.overlap_moe_expert_parallel_comm);
  EXPECT_TRUE(again->training.delay_wgrad_compute);
  // Arguments without the flags switch them off.
  std::string plain = line;
  for (const std::string flag : {"--overlap-moe-expert-parallel-comm ", "--delay-wgrad-compute "}) {
    plain.erase(plain.find(flag), flag.size());
  }
  auto off = ParseMegatronArgs(plain);
  ASSERT_TRUE(off.ok()) << off.status().message();
  auto cleared = LoadScenarioFromText(kMegatron, "m.textproto", off->overrides);
  ASSERT_TRUE(cleared.ok()) << cleared.status().message();
  EXPECT_FALSE(cleared->training.overlap_moe_expert_parallel_comm);
  EXPECT_FALSE(cleared->training.delay_wgrad_compute);
}

// Hardware.comm_sm_fraction on hand-made programs: 1 TFLOP/s, no overhead, a compute op of
// F FLOPs takes F / 1e12 s alone; collectives take bytes / 1e9 s.
HardwareProfile Tflop(double fraction) {
  HardwareProfile hw;
  hw.peak_flops_per_s = 1e12;
  hw.hbm_bytes_per_s = 1e12;
  hw.matmul_efficiency = 1;
  hw.memory_efficiency = 1;
  hw.op_overhead_s = 0;
  hw.comm_sm_fraction = fraction;
  return hw;
}

double Timer(const CollectiveWork& w, int32_t) { return w.bytes / 1e9; }

// A collective of `comm_s` on the comm stream and a compute op of `compute_s` alone, both from
// time 0, then a compute op of 1 s after both.
OpGraph Beside(double comm_s, double compute_s) {
  OpGraph g;
  Op x;
  x.id = 0;
  x.name = "x";
  x.stream = kCommStream;
  x.is_collective = true;
  x.collective.kind = CollectiveKind::kAllToAll;
  x.collective.bytes = comm_s * 1e9;
  g.ops.push_back(x);
  Op c;
  c.id = 1;
  c.name = "c";
  c.compute.flops = compute_s * 1e12;
  g.ops.push_back(c);
  Op after = c;
  after.id = 2;
  after.name = "after";
  after.compute.flops = 1e12;
  after.deps = {0, 1};
  g.ops.push_back(after);
  return g;
}

TEST(CommSmFraction, SlowsTheComputeItOverlapsByHand) {
  // Zero: nothing changes (10 s of compute beside 4 s of all-to-all, then 1 s).
  auto r = SimulateSchedule(Beside(4, 10), Tflop(0), Timer);
  EXPECT_DOUBLE_EQ(r.timing[1].end_s, 10);
  EXPECT_DOUBLE_EQ(r.step_time_s, 11);
  // Half the SMs: the first 4 s do 2 s of the work, the other 8 s run alone: 12 s.
  r = SimulateSchedule(Beside(4, 10), Tflop(0.5), Timer);
  EXPECT_NEAR(r.timing[1].end_s, 12, 1e-9);
  EXPECT_NEAR(r.step_time_s, 13, 1e-9);  // the op after it runs alone
  // A collective longer than the compute: all of it at half rate, 20 s; the op after the
  // 100 s collective runs alone.
  r = SimulateSchedule(Beside(100, 10), Tflop(0.5), Timer);
  EXPECT_NEAR(r.timing[1].end_s, 20, 1e-9);
  EXPECT_NEAR(r.step_time_s, 101, 1e-9);
  // DeepEP's 24 of 132 SMs: 10 s beside a longer all-to-all take 10 / (1 - 24/132) = 12.22 s.
  r = SimulateSchedule(Beside(100, 10), Tflop(24.0 / 132), Timer);
  EXPECT_NEAR(r.timing[1].end_s, 10 / (1 - 24.0 / 132), 1e-9);
}

TEST(CommSmFraction, RefusedOutsideZeroToOne) {
  auto sc = LoadText(Replace(kEp8, "cluster {", "hardware { comm_sm_fraction: 1 }\ncluster {"));
  ASSERT_FALSE(sc.ok());
  EXPECT_NE(sc.status().message().find("hardware.comm_sm_fraction=1 must be in [0, 1)"),
            std::string::npos)
      << sc.status().message();
}

}  // namespace
}  // namespace moesim
