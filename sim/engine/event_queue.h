// event_queue.h
//
// EventQueue orders pending events by (time, priority, seq) and pops the earliest. seq is a
// per-queue counter, so events with equal time and priority run in insertion order (ns-3's rule);
// a lower priority value runs first among events at the same time. An event is an Action (a
// callback); the queue never looks inside it.
//
// Storage: a binary min-heap of small fixed-size keys and a slot table holding the actions, so
// sifting moves 24-byte keys, never callbacks; RunNext() runs an action where it lies. A key packs
// (time, priority, seq) into two unsigned words compared lexicographically: time; then priority
// (biased to unsigned) in the top 24 bits of the second word and seq in its low 40 bits (2^40
// ~ 1.1e12 events per queue). Cancel() frees the slot at once; the key stays in the heap and is
// skipped when it surfaces (lazy deletion).
//
// Invariants: size() counts live (not cancelled, not popped) events; a key is live iff its slot's
// seq equals the key's seq. Complexity: Push, Pop O(log n); Cancel O(1).
// Thread safety: none; owned by one Engine.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <utility>
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
  // F is an Action or any callable convertible to one; it is stored where it will run, with no
  // intermediate copies.
  template <typename F>
  EventId Push(SimTime time, int32_t priority, F&& action) {
    const uint32_t slot = TakeSlot();
    actions_[slot] = std::forward<F>(action);
    return PushKey(time, priority, slot);
  }
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

  // The run loop's fast path: runs the earliest live event in place (no move of its action) if
  // there is one no later than `until`, after calling set_clock(its time); false otherwise.
  // The action may push and cancel events meanwhile.
  template <typename SetClock>
  bool RunNext(SimTime until, SetClock&& set_clock) {
    DropDeadTop();
    if (heap_.empty() || heap_[0].time_ps > static_cast<uint64_t>(until.picoseconds())) {
      return false;
    }
    const Key top = heap_[0];
    PopKey();
    slot_seq_[top.slot] = 0;
    --live_;
    set_clock(SimTime::FromPicoseconds(static_cast<int64_t>(top.time_ps)));
    Action& action = actions_[top.slot];  // a deque: stays put while the action pushes
    action();
    action = nullptr;
    free_slots_.push_back(top.slot);
    return true;
  }

 private:
  struct Key {
    uint64_t time_ps;
    uint64_t order;  // (priority + 2^23) << 40 | seq
    uint32_t slot;
  };
  static constexpr int kSeqBits = 40;
  static constexpr uint64_t kSeqMask = (uint64_t{1} << kSeqBits) - 1;
  static bool Before(const Key& a, const Key& b) {
    return a.time_ps < b.time_ps || (a.time_ps == b.time_ps && a.order < b.order);
  }
  static uint64_t SeqOf(const Key& k) { return k.order & kSeqMask; }
  uint32_t TakeSlot();
  EventId PushKey(SimTime time, int32_t priority, uint32_t slot);
  void SiftUp(size_t i);
  void SiftDown(size_t i);
  void PopKey();
  void DropDeadTop();  // pops cancelled keys off the top

  std::vector<Key> heap_;
  std::deque<Action> actions_;      // by slot; a deque so that running actions never move
  std::vector<uint64_t> slot_seq_;  // by slot: seq of the live event there, 0 = free
  std::vector<uint32_t> free_slots_;
  uint64_t next_seq_ = 1;
  int64_t live_ = 0;
};

}  // namespace moesim::sim
