// Splitting planner points over processes (sim/planner/point_share.h): the chunk schedule,
// worked by hand and checked over many counts, the handout of chunks to threads, the results'
// bytes read back to the same figures, and RunPoints split over in-process shares.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "sim/planner/planner.h"
#include "sim/planner/point_share.h"

namespace moesim {
namespace {

std::vector<size_t> Sizes(const ChunkSchedule& s) {
  std::vector<size_t> sizes;
  for (size_t k = 0; k < s.chunks(); ++k) sizes.push_back(s.ends[k] - s.begin(k));
  return sizes;
}

TEST(GuidedChunks, ShrinkingChunksByHand) {
  // 100 points over 2 processes: each chunk an eighth over the processes (1/16) of the points
  // left, rounded up: ceil(100/16) = 7, ceil(93/16) = 6, 6 (87), 6 (81), 5 (75), 5 (70), 5 (65),
  // 4 (60), ... and the last 16 one at a time.
  const ChunkSchedule s = GuidedChunks(100, 2);
  EXPECT_EQ(Sizes(s),
            (std::vector<size_t>{7, 6, 6, 6, 5, 5, 5, 4, 4, 4, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2,
                                 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(s.begin(0), 0u);
  EXPECT_EQ(s.begin(1), 7u);
  EXPECT_EQ(s.ends.back(), 100u);
}

TEST(GuidedChunks, EveryPointOnceInShrinkingChunks) {
  for (const size_t points : {1u, 2u, 15u, 16u, 17u, 999u, 4020u, 48936u}) {
    for (const int processes : {1, 2, 3, 16}) {
      const ChunkSchedule s = GuidedChunks(points, processes);
      const std::vector<size_t> sizes = Sizes(s);
      ASSERT_FALSE(sizes.empty());
      // Consecutive ranges from 0 to the last point: every index in exactly one chunk.
      EXPECT_EQ(s.ends.back(), points);
      size_t left = points;
      const size_t parts = 8 * static_cast<size_t>(processes);
      for (size_t k = 0; k < sizes.size(); ++k) {
        EXPECT_GE(sizes[k], 1u);
        EXPECT_EQ(sizes[k], std::max<size_t>(1, (left + parts - 1) / parts)) << points << " " << k;
        if (k > 0) {
          EXPECT_LE(sizes[k], sizes[k - 1]);
        }
        left -= sizes[k];
      }
      // At least the last 8 x processes - 1 points (or all, when fewer) one at a time.
      const size_t singles = std::min(points, parts - 1);
      for (size_t k = sizes.size() - singles; k < sizes.size(); ++k) EXPECT_EQ(sizes[k], 1u);
      // Few draws from the counter: about 8 x processes x ln(points) + 8 x processes.
      EXPECT_LT(static_cast<double>(s.chunks()),
                static_cast<double>(parts) * (std::log(static_cast<double>(points)) + 2))
          << points << " over " << processes;
    }
  }
  EXPECT_EQ(GuidedChunks(0, 2).chunks(), 0u);
}

TEST(ChunkHandout, ThreadsOfTwoProcessesTakeEveryPointOnce) {
  // Two "processes", each with three evaluating threads and one fetching thread, drawing from
  // one shared counter: every point goes to exactly one thread, and each process's Taken lists
  // what its threads got.
  const ChunkSchedule s = GuidedChunks(500, 2);
  std::atomic<uint64_t> counter{0};
  std::mutex mu;
  std::vector<int> seen(500, 0);
  std::vector<std::vector<size_t>> got(2);
  std::vector<std::thread> all;
  std::vector<std::unique_ptr<ChunkHandout>> handouts;
  for (int p = 0; p < 2; ++p) handouts.push_back(std::make_unique<ChunkHandout>(s));
  std::atomic<int> evaluating[2] = {3, 3};
  for (int p = 0; p < 2; ++p) {
    for (int t = 0; t < 3; ++t) {
      all.emplace_back([&, p]() {
        while (auto i = handouts[static_cast<size_t>(p)]->Next()) {
          std::lock_guard<std::mutex> lock(mu);
          ++seen[*i];
          got[static_cast<size_t>(p)].push_back(*i);
        }
        if (--evaluating[p] == 0) handouts[static_cast<size_t>(p)]->Wake();
      });
    }
    all.emplace_back([&, p]() {
      while (evaluating[p] > 0) {
        handouts[static_cast<size_t>(p)]->Serve(std::chrono::milliseconds(5),
                                                [&]() { return counter++; });
      }
    });
  }
  for (auto& t : all) t.join();
  EXPECT_EQ(seen, std::vector<int>(500, 1));
  for (size_t p = 0; p < 2; ++p) {
    std::vector<size_t> taken = handouts[p]->Taken();
    std::sort(taken.begin(), taken.end());
    std::sort(got[p].begin(), got[p].end());
    EXPECT_EQ(taken, got[p]);
  }
  EXPECT_GE(counter.load(), s.chunks() + 2);  // each process drew past the end once
}

PointResult Sample() {
  PointResult r;
  r.outcome = PointResult::Outcome::kDoesNotFit;
  r.message = "line one\nline two";
  SimReport& s = r.report;
  s.network = "analytical";
  s.step_time_s = 0.1 + 0.2;  // a double whose bits are not its shortest decimal
  s.breakdown.compute_s = 1.0 / 3;
  s.breakdown.compute_by_class = {{"gemm", 0.25}, {"memory", 1e-9}};
  s.breakdown.exposed_comm_s = 2;
  s.breakdown.comm_total_s = 3;
  s.breakdown.bubble_s = 4;
  s.breakdown.idle_s = 5;
  s.breakdown.exposed_by_collective = {{"all_to_all expert", 0.5}};
  s.mfu = 0.41;
  s.tokens_per_s = 12345.678;
  s.tflops_per_device = 400;
  s.model_flops_per_step = 1e18;
  s.hardware_flops_per_step = 1.3e18;
  s.dropped_token_fraction = 0.01;
  s.cost.num_layers = 56;
  s.cost.num_moe_layers = 56;
  s.cost.params.total = 141e9;
  s.cost.params.activated = 39e9;
  s.cost.flops_per_token.forward_by_op = {{"attn.q", 7}};
  s.memory.peak_bytes = 7.5e10;
  s.memory.capacity_bytes = 80LL << 30;
  s.memory.fits = false;
  s.memory.stage = 3;
  s.memory.stage_peak_bytes = {1, 2, 3, 7.5e10};
  s.axes = {{"expert", 8, "nvlink", 1.5e11}, {"data", 4, "scale-out", 4e10}};
  s.num_ops = 123456;
  s.critical_program = 2;
  s.flow.events = 99;
  return r;
}

TEST(PointResultBytes, ReadBackToTheSameFigures) {
  std::vector<PointResult> results(3);
  results[1] = Sample();
  results[2].outcome = PointResult::Outcome::kInvalid;
  results[2].message = "bad mesh";
  results[2].cancelled = true;
  const std::string bytes = EncodePointResults(results, {2, 1});

  std::vector<PointResult> back(3);
  std::vector<size_t> indices;
  ASSERT_TRUE(DecodePointResults(bytes, &back, &indices).ok());
  EXPECT_EQ(indices, (std::vector<size_t>{2, 1}));  // the indices travel with the results
  const SimReport& a = results[1].report;
  const SimReport& b = back[1].report;
  EXPECT_EQ(back[1].outcome, PointResult::Outcome::kDoesNotFit);
  EXPECT_EQ(back[1].message, "line one\nline two");
  EXPECT_EQ(b.network, "analytical");
  EXPECT_EQ(std::memcmp(&a.step_time_s, &b.step_time_s, sizeof(double)), 0);
  EXPECT_EQ(b.breakdown.compute_s, a.breakdown.compute_s);
  EXPECT_EQ(b.breakdown.compute_by_class, a.breakdown.compute_by_class);
  EXPECT_EQ(b.breakdown.exposed_by_collective, a.breakdown.exposed_by_collective);
  EXPECT_EQ(b.breakdown.idle_s, 5);
  EXPECT_EQ(b.mfu, 0.41);
  EXPECT_EQ(b.tokens_per_s, a.tokens_per_s);
  EXPECT_EQ(b.cost.num_moe_layers, 56);
  EXPECT_EQ(b.cost.params.activated, 39e9);
  EXPECT_EQ(b.cost.flops_per_token.forward_by_op, a.cost.flops_per_token.forward_by_op);
  EXPECT_EQ(b.memory.capacity_bytes, 80LL << 30);
  EXPECT_FALSE(b.memory.fits);
  EXPECT_EQ(b.memory.stage, 3);
  EXPECT_EQ(b.memory.stage_peak_bytes, a.memory.stage_peak_bytes);
  ASSERT_EQ(b.axes.size(), 2u);
  EXPECT_EQ(b.axes[1].span, "scale-out");
  EXPECT_EQ(b.axes[0].ring_bytes_per_s, 1.5e11);
  EXPECT_EQ(b.num_ops, 123456);
  EXPECT_EQ(b.critical_program, 2);
  EXPECT_EQ(b.flow.events, 99);
  EXPECT_EQ(back[2].outcome, PointResult::Outcome::kInvalid);
  EXPECT_EQ(back[2].message, "bad mesh");
  EXPECT_TRUE(back[2].cancelled);
  EXPECT_EQ(back[0].message, "");  // not in the share: untouched

  // Malformed bytes are errors, not crashes.
  EXPECT_FALSE(DecodePointResults(bytes.substr(0, bytes.size() - 1), &back).ok());
  EXPECT_FALSE(DecodePointResults(bytes + "x", &back).ok());
  EXPECT_FALSE(DecodePointResults(bytes.substr(0, 4), &back).ok());
  std::vector<PointResult> short_of_index_2(2);  // index 2 is out of range
  EXPECT_FALSE(DecodePointResults(bytes, &short_of_index_2).ok());
  std::string huge_count = bytes;
  huge_count[7] = '\x7f';  // a count past what the bytes could hold
  EXPECT_FALSE(DecodePointResults(huge_count, &back).ok());
}

// A distributor that runs `processes` in turn in this process, process p taking the chunks
// k with k % processes == p (as if they drew from the counter in turn): RunPoints under it gives
// the results it gives without one.
class InProcessShares : public PointDistributor {
 public:
  explicit InProcessShares(int processes) : processes_(processes) {}
  std::vector<PointResult> Run(size_t points, const ShareEvaluator& evaluate,
                               const std::function<void(size_t, size_t)>& progress) override {
    const ChunkSchedule schedule = GuidedChunks(points, processes_);
    std::vector<PointResult> all(points);
    size_t done = 0;
    for (int p = 0; p < processes_; ++p) {
      std::vector<size_t> share;
      for (size_t k = static_cast<size_t>(p); k < schedule.chunks();
           k += static_cast<size_t>(processes_)) {
        for (size_t i = schedule.begin(k); i < schedule.ends[k]; ++i) share.push_back(i);
      }
      std::mutex mu;
      size_t next = 0;
      const auto part = evaluate(
          [&]() -> std::optional<size_t> {
            std::lock_guard<std::mutex> lock(mu);
            return next < share.size() ? std::optional<size_t>(share[next++]) : std::nullopt;
          },
          [&](size_t) {
            if (progress) progress(++done, points);
          });
      // Through bytes, as between processes.
      EXPECT_TRUE(DecodePointResults(EncodePointResults(part, share), &all).ok());
      ++runs_;
    }
    return all;
  }
  int runs_ = 0;

 private:
  int processes_;
};

TEST(PointDistributor, RunPointsSplitGivesTheSameResults) {
  const std::string path =
      std::string(MOESIM_SOURCE_DIR) + "/scenarios/apple2024/dense-85m.textproto";
  auto grid = GridPoints({}, {"training.micro_batch_size=1,2,4", "training.recompute=NONE,FULL",
                              "sharding.mesh.pipeline=1,3"});
  ASSERT_TRUE(grid.ok());
  for (const bool keep_details : {true, false}) {
    RunOptions one;
    one.jobs = 2;
    one.keep_details = keep_details;
    const auto expected = RunPoints(path, *grid, one);
    InProcessShares shares(3);
    RunOptions split = one;
    split.distributor = &shares;
    size_t last = 0, total = 0;
    split.progress = [&](size_t d, size_t t) { last = d, total = t; };
    const auto got = RunPoints(path, *grid, split);
    EXPECT_EQ(shares.runs_, 3);
    EXPECT_EQ(last, grid->size());
    EXPECT_EQ(total, grid->size());
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].overrides, expected[i].overrides);
      EXPECT_EQ(got[i].outcome, expected[i].outcome) << i;
      EXPECT_EQ(got[i].message, expected[i].message) << i;
      EXPECT_EQ(got[i].report.step_time_s, expected[i].report.step_time_s) << i;
      EXPECT_EQ(got[i].report.memory.peak_bytes, expected[i].report.memory.peak_bytes) << i;
      EXPECT_EQ(got[i].scenario.sharding.mesh.Key(), expected[i].scenario.sharding.mesh.Key()) << i;
    }
  }
}

}  // namespace
}  // namespace moesim
