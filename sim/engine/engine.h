// engine.h
//
// Engine: the discrete-event run loop. It owns a clock (SimTime, integer picoseconds) and an
// EventQueue ordered by (time, priority, seq), and runs events until none is left. It knows
// nothing of networks or machine learning: an event is a callback.
//
// Never hang, never finish silently with work left: components that hold work waiting on events
// (a flow waiting for bandwidth, a collective waiting for its transfers) register a
// PendingReporter. When the queue runs dry, Run() asks every reporter what is still waiting; if
// anything is, Run() fails with kInternal and a message listing it ("simulation stuck at
// t=0.001 s: ..."). A livelock (events forever) is bounded by RunLimits::max_events.
//
// No globals: every Engine owns its clock, queue and reporters, so many simulations run in one
// process (the planner runs one Engine per thread).
// Invariants: now() never decreases; events run in (time, priority, seq) order.
// Thread safety: none; one Engine is used by one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "sim/engine/event_queue.h"
#include "sim/engine/sim_time.h"

namespace moesim::sim {

class Engine {
 public:
  using Action = EventQueue::Action;
  // Appends one line per piece of work that is waiting (none = nothing waiting).
  using PendingReporter = std::function<void(std::vector<std::string>* waiting)>;

  struct RunLimits {
    SimTime until = SimTime::Max();  // events later than this stay queued; Run() returns Ok
    int64_t max_events = 0;          // > 0: fail with kInternal after this many events
  };

  Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  SimTime now() const { return now_; }

  // Runs `action` at `at`; among equal times, lower `priority` first, then scheduling order.
  // REQUIRES: at >= now() (an earlier time is treated as now()); action non-empty.
  // F: an Action or a callable convertible to one (stored once, where it will run).
  template <typename F>
  EventId ScheduleAt(SimTime at, F&& action, int32_t priority = 0) {
    return queue_.Push(at < now_ ? now_ : at, priority, std::forward<F>(action));
  }
  template <typename F>
  EventId ScheduleAfter(SimTime delay, F&& action, int32_t priority = 0) {
    return ScheduleAt(now_ + delay, std::forward<F>(action), priority);
  }
  // False when the event already ran or was cancelled.
  bool Cancel(EventId id) { return queue_.Cancel(id); }

  // Returns a handle for RemovePendingReporter.
  int64_t AddPendingReporter(PendingReporter reporter);
  void RemovePendingReporter(int64_t handle);

  // Runs events in order until the queue is empty (then checks the reporters), a limit is hit,
  // or Stop() is called from an event.
  Status Run() { return Run(RunLimits{}); }
  Status Run(const RunLimits& limits);
  // Makes Run() return Ok after the current event.
  void Stop() { stop_ = true; }

  int64_t events_run() const { return events_run_; }
  int64_t pending_events() const { return queue_.size(); }
  // What the reporters say is waiting now (empty = nothing).
  std::vector<std::string> Waiting() const;

 private:
  SimTime now_;
  EventQueue queue_;
  int64_t events_run_ = 0;
  bool stop_ = false;
  int64_t next_reporter_ = 0;
  std::map<int64_t, PendingReporter> reporters_;  // ordered: messages in registration order
};

}  // namespace moesim::sim
