// One routing histogram per MoE layer (moesim.proto Moe.routing_histogram_file): each MoE layer's
// all-to-alls and expert GEMMs are paced by its own busiest rank, worked by hand on two layers;
// the file's row count is checked; a one-row file is today's one histogram for every layer.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "costmodel/opgraph.h"
#include "costmodel/step_plan.h"
#include "proto/scenario_loader.h"
#include "tests/scenario_text.h"

namespace moesim {
namespace {

using namespace moesim::scenario_text;  // NOLINT

// Two MoE layers, 4 experts top-1, dropless, one expert per rank of EP 4 (data 2 x ep 4 on one
// DGX H100 node).
constexpr char kTwoLayers[] = R"(
name: "t/per-layer"
model {
  name: "t" num_layers: 2 d_model: 1024 num_heads: 8 num_kv_heads: 8 head_dim: 128 d_ff: 4096
  vocab_size: 32000 seq_len: 1024 ffn_kind: SWIGLU
  moe { num_experts: 4 top_k: 1 dropless: true placement: EVERY_K placement_k: 1
        dispatch: PERMUTE routing: HISTOGRAM routing_histogram_file: "@FILE@" }
}
cluster { topology: "dgx-h100:1" }
sharding { mesh { axes { name: "data" size: 2 role: DATA } axes { name: "ep" size: 4 role: EXPERT } } }
training { global_batch_tokens: 16384 micro_batch_size: 2 recompute: NONE }
)";

std::string TempDir() {
  std::string dir = ::testing::TempDir();
  if (!dir.empty() && dir.back() == '/') dir.pop_back();
  return dir;
}

Expected<Scenario> LoadWithHistogram(const std::string& name, const std::string& contents) {
  const std::string dir = TempDir();
  std::ofstream(dir + "/" + name) << contents;
  return LoadScenarioFromText(Replace(kTwoLayers, "@FILE@", name), "t.textproto", {}, dir);
}

// name -> value over micro-batch 0's forward ops.
struct Figures {
  std::map<std::string, double> max_over_mean, flops, bytes;
};
Figures FiguresOf(const Scenario& sc) {
  Figures f;
  for (const Op& op : BuildStepGraph(sc).ops) {
    if (op.micro_batch != 0) continue;
    if (op.is_collective) {
      f.max_over_mean[op.name] = op.collective.max_over_mean;
    } else {
      f.flops[op.name] = op.compute.flops;
      f.bytes[op.name] = op.compute.bytes;
    }
  }
  return f;
}

// Layer 0: 1 1 1 1, every rank a quarter of the tokens: max over mean 1. Layer 1: 3 1 1 1, expert
// 0 (on rank 0) gets 3 / 6 = 1/2 of the tokens; the mean rank gets 1/4, so the busiest rank
// carries 1/2 x 4 ranks = 2 times the mean. Dropless: layer 1's dispatch and combine all-to-alls
// have max_over_mean 2, and its busiest rank computes 2 x the slots of layer 0's: twice the
// routed experts' FLOPs (w1, w3, w2) and the activation's HBM bytes.
TEST(PerLayerRouting, EachMoeLayerPacedByItsOwnBusiestRank) {
  auto sc = LoadWithHistogram("two_rows.txt", "# layer 0\n1 1 1 1\n\n# layer 1\n3, 1, 1, 1\n");
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  ASSERT_EQ(sc->model.moe.layer_expert_load.size(), 2u);
  const double factor = 0.5 * 4;
  const Figures f = FiguresOf(*sc);
  EXPECT_DOUBLE_EQ(f.max_over_mean.at("L0.moe.dispatch_a2a"), 1.0);
  EXPECT_DOUBLE_EQ(f.max_over_mean.at("L0.moe.combine_a2a"), 1.0);
  EXPECT_DOUBLE_EQ(f.max_over_mean.at("L1.moe.dispatch_a2a"), factor);
  EXPECT_DOUBLE_EQ(f.max_over_mean.at("L1.moe.combine_a2a"), factor);
  for (const char* op : {"moe.w1", "moe.w3", "moe.w2"}) {
    const double f0 = f.flops.at(std::string("L0.") + op);
    EXPECT_GT(f0, 0) << op;
    EXPECT_DOUBLE_EQ(f.flops.at(std::string("L1.") + op), factor * f0) << op;
  }
  EXPECT_DOUBLE_EQ(f.bytes.at("L1.moe.act"), factor * f.bytes.at("L0.moe.act"));
  // The rest of the layer does not depend on the routing.
  EXPECT_DOUBLE_EQ(f.flops.at("L1.moe.router"), f.flops.at("L0.moe.router"));
  // The plan's own figures are the first MoE layer's.
  const StepPlan p = MakeStepPlan(*sc);
  EXPECT_DOUBLE_EQ(p.busiest_rank_load, 1.0);
}

// A row per MoE layer equals that layer's histogram given alone; one row is today's histogram,
// for every layer, over any line breaks.
TEST(PerLayerRouting, OneRowIsOneHistogramForEveryLayer) {
  auto one = LoadWithHistogram("one_row.txt", "3 1 1 1\n");
  auto split = LoadWithHistogram("split_row.txt", "3 1\n1 1\n");
  auto two = LoadWithHistogram("same_rows.txt", "3 1 1 1\n6 2 2 2\n");
  ASSERT_TRUE(one.ok()) << one.status().message();
  ASSERT_TRUE(split.ok()) << split.status().message();
  ASSERT_TRUE(two.ok()) << two.status().message();
  EXPECT_TRUE(one->model.moe.layer_expert_load.empty());
  EXPECT_TRUE(split->model.moe.layer_expert_load.empty());
  const Figures a = FiguresOf(*one), b = FiguresOf(*split), c = FiguresOf(*two);
  EXPECT_EQ(a.flops, b.flops);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.max_over_mean, b.max_over_mean);
  EXPECT_EQ(a.flops, c.flops);
  EXPECT_EQ(a.bytes, c.bytes);
  EXPECT_EQ(a.max_over_mean, c.max_over_mean);
  EXPECT_DOUBLE_EQ(a.max_over_mean.at("L0.moe.dispatch_a2a"), 2.0);
  EXPECT_DOUBLE_EQ(a.max_over_mean.at("L1.moe.dispatch_a2a"), 2.0);
}

TEST(PerLayerRouting, RowCountAndLengthErrorsNameFileAndLine) {
  const std::string dir = TempDir();
  auto three = LoadWithHistogram("three_rows.txt", "1 1 1 1\n1 1 1 1\n# c\n1 1 1 1\n");
  ASSERT_FALSE(three.ok());
  EXPECT_EQ(three.status().message(),
            "t.textproto:7: " + dir +
                "/three_rows.txt:4: more than 2 rows of 4 counts for 2 MoE layers "
                "(model.moe.routing_histogram_file holds one row, or one per MoE layer)");
  EXPECT_NE(three.status().message().find("routing_histogram_file"), std::string::npos)
      << three.status().message();
  auto short_row = LoadWithHistogram("short_row.txt", "1 1 1 1\n1 1 1\n1 1\n");
  ASSERT_FALSE(short_row.ok());
  EXPECT_EQ(short_row.status().message(),
            "t.textproto:7: " + dir +
                "/short_row.txt:2: 3 counts for 4 experts (model.moe.num_experts): a file of one "
                "histogram per MoE layer holds one row of 4 counts per line");
  auto zero = LoadWithHistogram("zero_row.txt", "1 1 1 1\n0 0 0 0\n");
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.status().message(),
            "t.textproto:7: " + dir + "/zero_row.txt:2: routing histogram sums to 0");
}

}  // namespace
}  // namespace moesim
