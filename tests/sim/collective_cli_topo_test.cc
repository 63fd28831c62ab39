// `moesim collective` as a user runs it: the nccl-tests table, the JSON contract, determinism,
// and exit code 2 with a message on bad input.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/run_command.h"

namespace {

using moesim::test_cli::Moesim;
using moesim::test_cli::RunResult;

TEST(CollectiveCli, JsonRowsFollowTheContractAndNcclTestsDefinitions) {
  const RunResult r =
      Moesim("collective --topology dgx-h100:1 --op all_reduce --group 8 --bytes 1G:8G --json -");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 4u);  // 1, 2, 4, 8 GiB
  EXPECT_EQ(j["algorithm"], "ring");
  for (size_t i = 0; i < 4; ++i) {
    const auto& row = j["rows"][i];
    const double bytes = row["bytes"].get<double>();
    EXPECT_EQ(bytes, static_cast<double>(int64_t{1} << (30 + i)));
    const double t = row["time_s"].get<double>();
    EXPECT_DOUBLE_EQ(row["algbw_bytes_per_s"].get<double>(), bytes / t);
    // nccl-tests: busbw = algbw x 2(n-1)/n for all-reduce, n = 8.
    EXPECT_DOUBLE_EQ(row["busbw_bytes_per_s"].get<double>(), bytes / t * 14 / 8);
    // hardware.md: 8xH100 Ring all-reduce >= 1 GB reaches 350-380 GB/s busbw.
    EXPECT_GT(row["busbw_bytes_per_s"].get<double>(), 350e9);
    EXPECT_LT(row["busbw_bytes_per_s"].get<double>(), 380e9);
  }
}

TEST(CollectiveCli, AllToAllBusBandwidthFactor) {
  const RunResult r = Moesim(
      "collective --topology tpu-v5e:4x4 --op all_to_all --group 16 --bytes 1M:1M "
      "--network flow --json -");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto row = nlohmann::json::parse(r.out)["rows"][0];
  EXPECT_DOUBLE_EQ(row["busbw_bytes_per_s"].get<double>(),
                   row["algbw_bytes_per_s"].get<double>() * 15 / 16);
}

TEST(CollectiveCli, SameCommandTwiceGivesByteIdenticalJson) {
  const std::string args =
      "collective --topology tpu-v5e:16x16 --op all_gather --group x,y --bytes 64K:64M "
      "--network flow --json -";
  const RunResult a = Moesim(args), b = Moesim(args);
  ASSERT_EQ(a.exit_code, 0) << a.out;
  EXPECT_EQ(a.out, b.out);
}

TEST(CollectiveCli, TableHasOneRowPerDoubling) {
  const RunResult r =
      Moesim("collective --topology dgx-h100:1 --op reduce_scatter --group gpu --bytes 1K:10K");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  // Header (2 comment lines) and rows for 1K, 2K, 4K, 8K (16K > 10K).
  size_t lines = 0;
  for (char c : r.out) lines += c == '\n';
  EXPECT_EQ(lines, 6u) << r.out;
  EXPECT_NE(r.out.find("busbw(GB/s)"), std::string::npos);
  EXPECT_NE(r.out.find("\n            8192 "), std::string::npos) << r.out;
}

TEST(CollectiveCli, LinkEfficiencyScalesTheBandwidthOfItsKind) {
  // 8 GiB ring all-reduce on one DGX H100 is bandwidth-bound: at half the efficiency of the
  // profile's 0.8, NVLink moves half the bytes per second and busbw halves (to 1%: latency).
  auto busbw = [](const std::string& extra) {
    const RunResult r =
        Moesim("collective --topology dgx-h100:1 --op all_reduce --group 8 --bytes 8G:8G --json -" +
               extra);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return nlohmann::json::parse(r.out);
  };
  const auto base = busbw("");
  const auto nvlink = busbw(" --link-efficiency nvlink=0.4");
  const auto all = busbw(" --link-efficiency 0.4");
  EXPECT_EQ(base["link_efficiency"], 0.8);
  EXPECT_EQ(nvlink["link_efficiency_by_kind"]["NVLINK"], 0.4);
  const double b0 = base["rows"][0]["busbw_bytes_per_s"].get<double>();
  const double b1 = nvlink["rows"][0]["busbw_bytes_per_s"].get<double>();
  EXPECT_NEAR(b1 / b0, 0.5, 0.005);
  // One node has only NVLink links: the uniform setting gives the same time.
  EXPECT_EQ(all["rows"][0]["time_s"], nvlink["rows"][0]["time_s"]);
}

TEST(CollectiveCli, BadInputExitsTwoWithAMessage) {
  struct Case {
    std::string args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"--topology dgx-h100:1 --op all_reduce --group 8 --bytes 8:4",
       "moesim collective: --bytes 8:4: MAX is smaller than MIN\n"},
      {"--topology dgx-h100:1 --op all_reduce --group 8 --bytes 1X",
       "moesim collective: --bytes: \"1X\" is not a size (a positive integer, optionally with K, "
       "M or G)\n"},
      {"--topology dgx-h100:1 --op allreduce --group 8 --bytes 1M",
       "moesim collective: --op: unknown collective \"allreduce\" (one of: all_reduce, "
       "all_gather, reduce_scatter, all_to_all, all_to_all_v, broadcast, send_recv)\n"},
      {"--topology dgx-h100:1 --op all_reduce --group 6 --bytes 1M --algorithm halving_doubling",
       "moesim collective: halving_doubling needs a power-of-two group; got 6 devices\n"},
      {"--topology dgx-h100:1 --op all_to_all --group 8 --bytes 1M --algorithm ring",
       "moesim collective: algorithm ring does not implement all_to_all (choose one of: direct, "
       "pairwise)\n"},
      {"--topology dgx-h100:1 --op all_reduce --group 9 --bytes 1M",
       "moesim collective: --group 9: topology \"dgx-h100:1\" has 8 devices\n"},
      {"--topology dgx-h100:1 --op all_reduce --group 8 --bytes 1M --link-efficiency foo=0.5",
       "moesim collective: --link-efficiency foo=0.5: unknown link kind \"foo\" (one of: ici, "
       "nvlink, pcie, infiniband, ethernet, dcn, shm)\n"},
      {"--topology dgx-h100:1 --op all_reduce --group 8 --bytes 1M --link-efficiency 1.5",
       "moesim collective: --link-efficiency 1.5: the efficiency must be a number in (0, 1]\n"},
  };
  for (const Case& c : cases) {
    const RunResult r = Moesim("collective " + c.args + " 2>&1 >/dev/null");
    EXPECT_EQ(r.exit_code, 2) << c.args;
    EXPECT_EQ(r.out, c.message) << c.args;
  }
}

}  // namespace
