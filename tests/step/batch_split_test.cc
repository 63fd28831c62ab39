// training.batch_split_factor (MaxText's batch-split schedule, costmodel/batch_split.h): the
// order of the sub-batches' parts written by hand; the simulated timeline of a one-layer MoE
// model with F = 2 against the two-stream schedule worked by hand from its own op durations; the
// same FLOPs as F = 1; the refusals with file:line; the --maxtext keys both ways.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <vector>

#include "costmodel/batch_split.h"
#include "costmodel/opgraph.h"
#include "proto/maxtext_preset.h"
#include "proto/megatron_args.h"
#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"
#include "tests/scenario_text.h"

namespace moesim {
namespace {

using namespace moesim::scenario_text;  // NOLINT

// One DGX H100 node, EP 8: one MoE layer (8 experts, top-2, permutation dispatch), one
// micro-batch of two sequences per device; F = 2 splits it into two sub-batches of one sequence.
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
  global_batch_tokens: 65536 micro_batch_size: 2 recompute: NONE
  batch_split_factor: 2
}
# Pinned: compute parts short enough that some all-to-alls outlast the part beside them.
hardware { matmul_efficiency: 0.661 elementwise_efficiency: 1 }
)";

SimReport Simulated(const std::string& text) {
  auto sc = LoadText(text);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  SimulateOptions opt;
  opt.keep_program = true;
  auto r = SimulateScenario(*sc, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(*r);
}

TEST(BatchSplit, OrderInterleavesTheSubBatchesPhaseByPhase) {
  const std::array<int32_t, 2> layers = {3, 4};
  std::vector<std::array<int32_t, 3>> got;  // (layer, sub, part)
  for (const SplitStep& s : BatchSplitOrder(layers, 2, false, false)) {
    got.push_back({s.layer, s.sub, s.part});
  }
  // Forward: [0,1] of both sub-batches, [2,3] of both, then layer 3's [4] joined with layer 4's
  // [0,1] sub-batch by sub-batch, layer 4's [2,3], its [4].
  const std::vector<std::array<int32_t, 3>> want = {
      {3, 0, 0}, {3, 0, 1}, {3, 1, 0}, {3, 1, 1}, {3, 0, 2}, {3, 0, 3}, {3, 1, 2},
      {3, 1, 3}, {3, 0, 4}, {4, 0, 0}, {4, 0, 1}, {3, 1, 4}, {4, 1, 0}, {4, 1, 1},
      {4, 0, 2}, {4, 0, 3}, {4, 1, 2}, {4, 1, 3}, {4, 0, 4}, {4, 1, 4}};
  EXPECT_EQ(got, want);
  // Backward of one layer, F = 3: [4,3], [2,1], [0], each for sub-batches 0, 1, 2.
  const std::array<int32_t, 1> one = {7};
  const auto b = BatchSplitOrder(one, 3, true, false);
  ASSERT_EQ(b.size(), 15u);
  const std::array<int32_t, 15> parts = {4, 3, 4, 3, 4, 3, 2, 1, 2, 1, 2, 1, 0, 0, 0};
  const std::array<int32_t, 15> subs = {0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 0, 1, 2};
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(b[i].part, parts[i]) << i;
    EXPECT_EQ(b[i].sub, subs[i]) << i;
    EXPECT_EQ(b[i].opens, i == 0) << i;
    EXPECT_EQ(b[i].closes, i == 14) << i;
  }
  // Full recomputation: each layer's forward (marked recompute), then its backward; no merging.
  const std::array<int32_t, 2> down = {4, 3};
  const auto f = BatchSplitOrder(down, 2, true, true);
  ASSERT_EQ(f.size(), 40u);
  EXPECT_TRUE(f[0].recompute && f[0].layer == 4 && f[0].part == 0 && f[0].opens);
  EXPECT_TRUE(!f[10].recompute && f[10].layer == 4 && f[10].part == 4);
  EXPECT_TRUE(f[19].layer == 4 && f[19].part == 0 && f[19].sub == 1 && f[19].closes);
  EXPECT_TRUE(f[20].recompute && f[20].layer == 3 && f[20].opens);
}

// The ops of layer 0 in one pass, by sub-batch (the k-th op of a name is sub-batch k's) and part
// (0 before the dispatch, 2 between dispatch and combine, 4 after the combine; 1 and 3 the
// all-to-alls themselves).
struct PartSpan {
  double start = 1e300, end = 0, busy = 0;  // busy: the sum of its ops' durations
};
std::map<std::pair<int, int>, PartSpan> Parts(const SimReport& r, Phase phase) {
  const bool forward = phase == Phase::kForward;
  std::map<std::pair<int, int>, PartSpan> parts;
  std::map<std::string, int> seen, part_of;
  int part = forward ? 0 : 4;  // the compute part sub-batch 0 is in
  for (const Op& op : r.program->ops) {
    if (op.layer != 0 || op.phase != phase) continue;
    if (op.stream == kGradStream || op.stream == kPrefetchStream) continue;  // once per layer
    const int sub = seen[op.name]++;
    if (sub == 0) {
      // Names first appear in sub-batch 0's order: an all-to-all closes a compute part.
      const bool dispatch = op.name.find("dispatch_a2a") != std::string::npos;
      const bool combine = op.name.find("combine_a2a") != std::string::npos;
      if (dispatch || combine) {
        part_of[op.name] = dispatch ? 1 : 3;
        part = forward ? (dispatch ? 2 : 4) : (dispatch ? 0 : 2);
      } else {
        part_of[op.name] = part;
      }
    }
    const auto& tm = r.timing[static_cast<size_t>(op.id)];
    PartSpan& s = parts[{sub, part_of[op.name]}];
    s.start = std::min(s.start, tm.start_s);
    s.end = std::max(s.end, tm.end_s);
    s.busy += tm.end_s - tm.start_s;
  }
  return parts;
}

// Two streams, worked by hand: compute A0 A1 E0 E1 R0 R1 (A attention to permutation, E the
// experts, R the rest), ep D0 D1 C0 C1 (dispatch, combine), each op after its own sub-batch's
// previous op and the op before it on its stream. Checked on one node (NVLink all-to-alls, shorter
// than the compute beside them) and on EP 16 over two nodes (InfiniBand, longer).
TEST(BatchSplit, ForwardAllToAllsRunBesideTheOtherSubBatchAsWorkedByHand) {
  std::string ib = Replace(kEp8, "dgx-h100:1", "dgx-h100:2");
  ib = Replace(Replace(ib, "size: 8 role", "size: 16 role"), "num_experts: 8", "num_experts: 16");
  ib = Replace(ib, "global_batch_tokens: 65536", "global_batch_tokens: 131072");
  for (const std::string& text : {std::string(kEp8), ib}) {
    const SimReport r = Simulated(text);
    for (const Op& op : r.program->ops) {
      if (op.is_collective && op.collective.kind == CollectiveKind::kAllToAll) {
        EXPECT_EQ(op.stream, kEpStream) << op.name;
      }
    }
    auto p = Parts(r, Phase::kForward);
    ASSERT_EQ(p.size(), 10u);
    // Each compute part runs without a gap, and both sub-batches' parts take the same time.
    for (const auto& [k, s] : p) {
      if (k.second % 2 == 0) {
        EXPECT_NEAR(s.end - s.start, s.busy, 1e-12) << k.second;
      }
      EXPECT_NEAR(s.busy, p.at({0, k.second}).busy, 1e-12) << k.second;
    }
    const double a = p.at({0, 0}).busy, d = p.at({0, 1}).busy, e = p.at({0, 2}).busy;
    const double c = p.at({0, 3}).busy, x = p.at({0, 4}).busy;
    const double t0 = p.at({0, 0}).start;
    const double a0 = t0 + a, a1 = a0 + a;
    const double d0 = a0 + d, d1 = std::max(a1, d0) + d;
    const double e0 = std::max(a1, d0) + e, e1 = std::max(e0, d1) + e;
    const double c0 = std::max(e0, d1) + c, c1 = std::max(e1, c0) + c;
    const double r0 = std::max(e1, c0) + x, r1 = std::max(r0, c1) + x;
    EXPECT_NEAR(p.at({1, 1}).end, d1, 1e-12);
    EXPECT_NEAR(p.at({0, 3}).end, c0, 1e-12);
    EXPECT_NEAR(p.at({1, 4}).end, r1, 1e-12);
    // The all-to-all time the interleaving leaves exposed: the layer's span less its compute;
    // while each all-to-all is shorter than the compute part after the one beside it (D0 beside
    // A1, D1 beside E0, C0 beside E1, C1 beside R0), each exposes only what outlasts its part.
    const double exposed = (r1 - t0) - 2 * (a + e + x);
    if (d <= e && c <= e) {
      const double hand =
          std::max(0.0, d - a) + std::max(0.0, d - e) + std::max(0.0, c - e) + std::max(0.0, c - x);
      EXPECT_NEAR(exposed, hand, 1e-12)
          << "a=" << a << " d=" << d << " e=" << e << " c=" << c << " x=" << x;
    }
    EXPECT_GT(exposed, 0);
    EXPECT_LT(exposed, 2 * (d + c));  // the whole micro-batch would leave all four exposed
  }
}

// Backward mirrors it: compute R'0 R'1 E'0 E'1 A'0 A'1 (the parts' gradients, last part first),
// ep C'0 C'1 D'0 D'1 (the combine's gradient after R', the dispatch's after E').
TEST(BatchSplit, BackwardAllToAllsRunBesideTheOtherSubBatchAsWorkedByHand) {
  const SimReport r = Simulated(kEp8);
  auto p = Parts(r, Phase::kBackward);
  ASSERT_EQ(p.size(), 10u);
  const double x = p.at({0, 4}).busy, c = p.at({0, 3}).busy, e = p.at({0, 2}).busy;
  const double d = p.at({0, 1}).busy, a = p.at({0, 0}).busy;
  const double t0 = p.at({0, 4}).start;
  const double r0 = t0 + x, r1 = r0 + x;
  const double c0 = r0 + c, c1 = std::max(r1, c0) + c;
  const double e0 = std::max(r1, c0) + e, e1 = std::max(e0, c1) + e;
  const double d0 = std::max(e0, c1) + d, d1 = std::max(e1, d0) + d;
  const double a0 = std::max(e1, d0) + a, a1 = std::max(a0, d1) + a;
  EXPECT_NEAR(p.at({1, 3}).end, c1, 1e-12);
  EXPECT_NEAR(p.at({1, 2}).end, e1, 1e-12);
  EXPECT_NEAR(p.at({1, 1}).end, d1, 1e-12);
  EXPECT_NEAR(p.at({0, 0}).end, a0, 1e-12);
  EXPECT_NEAR(p.at({1, 0}).end, a1, 1e-12);
  const double exposed = (a1 - t0) - 2 * (x + e + a);
  EXPECT_LT(exposed, 2 * (d + c));
}

TEST(BatchSplit, SameFlopsAndLessExposedAllToAllThanOneBatch) {
  const SimReport two = Simulated(kEp8);
  const SimReport one = Simulated(Replace(kEp8, "batch_split_factor: 2", ""));
  EXPECT_NEAR(two.hardware_flops_per_step, one.hardware_flops_per_step,
              1e-12 * one.hardware_flops_per_step);
  EXPECT_DOUBLE_EQ(two.model_flops_per_step, one.model_flops_per_step);
  EXPECT_LT(two.breakdown.exposed_comm_s, one.breakdown.exposed_comm_s);
  // An explicit factor of 1 is the schedule off: the same program, to the byte.
  const SimReport unit = Simulated(Replace(kEp8, "batch_split_factor: 2", "batch_split_factor: 1"));
  EXPECT_EQ(unit.num_ops, one.num_ops);
  EXPECT_EQ(unit.step_time_s, one.step_time_s);
  // Every sub-batch op is one of the op bound's.
  auto sc = LoadText(kEp8);
  ASSERT_TRUE(sc.ok());
  EXPECT_LE(static_cast<double>(two.num_ops), StepGraphOpBound(*sc));
}

// Two MoE layers: the last sub-batch's combine of layer 0 runs beside layer 1's attention of
// sub-batch 0; FSDP gathers (none here) and gradient reductions once per layer.
TEST(BatchSplit, LastCombineOfALayerOverlapsTheNextLayer) {
  const SimReport r = Simulated(Replace(kEp8, "num_layers: 1", "num_layers: 2"));
  std::map<std::string, std::vector<std::pair<double, double>>> seen;
  for (const Op& op : r.program->ops) {
    const auto& tm = r.timing[static_cast<size_t>(op.id)];
    if (op.phase == Phase::kForward) seen[op.name].push_back({tm.start_s, tm.end_s});
  }
  ASSERT_EQ(seen["L0.moe.combine_a2a"].size(), 2u);
  ASSERT_EQ(seen["L1.attn.norm"].size(), 2u);
  const auto combine1 = seen["L0.moe.combine_a2a"][1];
  const auto attn0 = seen["L1.attn.norm"][0];
  EXPECT_LT(attn0.first, combine1.second);  // layer 1's sub-batch 0 starts before it ends
  auto sc = LoadText(Replace(kEp8, "num_layers: 1", "num_layers: 2"));
  ASSERT_TRUE(sc.ok());
  const OpGraph g = BuildStepGraph(*sc);
  int syncs = 0;
  for (const Op& op : g.ops) syncs += op.layer == 0 && op.stream == kGradStream ? 1 : 0;
  EXPECT_GT(syncs, 0);
  auto one = *sc;
  one.training.batch_split_factor = 1;
  int syncs_one = 0;
  for (const Op& op : BuildStepGraph(one).ops) {
    syncs_one += op.layer == 0 && op.stream == kGradStream ? 1 : 0;
  }
  EXPECT_EQ(syncs, syncs_one);  // once per layer, not per sub-batch
}

TEST(BatchSplit, PipelinedAndRecomputedRunTheSameWork) {
  std::string piped =
      Replace(Replace(kEp8, "num_layers: 1", "num_layers: 4"), "dgx-h100:1", "dgx-h100:2");
  piped = Replace(piped, R"(axes { name: "ep" size: 8)",
                  R"(axes { name: "pp" size: 2 role: PIPELINE } axes { name: "ep" size: 8)");
  piped = Replace(piped, "global_batch_tokens: 65536", "global_batch_tokens: 262144");
  for (const char* rc : {"NONE", "SELECTIVE", "FULL"}) {
    const std::string text = Replace(piped, "recompute: NONE", std::string("recompute: ") + rc);
    const SimReport two = Simulated(text);
    const SimReport one = Simulated(Replace(text, "batch_split_factor: 2", ""));
    EXPECT_NEAR(two.hardware_flops_per_step, one.hardware_flops_per_step,
                1e-12 * one.hardware_flops_per_step)
        << rc;
    EXPECT_LT(two.breakdown.exposed_comm_s, one.breakdown.exposed_comm_s) << rc;
  }
}

TEST(BatchSplit, RefusedWithFileAndLine) {
  auto refused = [](const std::string& text, const std::string& want) {
    auto sc = LoadText(text);
    ASSERT_FALSE(sc.ok()) << want;
    EXPECT_NE(sc.status().message().find(want), std::string::npos) << sc.status().message();
  };
  const std::string at = "t.textproto:12: training.batch_split_factor=";
  refused(Replace(kEp8, "batch_split_factor: 2", "batch_split_factor: 17"),
          at + "17 must be 0 or 1 (off) or 2..16");
  refused(Replace(kEp8, "batch_split_factor: 2", "batch_split_factor: -2"), at + "-2 must be");
  refused(Replace(kEp8, "batch_split_factor: 2", "batch_split_factor: 4"),
          at + "4 does not divide the 2 sequences of one micro-batch on one device");
  refused(Replace(kEp8,
                  "  moe { num_experts: 8 top_k: 2 capacity_factor: 2 expert_d_ff: 14336 "
                  "dispatch: PERMUTE }\n",
                  ""),
          "training.batch_split_factor=2 splits the tokens of MoE layers, and the model has none");
  refused(Replace(kEp8, "batch_split_factor: 2",
                  "batch_split_factor: 2 overlap_moe_expert_parallel_comm: true"),
          at + "2 and training.overlap_moe_expert_parallel_comm are two schedules");
  // Groups given by count: 8 groups of 8,192 tokens over 8 shards leave a sub-batch 4 groups.
  refused(Replace(kEp8, "dispatch: PERMUTE", "dispatch: PERMUTE num_groups: 8"),
          at + "2 splits the 8 MoE token groups of a micro-batch (model.moe.group_size_tokens="
               "8192) into sub-batches whose groups do not divide over their 8 shards");
  EXPECT_TRUE(
      LoadText(Replace(kEp8, "dispatch: PERMUTE", "dispatch: PERMUTE num_groups: 16")).ok());
  std::string dual =
      Replace(Replace(kEp8, "num_layers: 1", "num_layers: 4"), "dgx-h100:1", "dgx-h100:2");
  dual = Replace(dual, R"(axes { name: "ep" size: 8)",
                 R"(axes { name: "pp" size: 2 role: PIPELINE } axes { name: "ep" size: 8)");
  dual = Replace(dual, "global_batch_tokens: 65536 micro_batch_size: 2",
                 "global_batch_tokens: 262144 micro_batch_size: 2 pipeline_schedule: DUALPIPE");
  refused(dual,
          "training.batch_split_factor=2 is not modelled with "
          "training.pipeline_schedule=DUALPIPE");
}

// A MaxText-form scenario (sharding.maxtext): the keys come back out of MaxTextOverrides and are
// read by ParseMaxTextOverrides; batch_split_factor alone is ignored, as MaxText ignores it.
TEST(BatchSplit, MaxTextKeysBothWays) {
  auto on = ParseMaxTextOverrides("use_batch_split_schedule=true batch_split_factor=2");
  ASSERT_TRUE(on.ok()) << on.status().message();
  EXPECT_EQ(on->sets, std::vector<std::string>{"training.batch_split_factor=2"});
  auto alone = ParseMaxTextOverrides("batch_split_factor=4");
  ASSERT_TRUE(alone.ok()) << alone.status().message();
  EXPECT_TRUE(alone->sets.empty());
  auto off = ParseMaxTextOverrides("use_batch_split_schedule=false batch_split_factor=4");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->sets, std::vector<std::string>{"training.batch_split_factor=0"});
  auto unit = ParseMaxTextOverrides("use_batch_split_schedule=true");
  ASSERT_TRUE(unit.ok());
  EXPECT_EQ(unit->sets, std::vector<std::string>{"training.batch_split_factor=0"});
  EXPECT_FALSE(ParseMaxTextOverrides("batch_split_factor=0").ok());
  EXPECT_FALSE(ParseMaxTextOverrides("use_batch_split_schedule=yes").ok());

  const std::string maxtext = Replace(kEp8, R"(mesh { axes { name: "ep" size: 8 role: EXPERT } })",
                                      "maxtext { ici_expert_parallelism: 8 }");
  auto sc = LoadText(maxtext);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  auto keys = MaxTextOverrides(*sc);
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  EXPECT_NE((" " + *keys + " ").find(" use_batch_split_schedule=true batch_split_factor=2 "),
            std::string::npos)
      << *keys;
  auto plain = LoadText(Replace(maxtext, "batch_split_factor: 2", ""));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(MaxTextOverrides(*plain)->find("batch_split"), std::string::npos);
  // Read back onto the scenario without the field, the factor comes back.
  auto parsed = ParseMaxTextOverrides(*keys);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  auto again = LoadScenarioFromText(Replace(maxtext, "batch_split_factor: 2", ""), "t.textproto",
                                    parsed->sets, MOESIM_SOURCE_DIR);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->training.batch_split_factor, 2);
}

// Megatron-LM has no batch-split schedule: its arguments are refused rather than written without
// the factor (which would describe another run).
TEST(BatchSplit, NoMegatronArguments) {
  const std::string megatron = Replace(kEp8, R"(mesh { axes { name: "ep" size: 8 role: EXPERT } })",
                                       "megatron { expert: 8 }");
  auto sc = LoadText(megatron);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  auto args = MegatronArgs(*sc);
  ASSERT_FALSE(args.ok());
  EXPECT_NE(args.status().message().find("training.batch_split_factor=2 is MaxText's"),
            std::string::npos)
      << args.status().message();
  auto plain = LoadText(Replace(megatron, "batch_split_factor: 2", ""));
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(MegatronArgs(*plain).ok());
}

}  // namespace
}  // namespace moesim
