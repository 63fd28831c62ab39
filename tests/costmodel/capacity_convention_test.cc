// The stacks' capacity conventions (model.moe.capacity_convention MEGATRON, MAXTEXT, AXLEARN;
// costmodel/memory.h MoeGroupsOf) and MaxText's ragged all-to-all (token_dispatcher
// RAGGED_ALL_TO_ALL): each capacity and dropped fraction worked out by hand, the receive buffer's
// memory, the all-to-all bytes of einsum against ragged dispatch on a TPU slice, the refusals,
// and MaxText's sparse_matmul / capacity_factor / ragged_buffer_factor keys.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>

#include "costmodel/memory.h"
#include "costmodel/opgraph.h"
#include "costmodel/routing.h"
#include "costmodel/step_plan.h"
#include "proto/maxtext_preset.h"
#include "proto/scenario_loader.h"
#include "tests/scenario_text.h"

namespace moesim {
namespace {

using namespace moesim::scenario_text;  // NOLINT

// One DGX H100 node, EP 8 over the 8 ranks, 8 experts top-2, sequences of 1,024 tokens:
// 16,384 tokens per step, 2 sequences = 2,048 tokens per rank, 4,096 (token, expert) pairs per
// rank, 32,768 in the EP group. Zipf routing of exponent 1: expert i gets (1 / (i + 1)) / H_8 of
// the pairs, H_8 = 2.717857; expert 0 wants 32,768 / H_8 = 12,056.6, expert 1 6,028.3, expert 2
// 4,018.9. Experts sit one per rank.
constexpr char kEp8[] = R"(
name: "t/ep8"
model {
  name: "t" num_layers: 1 d_model: 1024 num_heads: 8 num_kv_heads: 8 head_dim: 128 d_ff: 4096
  vocab_size: 32000 seq_len: 1024 ffn_kind: SWIGLU
  moe { num_experts: 8 top_k: 2 placement: EVERY_K placement_k: 1 routing: ZIPF
        routing_zipf_exponent: 1 MOE }
}
cluster { topology: "dgx-h100:1" }
sharding { mesh { axes { name: "ep" size: 8 role: EXPERT } } }
training { global_batch_tokens: 16384 micro_batch_size: 2 recompute: NONE }
)";

const double kH8 = 1 + 1.0 / 2 + 1.0 / 3 + 1.0 / 4 + 1.0 / 5 + 1.0 / 6 + 1.0 / 7 + 1.0 / 8;
const double kPairs = 32768;  // routed pairs in the EP group

Scenario Load(const std::string& moe) {
  auto sc = LoadText(Replace(kEp8, "MOE", moe));
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return sc.ok() ? *sc : Scenario{};
}

// Pairs over the EP group's capacity `cap` per expert, as a fraction of all pairs.
double ZipfDropped(double cap) {
  double dropped = 0;
  for (int i = 0; i < 8; ++i) dropped += std::max(0.0, kPairs / kH8 / (i + 1) - cap);
  return dropped / kPairs;
}

// Megatron-Core: the rank's 2,048 tokens are one group; C = ceil(2,048 x 2 / 8 x 1.1) =
// ceil(563.2) = 564 per expert and rank, 8 x 564 = 4,512 in the EP group. Experts 0 and 1 go
// over it: (12,056.6 - 4,512 + 6,028.3 - 4,512) / 32,768 = 27.65% dropped, before the exchange:
// the all-to-all carries the 72.35% kept.
TEST(CapacityConvention, MegatronPerRankByHand) {
  const Scenario sc = Load("dispatch: PERMUTE capacity_factor: 1.1 capacity_convention: MEGATRON");
  const MoeGroups g = MoeGroupsOf(sc);
  EXPECT_EQ(g.tokens_local, 2048);
  EXPECT_EQ(g.capacity_group, 2048);
  EXPECT_EQ(g.group_capacity, 564);
  EXPECT_DOUBLE_EQ(g.rank_capacity, 564);
  const StepPlan p = MakeStepPlan(sc);
  const double dropped = (kPairs / kH8 - 4512 + kPairs / kH8 / 2 - 4512) / kPairs;
  EXPECT_NEAR(dropped, 0.276515, 1e-6);
  EXPECT_NEAR(p.dropped_fraction, dropped, 1e-12);
  EXPECT_NEAR(p.dropped_fraction, ZipfDropped(4512), 1e-12);
  EXPECT_NEAR(p.a2a_bytes, 2048.0 * 2 * (1 - dropped) * 1024 * 2, 1e-3);
  EXPECT_NEAR(p.slots, 4512, 1e-9);  // the busiest rank: expert 0 at its capacity
}

// --moe-pad-expert-input-to-capacity: each rank sends every expert its 564 slots, padded:
// 8 x 564 = 4,512 rows of 1,024 bf16 per rank in each all-to-all (against 2,048 x 2 x 72.35%
// routed ones unpadded), the grouped GEMM of the one local expert computes 8 senders x 564 =
// 4,512 slots, and the expert input holds those 4,512 rows (282 per group of 1,024 tokens).
TEST(CapacityConvention, MegatronPadToCapacityByHand) {
  const Scenario sc = Load(
      "dispatch: PERMUTE capacity_factor: 1.1 capacity_convention: MEGATRON "
      "pad_expert_input_to_capacity: true");
  const StepPlan p = MakeStepPlan(sc);
  EXPECT_DOUBLE_EQ(p.a2a_bytes, 4512.0 * 1024 * 2);
  EXPECT_DOUBLE_EQ(p.a2a_max_over_mean, 1);
  EXPECT_DOUBLE_EQ(p.slots, 4512);
  EXPECT_NEAR(p.dropped_fraction, ZipfDropped(4512), 1e-12);
  EXPECT_EQ(MoeGroupsOf(sc).held, 282);
  for (const TensorReport& t : ComputeMemory(sc).tensors) {
    if (t.name == "moe.expert_in") {
      EXPECT_DOUBLE_EQ(t.local_bytes, 4512.0 * 1024 * 2);
    }
  }
}

// Same layout with groups of 1,024 tokens (PER_ROUTED_TOKEN, the default): C = ceil(1.1 x 2 x
// 1,024 / 8) = ceil(281.6) = 282 per group, 2 groups per rank: 564, the same here. With 1.01 the
// rounding parts: per group ceil(258.56) = 259, 518 per rank; Megatron ceil(517.12) = 518 too;
// with groups of 128 tokens: ceil(32.32) = 33 per group, 16 groups = 528 per rank against
// Megatron's 518 (its group is the rank).
TEST(CapacityConvention, MegatronGroupIsTheRank) {
  const Scenario meg =
      Load("dispatch: PERMUTE capacity_factor: 1.01 capacity_convention: MEGATRON");
  EXPECT_DOUBLE_EQ(MoeGroupsOf(meg).rank_capacity, 518);
  const Scenario small = Load("dispatch: PERMUTE capacity_factor: 1.01 group_size_tokens: 128");
  const MoeGroups g = MoeGroupsOf(small);
  EXPECT_EQ(g.group_capacity, 33);
  EXPECT_EQ(g.groups_local, 16);
  EXPECT_DOUBLE_EQ(g.rank_capacity, 528);
}

// With tensor parallelism (sequence parallel) each rank routes its share of the sequence: EP 4 x
// TP 2, 4 sequences of 1,024 per EP rank; a TP rank's router sees 4 x 1,024 / 2 = 2,048 tokens,
// C = ceil(2,048 x 2 / 8 x 1.1) = 564, and the 4,096 MoE tokens of the TP pair carry 2 x 564.
TEST(CapacityConvention, MegatronGroupUnderSequenceParallelism) {
  std::string text =
      Replace(kEp8, "MOE", "dispatch: PERMUTE capacity_factor: 1.1 capacity_convention: MEGATRON");
  text = Replace(
      text, R"(axes { name: "ep" size: 8 role: EXPERT })",
      R"(axes { name: "ep" size: 4 role: EXPERT } axes { name: "tp" size: 2 role: TENSOR })");
  text = Replace(text, "micro_batch_size: 2", "micro_batch_size: 4");
  auto sc = LoadText(text);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  const MoeGroups g = MoeGroupsOf(*sc);
  EXPECT_EQ(g.tokens_local, 4096);
  EXPECT_EQ(g.capacity_group, 2048);
  EXPECT_EQ(g.group_capacity, 564);
  EXPECT_DOUBLE_EQ(g.rank_capacity, 1128);
}

// MaxText's dropping path: per sequence of 1,024 tokens, tokens_per_batch = 1,024 x 2 = 2,048,
// C = int(max(ceil(2,048 / 8) x 1.1, 1.1)) = int(281.6) = 281 (PER_ROUTED_TOKEN rounds up: 282).
// 16 sequences in the EP group: 4,496 per expert. Dropped: (12,056.6 + 6,028.3 - 2 x 4,496) /
// 32,768 = 27.75%. Einsum dispatch pads every expert to 281 slots per sequence.
TEST(CapacityConvention, MaxTextPerSequenceByHand) {
  const Scenario sc = Load("dispatch: EINSUM capacity_factor: 1.1 capacity_convention: MAXTEXT");
  const MoeGroups g = MoeGroupsOf(sc);
  EXPECT_EQ(g.capacity_group, 1024);
  EXPECT_EQ(g.group_capacity, 281);
  EXPECT_EQ(g.capacity, 281);
  EXPECT_DOUBLE_EQ(g.rank_capacity, 562);
  const StepPlan p = MakeStepPlan(sc);
  EXPECT_NEAR(p.dropped_fraction, (kPairs / kH8 * 1.5 - 2 * 4496) / kPairs, 1e-12);
  EXPECT_NEAR(p.dropped_fraction, 0.277491, 1e-6);
  // [O, E, G, C, M] on a rank: 2 sequences x 8 experts x 281 slots x 1,024 x bf16.
  EXPECT_DOUBLE_EQ(p.a2a_bytes, 2.0 * 8 * 281 * 1024 * 2);
  const Scenario per_routed = Load("dispatch: EINSUM capacity_factor: 1.1");
  EXPECT_EQ(MoeGroupsOf(per_routed).capacity, 282);
}

// AXLearn (and GShard): C = max(1, int(S x cf / E)), rounded down: groups of 1,024, cf 2.2:
// int(281.6) = 281, where PER_TOKEN (ceil) gives 282. The top-2 default cf 2.0 gives exactly
// 2 x 1,024 / 8 = 256 = top_k x S / E. With 16 groups over the EP group: 4,496 per expert, as
// MaxText above.
TEST(CapacityConvention, AxLearnRoundsDown) {
  const Scenario ax = Load("dispatch: EINSUM capacity_factor: 2.2 capacity_convention: AXLEARN");
  EXPECT_EQ(MoeGroupsOf(ax).capacity, 281);
  EXPECT_NEAR(MakeStepPlan(ax).dropped_fraction, ZipfDropped(4496), 1e-12);
  const Scenario gshard =
      Load("dispatch: EINSUM capacity_factor: 2.2 capacity_convention: PER_TOKEN");
  EXPECT_EQ(MoeGroupsOf(gshard).capacity, 282);
  const Scenario top2 =
      Load("dispatch: EINSUM capacity_factor: 2 capacity_convention: AXLEARN num_groups: 16");
  EXPECT_EQ(MoeGroupsOf(top2).group_size, 1024);
  EXPECT_EQ(MoeGroupsOf(top2).capacity, 256);
}

// MaxText's sparse-matmul path: dropless, each rank receives into a buffer of tokens x top_k x
// factor rows. Default (-1): min(EP 8, 8 experts / top-2 = 4) = 4: 2,048 x 2 x 4 = 16,384 rows;
// Zipf's rank 0 receives 12,056.6 < 16,384: nothing dropped. ragged_buffer_factor 1.5: 6,144
// rows; rank 0 drops 12,056.6 - 6,144 = 5,912.6 (18.04% of the pairs), rank 1's 6,028.3 fit.
TEST(RaggedAllToAll, ReceiveBufferDropsByHand) {
  const std::string ragged = "dispatch: PERMUTE dropless: true token_dispatcher: RAGGED_ALL_TO_ALL";
  const Scenario def = Load(ragged);
  EXPECT_DOUBLE_EQ(MoeGroupsOf(def).receive_buffer_factor, 4);
  const StepPlan d = MakeStepPlan(def);
  EXPECT_DOUBLE_EQ(d.dropped_fraction, 0);
  EXPECT_NEAR(d.slots, kPairs / kH8, 1e-6);
  const Scenario small = Load(ragged + " ragged_buffer_factor: 1.5");
  EXPECT_DOUBLE_EQ(MoeGroupsOf(small).receive_buffer_factor, 1.5);
  const StepPlan s = MakeStepPlan(small);
  EXPECT_NEAR(s.dropped_fraction, (kPairs / kH8 - 6144) / kPairs, 1e-12);
  EXPECT_NEAR(s.dropped_fraction, 0.18044, 1e-5);
  EXPECT_NEAR(s.slots, 6144, 1e-9);
}

// The receive buffer is the expert side's memory: [buffer rows, d_model] in bf16 for the expert
// input and output, rows = 2,048 x 2 x factor; plain permutation dispatch holds the 4,096 routed
// rows. Default factor 4: 16,384 x 1,024 x 2 = 33,554,432 bytes each; factor 1.5: 12,582,912.
TEST(RaggedAllToAll, ReceiveBufferMemoryByHand) {
  auto bytes_of = [](const Scenario& sc, const std::string& name) {
    for (const TensorReport& t : ComputeMemory(sc).tensors) {
      if (t.name == name) return t.local_bytes;
    }
    ADD_FAILURE() << name;
    return 0.0;
  };
  const std::string ragged = "dispatch: PERMUTE dropless: true token_dispatcher: RAGGED_ALL_TO_ALL";
  const Scenario plain = Load("dispatch: PERMUTE dropless: true");
  EXPECT_DOUBLE_EQ(bytes_of(plain, "moe.expert_in"), 4096.0 * 1024 * 2);
  const Scenario def = Load(ragged);
  EXPECT_DOUBLE_EQ(bytes_of(def, "moe.expert_in"), 16384.0 * 1024 * 2);
  EXPECT_DOUBLE_EQ(bytes_of(def, "moe.expert_out"), 16384.0 * 1024 * 2);
  const Scenario small = Load(ragged + " ragged_buffer_factor: 1.5");
  EXPECT_DOUBLE_EQ(bytes_of(small, "moe.expert_in"), 6144.0 * 1024 * 2);
}

// Log-normal per-rank load past a buffer of b x the mean: E[(X - b)+] in closed form against
// 200,000 draws (fixed seed), and the busiest rank capped at the buffer.
TEST(RaggedAllToAll, LogNormalExcessMatchesMonteCarlo) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  const double sigma = 0.5, b = 1.2;
  double sum = 0;
  const int trials = 200000;
  for (int t = 0; t < trials; ++t) {
    sum += std::max(0.0, std::exp(-sigma * sigma / 2 + sigma * normal(rng)) - b);
  }
  EXPECT_NEAR(LogNormalExcess(sigma, b) / (sum / trials), 1.0, 0.02);
  EXPECT_DOUBLE_EQ(LogNormalExcess(0, 0.75), 0.25);
  EXPECT_LE(ExpectedMaxLogNormal(8, sigma, b), b);
  EXPECT_DOUBLE_EQ(ExpectedMaxLogNormal(8, sigma),
                   ExpectedMaxLogNormal(8, sigma, std::numeric_limits<double>::infinity()));
}

// A TPU v6e slice of 8 chips, MaxText's ici_expert_parallelism 8: capacity-padded einsum dispatch
// (cf 1.25, C = ceil(1.25 x 2 x 1,024 / 8) = 320 per sequence) sends 2 sequences x 8 experts x
// 320 slots = 5,120 rows per chip, the ragged all-to-all exactly the 2,048 x 2 = 4,096 routed
// ones: the bytes differ by the padding factor 5,120 / 4,096 = 1.25.
constexpr char kTpu[] = R"(
name: "t/tpu"
model {
  name: "t" num_layers: 1 d_model: 1024 num_heads: 8 num_kv_heads: 8 head_dim: 128 d_ff: 4096
  vocab_size: 32000 seq_len: 1024 ffn_kind: SWIGLU
  moe { num_experts: 8 top_k: 2 placement: EVERY_K placement_k: 1 MOE }
}
cluster { topology: "tpu-v6e:2x4" }
sharding { maxtext { ici_fsdp_parallelism: 1 ici_expert_parallelism: 8 } }
training { global_batch_tokens: 16384 micro_batch_size: 2 recompute: NONE }
)";

std::map<std::string, double> A2aBytes(const Scenario& sc) {
  std::map<std::string, double> bytes;
  for (const Op& op : BuildStepGraph(sc).ops) {
    if (op.is_collective && op.collective.kind == CollectiveKind::kAllToAll &&
        op.micro_batch == 0) {
      bytes[op.name] = op.collective.bytes;
    }
  }
  return bytes;
}

TEST(RaggedAllToAll, TpuEinsumPaddingFactor) {
  auto einsum = LoadText(Replace(kTpu, "MOE", "dispatch: EINSUM capacity_factor: 1.25"));
  ASSERT_TRUE(einsum.ok()) << einsum.status().message();
  auto ragged = LoadText(
      Replace(kTpu, "MOE", "dispatch: PERMUTE dropless: true token_dispatcher: RAGGED_ALL_TO_ALL"));
  ASSERT_TRUE(ragged.ok()) << ragged.status().message();
  const auto e = A2aBytes(*einsum), r = A2aBytes(*ragged);
  ASSERT_EQ(e.count("L0.moe.dispatch_a2a"), 1u);
  ASSERT_EQ(r.count("L0.moe.dispatch_a2a"), 1u);
  EXPECT_DOUBLE_EQ(r.at("L0.moe.dispatch_a2a"), 4096.0 * 1024 * 2);
  EXPECT_DOUBLE_EQ(e.at("L0.moe.dispatch_a2a"), 5120.0 * 1024 * 2);
  EXPECT_DOUBLE_EQ(e.at("L0.moe.dispatch_a2a") / r.at("L0.moe.dispatch_a2a"), 1.25);
  EXPECT_DOUBLE_EQ(e.at("L0.moe.combine_a2a") / r.at("L0.moe.combine_a2a"), 1.25);
}

TEST(CapacityConvention, RefusalsNameTheField) {
  auto expect_error = [](const std::string& moe, const std::string& want) {
    auto sc = LoadText(Replace(kEp8, "MOE", moe));
    ASSERT_FALSE(sc.ok()) << want;
    EXPECT_NE(sc.status().message().find(want), std::string::npos) << sc.status().message();
  };
  expect_error("dispatch: PERMUTE dropless: true capacity_convention: MAXTEXT",
               "model.moe.capacity_convention=MAXTEXT sizes an expert capacity, and "
               "model.moe.dropless has none");
  expect_error("dispatch: PERMUTE dropless: true capacity_convention: MEGATRON",
               "model.moe.capacity_convention=MEGATRON sizes an expert capacity");
  expect_error("dispatch: EINSUM capacity_factor: 1 capacity_convention: MEGATRON",
               "t.textproto:7: model.moe.capacity_convention=MEGATRON drops on the sending rank");
  expect_error("dispatch: PERMUTE capacity_factor: 1 capacity_convention: MAXTEXT",
               "it needs model.moe.dispatch: EINSUM");
  expect_error(
      "dispatch: PERMUTE capacity_factor: 1 capacity_convention: MEGATRON "
      "group_size_tokens: 128",
      "model.moe.capacity_convention=MEGATRON: the capacity group is the tokens of one "
      "rank");
  expect_error("dispatch: EINSUM capacity_factor: 1 capacity_convention: MAXTEXT num_groups: 4",
               "the capacity group is one sequence");
  expect_error("dispatch: PERMUTE capacity_factor: 1 token_dispatcher: RAGGED_ALL_TO_ALL",
               "model.moe.token_dispatcher=RAGGED_ALL_TO_ALL is MaxText's sparse-matmul path");
  expect_error("dispatch: EINSUM capacity_factor: 1 token_dispatcher: RAGGED_ALL_TO_ALL",
               "model.moe.token_dispatcher=RAGGED_ALL_TO_ALL exchanges permuted tokens: it needs "
               "model.moe.dispatch: PERMUTE");
  expect_error(
      "dispatch: PERMUTE dropless: true token_dispatcher: RAGGED_ALL_TO_ALL "
      "ragged_buffer_factor: -1",
      "model.moe.ragged_buffer_factor=-1 must be in [0, ");
  expect_error("dispatch: PERMUTE capacity_factor: 1 pad_expert_input_to_capacity: true",
               "model.moe.pad_expert_input_to_capacity pads Megatron-Core's all-to-all");
  expect_error("dispatch: PERMUTE dropless: true ragged_buffer_factor: 2",
               "model.moe.ragged_buffer_factor sizes the receive buffer of "
               "model.moe.token_dispatcher=RAGGED_ALL_TO_ALL only");
}

// MaxText's keys: sparse_matmul true is the ragged all-to-all (dropless), false the dropping
// einsum path with capacity_factor; megablox is accepted (a kernel choice); read back as written.
TEST(CapacityConvention, MaxTextKeys) {
  auto sparse = ParseMaxTextOverrides("sparse_matmul=true megablox=true ragged_buffer_factor=2");
  ASSERT_TRUE(sparse.ok()) << sparse.status().message();
  std::string sets;
  for (const std::string& s : sparse->sets) sets += s + " ";
  EXPECT_NE(sets.find("model.moe.token_dispatcher=RAGGED_ALL_TO_ALL"), std::string::npos) << sets;
  EXPECT_NE(sets.find("model.moe.ragged_buffer_factor=2"), std::string::npos) << sets;
  auto dense = ParseMaxTextOverrides("sparse_matmul=false capacity_factor=1.25");
  ASSERT_TRUE(dense.ok()) << dense.status().message();
  sets.clear();
  for (const std::string& s : dense->sets) sets += s + " ";
  EXPECT_NE(sets.find("model.moe.capacity_convention=MAXTEXT"), std::string::npos) << sets;
  EXPECT_NE(sets.find("model.moe.capacity_factor=1.25"), std::string::npos) << sets;
  EXPECT_FALSE(ParseMaxTextOverrides("capacity_factor=1.25").ok());  // sparse_matmul: true
  EXPECT_FALSE(ParseMaxTextOverrides("sparse_matmul=false").ok());   // no capacity factor
  EXPECT_FALSE(ParseMaxTextOverrides("sparse_matmul=yes").ok());
  EXPECT_TRUE(ParseMaxTextOverrides("sparse_matmul=true capacity_factor=-1").ok());

  // Written back: the ragged scenario says sparse_matmul=true and its factor; MAXTEXT's
  // convention sparse_matmul=false and its capacity factor.
  auto ragged = LoadText(Replace(kTpu, "MOE",
                                 "dispatch: PERMUTE dropless: true token_dispatcher: "
                                 "RAGGED_ALL_TO_ALL ragged_buffer_factor: 2"));
  ASSERT_TRUE(ragged.ok()) << ragged.status().message();
  auto written = MaxTextOverrides(*ragged);
  ASSERT_TRUE(written.ok());
  EXPECT_NE(written->find("sparse_matmul=true ragged_buffer_factor=2"), std::string::npos)
      << *written;
  auto maxtext = LoadText(
      Replace(kTpu, "MOE", "dispatch: EINSUM capacity_factor: 1.25 capacity_convention: MAXTEXT"));
  ASSERT_TRUE(maxtext.ok()) << maxtext.status().message();
  written = MaxTextOverrides(*maxtext);
  ASSERT_TRUE(written.ok());
  EXPECT_NE(written->find("sparse_matmul=false capacity_factor=1.25"), std::string::npos)
      << *written;
  auto back = ParseMaxTextOverrides(*written);
  ASSERT_TRUE(back.ok()) << back.status().message();
}

}  // namespace
}  // namespace moesim
