// Engine and EventQueue: ordering by (time, priority, seq), cancellation, stuck detection,
// limits, and independence of two engines.
#include "sim/engine/engine.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace moesim::sim {
namespace {

SimTime Ps(int64_t ps) { return SimTime::FromPicoseconds(ps); }

TEST(SimTime, ConvertsSecondsToWholePicoseconds) {
  EXPECT_EQ(SimTime::FromSeconds(1e-6).picoseconds(), 1000000);
  EXPECT_EQ(SimTime::FromSeconds(1.4e-12).picoseconds(), 1);  // nearest
  EXPECT_EQ(SimTime::CeilSeconds(1.4e-12).picoseconds(), 2);  // up
  EXPECT_EQ(SimTime::FromSeconds(-1).picoseconds(), 0);
  EXPECT_EQ(SimTime::FromSeconds(1e300), SimTime::Max());
  EXPECT_DOUBLE_EQ(Ps(2500000000000).seconds(), 2.5);
}

TEST(SimTime, ArithmeticSaturatesInsteadOfWrapping) {
  // A flow at 1e-300 B/s once ended at a wrapped, negative time that read as a 0.17 s step.
  const SimTime max = SimTime::Max();
  EXPECT_EQ(max + SimTime::FromPicoseconds(1), max);
  EXPECT_EQ(SimTime::FromSeconds(1e300), max);
  EXPECT_EQ(SimTime::FromSeconds(9e6) + SimTime::FromSeconds(9e6), max);  // 2 x 9e18 ps > 2^63
  SimTime t = SimTime::FromSeconds(1);
  t += max;
  EXPECT_EQ(t, max);
  EXPECT_EQ((SimTime::FromPicoseconds(5) - SimTime::FromPicoseconds(7)).picoseconds(), -2);
  EXPECT_EQ(SimTime::FromPicoseconds(INT64_MIN) - SimTime::FromPicoseconds(1),
            SimTime::FromPicoseconds(INT64_MIN));
}

TEST(EventQueue, PopsByTimeThenPriorityThenInsertion) {
  EventQueue q;
  std::vector<std::string> order;
  auto add = [&](int64_t t, int32_t prio, std::string name) {
    q.Push(Ps(t), prio, [&order, name] { order.push_back(name); });
  };
  add(20, 0, "t20");
  add(10, 5, "t10 p5 first");
  add(10, 0, "t10 p0 a");
  add(10, 5, "t10 p5 second");
  add(10, 0, "t10 p0 b");
  add(5, 9, "t5");
  while (!q.empty()) q.Pop().action();
  EXPECT_EQ(order, (std::vector<std::string>{"t5", "t10 p0 a", "t10 p0 b", "t10 p5 first",
                                             "t10 p5 second", "t20"}));
}

TEST(EventQueue, CancelledEventsNeverRunAndSlotsAreReused) {
  EventQueue q;
  int ran = 0;
  EventId a = q.Push(Ps(1), 0, [&] { ran += 1; });
  EventId b = q.Push(Ps(2), 0, [&] { ran += 10; });
  EXPECT_TRUE(q.Cancel(a));
  EXPECT_FALSE(q.Cancel(a));  // twice
  EXPECT_EQ(q.size(), 1);
  EventId c = q.Push(Ps(3), 0, [&] { ran += 100; });  // reuses a's slot
  EXPECT_EQ(c.slot, a.slot);
  EXPECT_FALSE(q.Cancel(a));  // the stale id does not cancel c
  EXPECT_EQ(q.NextTime(), Ps(2));
  while (!q.empty()) q.Pop().action();
  EXPECT_EQ(ran, 110);
  EXPECT_FALSE(q.Cancel(b));  // already ran
}

TEST(EventQueue, ManyEventsComeOutSorted) {
  // A linear congruential sequence of times; the heap must return them in order, with equal
  // times in insertion order.
  EventQueue q;
  std::vector<std::pair<int64_t, int>> popped;
  uint64_t x = 12345;
  for (int i = 0; i < 5000; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const int64_t t = static_cast<int64_t>((x >> 33) % 100);
    q.Push(Ps(t), 0, [&popped, t, i] { popped.emplace_back(t, i); });
  }
  while (!q.empty()) q.Pop().action();
  ASSERT_EQ(popped.size(), 5000u);
  for (size_t i = 1; i < popped.size(); ++i) {
    ASSERT_TRUE(popped[i - 1] < popped[i]) << i;
  }
}

TEST(Engine, ClockAdvancesToEachEvent) {
  Engine e;
  std::vector<int64_t> seen;
  e.ScheduleAt(Ps(30), [&] { seen.push_back(e.now().picoseconds()); });
  e.ScheduleAt(Ps(10), [&] {
    seen.push_back(e.now().picoseconds());
    e.ScheduleAfter(Ps(5), [&] { seen.push_back(e.now().picoseconds()); });
  });
  ASSERT_TRUE(e.Run().ok());
  EXPECT_EQ(seen, (std::vector<int64_t>{10, 15, 30}));
  EXPECT_EQ(e.events_run(), 3);
}

TEST(Engine, SchedulingInThePastRunsNow) {
  Engine e;
  int64_t at = -1;
  e.ScheduleAt(Ps(100), [&] { e.ScheduleAt(Ps(50), [&] { at = e.now().picoseconds(); }); });
  ASSERT_TRUE(e.Run().ok());
  EXPECT_EQ(at, 100);
}

TEST(Engine, StuckWorkIsAnErrorThatListsIt) {
  Engine e;
  bool released = false;
  e.AddPendingReporter([&](std::vector<std::string>* w) {
    if (!released) w->push_back("job A waits for a token");
  });
  e.AddPendingReporter([](std::vector<std::string>* w) { w->push_back("job B waits for A"); });
  e.ScheduleAt(Ps(1000000), [] {});
  const Status st = e.Run();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kInternal);
  EXPECT_EQ(st.message(),
            "simulation stuck at t=1e-06 s: no event left, but 2 item(s) wait: job A waits for a "
            "token; job B waits for A");
}

TEST(Engine, RemovedReporterIsNotAsked) {
  Engine e;
  const int64_t h = e.AddPendingReporter([](std::vector<std::string>* w) { w->push_back("x"); });
  e.RemovePendingReporter(h);
  EXPECT_TRUE(e.Run().ok());
}

TEST(Engine, EventLimitStopsALivelock) {
  Engine e;
  std::function<void()> again = [&] { e.ScheduleAfter(Ps(1), again); };
  e.ScheduleAt(Ps(0), again);
  Engine::RunLimits limits;
  limits.max_events = 1000;
  const Status st = e.Run(limits);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("after 1000 events"), std::string::npos) << st.message();
}

TEST(Engine, RunUntilLeavesLaterEventsQueued) {
  Engine e;
  int ran = 0;
  e.ScheduleAt(Ps(10), [&] { ++ran; });
  e.ScheduleAt(Ps(20), [&] { ++ran; });
  Engine::RunLimits limits;
  limits.until = Ps(15);
  ASSERT_TRUE(e.Run(limits).ok());
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(e.pending_events(), 1);
  ASSERT_TRUE(e.Run().ok());
  EXPECT_EQ(ran, 2);
}

TEST(Engine, StopEndsTheRunAfterTheCurrentEvent) {
  Engine e;
  int ran = 0;
  e.ScheduleAt(Ps(1), [&] {
    ++ran;
    e.Stop();
  });
  e.ScheduleAt(Ps(2), [&] { ++ran; });
  ASSERT_TRUE(e.Run().ok());
  EXPECT_EQ(ran, 1);
}

TEST(Engine, TwoEnginesDoNotInterfere) {
  // Interleave scheduling on two engines; each keeps its own clock, order and counts.
  Engine a, b;
  std::vector<int> order_a, order_b;
  for (int i = 0; i < 3; ++i) {
    a.ScheduleAt(Ps(10 - i), [&order_a, i] { order_a.push_back(i); });
    b.ScheduleAt(Ps(100 + i), [&order_b, i] { order_b.push_back(i); });
  }
  ASSERT_TRUE(a.Run().ok());
  EXPECT_EQ(a.now(), Ps(10));
  EXPECT_EQ(b.now(), Ps(0));
  EXPECT_EQ(b.pending_events(), 3);
  ASSERT_TRUE(b.Run().ok());
  EXPECT_EQ(order_a, (std::vector<int>{2, 1, 0}));
  EXPECT_EQ(order_b, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(b.now(), Ps(102));
}

}  // namespace
}  // namespace moesim::sim
