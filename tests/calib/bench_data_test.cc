// Reading `moesim-real bench` JSON: values, and errors that name the file and field.
#include "calib/bench_data.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moesim::calib {
namespace {

using ::testing::HasSubstr;

const char* kGood = R"json({
  "tool": "moesim-real bench", "backend": "cpu", "device": "cpu (Eigen)", "ranks": 2,
  "gemm": [{"m": 32, "n": 64, "k": 128, "flops": 524288, "time_s": 2e-5, "flops_per_s": 1}],
  "memory": [{"kernel": "copy", "elements": 4096, "bytes": 32768, "time_s": 1e-6}],
  "grouped_gemm": [{"experts": 4, "rows_per_expert": 16, "d_model": 64, "hidden": 128,
                    "time_s": 3e-5}],
  "collectives": [{"op": "all_to_all", "bytes": 1024, "ranks": 2, "time_s": 4e-6}]
})json";

TEST(BenchData, ParsesEverySection) {
  Expected<BenchData> b = ParseBenchJson(kGood, "b.json");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->backend, "cpu");
  ASSERT_EQ(b->gemm.size(), 1u);
  EXPECT_EQ(b->gemm[0].m, 32);
  EXPECT_EQ(b->gemm[0].n, 64);
  EXPECT_EQ(b->gemm[0].k, 128);
  EXPECT_DOUBLE_EQ(b->gemm[0].time_s, 2e-5);
  ASSERT_EQ(b->memory.size(), 1u);
  EXPECT_DOUBLE_EQ(b->memory[0].bytes, 32768);
  ASSERT_EQ(b->grouped_gemm.size(), 1u);
  EXPECT_EQ(b->grouped_gemm[0].rows, 16);
  ASSERT_EQ(b->collectives.size(), 1u);
  EXPECT_EQ(b->collectives[0].ranks, 2);
  EXPECT_EQ(b->collectives[0].op, "all_to_all");
}

TEST(BenchData, NotJsonNamesTheFile) {
  Expected<BenchData> b = ParseBenchJson("{\"backend\": ", "b.json");
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.status().message(), HasSubstr("b.json: not valid JSON"));
}

TEST(BenchData, NumberPastDoubleIsBadInputNotAnException) {
  // nlohmann::json throws out_of_range, not parse_error, for a number past DBL_MAX.
  Expected<BenchData> b = ParseBenchJson(
      R"({"backend": "cpu", "gemm": [{"m": 1, "n": 1, "k": 1, "time_s": 3e3089}]})", "b.json");
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.status().message(), HasSubstr("b.json: not valid JSON"));
}

TEST(BenchData, MissingFieldIsNamed) {
  std::string text = kGood;
  text.replace(text.find("\"time_s\": 2e-5"), 14, "\"tim\": 2e-5");
  Expected<BenchData> b = ParseBenchJson(text, "b.json");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().message(), "b.json: gemm[0].time_s: missing");
}

TEST(BenchData, NonPositiveTimeIsNamed) {
  std::string text = kGood;
  text.replace(text.find("\"time_s\": 1e-6"), 14, "\"time_s\": -1.0");
  Expected<BenchData> b = ParseBenchJson(text, "b.json");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().message(), "b.json: memory[0].time_s: must be a number > 0, got -1.0");
}

TEST(BenchData, UnknownCollectiveIsNamed) {
  std::string text = kGood;
  text.replace(text.find("all_to_all"), 10, "broadcast!");
  Expected<BenchData> b = ParseBenchJson(text, "b.json");
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.status().message(), HasSubstr("b.json: collectives[0].op: must be"));
}

TEST(BenchData, MissingBackendIsNamed) {
  Expected<BenchData> b = ParseBenchJson("{\"gemm\": []}", "b.json");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().message(), "b.json: backend: missing");
}

TEST(BenchData, MissingFileIsNamed) {
  Expected<BenchData> b = ReadBenchJson("/nonexistent/bench.json");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().message(), "/nonexistent/bench.json: cannot open bench file");
}

TEST(BenchData, MergeRefusesMixedBackends) {
  BenchData into = *ParseBenchJson(kGood, "a.json");
  std::string gpu = kGood;
  gpu.replace(gpu.find("\"cpu\""), 5, "\"cuda\"");
  Status st = MergeBench(*ParseBenchJson(gpu, "b.json"), &into);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("b.json: backend \"cuda\" differs from a.json's \"cpu\""));
  ASSERT_TRUE(MergeBench(*ParseBenchJson(kGood, "c.json"), &into).ok());
  EXPECT_EQ(into.gemm.size(), 1u);  // the same point twice: one kept
  EXPECT_EQ(into.files.size(), 2u);
}

TEST(BenchData, RepeatedPointsKeepTheFastestTime) {
  std::string slow = kGood;
  slow.replace(slow.find("\"time_s\": 2e-5"), 14, "\"time_s\": 9e-5");
  BenchData into = *ParseBenchJson(slow, "a.json");
  ASSERT_TRUE(MergeBench(*ParseBenchJson(kGood, "b.json"), &into).ok());
  ASSERT_EQ(into.gemm.size(), 1u);
  EXPECT_DOUBLE_EQ(into.gemm[0].time_s, 2e-5);
  EXPECT_EQ(into.gemm[0].where, "b.json: gemm[0]");
  EXPECT_EQ(into.collectives.size(), 1u);
  ASSERT_EQ(into.notes.size(), 1u);
  EXPECT_EQ(into.notes[0], "4 point(s) measured again in b.json: the fastest time of each is used");
}

TEST(BenchData, ComputePointsComeFromTheFewestRanks) {
  // kGood is a 2-rank bench; a 1-rank one's compute points replace its own, collectives add up.
  std::string one = kGood;
  one.replace(one.find("\"ranks\": 2,"), 11, "\"ranks\": 1,");
  BenchData into = *ParseBenchJson(kGood, "two.json");
  ASSERT_TRUE(MergeBench(*ParseBenchJson(one, "one.json"), &into).ok());
  EXPECT_EQ(into.compute_ranks, 1);
  EXPECT_EQ(into.gemm.size(), 1u);
  EXPECT_EQ(into.gemm[0].where, "one.json: gemm[0]");
  EXPECT_EQ(into.collectives.size(), 1u);  // the same all-to-all point in both
  ASSERT_EQ(into.notes.size(), 2u);
  EXPECT_EQ(into.notes[0],
            "two.json: compute points of 2 ranks left out (those of 1 rank(s) are used)");
}

}  // namespace
}  // namespace moesim::calib
