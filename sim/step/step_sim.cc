#include "sim/step/step_sim.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace moesim {

std::string CollectiveLabel(const CollectiveWork& w) {
  std::string s = CollectiveKindName(w.kind);
  // An MoE exchange by another dispatcher: "all_to_all/hierarchical", "all_to_all/allgather".
  if (w.exchange.dispatcher != TokenDispatcher::kAllToAll) {
    s += std::string("/") + TokenDispatcherName(w.exchange.dispatcher);
  }
  for (MeshAxis a : w.axes) s += std::string(" ") + MeshAxisName(a);
  return s;
}

namespace {

// One pass over the ops in id order (ids are topological) with the given durations.
void RunPass(const OpGraph& g, const std::vector<double>& dur, ScheduleResult* r) {
  r->timing.assign(g.ops.size(), {});
  r->step_time_s = 0;
  // End time of the last op issued on each (program, stream).
  std::vector<double> stream_free(static_cast<size_t>(g.num_programs * kNumStreams), 0.0);
  for (const Op& op : g.ops) {
    double start = stream_free[static_cast<size_t>(op.program * kNumStreams + op.stream)];
    for (int32_t d : op.deps) start = std::max(start, r->timing[static_cast<size_t>(d)].end_s);
    OpTiming& t = r->timing[static_cast<size_t>(op.id)];
    t.start_s = start;
    t.end_s = start + dur[static_cast<size_t>(op.id)];
    stream_free[static_cast<size_t>(op.program * kNumStreams + op.stream)] = t.end_s;
    r->step_time_s = std::max(r->step_time_s, t.end_s);
  }
}

}  // namespace

std::vector<double> CommSmContendedTimes(const OpGraph& g, double fraction,
                                         const std::vector<double>& alone,
                                         const std::vector<OpTiming>& timing) {
  std::vector<double> out = alone;
  if (fraction <= 0) return out;
  // Per program, the union of its collectives' intervals, as sorted disjoint [begin, end) with
  // the covered time before each.
  struct Union {
    std::vector<std::pair<double, double>> spans;
    std::vector<double> before;  // covered time before spans[i]
  };
  std::vector<Union> cover(static_cast<size_t>(g.num_programs));
  for (const Op& op : g.ops) {
    const OpTiming& t = timing[static_cast<size_t>(op.id)];
    if (op.is_collective && t.end_s > t.start_s) {
      cover[static_cast<size_t>(op.program)].spans.push_back({t.start_s, t.end_s});
    }
  }
  for (Union& u : cover) {
    std::sort(u.spans.begin(), u.spans.end());
    std::vector<std::pair<double, double>> merged;
    for (const auto& s : u.spans) {
      if (!merged.empty() && s.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, s.second);
      } else {
        merged.push_back(s);
      }
    }
    u.spans = std::move(merged);
    double acc = 0;
    for (const auto& s : u.spans) {
      u.before.push_back(acc);
      acc += s.second - s.first;
    }
  }
  // Covered time in [0, x).
  auto covered_before = [](const Union& u, double x) {
    auto it = std::upper_bound(u.spans.begin(), u.spans.end(), std::make_pair(x, x));
    if (it == u.spans.begin()) return 0.0;
    --it;
    const size_t i = static_cast<size_t>(it - u.spans.begin());
    return u.before[i] + std::min(x, it->second) - it->first;
  };
  for (const Op& op : g.ops) {
    if (op.is_collective) continue;
    const OpTiming& t = timing[static_cast<size_t>(op.id)];
    const Union& u = cover[static_cast<size_t>(op.program)];
    const double overlapped = covered_before(u, t.end_s) - covered_before(u, t.start_s);
    // Work at full rate outside the overlap, at (1 - fraction) inside it:
    // (d - o) + o (1 - fraction) = alone, so d = alone + fraction x o.
    out[static_cast<size_t>(op.id)] += fraction * std::max(0.0, overlapped);
  }
  return out;
}

ScheduleResult SimulateSchedule(const OpGraph& g, const HardwareProfile& hw,
                                const CollectiveTimer& collective_time) {
  ScheduleResult r;
  std::vector<double> alone(g.ops.size());
  for (const Op& op : g.ops) {
    alone[static_cast<size_t>(op.id)] = op.is_collective
                                            ? collective_time(op.collective, op.program)
                                            : ComputeTimeS(op.compute, hw);
  }
  RunPass(g, alone, &r);
  // A communication kernel's SMs slow the compute it overlaps (Hardware.comm_sm_fraction): the
  // overlap depends on the durations it changes, so passes repeat until they agree.
  for (int pass = 0; hw.comm_sm_fraction > 0 && pass < kMaxContentionPasses; ++pass) {
    const std::vector<double> dur = CommSmContendedTimes(g, hw.comm_sm_fraction, alone, r.timing);
    ScheduleResult next;
    RunPass(g, dur, &next);
    bool same = true;
    for (size_t i = 0; i < dur.size() && same; ++i) {
      same = std::abs((next.timing[i].end_s - next.timing[i].start_s) -
                      (r.timing[i].end_s - r.timing[i].start_s)) <= 1e-12 * (1 + dur[i]);
    }
    r = std::move(next);
    if (same) break;
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
    b.compute_by_class[KernelClassName(op.compute)] += t.end_s - t.start_s;
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
