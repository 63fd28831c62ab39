// Context parallelism (a CONTEXT mesh axis): the sequence split over the axis, attention as a ring
// exchange of K and V overlapped with blockwise attention, worked by hand: the ring's bytes, a
// folded TP 2 / EP 8 / CP 2 layer's collectives on 16 ranks, the ring's overlap in the simulated
// timeline, FLOPs and activation memory against a second method (data parallelism), and the
// validation of the sequence length.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "costmodel/costmodel.h"
#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"
#include "tests/scenario_text.h"

namespace moesim {
namespace {

using namespace moesim::scenario_text;  // NOLINT

// One DGX H100 node: a dense layer with the sequence split 4 ways (CONTEXT) and 2 data replicas.
constexpr char kDenseCp4[] = R"(
name: "t/cp4"
model {
  name: "t" num_layers: 2 d_model: 2048 num_heads: 16 num_kv_heads: 8 head_dim: 128 d_ff: 8192
  vocab_size: 32000 seq_len: 4096 ffn_kind: SWIGLU
}
cluster { topology: "dgx-h100:1" }
sharding {
  mesh {
    axes { name: "dp" size: 2 role: DATA }
    axes { name: "cp" size: 4 role: CONTEXT }
  }
}
training { global_batch_tokens: 32768 micro_batch_size: 1 recompute: NONE }
)";

// Each rank holds 4,096 / 4 = 1,024 tokens of its sequence. One ring step passes one chunk's K
// and V: 2 tensors x 1 sequence x 1,024 tokens x 8 KV heads x 128 x 2 bytes (bf16) = 4,194,304
// bytes to the next rank of the context group. Forward: C - 1 = 3 steps; backward: 3 steps that
// carry K,V and dK,dV (8,388,608 bytes each), then one step that returns the last dK,dV
// (4,194,304). Per layer and micro-batch: 3 x 4 MiB + 3 x 8 MiB + 4 MiB = 40 MiB per rank.
TEST(ContextParallel, RingBytesPerLayerByHand) {
  auto sc = LoadText(kDenseCp4);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const MeshAxis cp = AxisNamed(sc->sharding.mesh, "cp");
  EXPECT_EQ(sc->sharding.ContextShards(), 4);
  const OpGraph g = BuildStepGraph(*sc);
  std::map<std::string, std::vector<double>> shifts;  // op name -> bytes, layer 0, micro-batch 0
  for (const Op& op : g.ops) {
    if (!op.is_collective || op.collective.kind != CollectiveKind::kRingShift) continue;
    EXPECT_EQ(op.collective.axes, (std::vector<MeshAxis>{cp}));
    if (op.layer == 0 && op.micro_batch == 0) shifts[op.name].push_back(op.collective.bytes);
  }
  EXPECT_EQ(shifts["L0.attn.cp_ring"], (std::vector<double>(3, 4194304.0)));
  EXPECT_EQ(shifts["L0.attn.cp_ring.bwd"], (std::vector<double>(3, 8388608.0)));
  EXPECT_EQ(shifts["L0.attn.cp_ring.dkv"], (std::vector<double>{4194304.0}));
  // Dense gradients are reduced over the data and the context axes (weights are replicated over
  // both): all-reduce over {dp, cp}.
  std::set<std::vector<MeshAxis>> grads;
  for (const Op& op : g.ops) {
    if (op.is_collective && op.name.find("grads.") != std::string::npos) {
      grads.insert(op.collective.axes);
    }
  }
  EXPECT_EQ(grads, (std::set<std::vector<MeshAxis>>{{AxisNamed(sc->sharding.mesh, "dp"), cp}}));
}

// A second method for the work: CONTEXT 4 x DATA 2 and DATA 8 over the same global batch split
// the step's FLOPs eight ways without repetition, so their step programs' hardware FLOPs are
// equal (attention: 1/4 of the queries against all keys for 4x the sequences); and the model's
// FLOPs are the same model's.
TEST(ContextParallel, FlopsMatchDataParallelism) {
  auto cp = LoadText(kDenseCp4);
  auto dp = LoadText(Replace(Replace(kDenseCp4, R"(name: "dp" size: 2)", R"(name: "dp" size: 8)"),
                             R"(axes { name: "cp" size: 4 role: CONTEXT })", ""));
  ASSERT_TRUE(cp.ok()) << cp.status().message();
  ASSERT_TRUE(dp.ok()) << dp.status().message();
  const OpGraph gc = BuildStepGraph(*cp), gd = BuildStepGraph(*dp);
  EXPECT_NEAR(gc.hardware_flops_per_step / gd.hardware_flops_per_step, 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(gc.model_flops_per_step, gd.model_flops_per_step);
}

// Activations: every activation a layer saves has a sequence dimension, so with one sequence per
// micro-batch the context-parallel rank saves exactly 1/4 of what a rank with the whole sequence
// saves (the scores' key dimension stays whole, but flash attention saves no scores).
TEST(ContextParallel, ActivationMemoryQuarters) {
  auto cp = LoadText(kDenseCp4);
  auto dp = LoadText(Replace(Replace(kDenseCp4, R"(name: "dp" size: 2)", R"(name: "dp" size: 8)"),
                             R"(axes { name: "cp" size: 4 role: CONTEXT })", ""));
  ASSERT_TRUE(cp.ok() && dp.ok());
  const MemoryReport mc = ComputeMemory(*cp), md = ComputeMemory(*dp);
  EXPECT_GT(md.activations_bytes, 0);
  EXPECT_NEAR(mc.activations_bytes / md.activations_bytes, 0.25, 1e-12);
  // Weights replicated over both axes: the same per device.
  EXPECT_DOUBLE_EQ(mc.weights_bytes, md.weights_bytes);
}

// The ring in the simulated timeline: the C - 1 steps go out back to back on the comm stream
// from the moment K and V exist, and chunk j's blockwise attention waits for step j. With the
// chunk's compute time c and a step's time r (both read from the timeline), the forward core
// of a layer spans c + (C - 1) x max(c, r): the exchange hides behind compute as far as it can.
TEST(ContextParallel, RingOverlapsChunkCompute) {
  // Inside one node (NVLink) the chunk's attention outlasts a ring step; with the context axis
  // across four nodes (InfiniBand, cp outermost) the ring step outlasts the chunk. The NVLink
  // case runs 8,192-token sequences (chunks of 2,048): timed at FlashAttention-3's rate
  // (costmodel/attention_model.h) a causal 1,024-token chunk takes about as long as its 4 MiB
  // NVLink step, a 2,048-token one (4x the work, 2x the bytes) clearly longer.
  const std::string across =
      Replace(Replace(Replace(kDenseCp4, R"(name: "dp" size: 2)", R"(name: "dp" size: 8)"),
                      R"(axes { name: "cp" size: 4 role: CONTEXT })", ""),
              R"(axes { name: "dp")", R"(axes { name: "cp" size: 4 role: CONTEXT }
    axes { name: "dp")");
  std::set<bool> ring_bound;
  for (const std::string& text : {Replace(kDenseCp4, "seq_len: 4096", "seq_len: 8192"),
                                  Replace(across, "dgx-h100:1", "dgx-h100:4")}) {
    const std::string seq = text.find("dgx-h100:4") != std::string::npos ? "IB" : "NVLink";
    auto sc = LoadText(text);
    ASSERT_TRUE(sc.ok()) << sc.status().message();
    SimulateOptions opt;
    opt.keep_program = true;
    auto r = SimulateScenario(*sc, opt);
    ASSERT_TRUE(r.ok()) << r.status().message();
    const OpGraph& g = *r->program;
    std::vector<const Op*> scores, context, shifts;
    for (const Op& op : g.ops) {
      if (op.layer != 0 || op.micro_batch != 0 || op.phase != Phase::kForward) continue;
      if (op.name == "L0.attn.scores") scores.push_back(&op);
      if (op.name == "L0.attn.context") context.push_back(&op);
      if (op.name == "L0.attn.cp_ring") shifts.push_back(&op);
    }
    ASSERT_EQ(scores.size(), 4u);
    ASSERT_EQ(context.size(), 4u);
    ASSERT_EQ(shifts.size(), 3u);
    auto start = [&](const Op* op) { return r->timing[static_cast<size_t>(op->id)].start_s; };
    auto end = [&](const Op* op) { return r->timing[static_cast<size_t>(op->id)].end_s; };
    const double c = end(context[0]) - start(scores[0]);
    const double ring = end(shifts[0]) - start(shifts[0]);
    EXPECT_GT(ring, 0);
    ring_bound.insert(ring > c);
    EXPECT_NEAR(start(shifts[0]), start(scores[0]), 1e-15) << seq;
    EXPECT_NEAR(end(context[3]) - start(scores[0]), c + 3 * std::max(c, ring), 1e-12) << seq;
    // Chunk 0 needs nothing from the ring; chunk j waits for step j.
    EXPECT_TRUE(std::find(scores[0]->deps.begin(), scores[0]->deps.end(), shifts[0]->id) ==
                scores[0]->deps.end());
    for (size_t j = 1; j < 4; ++j) {
      EXPECT_TRUE(std::find(scores[j]->deps.begin(), scores[j]->deps.end(), shifts[j - 1]->id) !=
                  scores[j]->deps.end());
    }
  }
  EXPECT_EQ(ring_bound, (std::set<bool>{false, true}));
}

// 16 H100s (two DGX nodes), Megatron's order: attention TP 2 (innermost) x CP 2 x DP 4; MoE
// layers fold EP 8 over [dp_in, cp, tp] (the first 8 ranks: one node), dp_out expert-data-
// parallel.
constexpr char kFolded16Cp[] = R"(
name: "t/folded16cp"
model {
  name: "t" num_layers: 1 d_model: 1024 num_heads: 8 num_kv_heads: 8 head_dim: 128 d_ff: 4096
  vocab_size: 32000 seq_len: 1024 ffn_kind: SWIGLU
  moe { num_experts: 16 top_k: 2 expert_d_ff: 512 capacity_factor: 4.0 placement: EVERY_K
        placement_k: 1 dispatch: PERMUTE }
}
cluster { topology: "dgx-h100:2" }
sharding {
  mesh {
    axes { name: "dp_out" size: 2 role: DATA }
    axes { name: "dp_in" size: 2 role: DATA }
    axes { name: "cp" size: 2 role: CONTEXT }
    axes { name: "tp" size: 2 role: TENSOR }
  }
  moe_layers { expert: ["dp_in", "cp", "tp"] }
}
training { global_batch_tokens: 16384 micro_batch_size: 2 recompute: NONE }
)";

// 16,384 tokens = 16 sequences of 1,024 over 4 data ranks: 4 each, 2 micro-batches of 2. Each
// rank holds 1,024 / 2 = 512 tokens of each sequence (CP 2).
// Attention: the [b 2, s 512, m 1024] bf16 activation is 2 x 512 x 1024 x 2 = 2,097,152 bytes;
// sequence parallelism all-gathers it over tp before the QKV projections and reduce-scatters the
// output projection's partial sums. The ring: 1 step (CP 2) of K and V of 512 tokens of the
// 8 / 2 = 4 KV heads this tp rank holds: 2 x 2 x 512 x 4 x 128 x 2 = 2,097,152 bytes.
// MoE: tokens stay split over tp, so each rank routes 2 x 512 / 2 = 512 tokens to top-2 of 16
// experts (2 per rank of the EP group of 8): 512 x 2 x 1,024 x 2 bytes = 2,097,152 bytes per
// all-to-all, over [dp_in, cp, tp], inside one node. Capacity: a routing group is one rank's
// share of a sequence, 512 tokens: 4.0 x 2 x 512 / 16 = 256 slots per expert and group, and
// uniform routing gives each expert 2 x 512 / 16 = 64 of each group's tokens: nothing dropped.
// Gradients: dense ones all-reduced over dp_out x dp_in x cp (replicas), the experts' over
// dp_out (their only replica axis).
TEST(ContextParallel, FoldedTp2Ep8Cp2LayerByHand) {
  auto sc = LoadText(kFolded16Cp);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const Mesh& mesh = sc->sharding.mesh;
  const MeshAxis dp_out = AxisNamed(mesh, "dp_out"), dp_in = AxisNamed(mesh, "dp_in"),
                 cp = AxisNamed(mesh, "cp"), tp = AxisNamed(mesh, "tp");
  EXPECT_EQ(sc->training.num_micro_batches, 2);
  EXPECT_EQ(sc->model.moe.group_size_tokens, 512);
  const OpGraph g = BuildStepGraph(*sc);
  EXPECT_DOUBLE_EQ(g.dropped_token_fraction, 0);
  std::map<std::string, int> count;
  for (const Op& op : g.ops) {
    if (!op.is_collective || op.micro_batch != 0) continue;
    const CollectiveWork& c = op.collective;
    std::string what;
    if (op.phase == Phase::kForward && op.name == "L0.attn.allgather") {
      EXPECT_DOUBLE_EQ(c.bytes, 2097152.0);
      EXPECT_EQ(c.axes, (std::vector<MeshAxis>{tp}));
    } else if (op.phase == Phase::kForward && op.name == "L0.attn.reducescatter") {
      EXPECT_DOUBLE_EQ(c.bytes, 2097152.0);
      EXPECT_EQ(c.axes, (std::vector<MeshAxis>{tp}));
    } else if (op.phase == Phase::kForward && op.name == "L0.attn.cp_ring") {
      EXPECT_DOUBLE_EQ(c.bytes, 2097152.0);
      EXPECT_EQ(c.axes, (std::vector<MeshAxis>{cp}));
    } else if (op.phase == Phase::kForward && c.kind == CollectiveKind::kAllToAll) {
      EXPECT_DOUBLE_EQ(c.bytes, 2097152.0);
      EXPECT_EQ(c.axes, (std::vector<MeshAxis>{dp_in, cp, tp}));
    }
    ++count[op.name];
  }
  EXPECT_EQ(count["L0.attn.allgather"], 1);
  EXPECT_EQ(count["L0.attn.reducescatter"], 1);
  EXPECT_EQ(count["L0.attn.cp_ring"], 1);
  EXPECT_EQ(count["L0.attn.cp_ring.bwd"], 1);
  EXPECT_EQ(count["L0.attn.cp_ring.dkv"], 1);
  EXPECT_EQ(count["L0.moe.dispatch_a2a"], 1);
  EXPECT_EQ(count["L0.moe.combine_a2a"], 1);
  std::set<std::vector<MeshAxis>> grads;
  for (const Op& op : g.ops) {
    if (op.is_collective && op.name.find("grads.") != std::string::npos) {
      grads.insert(op.collective.axes);
    }
  }
  EXPECT_TRUE(grads.count({dp_out, dp_in, cp}) > 0);
  EXPECT_TRUE(grads.count({dp_out}) > 0);
  // And the layer simulates.
  auto r = SimulateScenario(*sc, {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_GT(r->step_time_s, 0);
}

TEST(ContextParallel, SequenceMustSplitIntoTwoChunksPerRank) {
  // 4,100 tokens do not split into 2 x 4 = 8 load-balanced chunks.
  auto sc = LoadText(Replace(kDenseCp4, "seq_len: 4096", "seq_len: 4100"));
  ASSERT_FALSE(sc.ok());
  EXPECT_NE(sc.status().message().find("model.seq_len=4100 does not split into 2 x 4 chunks for "
                                       "context parallelism over sharding.mesh.axes[1] \"cp\"=4"),
            std::string::npos)
      << sc.status().message();
  EXPECT_NE(sc.status().message().find("t.textproto:5:"), std::string::npos)
      << sc.status().message();
}

}  // namespace
}  // namespace moesim
