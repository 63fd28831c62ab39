// Inputs that used to crash, hang or exhaust memory, run as a user runs them: each now ends with
// exit 0, or exit 2 and a message naming the field (or option) and the documented limit
// (docs/limits.md). Tests are named after the input.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "tests/run_command.h"

namespace {

using moesim::test_cli::Moesim;
using moesim::test_cli::RunResult;

void ExpectRefused(const std::string& args, const std::string& message) {
  const RunResult r = Moesim(args + " 2>&1");
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(message), std::string::npos) << args << "\n" << r.out;
}

TEST(Robustness, SweepAndPlanWithJobs100000) {
  // SIGABRT: 100,000 threads were started for a handful of points.
  ExpectRefused(
      "sweep scenarios/apple2024/moe-1.6b-64e.textproto "
      "--vary model.moe.num_experts=16,64 --jobs 100000",
      "--jobs: Value 100000 not in range 1 to 1024");
  ExpectRefused("plan scenarios/apple2024/moe-1.6b-64e.textproto --jobs 100000",
                "--jobs: Value 100000 not in range 1 to 1024");
  // The most jobs allowed, for two points: two threads run, the table is complete.
  const RunResult r = Moesim(
      "sweep scenarios/apple2024/moe-1.6b-64e.textproto --vary model.moe.num_experts=16,64 "
      "--jobs 1024 --csv - 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;  // header + 2 rows
}

TEST(Robustness, NumLayersInt64MaxInEveryCommand) {
  // Never finished in cost, simulate and validate.
  const std::string set = "--set model.num_layers=9223372036854775807";
  const std::string why =
      "model.num_layers=9223372036854775807 exceeds the limit of 4096 (docs/limits.md)";
  ExpectRefused("cost " + set, why);
  ExpectRefused("simulate " + set, why);
  const std::string csv = testing::TempDir() + "layers.csv";
  moesim::test_cli::RunCommand(
      "printf 'id,scenario,overrides,metric,measured,source\\nr1,default,"
      "model.num_layers=9223372036854775807,step_time_s,1,test\\n' > " +
      csv);
  ExpectRefused("validate " + csv,
                csv + ":2: row r1: <default> (--set " + set.substr(6) + "): " + why);
}

TEST(Robustness, Gpt3WithSequencesOf64Tokens) {
  // A plausible edit that took 7.4 GB: 3,072 micro-batches x 96 layers per step. The message
  // points at the micro-batch size the file sets (line 28), the knob to turn.
  ExpectRefused("simulate scenarios/artetxe2021/gpt3-175b.textproto --set model.seq_len=64",
                "scenarios/artetxe2021/gpt3-175b.textproto:28: model.num_layers=96 x 3072 "
                "micro-batches of training.micro_batch_size=1 per step "
                "exceed the limit of 131072 layer micro-batches (docs/limits.md)");
  // With micro-batches of 32 sequences it simulates.
  const RunResult r = Moesim(
      "simulate scenarios/artetxe2021/gpt3-175b.textproto --set model.seq_len=64 "
      "--set training.micro_batch_size=32");
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

TEST(Robustness, MaxMemoryRefusesASimulationEstimatedLarger) {
  // GPT-3 175B as shipped: 96 layers x 96 micro-batches per stage, up to 557K ops; its compact
  // program holds 8 of the 96 micro-batches' ops at 512 bytes each and ~128 bytes per task:
  // 0.022 GiB.
  const std::string gpt3 = "simulate scenarios/artetxe2021/gpt3-175b.textproto";
  ExpectRefused(gpt3 + " --max-memory 8M",
                "scenarios/artetxe2021/gpt3-175b.textproto: the step program (model.num_layers=96 "
                "x 96 micro-batches of training.micro_batch_size=1) would have up to ");
  ExpectRefused(gpt3 + " --max-memory 8M", "GiB of --max-memory (docs/limits.md)");
  ExpectRefused(gpt3 + " --max-memory lots", "--max-memory");
  EXPECT_EQ(Moesim(gpt3 + " --max-memory 512M > /dev/null").exit_code, 0);
}

TEST(Robustness, FlowNetworkWithOpOverhead1e300) {
  // Reported a 0.17 s step (SimTime wrapped); the analytical level said 1.4e62 s.
  ExpectRefused("simulate --network flow --set hardware.op_overhead_s=1e300",
                "<default> (--set hardware.op_overhead_s=1e300): hardware.op_overhead_s=1e+300 "
                "exceeds the limit of 1 (docs/limits.md)");
  ExpectRefused("simulate --network flow --set hardware.link_bytes_per_s=1e-300",
                "hardware.link_bytes_per_s=1e-300 is below 1 (docs/limits.md)");
}

TEST(Robustness, SlowestAllowedFiguresEndAtTheSimulatedTimeLimit) {
  // Every figure within its limit, together absurd: 1 FLOP/s. The step would take ~1e18 s.
  ExpectRefused("simulate --set hardware.peak_flops_per_s=1",
                "s, past the limit of 1000000 s (docs/limits.md)");
  ExpectRefused("simulate --network flow --set hardware.peak_flops_per_s=1",
                "s, past the limit of 1000000 s (docs/limits.md)");
}

TEST(Robustness, TopoCpuHostOneMillion) {
  // Ran past 60 s.
  ExpectRefused("topo cpu-host:1000000",
                "topology \"cpu-host:1000000\": more devices than the limit of 131072");
}

TEST(Robustness, TopoCpuHostAtTheDeviceLimit) {
  // cpu-host:2048 took 77 s (a route search per pair of ranks); the star's ranks are alike, so
  // one source gives the diameter: rank -> shared memory -> rank, 2 links.
  const RunResult r = Moesim("topo cpu-host:131072");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("diameter   2 hops"), std::string::npos) << r.out;
}

TEST(Robustness, TopoOfARingFilePastTheDiameterSearchLimit) {
  // 131,072 devices in a file: one search per device would take minutes; summarized without it.
  const std::string file = testing::TempDir() + "ring131072.textproto";
  moesim::test_cli::RunCommand(
      "awk 'BEGIN { n = 131072; print \"num_devices: \" n; print \"chip: \\\"h100-sxm\\\"\"; "
      "for (i = 0; i < n; i++) printf \"links { a: \\\"%d\\\" b: \\\"%d\\\" kind: NVLINK }\\n\", "
      "i, (i + 1) % n }' > " +
      file);
  const RunResult r = Moesim("topo " + file);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("(131072 devices, 0 switches/NICs)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("diameter   not computed: 131072 devices without a symmetry"),
            std::string::npos)
      << r.out;
  const RunResult j = Moesim("topo " + file + " --json -");
  EXPECT_NE(j.out.find("\"diameter_hops\": null"), std::string::npos) << j.out;
}

TEST(Robustness, TopologyFileWithAnUnknownChipNamesItsLine) {
  const std::string file = testing::TempDir() + "chip_v9.textproto";
  moesim::test_cli::RunCommand("printf 'num_devices: 2\\nchip: \"tpu-v9\"\\n' > " + file);
  ExpectRefused("topo " + file, file + ":2: chip: unknown chip \"tpu-v9\"");
}

TEST(Robustness, CollectiveAllToAllOver4096Devices) {
  // 43 s and 1.7 GB: 4096^2 transfers per size.
  ExpectRefused("collective --topology dgx-h100:512 --op all_to_all --group 4096 --bytes 1M:1G",
                "all_to_all over 4096 devices makes 4096^2 transfers, past the limit of 4194304");
}

TEST(Robustness, ScenarioArgumentIsADirectory) {
  ExpectRefused("cost scenarios", "scenarios: is a directory, not a scenario file");
}

TEST(Robustness, RuleAxisSevenFromAFile) {
  // Exit 2 with "sharding.mesh.?=94489364130848" read from memory.
  const std::string file = testing::TempDir() + "axis7.textproto";
  const RunResult w = moesim::test_cli::RunCommand(
      "sed 's/^sharding {$/sharding {\\n  rules { tensor_class: DENSE_WEIGHTS dim: \"embed\" axes: "
      "7 }/' " +
      std::string(MOESIM_SOURCE_DIR) + "/scenarios/apple2024/moe-1.6b-64e.textproto > " + file +
      " && grep -c 'axes: 7' " + file);
  ASSERT_EQ(w.out, "1\n") << "the test's scenario edit did not apply";
  ExpectRefused("simulate " + file, "sharding.rules[0].axes[0]=7 is not a value of Axis");
}

}  // namespace
