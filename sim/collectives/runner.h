// runner.h
//
// Runs CollectivePlans (plan.h) on a network level. A RouteFn maps (src, dst) devices to the
// link ids of the route between them (a topology's router, or a test fixture).
//
// Analytical level (AnalyticalCollectiveTimer): alpha-beta per step from its bottleneck, no
// contention with anything outside the step:
//     T(plan)   = sum over stages of  max over streams of  sum over steps of  repeat x T(step)
//     T(step)   = BottleneckTimer: max route latency + max over links of bytes on it / capacity.
// Streams of a stage are assumed not to slow each other down (the algorithms give concurrent
// streams disjoint links wherever the shape allows).
//
// Flow level (StartCollective): the plan's transfers become FlowNetwork flows, started step by
// step: a step's transfers start together, the next step (or repeat) of a stream starts when all
// of them are delivered, streams of a stage run concurrently, a stage starts when the previous
// one has finished. Concurrent collectives on one FlowNetwork share links by max-min fairness.
// A collective that waits on transfers that never finish is listed in the Engine's stuck report.
//
// Thread safety: none; a timer or a network belongs to one thread.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "sim/collectives/plan.h"
#include "sim/net/bottleneck.h"
#include "sim/net/flow_network.h"

namespace moesim::sim {

// The links from src to dst. The returned span must stay valid while the caller uses the
// network (a Topology's cached routes, or a fixture's storage). REQUIRES src != dst.
using RouteFn = std::function<std::span<const LinkId>(DeviceId src, DeviceId dst)>;

class AnalyticalCollectiveTimer {
 public:
  // REQUIRES: `links` outlives the timer.
  AnalyticalCollectiveTimer(const std::vector<LinkSpec>* links, RouteFn route);
  double Seconds(const CollectivePlan& plan);
  // T(step) for one repetition.
  double StepSeconds(const Step& step);

 private:
  RouteFn route_;
  BottleneckTimer timer_;
};

// Starts `plan` on `net` at net->engine()->now(); `done` runs when its last transfer has been
// delivered (at once, as an event, for an empty plan). `label` names it in stuck reports.
void StartCollective(FlowNetwork* net, std::shared_ptr<const CollectivePlan> plan, RouteFn route,
                     std::function<void()> done, std::string label);

// Runs `plan` alone on a fresh Engine and FlowNetwork over `links`: its duration in seconds, or
// the engine's error when it gets stuck.
Expected<double> FlowCollectiveSeconds(const CollectivePlan& plan,
                                       const std::vector<LinkSpec>& links, const RouteFn& route);

}  // namespace moesim::sim
