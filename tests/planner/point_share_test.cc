// Splitting planner points over processes (sim/planner/point_share.h): the assignment by cost,
// worked by hand, and the results' bytes read back to the same figures.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "sim/planner/planner.h"
#include "sim/planner/point_share.h"

namespace moesim {
namespace {

std::vector<double> Loads(const std::vector<double>& costs, const std::vector<int>& owner,
                          int processes) {
  std::vector<double> load(static_cast<size_t>(processes), 0.0);
  for (size_t i = 0; i < costs.size(); ++i) load[static_cast<size_t>(owner[i])] += costs[i];
  return load;
}

TEST(AssignByCost, LongestFirstToTheLeastLoaded) {
  // By hand: 8 (p0), 7 (p1), 6 (p1: 13), 5 (p0: 13), 4 (p0: 17; a tie at 13 goes to the lowest),
  // 4 (p1: 17). Alternating in index order would give 4+5+4 = 13 against 8+7+6 = 21.
  const std::vector<double> costs = {4, 8, 5, 7, 4, 6};
  const std::vector<int> owner = AssignByCost(costs, 2);
  EXPECT_EQ(owner, (std::vector<int>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(Loads(costs, owner, 2), (std::vector<double>{17, 17}));
}

TEST(AssignByCost, OneHeavyPointAloneAndTheRestShared) {
  // 10 alone on p0; 3, 3, 2, 2 alternate over p1 and p2 (3 p1, 3 p2, 2 p1, 2 p2): 10 / 5 / 5.
  const std::vector<double> costs = {2, 3, 10, 2, 3};
  const std::vector<int> owner = AssignByCost(costs, 3);
  EXPECT_EQ(owner, (std::vector<int>{1, 1, 0, 2, 2}));
  EXPECT_EQ(Loads(costs, owner, 3), (std::vector<double>{10, 5, 5}));
}

TEST(AssignByCost, OneProcessTakesAllAndMoreProcessesThanPoints) {
  EXPECT_EQ(AssignByCost({1, 2, 3}, 1), (std::vector<int>{0, 0, 0}));
  EXPECT_EQ(AssignByCost({1, 2}, 4), (std::vector<int>{1, 0}));
  EXPECT_TRUE(AssignByCost({}, 2).empty());
}

TEST(AssignByCost, ManyEqualPointsSplitEvenly) {
  const std::vector<double> costs(101, 1.0);
  const auto load = Loads(costs, AssignByCost(costs, 2), 2);
  EXPECT_EQ(load, (std::vector<double>{51, 50}));
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
  ASSERT_TRUE(DecodePointResults(bytes, {2, 1}, &back).ok());
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
  EXPECT_FALSE(DecodePointResults(bytes.substr(0, bytes.size() - 1), {2, 1}, &back).ok());
  EXPECT_FALSE(DecodePointResults(bytes + "x", {2, 1}, &back).ok());
  EXPECT_FALSE(DecodePointResults(bytes, {2}, &back).ok());
  EXPECT_FALSE(DecodePointResults(bytes, {2, 7}, &back).ok());
}

// A distributor that runs the shares of `processes` in turn in this process: RunPoints under
// it gives the results it gives without one.
class InProcessShares : public PointDistributor {
 public:
  explicit InProcessShares(int processes) : processes_(processes) {}
  std::vector<PointResult> Run(const std::vector<double>& costs, const ShareEvaluator& evaluate,
                               const std::function<void(size_t, size_t)>& progress) override {
    const std::vector<int> owner = AssignByCost(costs, processes_);
    std::vector<PointResult> all(costs.size());
    size_t done = 0;
    for (int p = 0; p < processes_; ++p) {
      std::vector<size_t> share;
      for (size_t i = 0; i < owner.size(); ++i) {
        if (owner[i] == p) share.push_back(i);
      }
      const auto part = evaluate(share, [&](size_t) {
        if (progress) progress(++done, costs.size());
      });
      // Through bytes, as between processes.
      EXPECT_TRUE(DecodePointResults(EncodePointResults(part, share), share, &all).ok());
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
