// flow_network.h
//
// FlowNetwork: the congestion-aware (`flow`) network level. Active flows share links by max-min
// fairness (MaxMinSystem, one constraint per link, one variable per flow); the allocation is
// re-solved when a flow starts or ends, touching only the flows connected to the change through
// shared links. A flow of B bytes on route r:
//
//   - starts sharing bandwidth at once; its rate is re-set at every re-solve;
//   - its bandwidth phase ends when its B bytes are sent (integration of its piecewise-constant
//     rate), rounded up to a whole picosecond;
//   - it is delivered (its callback runs) latency(r) = sum of the per-hop link latencies later:
//     the last byte still has to cross the route. With no other traffic the flow takes exactly
//     latency(r) + B / min over r of capacity, the alpha-beta time.
//
// Batching: every start and end at one simulated instant is applied before a single re-solve,
// which runs as an engine event at that instant with kSolvePriority (after ordinary events).
// Completions and deliveries due at the same picosecond share one engine event (a bucket per
// instant, processed in the order they were scheduled), so symmetric traffic (all flows of an
// all-to-all ending together) costs a few events, not one per flow; a rescheduled completion is
// cancelled by bumping the flow's version (lazy deletion).
//
// Symmetry: a group (StartGroup) given its FlowClasses (flow_symmetry.h) and started on links no
// other flow uses runs as one weighted flow per class, charged on one representative link per
// link class: the max-min rates of its flows are those of the quotient (equal in exact
// arithmetic; in floating point to the bit except where constraints tie and the separate flows'
// solve rounds differently, a few ulps), at the cost of its classes, not its flows. When any other
// flow, group or bundle then starts on one of its links the group splits, first, into its separate
// flows with each class's progress, rate and completion (so the answer is that of never
// aggregating), and the newcomer shares links with them flow by flow.
//
// Never stuck silently: a flow that gets no bandwidth is reported to the Engine's pending-work
// check, so a run ends with an error that names it instead of finishing early.
// Invariants: a flow in its bandwidth phase with rate > 0 has exactly one completion entry of its
// current version pending. Thread safety: none; used with its Engine on one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "sim/engine/engine.h"
#include "sim/net/flow_symmetry.h"
#include "sim/net/maxmin.h"
#include "sim/net/network.h"

namespace moesim::sim {

class FlowNetwork {
 public:
  static constexpr int32_t kSolvePriority = 1 << 20;
  using DoneFn = std::function<void()>;

  // REQUIRES: every link's bytes_per_s >= 0 (0 = the link is down: flows crossing it never
  // finish and are reported stuck); `engine` outlives this network.
  FlowNetwork(Engine* engine, std::vector<LinkSpec> links);
  ~FlowNetwork();
  FlowNetwork(const FlowNetwork&) = delete;
  FlowNetwork& operator=(const FlowNetwork&) = delete;

  // Starts a transfer of `bytes` along `route` at engine->now(); `done` runs when it has been
  // delivered. An empty route (a device to itself) or bytes <= 0 are delivered after the route's
  // latency with no bandwidth used. `label` names the flow in stuck reports.
  // REQUIRES: every id in route is a valid link.
  void Start(std::span<const LinkId> route, double bytes, DoneFn done, std::string label = {});

  // Starts one flow per route at engine->now(), routes[i] carrying bytes[i] bytes, each as Start
  // would; `done` runs once, when the last of them has been delivered (the flows of one
  // collective step: no callback per flow). With no routes `done` runs at now, as an event.
  // REQUIRES: routes.size() == bytes.size(); every id valid.
  // With `classes` (ClassifyFlows of these routes and bytes, on these links), the group runs as
  // one flow per class while it is alone on its links (see Symmetry above).
  void StartGroup(std::span<const std::span<const LinkId>> routes, std::span<const double> bytes,
                  DoneFn done, const std::string& label = {}, const FlowClasses* classes = nullptr);

  // A bundle of identical flows of `bytes` each that move at one shared rate (all the flows of a
  // collective step, when simulating every one of them is too costly): counts[i] of them cross
  // links[i]. The bundle's rate x (bytes/s of each flow) charges counts[i] x x to links[i], so
  // alone it runs at min over i of capacity / counts[i] (the alpha-beta bottleneck) and shares
  // links max-min fairly with other flows and bundles. `done` runs `latency` after its bytes are
  // sent. REQUIRES: links.size() == counts.size(), counts > 0, valid link ids.
  void StartBundle(std::span<const LinkId> links, std::span<const double> counts, double bytes,
                   SimTime latency, DoneFn done, std::string label = {});

  Engine* engine() const { return engine_; }
  const std::vector<LinkSpec>& links() const { return links_; }
  int64_t active_flows() const { return system_.num_variables(); }
  // Bytes of all flows started so far on each link (what it carries once they have finished).
  const std::vector<double>& link_bytes() const { return link_bytes_; }
  int64_t solves() const { return solves_; }
  // Flows whose rate was (re)computed, summed over all solves (a measure of solver work).
  int64_t rate_updates() const { return rate_updates_; }
  // Groups started as one flow per class, and those of them split back into their flows.
  int64_t aggregated_groups() const { return aggregated_groups_; }
  int64_t split_groups() const { return split_groups_; }

 private:
  struct Flow {
    MaxMinSystem::VariableId var = -1;
    double bytes = 0;
    double bytes_left = 0;  // as of `updated`
    double rate = 0;        // bytes/s since `updated`
    SimTime updated;
    SimTime latency;
    int32_t group = -1;     // its StartGroup call's, if any (then `done` is empty)
    int32_t agg = -1;       // the aggregated group it is a class of, if any
    SimTime completion_at;  // of the pending completion, when `scheduled`
    // A class of an aggregated group: its flows' routes (concatenated; member i's ends at
    // member_ends[i]) and latencies; it is delivered after the longest.
    std::vector<LinkId> member_links;
    std::vector<int64_t> member_ends;
    std::vector<SimTime> member_latency;
    uint32_t version = 0;    // bumped to cancel a scheduled completion
    bool scheduled = false;  // a completion is pending (rate > 0)
    bool active = false;
    DoneFn done;
    std::string label;
  };
  struct Completion {
    int32_t flow;
    uint32_t version;
  };
  struct Delivery {
    DoneFn done;         // when not part of a group
    int32_t group = -1;  // else the group it counts down
    int64_t flows = 1;   // by this many flows
  };
  struct Aggregate {               // a group running as one flow per class
    std::vector<LinkId> links;     // every link its flows cross
    std::vector<int32_t> classes;  // its class flows still active
  };
  struct Group {
    int64_t left = 0;  // flows not yet delivered
    DoneFn done;
  };
  int32_t Add(MaxMinSystem::VariableId var, double bytes, SimTime latency, DoneFn done,
              std::string label);
  void RequestSolve();
  void Solve();
  void ScheduleCompletion(int32_t f, SimTime at);
  void FireCompletions(int64_t at_ps);
  void StartAggregate(std::span<const std::span<const LinkId>> routes,
                      std::span<const double> bytes, const FlowClasses& classes, int32_t g,
                      const std::string& label);
  void Deliver(SimTime at, DoneFn done, int32_t group = -1, int64_t flows = 1);
  // Takes `route`'s links for a new flow: splits the aggregated groups on them first.
  void Claim(std::span<const LinkId> route);
  void Release(std::span<const LinkId> route);
  void Split(int32_t agg);
  void ReleaseAggregate(int32_t agg);
  void FireDeliveries(int64_t at_ps);
  void Complete(int32_t f);
  void ReportStuck(std::vector<std::string>* waiting) const;

  Engine* engine_;
  std::vector<LinkSpec> links_;
  MaxMinSystem system_;
  std::vector<Flow> flows_;
  std::vector<int32_t> free_flows_;
  std::vector<int32_t> flow_of_var_;
  std::vector<MaxMinSystem::VariableId> changed_;
  std::vector<double> link_bytes_;
  // Pending completions and deliveries by instant (picoseconds); one engine event per instant.
  std::unordered_map<int64_t, std::vector<Completion>> completions_;
  std::unordered_map<int64_t, std::vector<Delivery>> deliveries_;
  std::vector<Group> groups_;
  std::vector<Aggregate> aggs_;
  std::vector<int32_t> free_aggs_;
  std::vector<int32_t> link_users_;  // by link: active flows, bundles and aggregates on it
  std::vector<int32_t> link_agg_;    // by link: the aggregate on it, or -1
  int64_t aggregated_groups_ = 0;
  int64_t split_groups_ = 0;
  std::vector<int32_t> free_groups_;
  bool solve_pending_ = false;
  int64_t solves_ = 0;
  int64_t rate_updates_ = 0;
  int64_t reporter_ = -1;
};

}  // namespace moesim::sim
