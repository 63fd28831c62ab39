// Topology files: every shipped topologies/*.textproto builds; the written-out graph format;
// file errors; the route cache.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "proto/topology_name.h"
#include "tests/topologies/test_util.h"
#include "topologies/analysis.h"

namespace moesim {
namespace {

namespace fs = std::filesystem;

std::string WriteTemp(const std::string& name, const std::string& text) {
  const fs::path p = fs::path(::testing::TempDir()) / name;
  std::ofstream(p) << text;
  return p.string();
}

TEST(TopologyFiles, EveryShippedFileBuilds) {
  int count = 0;
  for (const auto& e : fs::directory_iterator(fs::path(MOESIM_SOURCE_DIR) / "topologies")) {
    if (e.path().extension() != ".textproto") continue;
    ++count;
    auto topo = testing::Build(e.path().string());
    ASSERT_TRUE(topo) << e.path();
    EXPECT_GT(topo->num_devices(), 1) << e.path();
  }
  EXPECT_GE(count, 10);
}

TEST(TopologyFiles, BaseFileIsTheParameterizedTopology) {
  const std::string path =
      std::string(MOESIM_SOURCE_DIR) + "/topologies/tpu-v5e-4pods-dcn.textproto";
  auto hw = DefaultHardwareFor(path);
  ASSERT_TRUE(hw.ok()) << hw.status().message();
  EXPECT_EQ(hw->chip, "tpu-v5e");
  auto topo = testing::Build(path);
  ASSERT_TRUE(topo);
  EXPECT_EQ(topo->num_devices(), 1024);
  EXPECT_EQ(topo->name(), "tpu-v5e:16x16*4");
}

TEST(TopologyFiles, WrittenOutGraphHgxA100) {
  // 4 GPUs, each pair joined by 4 NVLink3 links = 4 x 25 GB/s = 100 GB/s per direction (a third
  // of the profile's 300 GB/s bundle). 6 pairs = 12 one-way links; every pair 1 hop apart.
  // Bisection {0,1} | {2,3}: 4 pairs cross x 100 GB/s = 400 GB/s.
  auto topo =
      testing::Build(std::string(MOESIM_SOURCE_DIR) + "/topologies/hgx-a100-4gpu.textproto");
  ASSERT_TRUE(topo);
  EXPECT_EQ(topo->name(), "HGX A100 4-GPU");
  EXPECT_EQ(topo->num_devices(), 4);
  EXPECT_EQ(topo->links().size(), 12u);
  EXPECT_NEAR(topo->links()[0].bytes_per_s, 100e9, 1);
  EXPECT_EQ(topo->links()[0].latency_s, 2e-6);  // the profile's NVLink latency
  EXPECT_EQ(DiameterHops(*topo), 1);
  EXPECT_EQ(topo->Route(0, 3).size(), 1u);
  EXPECT_NEAR(BisectionBytesPerS(*topo), 400e9, 1);
}

TEST(TopologyFiles, SwitchedGraphRoutesByBfs) {
  // Two 2-GPU boxes with a PCIe switch each, joined by one Ethernet link between the switches.
  const std::string path = WriteTemp("two_boxes.textproto", R"(
name: "two boxes"
chip: "h100-sxm"
num_devices: 4
vertices { name: "sw0" }
vertices { name: "sw1" }
links { a: "0" b: "sw0" kind: PCIE bytes_per_s: 32e9 }
links { a: "1" b: "sw0" kind: PCIE bytes_per_s: 32e9 }
links { a: "2" b: "sw1" kind: PCIE bytes_per_s: 32e9 }
links { a: "3" b: "sw1" kind: PCIE bytes_per_s: 32e9 }
links { a: "sw0" b: "sw1" kind: ETHERNET bytes_per_s: 12.5e9 latency_s: 3e-6 }
)");
  auto topo = testing::Build(path);
  ASSERT_TRUE(topo);
  EXPECT_EQ(topo->num_vertices(), 6);
  const auto& r = topo->Route(0, 3);
  ASSERT_EQ(r.size(), 3u);
  testing::ExpectWalk(*topo, 0, 3, r);
  EXPECT_EQ(topo->links()[r[1]].kind, LinkKind::kEthernet);
  EXPECT_EQ(topo->links()[r[1]].latency_s, 3e-6);
  EXPECT_EQ(DiameterHops(*topo), 3);
  // Halves {0,1} | {2,3}: the one 12.5 GB/s Ethernet link.
  EXPECT_DOUBLE_EQ(BisectionBytesPerS(*topo), 12.5e9);
}

TEST(TopologyFiles, Errors) {
  const std::string unknown = WriteTemp("unknown_endpoint.textproto", R"(
chip: "h100-sxm"
num_devices: 2
links { a: "0" b: "sw9" kind: NVLINK }
)");
  EXPECT_EQ(testing::BuildError(unknown),
            unknown +
                ":4: links[0]: endpoint \"sw9\" is neither a device id in [0, 2) nor a "
                "vertex name");
  const std::string disconnected = WriteTemp("disconnected.textproto", R"(
name: "islands"
chip: "h100-sxm"
num_devices: 3
links { a: "0" b: "1" kind: NVLINK }
)");
  EXPECT_EQ(testing::BuildError(disconnected),
            disconnected + ": topology \"islands\": device 2 and device 0 cannot reach each other");
  const std::string syntax = WriteTemp("syntax.textproto", "chip: \"h100-sxm\"\nnum_devices: x\n");
  EXPECT_EQ(testing::BuildError(syntax).rfind(syntax + ":2:14: ", 0), 0u)
      << testing::BuildError(syntax);
  const std::string both = WriteTemp("both.textproto", "base: \"tpu-v4:4x4x4\"\nnum_devices: 4\n");
  EXPECT_EQ(testing::BuildError(both), both + ":1: give either base or the graph, not both");
  EXPECT_EQ(testing::BuildError("no/such/file.textproto"),
            std::string("topology \"no/such/file.textproto\" is neither a known topology name (") +
                TopologyNameForms() + ") nor a readable file");
}

// Every refusal of a written-out graph names the file, the line and the field.
TEST(TopologyFiles, GraphErrorsNameLineAndField) {
  const std::string self = WriteTemp("self_link.textproto", R"(chip: "h100-sxm"
num_devices: 2
links { a: "0" b: "1" kind: NVLINK }
links { a: "1" b: "1" kind: NVLINK }
)");
  EXPECT_EQ(testing::BuildError(self),
            self + ":4: links[1]: link 1 -> 1: a link must join two different vertices");
  const std::string twice = WriteTemp("link_twice.textproto", R"(chip: "h100-sxm"
num_devices: 2
links { a: "0" b: "1" kind: NVLINK }
links {
  a: "0"
  b: "1"
  kind: NVLINK
}
)");
  EXPECT_EQ(testing::BuildError(twice), twice + ":4: links[1]: link 0 -> 1 given twice");
  const std::string rate = WriteTemp("bad_rate.textproto", R"(chip: "h100-sxm"
num_devices: 2
links { a: "0" b: "1" kind: NVLINK bytes_per_s: 1e9 latency_s: -1 }
)");
  EXPECT_EQ(testing::BuildError(rate),
            rate + ":3: links[0]: link 0 -> 1: bytes_per_s must be > 0 and latency_s >= 0");
  const std::string kind = WriteTemp("no_kind.textproto", R"(chip: "h100-sxm"
num_devices: 2

links { a: "0" b: "1" }
)");
  EXPECT_EQ(testing::BuildError(kind), kind + ":4: links[0]: kind is missing");
  const std::string vertex = WriteTemp("vertex_name.textproto", R"(chip: "h100-sxm"
num_devices: 2
vertices { name: "sw" kind: SWITCH }
vertices { name: "sw" kind: SWITCH }
)");
  EXPECT_EQ(testing::BuildError(vertex),
            vertex + ":4: vertices[1]: name \"sw\" is empty or not unique");
  const std::string dims = WriteTemp("dims.textproto", R"(chip: "tpu-v4"
num_devices: 2
links { a: "0" b: "1" kind: ICI }
dims { name: "x" size: 2 }
dims { name: "y" size: 0 }
)");
  EXPECT_EQ(testing::BuildError(dims), dims + ":5: dims \"y\": size must be > 0");
  const std::string none = WriteTemp("no_devices.textproto", "chip: \"h100-sxm\"\n");
  EXPECT_EQ(testing::BuildError(none), none + ": num_devices must be > 0 (or give base)");
}

TEST(RouteCache, SameVectorEveryTime) {
  auto topo = testing::Build("tpu-v4:4x4x4");
  ASSERT_TRUE(topo);
  const std::vector<LinkId>& a = topo->Route(0, 42);
  const std::vector<LinkId>& b = topo->Route(0, 42);
  EXPECT_EQ(&a, &b);
  std::vector<LinkId> fresh;
  topo->ComputeRoute(0, 42, &fresh);
  EXPECT_EQ(a, fresh);
}

TEST(RouteCache, ConcurrentCallersAgree) {
  // 8 threads ask for every route of a 4x4x4 cube in different orders; each answer must equal a
  // freshly computed route, and the cached vector must be the same object for all threads.
  auto topo = testing::Build("tpu-v4:4x4x4");
  ASSERT_TRUE(topo);
  const int n = 64;
  std::vector<std::vector<const std::vector<LinkId>*>> seen(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto& mine = seen[static_cast<size_t>(t)];
      mine.assign(n * n, nullptr);
      for (int k = 0; k < n * n; ++k) {
        const int idx = (k * 7 + t * 13) % (n * n);
        const int a = idx / n, b = idx % n;
        if (a != b) mine[static_cast<size_t>(idx)] = &topo->Route(a, b);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<LinkId> fresh;
  for (int idx = 0; idx < n * n; ++idx) {
    if (idx / n == idx % n) continue;
    topo->ComputeRoute(idx / n, idx % n, &fresh);
    for (int t = 0; t < 8; ++t) {
      ASSERT_EQ(seen[static_cast<size_t>(t)][static_cast<size_t>(idx)],
                seen[0][static_cast<size_t>(idx)]);
    }
    ASSERT_EQ(*seen[0][static_cast<size_t>(idx)], fresh);
  }
}

}  // namespace
}  // namespace moesim
