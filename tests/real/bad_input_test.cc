// `moesim-real` refuses bad input with exit code 2 and a message naming the option, file or
// field, quickly and without crashing: out-of-range options (each integer option, and the
// real-valued ones), --data paths that are not text files, models too large for the memory,
// and damaged checkpoints (meta.json fields of the wrong type or range, a rank file whose
// stored name length is 1 MB). Each test is named after the input.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/run_command.h"

namespace moesim::real {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kBin = std::string(MOESIM_BINARY_DIR) + "/moesim-real";
const std::string kScenario = std::string(MOESIM_SOURCE_DIR) + "/tests/real/tiny-moe.textproto";
const std::string kTrain = kBin + " train " + kScenario + " --log-every 100 ";

struct Outcome {
  int code = -1;
  std::string output;  // stdout and stderr
  double seconds = 0;
};

Outcome Exec(const std::string& cmd) {
  const auto t0 = std::chrono::steady_clock::now();
  const moesim::test_cli::RunResult r = moesim::test_cli::RunCommand(cmd + " 2>&1");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {r.exit_code, r.out, s};
}

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string TempDir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("moesim_real_bad_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

TEST(BadInput, LogEvery0IsRefusedNotADivisionByZero) {
  const Outcome r = Exec(kTrain + "--steps 2 --log-every 0");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, "--log-every")) << r.output;
}

TEST(BadInput, ExpertParallel4294967296IsRefusedNotNarrowedTo0) {
  const Outcome r = Exec(kTrain + "--steps 2 --expert-parallel 4294967296");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, "--expert-parallel")) << r.output;
  EXPECT_TRUE(Has(r.output, "4294967296")) << r.output;
}

TEST(BadInput, TraceWarmupInt64MaxIsRefused) {
  const std::string d = TempDir("trace");
  const Outcome r =
      Exec(kTrain + "--steps 2 --trace-warmup 9223372036854775807 --trace " + d + "/t.json");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, "--trace-warmup")) << r.output;
  EXPECT_FALSE(fs::exists(d + "/t.json"));
}

// Every integer option, below and above its range (real/limits.h), and values that do not fit
// the option's type at all.
TEST(BadInput, EveryIntegerOptionOutOfRangeIsRefusedNamingIt) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--steps", "0"},
      {"--steps", "-1"},
      {"--steps", "1000000000001"},
      {"--steps", "99999999999999999999"},
      {"--schedule-steps", "-1"},
      {"--trace-warmup", "-1"},
      {"--trace-steps", "0"},
      {"--checkpoint-every", "-1"},
      {"--log-every", "-5"},
      {"--micro-batch", "-3"},
      {"--micro-batch", "2000000000000"},
      {"--expert-parallel", "0"},
      {"--expert-parallel", "-2"},
      {"--warmup", "-5"},
      {"--seed", "-1"},
      {"--seed", "18446744073709551616"},
      {"--max-memory", "0"},
      {"--max-memory", "-1"},
      {"--max-memory", "99999999999999999999"},
      {"--max-memory", "8192P"},
      {"--debug-poison-step", "-2"},
  };
  for (const auto& [option, value] : cases) {
    const std::string steps = option == "--steps" ? "" : "--steps 2 ";
    const Outcome r = Exec(kTrain + steps + option + " " + value);
    EXPECT_EQ(r.code, 2) << option << " " << value << ": " << r.output;
    EXPECT_TRUE(Has(r.output, option)) << option << " " << value << ": " << r.output;
  }
  const Outcome bench = Exec(kBin + " bench --quick --repeats 0");
  EXPECT_EQ(bench.code, 2) << bench.output;
  EXPECT_TRUE(Has(bench.output, "--repeats")) << bench.output;
}

TEST(BadInput, RealOptionsOutOfRangeAreRefusedNamingThem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--beta1", "1"},     {"--beta2", "1.5"},      {"--lr", "nan"},
      {"--lr", "-0.1"},     {"--min-lr-ratio", "2"}, {"--clip", "inf"},
      {"--aux-loss", "-1"}, {"--z-loss", "nan"},     {"--weight-decay", "-1"},
  };
  for (const auto& [option, value] : cases) {
    const Outcome r = Exec(kTrain + "--steps 2 " + option + " " + value);
    EXPECT_EQ(r.code, 2) << option << " " << value << ": " << r.output;
    EXPECT_TRUE(Has(r.output, option + " " + value)) << option << " " << value << ": " << r.output;
  }
}

TEST(BadInput, CheckpointDevNullAndTraceWarmupPastTheLastStepAreRefusedBeforeTraining) {
  Outcome r = Exec(kTrain + "--steps 2 --checkpoint /dev/null");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, "--checkpoint /dev/null: not a directory")) << r.output;
  EXPECT_FALSE(Has(r.output, "step 2/2")) << r.output;
  const std::string d = TempDir("trace_late");
  r = Exec(kTrain + "--steps 2 --trace-warmup 2 --trace " + d + "/t.json");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, "--trace: no step would be traced (steps 0..2, --trace-warmup 2)"))
      << r.output;
  EXPECT_FALSE(Has(r.output, "step 2/2")) << r.output;
}

TEST(BadInput, DataDirectoryIsRefusedNamingThePath) {
  const std::string d = TempDir("datadir");
  const Outcome r = Exec(kTrain + "--steps 2 --data " + d);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, "--data " + d + ": not a regular file (a directory)")) << r.output;
}

TEST(BadInput, DataFifoIsRefusedWithoutBlocking) {
  const std::string d = TempDir("fifo");
  const std::string fifo = d + "/pipe";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const Outcome r = Exec("timeout 60 " + kTrain + "--steps 2 --data " + fifo);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, "--data " + fifo + ": not a regular file")) << r.output;
}

TEST(BadInput, DataMissingOrShorterThanASequenceIsRefused) {
  const std::string d = TempDir("datashort");
  Outcome r = Exec(kTrain + "--steps 2 --data " + d + "/missing.txt");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, d + "/missing.txt: cannot open")) << r.output;
  std::ofstream(d + "/short.txt") << "only twenty bytes...";
  r = Exec(kTrain + "--steps 2 --data " + d + "/short.txt");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, "20 bytes, fewer than one sequence of 33 tokens")) << r.output;
}

TEST(BadInput, NumLayers100000000IsRefusedQuickly) {
  const Outcome r = Exec(kTrain + "--steps 2 --set model.num_layers=100000000");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, "model.num_layers=100000000")) << r.output;
  EXPECT_LT(r.seconds, 20.0);
}

TEST(BadInput, ModelLargerThanPhysicalMemoryIsRefusedWithTheEstimate) {
  const Outcome r =
      Exec(kTrain + "--steps 2 --set model.num_layers=4096 --set model.d_model=65536");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, "needs an estimated")) << r.output;
  EXPECT_TRUE(Has(r.output, "TiB (parameters")) << r.output;
  EXPECT_TRUE(Has(r.output, "of physical memory")) << r.output;
  EXPECT_LT(r.seconds, 20.0);
}

TEST(BadInput, MaxMemory1KRefusesTheTinyModelAnd1GTrainsIt) {
  const Outcome small = Exec(kTrain + "--steps 2 --max-memory 1K");
  EXPECT_EQ(small.code, 2) << small.output;
  EXPECT_TRUE(Has(small.output, "needs an estimated")) << small.output;
  EXPECT_TRUE(Has(small.output, "more than --max-memory 1024 (1.0 KiB)")) << small.output;
  const Outcome big = Exec(kTrain + "--steps 2 --max-memory 1G");
  EXPECT_EQ(big.code, 0) << big.output;
}

// A good checkpoint of the tiny model, for the damaged-checkpoint tests.
std::string Checkpoint(const std::string& name) {
  const std::string d = TempDir(name);
  const Outcome r = Exec(kTrain + "--steps 1 --checkpoint " + d + "/ck");
  EXPECT_EQ(r.code, 0) << r.output;
  return d + "/ck";
}

void EditMeta(const std::string& ck, const std::string& field, const json& value) {
  json j;
  {
    std::ifstream in(ck + "/meta.json");
    j = json::parse(in);
  }
  j[field] = value;
  std::ofstream(ck + "/meta.json") << j.dump(2);
}

TEST(BadInput, CheckpointMetaStepTwoIsRefusedNamingFileAndField) {
  const std::string ck = Checkpoint("step_two");
  EditMeta(ck, "step", "two");
  const Outcome r = Exec(kTrain + "--steps 2 --resume " + ck);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, ck + "/meta.json: field \"step\" must be an integer in [0, " +
                                "1000000000000], got \"two\""))
      << r.output;
}

TEST(BadInput, CheckpointMetaWorld1e30IsRefusedNamingTheField) {
  const std::string ck = Checkpoint("world_1e30");
  EditMeta(ck, "world", 1e30);
  const Outcome r = Exec(kTrain + "--steps 2 --resume " + ck);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output, ck + "/meta.json: field \"world\" must be an integer in [1, "))
      << r.output;
  EXPECT_FALSE(Has(r.output, "-2147483648")) << r.output;
}

TEST(BadInput, CheckpointWithA1MBNameLengthIsRefusedWithAShortMessage) {
  const std::string ck = Checkpoint("name_1mb");
  // Keep the header (magic, version, step, scalar size, tensor count), then a name length of
  // 1 MiB followed by 1 MiB of binary bytes.
  std::string head(8 + 4 + 8 + 4 + 8, '\0');
  {
    std::ifstream in(ck + "/rank-00000.bin", std::ios::binary);
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
  }
  {
    std::ofstream out(ck + "/rank-00000.bin", std::ios::binary | std::ios::trunc);
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    const uint64_t len = 1 << 20;
    out.write(reinterpret_cast<const char*>(&len), sizeof(len));
    for (int i = 0; i < (1 << 20) + 64; ++i) out.put(static_cast<char>(i * 7 + 1));
  }
  const Outcome r = Exec(kTrain + "--steps 2 --resume " + ck);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(Has(r.output,
                  "rank-00000.bin: parameter table entry 0: name length 1048576 "
                  "outside [1, 256]"))
      << r.output;
  EXPECT_LT(r.output.size(), 2000u) << r.output;
}

}  // namespace
}  // namespace moesim::real
