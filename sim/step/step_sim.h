// step_sim.h
//
// Runs one training step's OpGraph (costmodel/opgraph.h) and reports its time and why: the
// breakdown (compute, communication left exposed by overlap, pipeline bubble, idle), MFU,
// tokens/s, memory, and a timeline.
//
// Execution semantics (shared by both network levels): every program (pipeline stage) has
// in-order streams; an op starts when the previous op of its stream has finished and all its
// dependencies have; compute ops take their roofline time (ComputeTimeS). With the analytical
// network a collective's time depends only on itself (CollectiveTimer), so the schedule is one
// pass over the ops in id order (ids are topological): O(ops). The congestion-aware level runs
// the same program on the event engine with concurrent collectives sharing links.
//
// Thread safety: SimulateSchedule is a pure function; many can run in parallel threads.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "costmodel/compact_graph.h"
#include "costmodel/opgraph.h"

namespace moesim {

// Seconds a collective takes on `program`'s groups, in isolation.
using CollectiveTimer = std::function<double(const CollectiveWork& work, int32_t program)>;

struct OpTiming {
  double start_s = 0;
  double end_s = 0;
};

struct Breakdown {
  double compute_s = 0;  // compute stream busy
  // compute_s split by kernel class (KernelClassName: "gemm", "attention", "memory").
  std::map<std::string, double> compute_by_class;
  double exposed_comm_s = 0;  // compute stream waiting on a collective of its own stage
  double comm_total_s = 0;    // sum of all collectives' durations (overlapped or not)
  double bubble_s = 0;        // waiting on another pipeline stage
  double idle_s = 0;          // anything else
  // Exposed communication split by "kind axes", e.g. "all_to_all expert".
  std::map<std::string, double> exposed_by_collective;
};

struct ScheduleResult {
  double step_time_s = 0;
  std::vector<OpTiming> timing;  // by op id
  int32_t critical_program = 0;  // the stage whose breakdown is reported
  Breakdown breakdown;           // of critical_program; its parts add up to step_time_s
};

// Times every op of `graph` given the collective timer, and derives the breakdown. With
// hw.comm_sm_fraction > 0, compute that overlaps a collective of its own stage is slowed
// (CommSmContendedTimes), the schedule rerun until the durations settle.
ScheduleResult SimulateSchedule(const OpGraph& graph, const HardwareProfile& hw,
                                const CollectiveTimer& collective_time);

// The one place a communication kernel's share of the chip (Hardware.comm_sm_fraction) slows
// compute: each compute op's duration given `timing`, its time alone plus fraction x the time
// it overlaps any collective of its own program (at (1 - fraction) of its rate there:
// (d - o) + o (1 - fraction) = alone). Collectives keep their `alone` time. fraction <= 0
// returns `alone`.
// Passes of that fixed point at most (both network levels): the slowdown of an op under a
// collective converges geometrically (by a factor comm_sm_fraction per pass), so 64 passes reach
// double precision for any fraction below 0.55.
inline constexpr int kMaxContentionPasses = 64;
std::vector<double> CommSmContendedTimes(const OpGraph& graph, double fraction,
                                         const std::vector<double>& alone,
                                         const std::vector<OpTiming>& timing);

// SimulateSchedule's step time, critical program and breakdown for the expanded graph of a
// compact program (costmodel/compact_graph.h), to the bit, without expanding it: each unit's ops
// are timed once, then replayed with the same arithmetic per op, keeping only the end times of
// the ops later instances wait for. The replay runs the instances in dependency levels, a
// level's instances of one unit side by side (an op's end depends only on its inputs, so any
// order that respects them gives the same values); the critical program is replayed a second
// time, in order, for its breakdown. O(expanded ops) time, O(instances) memory; no per-op timing
// (ScheduleResult::timing stays empty). *hardware_flops: the expanded graph's
// OpGraph::hardware_flops_per_step (a FlopSum, costmodel/flop_sum.h). Without `breakdown` the
// second replay is skipped: critical_program and breakdown stay zero.
// REQUIRES: hw.comm_sm_fraction == 0 (its fixed point needs every op's timing).
ScheduleResult SimulateCompactSchedule(const CompactGraph& compact,
                                       const CollectiveTimer& collective_time,
                                       const HardwareProfile& hw, double* hardware_flops,
                                       bool breakdown = true);

// Fills the breakdown of `result` from its timings (also used by the flow-level executor).
void ComputeBreakdown(const OpGraph& graph, ScheduleResult* result);

// "kind axis axis", the key of Breakdown::exposed_by_collective; an MoE exchange by another
// dispatcher than the flat all-to-all is "all_to_all/<dispatcher> axis ...".
std::string CollectiveLabel(const CollectiveWork& w);

}  // namespace moesim
