#include "sim/step/step_sim.h"

#include <algorithm>

namespace moesim {

std::string CollectiveLabel(const CollectiveWork& w) {
  std::string s = CollectiveKindName(w.kind);
  for (MeshAxis a : w.axes) s += std::string(" ") + MeshAxisName(a);
  return s;
}

ScheduleResult SimulateSchedule(const OpGraph& g, const HardwareProfile& hw,
                                const CollectiveTimer& collective_time) {
  ScheduleResult r;
  r.timing.resize(g.ops.size());
  // End time of the last op issued on each (program, stream).
  std::vector<double> stream_free(static_cast<size_t>(g.num_programs * kNumStreams), 0.0);
  for (const Op& op : g.ops) {
    double start = stream_free[static_cast<size_t>(op.program * kNumStreams + op.stream)];
    for (int32_t d : op.deps) start = std::max(start, r.timing[static_cast<size_t>(d)].end_s);
    const double dur = op.is_collective ? collective_time(op.collective, op.program)
                                        : ComputeTimeS(op.compute, hw);
    OpTiming& t = r.timing[static_cast<size_t>(op.id)];
    t.start_s = start;
    t.end_s = start + dur;
    stream_free[static_cast<size_t>(op.program * kNumStreams + op.stream)] = t.end_s;
    r.step_time_s = std::max(r.step_time_s, t.end_s);
  }
  ComputeBreakdown(g, &r);
  return r;
}

void ComputeBreakdown(const OpGraph& g, ScheduleResult* r) {
  // The critical stage: the one with the most compute (the pipeline's slowest stage).
  std::vector<double> compute(static_cast<size_t>(g.num_programs), 0.0);
  for (const Op& op : g.ops) {
    if (!op.is_collective) {
      const OpTiming& t = r->timing[static_cast<size_t>(op.id)];
      compute[static_cast<size_t>(op.program)] += t.end_s - t.start_s;
    }
  }
  r->critical_program =
      static_cast<int32_t>(std::max_element(compute.begin(), compute.end()) - compute.begin());
  const int32_t p = r->critical_program;
  Breakdown b;
  double cursor = 0;  // end of the previous compute op on the critical stage
  for (const Op& op : g.ops) {
    if (op.program != p) continue;
    const OpTiming& t = r->timing[static_cast<size_t>(op.id)];
    if (op.is_collective) {
      b.comm_total_s += t.end_s - t.start_s;
      continue;
    }
    const double gap = t.start_s - cursor;
    if (gap > 0) {
      // Blame the dependency that finished last (the one the op actually waited for).
      const Op* blocker = nullptr;
      double latest = -1;
      for (int32_t d : op.deps) {
        const double end = r->timing[static_cast<size_t>(d)].end_s;
        if (end > latest) {
          latest = end;
          blocker = &g.ops[static_cast<size_t>(d)];
        }
      }
      if (blocker == nullptr || latest <= cursor) {
        b.idle_s += gap;
      } else if (blocker->program != p || blocker->stream == kP2pStream) {
        b.bubble_s += gap;
      } else if (blocker->is_collective) {
        b.exposed_comm_s += gap;
        b.exposed_by_collective[CollectiveLabel(blocker->collective)] += gap;
      } else {
        b.idle_s += gap;
      }
    }
    b.compute_s += t.end_s - t.start_s;
    cursor = t.end_s;
  }
  // After the stage's last compute op: its trailing collectives (exposed) or other stages.
  const double tail = r->step_time_s - cursor;
  if (tail > 0) {
    double own = 0;
    for (const Op& op : g.ops) {
      if (op.program == p && op.is_collective) {
        own = std::max(own, r->timing[static_cast<size_t>(op.id)].end_s);
      }
    }
    const double exposed = std::max(0.0, std::min(own, r->step_time_s) - cursor);
    b.exposed_comm_s += exposed;
    if (exposed > 0) b.exposed_by_collective["after last compute"] += exposed;
    b.bubble_s += tail - exposed;
  }
  r->breakdown = b;
}

}  // namespace moesim
