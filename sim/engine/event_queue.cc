#include "sim/engine/event_queue.h"

#include <utility>

namespace moesim::sim {

EventId EventQueue::Push(SimTime time, int32_t priority, Action action) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
    actions_[slot] = std::move(action);
  } else {
    slot = static_cast<uint32_t>(actions_.size());
    actions_.push_back(std::move(action));
    slot_seq_.push_back(0);
  }
  const uint64_t seq = next_seq_++;
  slot_seq_[slot] = seq;
  heap_.push_back(Key{time.picoseconds(), priority, slot, seq});
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
  while (!heap_.empty() && slot_seq_[heap_[0].slot] != heap_[0].seq) PopKey();
}

SimTime EventQueue::NextTime() {
  DropDeadTop();
  return SimTime::FromPicoseconds(heap_[0].time_ps);
}

EventQueue::Popped EventQueue::Pop() {
  DropDeadTop();
  const Key top = heap_[0];
  PopKey();
  Popped out{SimTime::FromPicoseconds(top.time_ps), top.priority, std::move(actions_[top.slot])};
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

void EventQueue::SiftUp(size_t i) {
  const Key k = heap_[i];
  while (i > 0) {
    const size_t parent = (i - 1) / 2;
    if (!Before(k, heap_[parent])) break;
    heap_[i] = heap_[parent];
    i = parent;
  }
  heap_[i] = k;
}

void EventQueue::SiftDown(size_t i) {
  const size_t n = heap_.size();
  const Key k = heap_[i];
  while (true) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && Before(heap_[child + 1], heap_[child])) ++child;
    if (!Before(heap_[child], k)) break;
    heap_[i] = heap_[child];
    i = child;
  }
  heap_[i] = k;
}

}  // namespace moesim::sim
