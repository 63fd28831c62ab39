// event_queue.h
//
// EventQueue orders pending events by (time, priority, seq) and pops the earliest. seq is a
// per-queue counter, so events with equal time and priority run in insertion order (ns-3's rule);
// a lower priority value runs first among events at the same time. An event is an Action (a
// callback); the queue never looks inside it.
//
// Storage: a binary min-heap of small fixed-size keys (time, priority, seq, slot) and a slot table
// holding the actions, so sifting moves 24-byte keys, never callbacks. Cancel() frees the slot at
// once; the key stays in the heap and is skipped when it surfaces (lazy deletion).
//
// Invariants: size() counts live (not cancelled, not popped) events; a key is live iff its slot's
// seq equals the key's seq. Complexity: Push, Pop O(log n); Cancel O(1).
// Thread safety: none; owned by one Engine.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "sim/engine/sim_time.h"

namespace moesim::sim {

// Names one scheduled event, for Cancel(). Default-constructed = no event.
struct EventId {
  uint64_t seq = 0;  // 0 = none; real events start at 1
  uint32_t slot = 0;
  bool valid() const { return seq != 0; }
};

class EventQueue {
 public:
  using Action = std::function<void()>;

  // Adds an event. REQUIRES: action is non-empty.
  EventId Push(SimTime time, int32_t priority, Action action);
  // Cancels a pending event; false when it already ran, was cancelled, or `id` is none.
  bool Cancel(EventId id);

  bool empty() const { return live_ == 0; }
  int64_t size() const { return live_; }
  // Time of the earliest live event. REQUIRES: !empty().
  SimTime NextTime();

  struct Popped {
    SimTime time;
    int32_t priority = 0;
    Action action;
  };
  // Removes and returns the earliest live event. REQUIRES: !empty().
  Popped Pop();

 private:
  struct Key {
    int64_t time_ps;
    int32_t priority;
    uint32_t slot;
    uint64_t seq;
  };
  static bool Before(const Key& a, const Key& b) {
    if (a.time_ps != b.time_ps) return a.time_ps < b.time_ps;
    if (a.priority != b.priority) return a.priority < b.priority;
    return a.seq < b.seq;
  }
  void SiftUp(size_t i);
  void SiftDown(size_t i);
  void PopKey();
  void DropDeadTop();  // pops cancelled keys off the top

  std::vector<Key> heap_;
  std::vector<Action> actions_;     // by slot
  std::vector<uint64_t> slot_seq_;  // by slot: seq of the live event there, 0 = free
  std::vector<uint32_t> free_slots_;
  uint64_t next_seq_ = 1;
  int64_t live_ = 0;
};

}  // namespace moesim::sim
