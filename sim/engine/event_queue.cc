#include "sim/engine/event_queue.h"

#include <algorithm>
#include <utility>

namespace moesim::sim {

uint32_t EventQueue::TakeSlot() {
  if (!free_slots_.empty()) {
    const uint32_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  actions_.emplace_back();
  slot_seq_.push_back(0);
  return static_cast<uint32_t>(actions_.size() - 1);
}

EventId EventQueue::PushKey(SimTime time, int32_t priority, uint32_t slot) {
  const uint64_t seq = next_seq_++;
  slot_seq_[slot] = seq;
  const uint64_t prio = static_cast<uint64_t>(static_cast<int64_t>(priority) + (int64_t{1} << 23));
  heap_.push_back(Key{static_cast<uint64_t>(time.picoseconds()), (prio << kSeqBits) | seq, slot});
  SiftUp(heap_.size() - 1);
  ++live_;
  return EventId{seq, slot};
}

bool EventQueue::Cancel(EventId id) {
  if (!id.valid() || id.slot >= slot_seq_.size() || slot_seq_[id.slot] != id.seq) return false;
  slot_seq_[id.slot] = 0;
  actions_[id.slot] = nullptr;  // release captures now
  free_slots_.push_back(id.slot);
  --live_;
  return true;
}

void EventQueue::DropDeadTop() {
  while (!heap_.empty() && slot_seq_[heap_[0].slot] != SeqOf(heap_[0])) PopKey();
}

SimTime EventQueue::NextTime() {
  DropDeadTop();
  return SimTime::FromPicoseconds(static_cast<int64_t>(heap_[0].time_ps));
}

EventQueue::Popped EventQueue::Pop() {
  DropDeadTop();
  const Key top = heap_[0];
  PopKey();
  const int32_t priority =
      static_cast<int32_t>(static_cast<int64_t>(top.order >> kSeqBits) - (int64_t{1} << 23));
  Popped out{SimTime::FromPicoseconds(static_cast<int64_t>(top.time_ps)), priority,
             std::move(actions_[top.slot])};
  actions_[top.slot] = nullptr;
  slot_seq_[top.slot] = 0;
  free_slots_.push_back(top.slot);
  --live_;
  return out;
}

void EventQueue::PopKey() {
  heap_[0] = heap_.back();
  heap_.pop_back();
  if (!heap_.empty()) SiftDown(0);
}

// Both sifts work on a local pointer and move a hole instead of swapping.
void EventQueue::SiftUp(size_t i) {
  Key* const h = heap_.data();
  const Key k = h[i];
  while (i > 0) {
    const size_t parent = (i - 1) / 2;
    if (!Before(k, h[parent])) break;
    h[i] = h[parent];
    i = parent;
  }
  h[i] = k;
}

void EventQueue::SiftDown(size_t i) {
  Key* const h = heap_.data();
  const size_t n = heap_.size();
  const Key k = h[i];
  while (true) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && Before(h[child + 1], h[child])) ++child;
    if (!Before(h[child], k)) break;
    h[i] = h[child];
    i = child;
  }
  h[i] = k;
}

}  // namespace moesim::sim
