// `moesim topo` as a user runs it: its JSON contract, the table, exit code 2
// and the message on bad input.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/run_command.h"

namespace {

using moesim::test_cli::Moesim;
using moesim::test_cli::RunResult;

TEST(TopoCommand, JsonForAV5ePodWithAppleMesh) {
  const RunResult r = Moesim("topo tpu-v5e:16x16 --placement data,expert,model=4,64,1 --json -");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  // 256 chips; 2 dims x 256 full-duplex links = 1024 one-way; diameter 8 + 8; bisection
  // 32 links x 50 GB/s (built-in profile: 400 GB/s bidirectional per chip over 4 ports).
  EXPECT_EQ(j["num_devices"].get<int64_t>(), 256);
  EXPECT_EQ(j["num_links"].get<int64_t>(), 1024);
  EXPECT_EQ(j["diameter_hops"].get<int64_t>(), 16);
  EXPECT_DOUBLE_EQ(j["bisection_bytes_per_s"].get<double>(), 32 * 50e9);
  ASSERT_EQ(j["axes"].size(), 3u);
  const auto& data = j["axes"][0];
  EXPECT_EQ(data["name"], "data");
  EXPECT_EQ(data["size"].get<int64_t>(), 4);
  // Data rings stride 4 chips along x; four of them share each forward x link: 50 / 4 GB/s.
  EXPECT_DOUBLE_EQ(data["ring_bytes_per_s"].get<double>(), 50e9 / 4);
  EXPECT_EQ(data["max_hops"].get<int64_t>(), 4);
  EXPECT_EQ(j["axes"][1]["size"].get<int64_t>(), 64);
  EXPECT_EQ(j["axes"][2]["ring_bytes_per_s"].get<double>(), 0);
}

TEST(TopoCommand, Table) {
  const RunResult r = Moesim("topo dgx-h100:32 --placement data,model=32,8");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("bisection  6.40 TB/s (one direction)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("diameter   4 hops"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model     8      450.00 GB/s"), std::string::npos) << r.out;
}

TEST(TopoCommand, BadInputExitsTwoWithTheMessage) {
  RunResult r = Moesim("topo tpu-v5e:8x16,wrap=11 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out,
            "moesim topo: topology \"tpu-v5e:8x16,wrap=11\": tpu-v5e has wraparound only on a "
            "full 16-chip dimension; dimension 0 has size 8\n");
  r = Moesim("topo tpu-v5e:16x16 --placement data,expert,model=4,64,2 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out,
            "moesim topo: mesh data,expert,model=4,64,2 needs 512 devices; topology "
            "\"tpu-v5e:16x16\" has 256\n");
  r = Moesim("topo tpu-v4:4x0x4 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out,
            "moesim topo: topology \"tpu-v4:4x0x4\": size \"0\" is not a positive integer\n");
}

}  // namespace
