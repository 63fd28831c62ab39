// Splitting planner points over processes (sim/planner/point_share.h): the chunk schedule,
// worked by hand and checked over many points, the handout of chunks to threads, and the
// results' bytes read back to the same figures.
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

// The chunks of a schedule as lists of indices.
std::vector<std::vector<size_t>> Chunks(const ChunkSchedule& s) {
  std::vector<std::vector<size_t>> out;
  for (size_t k = 0; k < s.chunks(); ++k) {
    out.emplace_back(s.order.begin() + static_cast<ptrdiff_t>(s.begin(k)),
                     s.order.begin() + static_cast<ptrdiff_t>(s.ends[k]));
  }
  return out;
}

TEST(GuidedChunks, LargestFirstInShrinkingChunksByHand) {
  // Four points of 8 (indices 32-35) and 32 of 1, over two processes: a chunk holds at most
  // 1/8 of the points left (rounded up) and stops once it holds 1/8 of the cost left. Of 64, the
  // first chunk could take 5 points by count (8+8+8+8+1, half the work) but stops at one 8; so
  // do the next three (8 >= 56/8, 48/8, 40/8). Then 32 ones: 4 (count and cost), 4 (28/8 = 3.5
  // reached after 4), 3, 3, 3 (up to ceil(24/8), ceil(21/8), ceil(18/8)), 2 x 4, then 1 x 7.
  std::vector<double> costs(36, 1.0);
  for (size_t i = 32; i < 36; ++i) costs[i] = 8;
  const ChunkSchedule s = GuidedChunks(costs, 2);
  const auto chunks = Chunks(s);
  ASSERT_GE(chunks.size(), 5u);
  EXPECT_EQ(chunks[0], (std::vector<size_t>{32}));  // largest first; ties by index
  EXPECT_EQ(chunks[3], (std::vector<size_t>{35}));
  EXPECT_EQ(chunks[4], (std::vector<size_t>{0, 1, 2, 3}));
  std::vector<size_t> sizes;
  for (const auto& c : chunks) sizes.push_back(c.size());
  EXPECT_EQ(sizes,
            (std::vector<size_t>{1, 1, 1, 1, 4, 4, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1}));
}

TEST(GuidedChunks, EqualCostsShrinkByCount) {
  // 100 equal points over 2 processes: ceil(100/8) = 13, then ceil(87/8) = 11, 10, 9, 8, ...
  // down to chunks of one.
  const ChunkSchedule s = GuidedChunks(std::vector<double>(100, 1.0), 2);
  std::vector<size_t> sizes;
  for (const auto& c : Chunks(s)) sizes.push_back(c.size());
  ASSERT_GE(sizes.size(), 5u);
  EXPECT_EQ(std::vector<size_t>(sizes.begin(), sizes.begin() + 5),
            (std::vector<size_t>{13, 11, 10, 9, 8}));
  EXPECT_EQ(sizes.back(), 1u);
  for (size_t k = 1; k < sizes.size(); ++k) EXPECT_LE(sizes[k], sizes[k - 1]) << k;
  for (size_t k = 0; k < s.order.size(); ++k) EXPECT_EQ(s.order[k], k);  // ties: index order
}

TEST(GuidedChunks, EveryPointOnceLargestFirstAndNoChunkTooLarge) {
  // Costs spread over four decades, some zero (a point that does not load costs a constant, but
  // the schedule must not depend on that), over 3 processes.
  std::vector<double> costs(1000);
  for (size_t i = 0; i < costs.size(); ++i) {
    costs[i] = i % 17 == 0 ? 0 : std::pow(10.0, static_cast<double>((i * 7919) % 4000) / 1000);
  }
  const ChunkSchedule s = GuidedChunks(costs, 3);
  std::vector<int> seen(costs.size(), 0);
  for (size_t i : s.order) ++seen[i];
  EXPECT_EQ(seen, std::vector<int>(costs.size(), 1));
  for (size_t k = 1; k < s.order.size(); ++k) {
    EXPECT_GE(costs[s.order[k - 1]], costs[s.order[k]]) << k;
  }
  ASSERT_FALSE(s.ends.empty());
  EXPECT_EQ(s.ends.back(), costs.size());
  // A chunk of more than one point holds at most 1/12 of the cost untaken before it (plus its
  // last point) and at most ceil(1/12) of the points untaken.
  double untaken = 0;
  for (double c : costs) untaken += c;
  size_t left = costs.size();
  for (const auto& chunk : Chunks(s)) {
    ASSERT_FALSE(chunk.empty());
    double cost = 0;
    for (size_t i : chunk) cost += costs[i];
    EXPECT_LE(chunk.size(), (left + 11) / 12);
    if (chunk.size() > 1) {
      EXPECT_LT(cost - costs[chunk.back()], untaken / 12 + 1e-9);
    }
    untaken -= cost;
    left -= chunk.size();
  }
  EXPECT_EQ(Chunks(s).back().size(), 1u);
  EXPECT_LT(s.chunks(), 200u);  // chunks shrink geometrically: few draws from the counter
}

TEST(GuidedChunks, NoPointsNoChunks) {
  const ChunkSchedule s = GuidedChunks({}, 2);
  EXPECT_TRUE(s.order.empty());
  EXPECT_EQ(s.chunks(), 0u);
  EXPECT_EQ(Chunks(GuidedChunks({5}, 4)), (std::vector<std::vector<size_t>>{{0}}));
}

TEST(ChunkHandout, ThreadsOfTwoProcessesTakeEveryPointOnce) {
  // Two "processes", each with three evaluating threads and one fetching thread, drawing from
  // one shared counter: every point goes to exactly one thread, and each process's Taken lists
  // what its threads got.
  const ChunkSchedule s = GuidedChunks(std::vector<double>(500, 1.0), 2);
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
  int Processes() const override { return processes_; }
  std::vector<PointResult> Run(const std::vector<double>& costs, const ShareEvaluator& evaluate,
                               const std::function<void(size_t, size_t)>& progress) override {
    const ChunkSchedule schedule = GuidedChunks(costs, processes_);
    std::vector<PointResult> all(costs.size());
    size_t done = 0;
    for (int p = 0; p < processes_; ++p) {
      std::vector<size_t> share;
      for (size_t k = static_cast<size_t>(p); k < schedule.chunks();
           k += static_cast<size_t>(processes_)) {
        for (size_t at = schedule.begin(k); at < schedule.ends[k]; ++at) {
          share.push_back(schedule.order[at]);
        }
      }
      std::mutex mu;
      size_t next = 0;
      const auto part = evaluate(
          [&]() -> std::optional<size_t> {
            std::lock_guard<std::mutex> lock(mu);
            return next < share.size() ? std::optional<size_t>(share[next++]) : std::nullopt;
          },
          [&](size_t) {
            if (progress) progress(++done, costs.size());
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
  RunOptions one;
  one.jobs = 2;
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

}  // namespace
}  // namespace moesim
