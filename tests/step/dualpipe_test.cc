// training.pipeline_schedule=DUALPIPE (DeepSeek-V3, arXiv 2412.19437 sec 3.2.1;
// github.com/deepseek-ai/DualPipe): the bubble the simulated step leaves on a toy pipeline against
// the DualPipe README's (PP/2-1)(F&B+B-3W) worked by hand, 1F1B's (PP-1)(F+B) on the same toy,
// the order of DualPipe.step's tasks, the doubled parameter memory by hand, and the refusals.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "costmodel/memory.h"
#include "costmodel/opgraph.h"
#include "costmodel/pipeline_schedule.h"
#include "proto/megatron_args.h"
#include "sim/step/simulate.h"
#include "sim/step/step_sim.h"
#include "tests/scenario_text.h"

namespace moesim {
namespace {

using namespace moesim::scenario_text;  // NOLINT

// PP 4, 8 micro-batches of one 16-token sequence, 8 identical dense layers (2 per model stage).
// Collectives take no time and compute ops have no overhead, so each op takes its FLOPs over the
// peak: the layers' weight GEMMs (d_model 1024, d_ff 8192) dominate, and a GEMM's backward is
// its input gradient plus its weight gradient, each the forward's FLOPs: B = 2F and W = F, the
// units of the README's figure, to within the attention einsums, norms and activations
// (< 0.5% of a layer), and the embedding and the 128-wide head add < 0.3% to their stages.
constexpr char kToy[] = R"(name: "t/dualpipe"
model { num_layers: 8 d_model: 1024 num_heads: 8 d_ff: 8192 vocab_size: 128 seq_len: 16
        ffn_kind: SWIGLU }
cluster { topology: "tpu-v5e:2x2" }
hardware { peak_flops_per_s: 1e12 hbm_bytes_per_s: 1e15 op_overhead_s: 0 }
sharding { strategy: DATA_PARALLEL mesh { pipeline: 4 } }
training { global_batch_tokens: 128 micro_batch_size: 1 recompute: NONE
           pipeline_schedule: DUALPIPE }
)";

std::string With(const std::string& schedule) {
  return Replace(kToy, "pipeline_schedule: DUALPIPE", "pipeline_schedule: " + schedule);
}

bool IsWgrad(const std::string& n) {
  return n.size() > 6 && n.compare(n.size() - 6, 6, ".wgrad") == 0;
}

// One model stage (layers 0 and 1), one micro-batch: forward F, full backward B, and the weight
// gradients W within B.
struct Units {
  double f = 0, b = 0, w = 0;
};

struct Simulated {
  ScheduleResult result;
  Units u;
  OpGraph graph;
};

Simulated Simulate(const std::string& text) {
  Simulated r;
  auto sc = LoadText(text);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  if (!sc.ok()) return r;
  r.graph = BuildStepGraph(*sc);
  for (const Op& op : r.graph.ops) {
    if (op.is_collective || op.micro_batch != 0 || (op.layer != 0 && op.layer != 1)) continue;
    const double t = ComputeTimeS(op.compute, sc->hardware);
    (op.phase == Phase::kForward ? r.u.f : r.u.b) += t;
    if (IsWgrad(op.name)) r.u.w += t;
  }
  r.result =
      SimulateSchedule(r.graph, sc->hardware, [](const CollectiveWork&, int32_t) { return 0.0; });
  return r;
}

TEST(DualPipe, TasksFollowDualPipeStep) {
  // DualPipe.step's eight steps for PP 4, 8 micro-batches (pipeline_schedule.h), by hand. Rank 0
  // (h = 0; phase 0 = chunk 0, micro-batches 0-3; phase 1 = chunk 1, 4-7):
  //   1 F0 F1   2 F2 F4   3 B4zb W F5   4 F3&B5 F6&B0   5 B6 F7&B1   6 B7 B2zb   7 W B3zb   8 W
  // Rank 1 (h = 1, a middle rank: step 4's first pair is not paired):
  //   2 F0 F4 F1 F5   4 F2 B4 F6&B0 | F3&B5 F7&B1   6 B6 B2 B7zb B3zb   8 W W
  auto text = [](const std::vector<PipelineTask>& ts) {
    std::string s;
    for (const PipelineTask& t : ts) {
      s += t.weight ? "W" : (t.forward ? "F" : "B") + std::to_string(t.mb);
      if (t.defer_wgrad) s += "zb";
      s += t.paired ? "&" : " ";
    }
    return s;
  };
  const PipelineShape shape{4, 1, 8, PipelineSchedule::kDualPipe, false};
  EXPECT_EQ(text(PipelineTasks(shape, 0)),
            "F0 F1 F2 F4 B4zb W F5 F3&B5 F6&B0 B6 F7&B1 B7 B2zb W B3zb W ");
  EXPECT_EQ(text(PipelineTasks(shape, 1)),
            "F0 F4 F1 F5 F2 B4 F6&B0 F3&B5 F7&B1 B6 B2 B7zb B3zb W W ");
  // Ranks 3 and 2 mirror ranks 0 and 1 with the directions swapped.
  EXPECT_EQ(text(PipelineTasks(shape, 3)),
            "F4 F5 F6 F0 B0zb W F1 F7&B1 F2&B4 B2 F3&B5 B3 B6zb W B7zb W ");
  // Every micro-batch runs forward and backward once on every rank, in its own chunk.
  for (int32_t rank = 0; rank < 4; ++rank) {
    int forwards = 0, backwards = 0, weights = 0, queued = 0;
    for (const PipelineTask& t : PipelineTasks(shape, rank)) {
      if (t.weight) {
        ++weights;
        continue;
      }
      EXPECT_EQ(t.chunk, DualPipeChunk(t.mb, 8));
      (t.forward ? forwards : backwards)++;
      queued += t.defer_wgrad ? 1 : 0;
    }
    EXPECT_EQ(forwards, 8);
    EXPECT_EQ(backwards, 8);
    EXPECT_EQ(weights, queued);
  }
}

TEST(DualPipe, SimulatedBubbleIsTheReadmeFormula) {
  const Simulated dp = Simulate(kToy);
  const Units& u = dp.u;
  ASSERT_GT(u.f, 0);
  // The toy is in the README's units: B = 2F, W = F (to 0.5%).
  EXPECT_NEAR(u.b / u.f, 2, 0.01);
  EXPECT_NEAR(u.w / u.f, 1, 0.01);
  // README: DualPipe's bubble (PP/2-1)(F&B+B-3W); with one compute stream and no communication
  // to hide, a pair F&B takes F + B. PP 4: F + 2B - 3W = 2F. By hand on rank 0's tasks above
  // (F = 1, B = 2, W = 1; a zero-bubble backward B - W = 1): rank 0 runs F0-F4 to 4, B4zb W F5
  // to 7, F3&B5 to 10, then waits 1 for B0 from rank 1 (which ends F6&B0 at 11), F6&B0 to 14,
  // B6 to 16, waits 1 for B1 (rank 1's F7&B1 ends at 17), F7&B1 to 20, B7 B2zb W B3zb W to 26:
  // 24 of work, 2 waiting, the README's 2F. To within 2%: the embedding and head ops of ranks 0
  // and 3 (0.03 F a rank in all) fill part of the waits, and B and W are 2F and F to 0.2%.
  const double readme = (4.0 / 2 - 1) * ((u.f + u.b) + u.b - 3 * u.w);
  const ScheduleResult& r = dp.result;
  EXPECT_NEAR(r.breakdown.bubble_s, readme, 0.02 * readme);
  EXPECT_NEAR(r.breakdown.bubble_s, 2 * u.f, 0.02 * 2 * u.f);
  EXPECT_NEAR(r.step_time_s, 26 * u.f, 0.01 * u.f * 26);
  EXPECT_NEAR(r.breakdown.exposed_comm_s, 0, 1e-12);
  EXPECT_NEAR(r.breakdown.compute_s + r.breakdown.bubble_s + r.breakdown.idle_s, r.step_time_s,
              1e-9);

  // 1F1B on the same toy: (PP-1)(F+B) = 9F, against DualPipe's 2F.
  const Simulated one = Simulate(With("ONE_F_ONE_B"));
  const double one_f_one_b = (4 - 1) * (one.u.f + one.u.b);
  EXPECT_NEAR(one.result.breakdown.bubble_s, one_f_one_b, 0.01 * one_f_one_b);
  EXPECT_LT(r.step_time_s, one.result.step_time_s);

  // The two directions: micro-batches 0-3 enter at rank 0 (its embedding op), 4-7 at rank 3,
  // and each rank's ops of layer l run there for the micro-batches of one direction only.
  for (const Op& op : dp.graph.ops) {
    if (op.phase != Phase::kForward || op.is_collective || op.micro_batch < 0) continue;
    if (op.name.rfind("embed.", 0) == 0) {
      EXPECT_EQ(op.program, op.micro_batch < 4 ? 0 : 3) << op.name << " " << op.micro_batch;
    }
    if (op.layer >= 0) {
      const int32_t stage = op.layer / 2;
      EXPECT_EQ(op.program, DualPipeRank(stage, DualPipeChunk(op.micro_batch, 8), 4)) << op.name;
    }
  }
}

TEST(DualPipe, BubbleAcrossPipelineSizes) {
  // The same toy at PP 2, 6 and 8 (2 layers a stage), against (PP/2-1)(F&B+B-3W): 0, 2 (F + 2B -
  // 3W) and 3 (F + 2B - 3W), i.e. 0, 4F and 6F in the toy's units; the micro-batches do not
  // change it (PP 8 with 16 and 20).
  struct Case {
    int pp, n;
    const char* topology;
  };
  for (const Case& c : {Case{2, 4, "tpu-v5e:1x2"}, Case{6, 12, "tpu-v5e:2x3"},
                        Case{8, 16, "tpu-v5e:2x4"}, Case{8, 20, "tpu-v5e:2x4"}}) {
    std::string text = Replace(kToy, "pipeline: 4", "pipeline: " + std::to_string(c.pp));
    text = Replace(text, "num_layers: 8", "num_layers: " + std::to_string(2 * c.pp));
    text = Replace(text, "tpu-v5e:2x2", c.topology);
    text = Replace(text, "global_batch_tokens: 128",
                   "global_batch_tokens: " + std::to_string(16 * c.n));
    const Simulated r = Simulate(text);
    const Units& u = r.u;
    const double readme = (c.pp / 2.0 - 1) * ((u.f + u.b) + u.b - 3 * u.w);
    EXPECT_NEAR(r.result.breakdown.bubble_s, readme, 0.02 * u.f * c.pp) << c.pp << " " << c.n;
  }
}

TEST(DualPipe, ParametersTwiceActivationsPpPlusOne) {
  auto sc = LoadText(kToy);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const MemoryReport m = ComputeMemory(*sc);
  // By hand (bf16 weights and gradients, AdamW 12 bytes; RMSNorm, RoPE, no biases, untied): a
  // layer 4 d^2 + 3 d d_ff + 2 d; the embedding V d, the final norm d, the head d V. Rank 0 holds
  // model stages 0 and 3: 4 layers, the embedding, the final norm and the head; 1F1B's rank 0
  // holds 2 layers and the embedding.
  const double d = 1024, ff = 8192, v = 128;
  const double layer = 4 * d * d + 3 * d * ff + 2 * d;
  const double rank0 = 4 * layer + v * d + d + d * v;
  EXPECT_EQ(m.stage, 0);
  EXPECT_DOUBLE_EQ(m.weights_bytes, 2 * rank0);
  EXPECT_DOUBLE_EQ(m.grads_bytes, 2 * rank0);
  EXPECT_DOUBLE_EQ(m.optimizer_bytes, 12 * rank0);
  auto one = LoadText(With("ONE_F_ONE_B"));
  ASSERT_TRUE(one.ok());
  const MemoryReport o = ComputeMemory(*one);
  EXPECT_EQ(o.stage, 0);
  EXPECT_DOUBLE_EQ(o.weights_bytes, 2 * (2 * layer + v * d));
  // Activations: the README's PP + 1 = 5 micro-batches of one model stage (2 layers) per
  // device, i.e. (PP + 1) / 2 = 2.5 of the rank's 4 layers, against 1F1B's rank 0 holding PP = 4
  // micro-batches of its 2 layers: (PP + 1) / PP times as much (neither holds the logits on
  // rank 0 under 1F1B; DualPipe's rank 0 keeps them apart in logits_bytes).
  EXPECT_DOUBLE_EQ(m.micro_batches_in_flight, 2.5);
  EXPECT_DOUBLE_EQ(o.micro_batches_in_flight, 4);
  EXPECT_NEAR(m.activations_bytes, o.activations_bytes * 5.0 / 4.0, 1e-9 * m.activations_bytes);
  EXPECT_GT(m.logits_bytes, 0);  // rank 0 computes the reverse direction's loss
  EXPECT_EQ(o.logits_bytes, 0);
}

// MoE layers with expert parallelism 4 inside each pipeline stage's node half.
constexpr char kMoe[] = R"(name: "t/dualpipe-moe"
model { num_layers: 8 d_model: 1024 num_heads: 8 d_ff: 4096 vocab_size: 32000 seq_len: 2048
        ffn_kind: SWIGLU
        moe { num_experts: 8 top_k: 2 capacity_factor: 2 expert_d_ff: 2048 dispatch: PERMUTE } }
cluster { topology: "dgx-h100:2" }
sharding { megatron { pipeline: 4 expert: 4 } }
training { global_batch_tokens: 131072 micro_batch_size: 1 recompute: SELECTIVE
           pipeline_schedule: DUALPIPE }
)";

double ExposedAllToAll(const SimReport& r) {
  double s = 0;
  for (const auto& [label, t] : r.breakdown.exposed_by_collective) {
    if (label.rfind("all_to_all", 0) == 0) s += t;
  }
  return s;
}

TEST(DualPipe, PairsHideTheAllToAllsAndMirrorsExchangeGradients) {
  auto sc = LoadText(kMoe);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  auto one =
      LoadText(Replace(kMoe, "pipeline_schedule: DUALPIPE", "pipeline_schedule: ONE_F_ONE_B"));
  ASSERT_TRUE(one.ok()) << one.status().message();
  SimulateOptions opt;
  opt.keep_program = true;
  auto dp = SimulateScenario(*sc, opt);
  auto ref = SimulateScenario(*one, opt);
  ASSERT_TRUE(dp.ok()) << dp.status().message();
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  // The expert all-to-alls go on their own stream, beside the paired micro-batch's compute: less
  // of them is exposed than under 1F1B, where they wait on the compute stream's order.
  int mirrors = 0;
  const MemoryReport mem = ComputeMemory(*sc);
  for (const Op& op : dp->program->ops) {
    if (op.is_collective && op.collective.kind == CollectiveKind::kAllToAll) {
      EXPECT_EQ(op.stream, kEpStream) << op.name;
    }
    if (op.name == "grads.dualpipe_mirror") {
      ++mirrors;
      // Each rank sends its mirror (P-1-r) its gradients of both stages: bf16, as many as its
      // weights (no distributed optimizer here), the reported rank 0's by hand from the memory.
      EXPECT_EQ(op.collective.peer_program, 3 - op.program);
      if (op.program == 0) {
        EXPECT_DOUBLE_EQ(op.collective.bytes, mem.weights_bytes);
      }
    }
  }
  EXPECT_EQ(mirrors, 4);
  EXPECT_GT(ExposedAllToAll(*ref), 0);
  EXPECT_LT(ExposedAllToAll(*dp), 0.5 * ExposedAllToAll(*ref));
  // The congestion-aware level runs the same program.
  opt.network = NetworkLevel::kFlow;
  auto flow = SimulateScenario(*sc, opt);
  ASSERT_TRUE(flow.ok()) << flow.status().message();
  EXPECT_NEAR(flow->step_time_s, dp->step_time_s, 0.05 * dp->step_time_s);
}

TEST(DualPipe, Refusals) {
  auto refused = [](const std::string& text, const std::string& want) {
    auto sc = LoadText(text);
    ASSERT_FALSE(sc.ok()) << want;
    EXPECT_NE(sc.status().message().find(want), std::string::npos) << sc.status().message();
  };
  const std::string at = "t.textproto:8: ";
  // PP odd (3 ranks of 2 layers) and PP 1.
  refused(
      Replace(Replace(Replace(kToy, "pipeline: 4", "pipeline: 3"), "tpu-v5e:2x2", "tpu-v5e:1x3"),
              "num_layers: 8", "num_layers: 6"),
      at + "training.pipeline_schedule=DUALPIPE feeds micro-batches from both ends of the "
           "pipeline and needs an even sharding.mesh.pipeline > 1, not 3");
  refused(Replace(kToy, "pipeline: 4", "data: 4"),
          "needs an even sharding.mesh.pipeline > 1, not 1");
  // Micro-batches odd, and fewer than 2 PP.
  refused(Replace(kToy, "global_batch_tokens: 128", "global_batch_tokens: 144"),
          at + "training.pipeline_schedule=DUALPIPE splits the micro-batches into two directions "
               "and needs an even number of them, not 9");
  refused(Replace(kToy, "global_batch_tokens: 128", "global_batch_tokens: 96"),
          at + "training.pipeline_schedule=DUALPIPE needs at least 2 x sharding.mesh.pipeline=8 "
               "micro-batches, not 6");
  refused(Replace(kToy, "recompute: NONE", "recompute: FULL"), "training.recompute=FULL");
  EXPECT_TRUE(LoadText(Replace(kToy, "recompute: NONE", "recompute: SELECTIVE")).ok());
}

constexpr char kMegatron[] = R"(name: "m"
model { num_layers: 4 d_model: 256 num_heads: 8 d_ff: 1024 vocab_size: 1024 seq_len: 128
        ffn_kind: SWIGLU }
cluster { topology: "dgx-h100:1" }
sharding { megatron { pipeline: 2 } }
training { global_batch_tokens: 8192 micro_batch_size: 1 pipeline_schedule: DUALPIPE }
)";

TEST(DualPipe, NoMegatronArguments) {
  auto sc = LoadScenarioFromText(kMegatron, "m.textproto", {});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  auto args = MegatronArgs(*sc);
  ASSERT_FALSE(args.ok());
  EXPECT_NE(args.status().message().find("training.pipeline_schedule=DUALPIPE has no Megatron-LM"),
            std::string::npos)
      << args.status().message();
}

}  // namespace
}  // namespace moesim
