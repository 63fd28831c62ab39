// Collectives overlapped with GEMMs, read off the simulated timeline of one layer and checked
// against the schedule's rule worked by hand: training.tp_comm_overlap (Megatron-LM
// --tp-comm-overlap: the tensor-parallel all-gather beside the GEMMs after it, the reduce-scatter
// beside the GEMMs before it, sides swapped in backward) and model.moe.shared_expert_overlap.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"
#include "tests/scenario_text.h"

namespace moesim {
namespace {

using namespace moesim::scenario_text;  // NOLINT

// One DGX H100 node, TP 8 with sequence parallelism (MEGATRON, model 8): a GPT layer whose
// all-gathers and reduce-scatters run over NVLink.
constexpr char kTp8[] = R"(
name: "t/tp8"
model {
  name: "t" num_layers: 2 d_model: 8192 num_heads: 64 d_ff: 32768 vocab_size: 32000
  seq_len: 2048 ffn_kind: GELU
}
cluster { topology: "dgx-h100:1" }
sharding { strategy: MEGATRON mesh { model: 8 } }
training { global_batch_tokens: 8192 micro_batch_size: 1 recompute: NONE tp_comm_overlap: true }
)";

struct Timeline {
  std::map<std::string, std::pair<double, double>> span;  // first op of a name: start, end
};

Timeline Layer0Forward(const SimReport& r) {
  Timeline t;
  for (const Op& op : r.program->ops) {
    if (op.layer != 0 || op.micro_batch != 0) continue;
    const std::string key = std::string(op.phase == Phase::kForward    ? "F "
                                        : op.phase == Phase::kBackward ? "B "
                                                                       : "R ") +
                            op.name;
    const auto& tm = r.timing[static_cast<size_t>(op.id)];
    t.span.emplace(key, std::make_pair(tm.start_s, tm.end_s));
  }
  return t;
}

TEST(TpCommOverlap, CollectivesRunBesideTheirGemms) {
  auto sc = LoadText(kTp8);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  SimulateOptions opt;
  opt.keep_program = true;
  auto r = SimulateScenario(*sc, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto s = Layer0Forward(*r).span;
  auto at = [&](const std::string& k) {
    EXPECT_TRUE(s.count(k)) << k;
    return s.count(k) ? s.at(k) : std::make_pair(0.0, 0.0);
  };
  // Forward, attention: the all-gather and the Q projection both start when the norm ends; the
  // op after the Q, K, V projections (scores) starts when the later of the all-gather and the V
  // projection ends.
  EXPECT_DOUBLE_EQ(at("F L0.attn.allgather").first, at("F L0.attn.norm").second);
  EXPECT_DOUBLE_EQ(at("F L0.attn.q").first, at("F L0.attn.norm").second);
  EXPECT_DOUBLE_EQ(at("F L0.attn.scores").first,
                   std::max(at("F L0.attn.allgather").second, at("F L0.attn.v").second));
  // The reduce-scatter and the output projection both start when the context einsum ends; the
  // residual waits for both.
  EXPECT_DOUBLE_EQ(at("F L0.attn.reducescatter").first, at("F L0.attn.context").second);
  EXPECT_DOUBLE_EQ(at("F L0.attn.out").first, at("F L0.attn.context").second);
  EXPECT_DOUBLE_EQ(at("F L0.attn.residual").first,
                   std::max(at("F L0.attn.reducescatter").second, at("F L0.attn.out").second));
  // FFN: the same around fc1 (ffn.w1, then the activation) and fc2 (ffn.w2, then the residual).
  EXPECT_DOUBLE_EQ(at("F L0.ffn.allgather").first, at("F L0.ffn.w1").first);
  EXPECT_DOUBLE_EQ(at("F L0.ffn.act").first,
                   std::max(at("F L0.ffn.allgather").second, at("F L0.ffn.w1").second));
  EXPECT_DOUBLE_EQ(at("F L0.ffn.reducescatter").first, at("F L0.ffn.w2").first);
  EXPECT_DOUBLE_EQ(at("F L0.ffn.residual").first,
                   std::max(at("F L0.ffn.reducescatter").second, at("F L0.ffn.w2").second));
  // Backward, sides swapped: fc2's gradient GEMMs run beside the all-gather that mirrors the
  // forward reduce-scatter, and the reduce-scatter mirroring the forward all-gather runs beside
  // fc1's gradient GEMMs.
  EXPECT_DOUBLE_EQ(at("B L0.ffn.reducescatter.bwd").first, at("B L0.ffn.w2.dgrad").first);
  EXPECT_DOUBLE_EQ(at("B L0.ffn.allgather.bwd").first, at("B L0.ffn.w1.dgrad").first);
  EXPECT_DOUBLE_EQ(at("B L0.ffn.norm.bwd").first,
                   std::max(at("B L0.ffn.allgather.bwd").second, at("B L0.ffn.w1.wgrad").second));
}

// The same step without the overlap exposes every TP collective in full: the overlap saves time,
// and at most the collectives' own time.
TEST(TpCommOverlap, SavesAtMostTheCollectivesTime) {
  auto with = LoadText(kTp8);
  std::string text = kTp8;
  text.replace(text.find(" tp_comm_overlap: true"), 22, "");
  auto without = LoadText(text);
  ASSERT_TRUE(with.ok() && without.ok());
  SimulateOptions opt;
  opt.keep_program = true;
  auto a = SimulateScenario(*with, opt), b = SimulateScenario(*without, opt);
  ASSERT_TRUE(a.ok() && b.ok());
  double tp_comm = 0;
  for (const Op& op : b->program->ops) {
    if (op.is_collective && op.stream == kCommStream) {
      const auto& tm = b->timing[static_cast<size_t>(op.id)];
      tp_comm += tm.end_s - tm.start_s;
    }
  }
  EXPECT_LT(a->step_time_s, b->step_time_s);
  EXPECT_GE(a->step_time_s, b->step_time_s - tp_comm - 1e-12);
}

TEST(TpCommOverlap, NeedsSequenceParallelTensorParallelism) {
  std::string text = kTp8;
  text.replace(text.find("strategy: MEGATRON mesh { model: 8 }"), 36,
               "strategy: DATA_PARALLEL mesh { data: 8 }");
  text.replace(text.find("8192"), 4, "16384");
  auto sc = LoadText(text);
  ASSERT_FALSE(sc.ok());
  EXPECT_NE(sc.status().message().find("t.textproto:9: training.tp_comm_overlap overlaps the "
                                       "all-gathers and reduce-scatters of tensor parallelism"),
            std::string::npos)
      << sc.status().message();
}

// model.moe.shared_expert_overlap (Megatron-LM --moe-shared-expert-overlap): one DGX node, EP 8,
// 8 experts top-2 plus one shared expert. The dispatch all-to-all and the shared expert's first
// GEMM start together when the permutation ends; the routed experts' first GEMM starts when the
// later of the all-to-all and the shared expert's last GEMM ends. Backward: the dispatch's mirror
// starts with the shared expert's gradient GEMMs, after the routed experts' backward.
constexpr char kShared[] = R"(
name: "t/shared"
model {
  name: "t" num_layers: 1 d_model: 4096 num_heads: 32 d_ff: 14336 vocab_size: 32000
  seq_len: 4096 ffn_kind: SWIGLU
  moe { num_experts: 8 top_k: 2 capacity_factor: 2 expert_d_ff: 14336 num_shared_experts: 1
        dispatch: PERMUTE shared_expert_overlap: true }
}
cluster { topology: "dgx-h100:1" }
sharding { mesh { axes { name: "ep" size: 8 role: EXPERT } } }
training { global_batch_tokens: 32768 micro_batch_size: 1 recompute: NONE }
)";

TEST(SharedExpertOverlap, SharedExpertsRunBesideTheDispatch) {
  auto sc = LoadText(kShared);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  SimulateOptions opt;
  opt.keep_program = true;
  auto r = SimulateScenario(*sc, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto s = Layer0Forward(*r).span;
  auto at = [&](const std::string& k) {
    EXPECT_TRUE(s.count(k)) << k;
    return s.count(k) ? s.at(k) : std::make_pair(0.0, 0.0);
  };
  EXPECT_DOUBLE_EQ(at("F L0.moe.dispatch_a2a").first, at("F L0.moe.permute").second);
  EXPECT_DOUBLE_EQ(at("F L0.moe.shared_w1").first, at("F L0.moe.permute").second);
  EXPECT_DOUBLE_EQ(at("F L0.moe.w1").first,
                   std::max(at("F L0.moe.dispatch_a2a").second, at("F L0.moe.shared_w2").second));
  EXPECT_DOUBLE_EQ(at("B L0.moe.dispatch_a2a.bwd").first, at("B L0.moe.shared_w2.dgrad").first);
  EXPECT_DOUBLE_EQ(at("B L0.moe.shared_w2.dgrad").first, at("B L0.moe.w1.wgrad").second);
  EXPECT_DOUBLE_EQ(
      at("B L0.moe.permute.bwd").first,
      std::max(at("B L0.moe.dispatch_a2a.bwd").second, at("B L0.moe.shared_w1.wgrad").second));
  // Without the overlap the shared expert runs after the combine: the step is slower by at most
  // the two all-to-alls it hides behind.
  std::string text = kShared;
  text.replace(text.find(" shared_expert_overlap: true"), 28, "");
  auto plain = LoadText(text);
  ASSERT_TRUE(plain.ok());
  auto b = SimulateScenario(*plain, opt);
  ASSERT_TRUE(b.ok());
  const double a2a =
      (at("F L0.moe.dispatch_a2a").second - at("F L0.moe.dispatch_a2a").first) +
      (at("B L0.moe.dispatch_a2a.bwd").second - at("B L0.moe.dispatch_a2a.bwd").first);
  EXPECT_LT(r->step_time_s, b->step_time_s);
  EXPECT_GE(r->step_time_s, b->step_time_s - a2a - 1e-12);
}

TEST(SharedExpertOverlap, NeedsSharedExpertsAndExpertParallelism) {
  std::string text = kShared;
  text.replace(text.find("num_shared_experts: 1"), 21, "num_shared_experts: 0");
  auto none = LoadText(text);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("model.moe.num_shared_experts is 0"), std::string::npos)
      << none.status().message();
  text = kShared;
  const std::string ep = "axes { name: \"ep\" size: 8 role: EXPERT }";
  text.replace(text.find(ep), ep.size(), "axes { name: \"dp\" size: 8 role: DATA }");
  auto no_ep = LoadText(text);
  ASSERT_FALSE(no_ep.ok());
  EXPECT_NE(no_ep.status().message().find("this sharding has no expert parallelism"),
            std::string::npos)
      << no_ep.status().message();
}

}  // namespace
}  // namespace moesim
