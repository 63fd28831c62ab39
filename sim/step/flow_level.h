// flow_level.h
//
// The congestion-aware (`flow`) network level of a step: the same OpGraph and execution
// semantics as SimulateSchedule (step_sim.h), run on the discrete-event engine (sim/engine) with
// every collective's flows on one shared FlowNetwork (sim/net), so that collectives in flight at
// the same time (a gradient reduce under the backward all-to-alls, two stages' sends) share
// links by max-min fairness instead of each seeing the whole network.
//
//   - compute op: its roofline time (ComputeTimeS), as in the analytical level;
//   - collective op of stage p: AnalyticalNetwork::Plan(work, p), the plan the analytical level
//     evaluates in closed form, on the groups of that stage: its stages one after another, the
//     streams of a stage concurrently, each step's transfers as flows that start together (a
//     step's repeats as one flow of repeat x the bytes, followed by the repeats' further
//     latency). Alone on the network a collective therefore takes what the analytical level
//     charges it (to rounding); with others in flight, longer.
//
// Cost: O(flows x re-solves). Two reductions keep a 1,024-chip step under a second:
//   - a collective step of more than 1,024 flows (an all-to-all over 64 chips of 16 groups is
//     ~65,000) is one bundle (FlowNetwork::StartBundle): its flows share one rate, that of its
//     most loaded link, so it shares links with other traffic as a whole; alone it ends exactly
//     when its slowest flow would. Smaller steps run flow by flow;
//   - identical collectives (same work, same stage) that run alone are timed once and replayed
//     as a single event (`FlowStats::replayed`): only collectives that overlap others in time
//     need the solver. Their isolated runs are memoised by the canonical form of their plan
//     (links renamed by rank, with capacities and latencies): the collectives of pipeline
//     stages placed alike are the same system of flows and are simulated once.
// Thread safety: a pure function of its inputs; runs in parallel threads.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "costmodel/opgraph.h"
#include "sim/step/analytical_network.h"
#include "sim/step/step_sim.h"

namespace moesim {

struct FlowStats {
  int64_t collectives = 0;  // collective ops run
  int64_t flow_runs = 0;    // of those, run as flows
  int64_t replayed = 0;     // of those, replayed from an isolated run of the same collective
  int64_t flows = 0;        // flows started, in all (bundled ones included)
  int64_t bundles = 0;      // collective steps run as one bundle of flows
  int64_t events = 0;       // engine events, in all
  // Collective steps that started alone on their links and ran as one weighted flow per class
  // of flows identical by symmetry (sim/net/flow_symmetry.h), and those of them split back
  // into their flows when other traffic reached their links.
  int64_t symmetric_steps = 0;
  int64_t split_steps = 0;
  // Collectives simulated alone to be replayed, and those whose isolated time was taken from
  // another's with a plan of the same canonical form (not in the JSON report).
  int64_t isolated_runs = 0;
  int64_t isolated_reused = 0;
};

struct FlowOptions {
  // Memoise isolated runs by canonical form (off: every distinct collective and stage is
  // simulated alone; tests compare the two).
  bool memoise_isolated = true;
};

// Runs `graph` on the flow level. Errors (kInternal) only when the simulation gets stuck, with
// the engine's report of what is waiting.
Expected<ScheduleResult> SimulateScheduleFlow(const OpGraph& graph, const HardwareProfile& hw,
                                              const AnalyticalNetwork& net,
                                              FlowStats* stats = nullptr,
                                              const FlowOptions& options = {});

}  // namespace moesim
