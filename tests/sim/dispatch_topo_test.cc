// MoE dispatch / combine on a real topology against DeepEP's published normal-kernel figures
// (deepseek-ai/DeepEP docs/legacy.md: H800, CX7 400 Gb/s, 4096 tokens, hidden 7168, top-4
// groups, top-8 of 256 experts, FP8 dispatch, BF16 combine), and `moesim collective --op
// dispatch|combine` as a user runs it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <numeric>
#include <string>

#include "sim/collectives/dispatch.h"
#include "sim/topology/topology_network.h"
#include "tests/run_command.h"
#include "topologies/topology.h"

namespace moesim::sim {
namespace {

const std::string kH800 = std::string(MOESIM_SOURCE_DIR) + "/topologies/h800-cx7-8x8.textproto";

// Published bottleneck bandwidths (GB/s): EP 8 153 / 158 over NVLink; EP 16 43 / 43, EP 32
// 58 / 57, EP 64 51 / 50 over RDMA. Simulated (analytical, link efficiency 0.8 on NVLink 160 and
// IB 50 GB/s): 145.8 / 146.0, 44.6 / 44.6, 53.2 / 53.3, 45.6 / 45.7. Within 15% each.
TEST(DispatchDeepEp, HierarchicalReproducesThePublishedNormalKernelFigures) {
  auto hw = DefaultHardwareFor(kH800);
  ASSERT_TRUE(hw.ok()) << hw.status().message();
  auto topo = BuildTopology(kH800, *hw);
  ASSERT_TRUE(topo.ok()) << topo.status().message();
  const TopologyNetwork net = TopologyNetwork::Make(*topo, *hw);
  AnalyticalCollectiveTimer timer(&net.links, net.route);
  int checked = 0;
  for (int ep : {8, 16, 32, 64}) {
    DispatchSpec spec;  // defaults: DeepEP's workload (4096 x 7168, 256 experts, top-8, FP8)
    spec.group.resize(static_cast<size_t>(ep));
    std::iota(spec.group.begin(), spec.group.end(), 0);
    spec.max_nodes_per_token = 4;
    for (DispatchDirection d : {DispatchDirection::kDispatch, DispatchDirection::kCombine}) {
      auto plan = BuildDispatchPlan(spec, Dispatcher::kHierarchical, d);
      ASSERT_TRUE(plan.ok()) << plan.status().message();
      const double bw = ExpectedTraffic(spec, d).bottleneck_bytes / timer.Seconds(*plan);
      const auto published = DeepEpPublishedBandwidth(spec, d);
      ASSERT_TRUE(published.has_value()) << ep;
      EXPECT_NEAR(bw / *published, 1, 0.15) << "EP " << ep << " " << DispatchDirectionName(d)
                                            << ": " << bw / 1e9 << " GB/s vs " << *published / 1e9;
      ++checked;
      // The flow level agrees when nothing else runs.
      auto flow = FlowCollectiveSeconds(*plan, net.links, net.route);
      ASSERT_TRUE(flow.ok());
      EXPECT_NEAR(*flow, timer.Seconds(*plan), 1e-3 * *flow);
    }
  }
  EXPECT_EQ(checked, 8);
  // Another workload has no published figure.
  DispatchSpec other;
  other.group.resize(16);
  std::iota(other.group.begin(), other.group.end(), 0);
  other.top_k = 6;
  EXPECT_FALSE(DeepEpPublishedBandwidth(other, DispatchDirection::kDispatch).has_value());
}

using test_cli::Moesim;
using test_cli::RunResult;

TEST(DispatchCli, JsonRowsCarryThePublishedFiguresAndErrors) {
  for (const std::string op : {"dispatch", "combine"}) {
    const RunResult r =
        Moesim("collective --topology " + kH800 + " --op " + op + " --ep 8,16,32,64 --json -");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["op"], op);
    EXPECT_EQ(j["dispatcher"], "hierarchical");
    ASSERT_EQ(j["rows"].size(), 4u);
    for (const auto& row : j["rows"]) {
      EXPECT_EQ(row["ranks_per_node"], 8);
      EXPECT_EQ(row["bottleneck_link"], row["ep"] == 8 ? "NVLink" : "RDMA");
      EXPECT_DOUBLE_EQ(row["bottleneck_bytes_per_s"].get<double>(),
                       row["bottleneck_bytes"].get<double>() / row["time_s"].get<double>());
      ASSERT_TRUE(row["published_bytes_per_s"].is_number()) << row;
      EXPECT_LT(std::abs(row["error"].get<double>()), 0.15) << row;
      EXPECT_GT(row["layout_time_s"].get<double>(), 0);
      EXPECT_LT(row["layout_time_s"].get<double>(), 20e-6);  // latency-bound
    }
  }
  // The table names the figures; an H100 cluster gets no published column.
  const RunResult t = Moesim("collective --topology " + kH800 + " --op dispatch --ep 64");
  EXPECT_NE(t.out.find("published(GB/s)"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("  51  "), std::string::npos) << t.out;
  const RunResult h = Moesim("collective --topology dgx-h100:8 --op combine --ep 64 --json -");
  ASSERT_EQ(h.exit_code, 0) << h.out;
  EXPECT_TRUE(nlohmann::json::parse(h.out)["rows"][0]["published_bytes_per_s"].is_null());
}

TEST(DispatchCli, SameCommandTwiceGivesByteIdenticalJson) {
  const std::string args = "collective --topology " + kH800 +
                           " --op dispatch --ep 16,64 --dispatcher flat --network flow --json -";
  const RunResult a = Moesim(args), b = Moesim(args);
  ASSERT_EQ(a.exit_code, 0) << a.out;
  EXPECT_EQ(a.out, b.out);
}

TEST(DispatchCli, BadInputExitsTwoWithAMessage) {
  struct Case {
    std::string args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"--topology dgx-h100:8 --op dispatch",
       "moesim collective: --op dispatch: give the EP group(s) with either --ep 8,16,... or "
       "--group\n"},
      {"--topology dgx-h100:8 --op combine --ep 8 --bytes 1M",
       "moesim collective: --op combine: --bytes and --algorithm are for the nccl-tests "
       "collectives; the sizes come from --tokens, --hidden and the routing, the algorithm from "
       "--dispatcher\n"},
      {"--topology dgx-h100:8 --op dispatch --ep 8,x",
       "moesim collective: --ep 8,x: expected positive integers separated by commas, e.g. "
       "8,16,32\n"},
      {"--topology dgx-h100:8 --op dispatch --ep 8 --dispatcher deepep",
       "moesim collective: --dispatcher: unknown dispatcher \"deepep\" (one of: hierarchical, "
       "flat, allgather)\n"},
      {"--topology dgx-h100:8 --op dispatch --ep 8 --dispatch-precision fp4",
       "moesim collective: --dispatch-precision fp4: one of fp8, bf16\n"},
      {"--topology dgx-h100:8 --op dispatch --ep 12 --experts 256",
       "moesim collective: EP 12: num_experts=256 must be a positive multiple of ranks=12, at "
       "most 1048576\n"},
      {"--topology dgx-h100:1 --op dispatch --ep 16",
       "moesim collective: --ep 16: topology \"dgx-h100:1\" has 8 devices\n"},
      {"--topology dgx-h100:8 --op dispatch --ep 8 --ranks-per-node -1",
       "moesim collective: --ranks-per-node -1: must be > 0 (or 0: from the topology)\n"},
      {"--topology dgx-h100:8 --op dispatch --ep 16 --hidden 0",
       "moesim collective: EP 16: hidden=0 must be in [1, 2^20]\n"},
      {"--topology dgx-h100:1 --op all_reduce --group 8",
       "moesim collective: --op all_reduce: --group and --bytes are required\n"},
  };
  for (const Case& c : cases) {
    const RunResult r = Moesim("collective " + c.args + " 2>&1 >/dev/null");
    EXPECT_EQ(r.exit_code, 2) << c.args;
    EXPECT_EQ(r.out, c.message) << c.args;
  }
}

}  // namespace
}  // namespace moesim::sim
