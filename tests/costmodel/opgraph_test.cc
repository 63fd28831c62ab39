// The step program against independent counts: its FLOPs summed over devices against the model's
// FLOPs (a second derivation), its collectives against the sharding rules worked out by hand.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <map>

#include "costmodel/costmodel.h"
#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

// 4 layers, d_model 256, 8 heads, SwiGLU 1024, vocab 1024, seq 128; 16 TPU-v5e; 512 sequences.
const char* const kDense = R"(
model { num_layers: 4 d_model: 256 num_heads: 8 d_ff: 1024 vocab_size: 1024 seq_len: 128
        ffn_kind: SWIGLU }
cluster { topology: "tpu-v5e:4x4" }
sharding { strategy: DATA_PARALLEL mesh { data: 16 } }
training { global_batch_tokens: 65536 }
)";

Scenario Load(const char* text, std::vector<std::string> overrides) {
  auto sc = LoadScenarioFromText(text, "t", overrides);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return sc.ok() ? *sc : Scenario{};
}

void ExpectTopological(const OpGraph& g) {
  for (const Op& op : g.ops) {
    for (int32_t d : op.deps) EXPECT_LT(d, op.id) << op.name;
  }
}

double ModelHardwareFlops(const Scenario& sc) {
  return ComputeModelCost(sc.model, sc.training).flops_per_token.hardware *
         static_cast<double>(sc.training.global_batch_tokens);
}

class DenseFlops : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(DenseFlops, ProgramFlopsOverAllDevicesEqualModelHardwareFlops) {
  // Every device computes its shard; summed over devices the matmuls must be exactly the
  // model's hardware FLOPs (model_cost.cc derives them per token from the same catalogue but
  // without any sharding, micro-batching or pipelining).
  const Scenario sc = Load(kDense, GetParam());
  const OpGraph g = BuildStepGraph(sc);
  ExpectTopological(g);
  EXPECT_NEAR(g.hardware_flops_per_step / ModelHardwareFlops(sc), 1.0, 1e-12);
}

INSTANTIATE_TEST_SUITE_P(
    Shardings, DenseFlops,
    ::testing::Values(
        std::vector<std::string>{}, std::vector<std::string>{"training.recompute=FULL"},
        std::vector<std::string>{"training.recompute=SELECTIVE", "training.flash_attention=false"},
        std::vector<std::string>{"training.micro_batch_size=8"},
        std::vector<std::string>{"sharding.strategy=FSDP"},
        std::vector<std::string>{"sharding.strategy=MEGATRON", "sharding.mesh.data=4",
                                 "sharding.mesh.model=4"},
        std::vector<std::string>{"sharding.strategy=MEGATRON", "sharding.mesh.data=4",
                                 "sharding.mesh.pipeline=4", "training.micro_batch_size=4"},
        std::vector<std::string>{"sharding.strategy=MEGATRON", "sharding.mesh.data=8",
                                 "sharding.mesh.pipeline=2", "training.micro_batch_size=4",
                                 "training.pipeline_schedule=INTERLEAVED",
                                 "training.virtual_stages=2"}));

int Count(const OpGraph& g, const std::string& suffix, CollectiveKind kind) {
  int n = 0;
  for (const Op& op : g.ops) {
    if (op.is_collective && op.collective.kind == kind && op.name.size() >= suffix.size() &&
        op.name.compare(op.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      ++n;
    }
  }
  return n;
}

TEST(OpGraph, DataParallelAllReducesEveryLayersGradientsOnce) {
  const Scenario sc = Load(kDense, {"training.micro_batch_size=8"});  // 4 micro-batches
  const OpGraph g = BuildStepGraph(sc);
  // 4 layers + embedding + head (final norm and untied head matrix): 6 all-reduces over data,
  // only after the last micro-batch.
  EXPECT_EQ(Count(g, "grads.all_reduce", CollectiveKind::kAllReduce), 6);
  double bytes = 0;
  for (const Op& op : g.ops) {
    if (op.name.find("grads.") != std::string::npos) {
      EXPECT_EQ(op.collective.axes, (std::vector<MeshAxis>{MeshAxis::kData}));
      bytes += op.collective.bytes;
    }
  }
  // All bf16 gradients once: per layer 4*256^2 + 3*256*1024 + 2*256 = 1,049,088 params,
  // x4 = 4,196,352; embedding and head 2 * 1024*256 = 524,288; final norm 256.
  EXPECT_DOUBLE_EQ(bytes, 2.0 * (4196352 + 524288 + 256));
}

TEST(OpGraph, MegatronTensorParallelHasTwoReduceScattersPerLayerForward) {
  const Scenario sc =
      Load(kDense, {"sharding.strategy=MEGATRON", "sharding.mesh.data=4", "sharding.mesh.model=4"});
  const OpGraph g = BuildStepGraph(sc);
  int ag = 0, rs = 0;
  for (const Op& op : g.ops) {
    if (op.phase != Phase::kForward || op.layer < 0 || !op.is_collective) continue;
    EXPECT_EQ(op.collective.axes, (std::vector<MeshAxis>{MeshAxis::kModel}));
    // Sequence parallel: 512 sequences over 4 data shards = 128 per model group; [b=128,
    // s=128, m=256] bf16 = 8,388,608 bytes gathered or reduce-scattered at each block boundary.
    EXPECT_DOUBLE_EQ(op.collective.bytes, 128.0 * 128 * 256 * 2);
    ag += op.collective.kind == CollectiveKind::kAllGather;
    rs += op.collective.kind == CollectiveKind::kReduceScatter;
  }
  EXPECT_EQ(ag, 2 * 4);  // attention and FFN inputs, 4 layers
  EXPECT_EQ(rs, 2 * 4);  // attention and FFN outputs
}

TEST(OpGraph, PipelineOneFOneBOrderOnTheFirstStage) {
  // 2 stages; 512 sequences / 8 data shards = 64, in micro-batches of 16: 4 micro-batches.
  // Stage 0 does 1 warm-up forward, then F1 B0 F2 B1 F3 B2, then B3.
  const Scenario sc = Load(kDense, {"sharding.strategy=MEGATRON", "sharding.mesh.data=8",
                                    "sharding.mesh.pipeline=2", "training.micro_batch_size=16"});
  const OpGraph g = BuildStepGraph(sc);
  ExpectTopological(g);
  std::string order;
  int last_mb = -1;
  Phase last_phase = Phase::kOptimizer;
  for (const Op& op : g.ops) {
    if (op.program != 0 || op.is_collective || op.micro_batch < 0) continue;
    if (op.micro_batch != last_mb || op.phase != last_phase) {
      const char c = op.phase == Phase::kForward ? 'F' : 'B';
      if (order.empty() ||
          order.substr(order.size() - 2) != std::string{c} + std::to_string(op.micro_batch)) {
        order += std::string{c} + std::to_string(op.micro_batch);
      }
      last_mb = op.micro_batch;
      last_phase = op.phase;
    }
  }
  EXPECT_EQ(order, "F0F1B0F2B1F3B2B3");
}

// The default scenario: Apple 2024 1.6B/64E on 256 v5e, mesh (4, 64, 1), recompute FULL.
TEST(OpGraph, Apple3dMoeLayerCollectives) {
  auto sc = LoadScenario({});
  ASSERT_TRUE(sc.ok());
  const OpGraph g = BuildStepGraph(*sc);
  ExpectTopological(g);
  // Per device: 2 sequences of 2048 = 4096 tokens; O = 4 outer batches over data (1 local),
  // 256 groups (num_groups) of 2^20 / (4 x 256) = 1024 tokens per outer, over 64 experts (4
  // local); capacity per token: C = 2.0 * 1024 / 64 = 32.
  // The dispatched buffer [O 1, E 64, G 4, C 32, M 2048] bf16 = 33,554,432 bytes: twice the
  // device's 4096 tokens of 2048 x 2 bytes, top-2 with no padding.
  int a2a_fwd = 0;
  for (const Op& op : g.ops) {
    if (op.is_collective && op.collective.kind == CollectiveKind::kAllToAll) {
      EXPECT_DOUBLE_EQ(op.collective.bytes, 64.0 * 4 * 32 * 2048 * 2);
      EXPECT_DOUBLE_EQ(op.collective.bytes, 2.0 * 4096 * 2048 * 2);
      EXPECT_EQ(op.collective.axes, (std::vector<MeshAxis>{MeshAxis::kExpert}));
      a2a_fwd += op.phase == Phase::kForward;
    }
  }
  EXPECT_EQ(a2a_fwd, 2 * 6);  // dispatch and combine in each of the 6 MoE layers
  // Dense layers: weights FSDP over Expert; gradients reduce-scattered over Expert then
  // all-reduced over Data. Experts' gradients all-reduced over Data (replicas across outer
  // batches); the replicated router's over Data and Expert.
  std::map<std::string, int> grads;
  for (const Op& op : g.ops) {
    if (op.name.find("grads.") == std::string::npos) continue;
    std::string axes;
    for (MeshAxis a : op.collective.axes) axes += MeshAxisName(a) + std::string(" ");
    grads[std::string(CollectiveKindName(op.collective.kind)) + " " + axes]++;
  }
  // Reduce-scatters over expert: 24 layers (attention, norms, dense FFN weights) + embedding
  // + head (untied) = 26. All-reduces over data: 18 dense layers' sharded grads + 6 MoE layers
  // (their attention shard and their experts: same axes, merged) + embedding + head = 26.
  // All-reduce over data and expert: the router of each MoE layer = 6.
  EXPECT_EQ(grads["reduce_scatter expert "], 26);
  EXPECT_EQ(grads["all_reduce data "], 26);
  EXPECT_EQ(grads["all_reduce data expert "], 6);
}

TEST(OpGraph, EinsumMoeHardwareFlopsCountPaddingAndDispatch) {
  // Second derivation: the model's hardware FLOPs count top-2 experts per token; the einsum
  // program adds the dispatch and combine einsums (2 x E x C x M FLOPs per token each) and
  // computes every capacity slot. Backward repeats the combine einsum twice (tokens and combine
  // weights take gradients) but the dispatch einsum once: the 0/1 dispatch mask takes none, so
  // the einsums count 3 + 2 = 5 times in all. Groups of 1024 tokens, 64 experts, d_model 2048,
  // expert FFN SwiGLU 3 x 2 x 2048 x 8192 = 100,663,296 FLOPs per slot, 6 MoE layers, x3 for
  // backward.
  const double tokens = 1 << 20;
  const double slot_flops = 3.0 * 2 * 2048 * 8192;
  {
    // AXLearn's convention: C = 2.0 * 1024 / 64 = 32, E*C = 2048 slots per 1024 tokens: exactly
    // top-2, no padding. Dispatch einsum: 2 * 2048 * 2048 = 8,388,608 per token.
    auto sc = LoadScenario({"", {"training.recompute=NONE"}});
    ASSERT_TRUE(sc.ok());
    const OpGraph g = BuildStepGraph(*sc);
    const double einsum = 2.0 * 2048 * 2048;
    EXPECT_NEAR(g.hardware_flops_per_step / (ModelHardwareFlops(*sc) + 5 * 6 * tokens * einsum),
                1.0, 1e-12);
  }
  {
    // Capacity per routed token: C = 2.0 * 2 * 1024 / 64 = 64, E*C = 4096 slots per 1024 tokens:
    // 4 per token, 2 more than top-2 needs; dispatch 2 * 4096 * 2048 = 16,777,216 per token.
    auto sc = LoadScenario(
        {"", {"training.recompute=NONE", "model.moe.capacity_convention=PER_ROUTED_TOKEN"}});
    ASSERT_TRUE(sc.ok());
    const OpGraph g = BuildStepGraph(*sc);
    const double extra = 3 * 2 * slot_flops + 5 * (2.0 * 4096 * 2048);
    EXPECT_NEAR(g.hardware_flops_per_step / (ModelHardwareFlops(*sc) + 6 * tokens * extra), 1.0,
                1e-12);
  }
}

TEST(OpGraph, EinsumDispatchBackwardAndGatingTraffic) {
  auto sc = LoadScenario({"", {"training.recompute=NONE"}});
  ASSERT_TRUE(sc.ok());
  const OpGraph g = BuildStepGraph(*sc);
  std::map<std::string, int> n;
  double gate_bytes = 0;
  for (const Op& op : g.ops) {
    if (op.name.find("moe.") == std::string::npos) continue;
    n[op.name.substr(op.name.find("moe."))]++;
    if (op.name.find("moe.gate") != std::string::npos && op.phase == Phase::kForward) {
      gate_bytes = op.compute.bytes;
    }
  }
  // 6 MoE layers: the dispatch mask takes no gradient, the combine weights do.
  EXPECT_EQ(n["moe.dispatch.grad_b"], 6);
  EXPECT_EQ(n["moe.dispatch.grad_a"], 0);
  EXPECT_EQ(n["moe.combine.grad_a"], 6);
  EXPECT_EQ(n["moe.combine.grad_b"], 6);
  // Per device: probabilities [4096 tokens, 64] fp32 read and written (2,097,152 bytes), and the
  // [4 groups, 1024, 64, C 32] combine weights (fp32) plus dispatch mask (1 byte) written:
  // 8,388,608 x 5 = 41,943,040 bytes.
  EXPECT_DOUBLE_EQ(gate_bytes, 2.0 * 4096 * 64 * 4 + 4.0 * 1024 * 64 * 32 * 5);
}

TEST(OpGraph, PermuteDispatchComputesOnlyRoutedTokens) {
  auto sc = LoadScenario({"",
                          {"training.recompute=NONE", "model.moe.dispatch=PERMUTE",
                           "model.moe.capacity_convention=PER_ROUTED_TOKEN"}});
  ASSERT_TRUE(sc.ok());
  const OpGraph g = BuildStepGraph(*sc);
  // Uniform routing, capacity 2.0: nothing dropped; slots = top-2 x tokens exactly.
  EXPECT_NEAR(g.hardware_flops_per_step / ModelHardwareFlops(*sc), 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(g.dropped_token_fraction, 0);
  EXPECT_DOUBLE_EQ(g.busiest_expert_rank_load, 1);
}

TEST(OpGraph, SkewedRoutingLoadsTheHottestRank) {
  // Zipf exponent 1 over 64 experts, one per rank: expert 0 wants 1/H_64 of the routed tokens,
  // H_64 = 4.7439; capacity per routed token 2.0 allows 2.0/64 = 1/32 of them.
  auto sc = LoadScenario(
      {"",
       {"model.moe.dispatch=PERMUTE", "model.moe.routing=ZIPF", "model.moe.routing_zipf_exponent=1",
        "model.moe.capacity_convention=PER_ROUTED_TOKEN"}});
  ASSERT_TRUE(sc.ok());
  const OpGraph g = BuildStepGraph(*sc);
  // Routed after capping: experts with share 1/(i H) > 1/32, i.e. i < 32/H = 6.75 (i = 1..6),
  // are capped at 1/32 each; the rest keep theirs. Kept = 6/32 + (H_64 - H_6)/H_64.
  double h64 = 0, h6 = 0;
  for (int i = 1; i <= 64; ++i) h64 += 1.0 / i;
  for (int i = 1; i <= 6; ++i) h6 += 1.0 / i;
  const double kept = 6.0 / 32 + (h64 - h6) / h64;
  EXPECT_NEAR(g.dropped_token_fraction, 1 - kept, 1e-12);
  EXPECT_NEAR(g.busiest_expert_rank_load, (1.0 / 32) / (kept / 64), 1e-12);
}

TEST(OpGraph, ElementwiseOpsNameTheirKernel) {
  // What `moesim calibrate` measures per kernel reaches the ops made of it; softmax's and
  // cross-entropy's backward reuse the forward's probabilities and only stream (axpy).
  const Scenario sc = Load(kDense, {"training.flash_attention=false"});
  const OpGraph g = BuildStepGraph(sc);
  std::map<std::string, std::string> kernel;
  std::map<std::string, double> bytes;
  for (const Op& op : g.ops) {
    if (op.is_collective) continue;
    const bool layer = op.name.size() > 1 && op.name[0] == 'L' && std::isdigit(op.name[1]);
    const std::string name = layer ? op.name.substr(op.name.find('.') + 1) : op.name;
    kernel[name] = op.compute.kernel ? MemoryKernelName(*op.compute.kernel) : "-";
    bytes[name] = op.compute.bytes;
  }
  // Backward bytes from what each pass reads and writes, in tensors of the op's shape:
  // RMSNorm x, y -> x, dy, dx; SwiGLU a, b, h -> a, b, dh, da, db; residual: the two
  // gradients merge (dy, df -> dx), as the forward's add; softmax s, p -> p, dp, ds;
  // cross-entropy: 3 passes over the logits forward, probabilities -> dlogits backward.
  EXPECT_DOUBLE_EQ(bytes["ffn.norm.bwd"] / bytes["ffn.norm"], 3.0 / 2);
  EXPECT_DOUBLE_EQ(bytes["ffn.act.bwd"] / bytes["ffn.act"], 5.0 / 3);
  EXPECT_DOUBLE_EQ(bytes["ffn.residual.bwd"] / bytes["ffn.residual"], 1.0);
  EXPECT_DOUBLE_EQ(bytes["attn.softmax.bwd"] / bytes["attn.softmax"], 3.0 / 2);
  EXPECT_DOUBLE_EQ(bytes["head.loss.bwd"] / bytes["head.loss"], 2.0 / 3);
  // 65,536 tokens over 16 data-parallel devices: 4,096 per device, d_model 256, bf16, read
  // and written: 4,194,304 bytes for the norm's forward.
  EXPECT_DOUBLE_EQ(bytes["ffn.norm"], 4096.0 * 256 * 2 * 2);
  EXPECT_EQ(kernel["attn.softmax"], "softmax");
  EXPECT_EQ(kernel["attn.softmax.bwd"], "axpy");
  EXPECT_EQ(kernel["ffn.act"], "swiglu");
  EXPECT_EQ(kernel["ffn.act.bwd"], "swiglu");
  EXPECT_EQ(kernel["attn.norm"], "rmsnorm");
  EXPECT_EQ(kernel["ffn.residual"], "axpy");
  EXPECT_EQ(kernel["head.loss"], "softmax");
  EXPECT_EQ(kernel["head.loss.bwd"], "axpy");
  EXPECT_EQ(kernel["embed.lookup"], "copy");
  EXPECT_EQ(kernel["optimizer.step"], "adamw");
  EXPECT_EQ(kernel["ffn.w1"], "-");  // GEMMs: bound by FLOPs, or by memory at memory_efficiency
}

}  // namespace
}  // namespace moesim

namespace moesim {
namespace {

// The op bound callers check before building (limits::kMaxStepOps, the memory estimate) holds
// for every shipped scenario, under every recomputation and pipeline schedule, and is tight
// enough to refuse only what is really large: within 1.5x of the ops actually built.
TEST(OpGraph, OpBoundCoversTheBuiltGraphOfEveryShippedScenario) {
  const std::filesystem::path root = std::filesystem::path(MOESIM_SOURCE_DIR) / "scenarios";
  int checked = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.path().extension() != ".textproto") continue;
    for (const std::string recompute : {"NONE", "SELECTIVE", "FULL"}) {
      std::vector<std::string> set = {"training.recompute=" + recompute};
      if (recompute == "FULL") {
        // Full recomputation is refused with the all-to-all overlap, as Megatron-Core refuses it.
        set.push_back("training.overlap_moe_expert_parallel_comm=false");
        set.push_back("training.delay_wgrad_compute=false");
      }
      auto sc = LoadScenario({e.path().string(), set});
      ASSERT_TRUE(sc.ok()) << sc.status().message();
      const double bound = StepGraphOpBound(*sc);
      const double built = static_cast<double>(BuildStepGraph(*sc).ops.size());
      EXPECT_GE(bound, built) << e.path() << " " << recompute;
      EXPECT_LE(bound, 1.5 * built) << e.path() << " " << recompute;
      ++checked;
    }
  }
  EXPECT_GE(checked, 3 * 30);
}

}  // namespace
}  // namespace moesim
