#include "sim/step/flow_level.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "sim/engine/engine.h"
#include "sim/net/flow_network.h"

namespace moesim {
namespace {

// What makes two collective ops the same transfer pattern.
using WorkKey = std::tuple<int, std::vector<MeshAxis>, double, double, int32_t, int32_t>;

WorkKey KeyOf(const Op& op) {
  const CollectiveWork& w = op.collective;
  return {static_cast<int>(w.kind),
          w.axes,
          w.bytes,
          w.max_over_mean,
          op.program,
          w.kind == CollectiveKind::kSendRecv ? w.peer_program : -1};
}

// A phase with more flows than this runs as one bundle (FlowNetwork::StartBundle): simulating
// each of an all-to-all's 10^5..10^6 flows would cost seconds per step, and alone a bundle ends
// when its slowest flow would.
constexpr size_t kMaxFlowsPerPhase = 4096;

struct Phase {
  std::vector<CollectiveFlow> flows;
  std::vector<const std::vector<LinkId>*> routes;  // by flow; the topology's cached routes
  // Bundle form (flows.size() > kMaxFlowsPerPhase, all of one size): links crossed and how many
  // of the flows cross each.
  bool bundle = false;
  int64_t bundle_flows = 0;
  double bundle_bytes = 0;
  std::vector<LinkId> bundle_links;
  std::vector<double> bundle_counts;
  sim::SimTime bundle_latency;  // the slowest route's
  sim::SimTime extra_latency;   // the ring steps' latency beyond the slowest route's
};

// Starts phase `ph` on `network`; `next` runs when all of it has been delivered.
template <typename Next>
void StartPhase(sim::FlowNetwork& network, const Phase& ph, Next next, FlowStats* stats) {
  if (ph.bundle) {
    if (stats != nullptr) {
      stats->flows += ph.bundle_flows;
      ++stats->bundles;
    }
    network.StartBundle(ph.bundle_links, ph.bundle_counts, ph.bundle_bytes, ph.bundle_latency,
                        std::move(next));
    return;
  }
  auto left = std::make_shared<size_t>(ph.flows.size());
  if (stats != nullptr) stats->flows += static_cast<int64_t>(ph.flows.size());
  for (size_t f = 0; f < ph.flows.size(); ++f) {
    network.Start(*ph.routes[f], ph.flows[f].bytes, [left, next] {
      if (--*left == 0) next();
    });
  }
}
using Phases = std::vector<Phase>;

// Runs phases[i..] one after another on `network`: a phase starts when the previous one has been
// delivered and its extra latency has passed; `done` runs when the last one has.
void RunPhases(sim::FlowNetwork& network, std::shared_ptr<const Phases> phases, size_t i,
               std::function<void()> done, FlowStats* stats) {
  if (i == phases->size()) {
    done();
    return;
  }
  const Phase& ph = (*phases)[i];
  auto next = [&network, phases, i, done, stats] {
    network.engine()->ScheduleAfter((*phases)[i].extra_latency, [&network, phases, i, done, stats] {
      RunPhases(network, phases, i + 1, done, stats);
    });
  };
  if (ph.flows.empty() && !ph.bundle) {
    next();
    return;
  }
  StartPhase(network, ph, next, stats);
}

class FlowRunner {
 public:
  FlowRunner(const OpGraph& g, const HardwareProfile& hw, const AnalyticalNetwork& net)
      : g_(g), hw_(hw), net_(net) {
    const auto& tl = net.topology().links();
    links_.reserve(tl.size());
    for (const auto& l : tl) {
      links_.push_back({l.bytes_per_s * net.link_efficiency(), l.latency_s});
    }
    // Successors: dependencies plus the next op of the same in-order stream.
    succ_.resize(g.ops.size());
    waits_.assign(g.ops.size(), 0);
    std::vector<int32_t> last(static_cast<size_t>(g.num_programs * kNumStreams), -1);
    for (const Op& op : g.ops) {
      auto& prev = last[static_cast<size_t>(op.program * kNumStreams + op.stream)];
      std::set<int32_t> before(op.deps.begin(), op.deps.end());
      if (prev >= 0) before.insert(prev);
      for (int32_t d : before) succ_[static_cast<size_t>(d)].push_back(op.id);
      waits_[static_cast<size_t>(op.id)] = static_cast<int32_t>(before.size());
      prev = op.id;
    }
  }

  // One pass: collectives in `as_flows` run on the shared network, the others are replayed from
  // their isolated time.
  Expected<ScheduleResult> Run(const std::vector<bool>& as_flows, FlowStats* stats) {
    sim::Engine engine;
    sim::FlowNetwork network(&engine, links_);
    std::vector<int32_t> waits = waits_;
    ScheduleResult r;
    r.timing.assign(g_.ops.size(), {});
    std::vector<bool> done(g_.ops.size(), false);
    int64_t finished = 0;

    std::function<void(int32_t)> start;
    auto finish = [&](int32_t id) {
      r.timing[static_cast<size_t>(id)].end_s = engine.now().seconds();
      done[static_cast<size_t>(id)] = true;
      ++finished;
      for (int32_t s : succ_[static_cast<size_t>(id)]) {
        if (--waits[static_cast<size_t>(s)] == 0) start(s);
      }
    };
    start = [&](int32_t id) {
      const Op& op = g_.ops[static_cast<size_t>(id)];
      r.timing[static_cast<size_t>(id)].start_s = engine.now().seconds();
      if (!op.is_collective) {
        engine.ScheduleAfter(sim::SimTime::FromSeconds(ComputeTimeS(op.compute, hw_)),
                             [&finish, id] { finish(id); });
        return;
      }
      if (stats != nullptr) ++stats->collectives;
      if (as_flows[static_cast<size_t>(id)]) {
        if (stats != nullptr) ++stats->flow_runs;
        RunPhases(
            network, PhasesOf(op), 0, [&finish, id] { finish(id); }, stats);
        return;
      }
      if (stats != nullptr) ++stats->replayed;
      auto alone = IsolatedTime(op);
      if (!alone.ok()) {
        error_ = alone.status();
        engine.Stop();
        return;
      }
      engine.ScheduleAfter(*alone, [&finish, id] { finish(id); });
    };

    for (const Op& op : g_.ops) {
      if (waits[static_cast<size_t>(op.id)] == 0) start(op.id);
    }
    Status st = engine.Run();
    if (stats != nullptr) stats->events += engine.events_run();
    if (!error_.ok()) return error_;
    if (!st.ok()) return st;
    if (finished != static_cast<int64_t>(g_.ops.size())) {
      return Status::Internal("flow level: " + std::to_string(g_.ops.size() - finished) +
                              " ops never became ready (a dependency cycle in the step program)");
    }
    for (const auto& t : r.timing) r.step_time_s = std::max(r.step_time_s, t.end_s);
    ComputeBreakdown(g_, &r);
    return r;
  }

 private:
  std::shared_ptr<const Phases> PhasesOf(const Op& op) {
    const WorkKey key = KeyOf(op);
    auto it = phases_.find(key);
    if (it != phases_.end()) return it->second;
    auto out = std::make_shared<Phases>();
    // An all-to-all too big to run flow by flow: its bundle straight from the topology's
    // all-pairs link loads (closed form on torus slices), without listing its flows.
    const CollectiveWork& w = op.collective;
    if (w.kind == CollectiveKind::kAllToAll) {
      const auto groups = net_.StageGroups(w.axes, op.program);
      int64_t flows = 0;
      for (const auto& g : groups) {
        flows += static_cast<int64_t>(g.size()) * static_cast<int64_t>(g.size() - 1);
      }
      if (flows > static_cast<int64_t>(kMaxFlowsPerPhase)) {
        Phase ph;
        ph.bundle = true;
        ph.bundle_flows = flows;
        ph.bundle_bytes = w.bytes / static_cast<double>(groups.front().size()) * w.max_over_mean;
        std::vector<double> count(links_.size(), 0);
        double slowest_route = 0;
        for (const auto& g : groups) {
          net_.topology().AddAllPairsLoads(g, &count, &slowest_route);
        }
        for (size_t l = 0; l < count.size(); ++l) {
          if (count[l] > 0) {
            ph.bundle_links.push_back(static_cast<LinkId>(l));
            ph.bundle_counts.push_back(count[l]);
          }
        }
        ph.bundle_latency = sim::SimTime::FromSeconds(slowest_route);
        out->push_back(std::move(ph));
        phases_.emplace(key, out);
        return out;
      }
    }
    std::vector<LinkId> route;
    for (CollectivePhase& cp : net_.StagePhases(op.collective, op.program)) {
      Phase ph;
      double slowest_route = 0;
      bool same_size = true;
      for (const CollectiveFlow& f : cp.flows)
        same_size = same_size && f.bytes == cp.flows[0].bytes;
      if (cp.flows.size() > kMaxFlowsPerPhase && same_size) {
        ph.bundle = true;
        ph.bundle_flows = static_cast<int64_t>(cp.flows.size());
        ph.bundle_bytes = cp.flows[0].bytes;
        std::vector<double> count(links_.size(), 0);
        for (const CollectiveFlow& f : cp.flows) {
          // Not the topology's route cache: a million one-off routes would only bloat it.
          net_.topology().ComputeRoute(f.src, f.dst, &(route = {}));
          for (LinkId l : route) count[static_cast<size_t>(l)] += 1;
          slowest_route = std::max(slowest_route, sim::RouteLatencySeconds(links_, route));
        }
        for (size_t l = 0; l < count.size(); ++l) {
          if (count[l] > 0) {
            ph.bundle_links.push_back(static_cast<LinkId>(l));
            ph.bundle_counts.push_back(count[l]);
          }
        }
        ph.bundle_latency = sim::SimTime::FromSeconds(slowest_route);
      } else {
        for (const CollectiveFlow& f : cp.flows) {
          const std::vector<LinkId>& r = net_.topology().Route(f.src, f.dst);
          ph.routes.push_back(&r);
          slowest_route =
              std::max(slowest_route, sim::RouteLatencySeconds(links_, std::span<const LinkId>(r)));
        }
        ph.flows = std::move(cp.flows);
      }
      ph.extra_latency = sim::SimTime::FromSeconds(std::max(0.0, cp.latency_s - slowest_route));
      out->push_back(std::move(ph));
    }
    phases_.emplace(key, out);
    return out;
  }

  // The collective alone on an idle network, as flows.
  Expected<sim::SimTime> IsolatedTime(const Op& op) {
    const WorkKey key = KeyOf(op);
    auto it = alone_.find(key);
    if (it != alone_.end()) return it->second;
    sim::Engine engine;
    sim::FlowNetwork network(&engine, links_);
    // The phases on a fresh engine; the duration is when the last one ends.
    RunPhases(
        network, PhasesOf(op), 0, [] {}, nullptr);
    Status st = engine.Run();
    if (!st.ok()) return st;
    alone_.emplace(key, engine.now());
    return engine.now();
  }

  const OpGraph& g_;
  const HardwareProfile& hw_;
  const AnalyticalNetwork& net_;
  std::vector<sim::LinkSpec> links_;
  std::vector<std::vector<int32_t>> succ_;
  std::vector<int32_t> waits_;
  std::map<WorkKey, std::shared_ptr<const Phases>> phases_;
  std::map<WorkKey, sim::SimTime> alone_;
  Status error_;
};

// Collectives whose run overlaps another collective's in time (any stage, any stream).
std::vector<int32_t> Overlapping(const OpGraph& g, const ScheduleResult& r) {
  std::vector<int32_t> ids;
  for (const Op& op : g.ops) {
    const OpTiming& t = r.timing[static_cast<size_t>(op.id)];
    if (op.is_collective && t.end_s > t.start_s) ids.push_back(op.id);
  }
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return r.timing[static_cast<size_t>(a)].start_s < r.timing[static_cast<size_t>(b)].start_s;
  });
  std::vector<bool> hit(ids.size(), false);
  // Sweep by start: an interval overlaps the open interval that ends last, if that one is
  // still running when it starts.
  double open_end = -1;
  size_t open = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const OpTiming& t = r.timing[static_cast<size_t>(ids[i])];
    if (i > 0 && t.start_s < open_end) {
      hit[i] = true;
      hit[open] = true;
    }
    if (t.end_s > open_end) {
      open_end = t.end_s;
      open = i;
    }
  }
  std::vector<int32_t> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (hit[i]) out.push_back(ids[i]);
  }
  return out;
}

}  // namespace

Expected<ScheduleResult> SimulateScheduleFlow(const OpGraph& graph, const HardwareProfile& hw,
                                              const AnalyticalNetwork& net, FlowStats* stats) {
  FlowRunner runner(graph, hw, net);
  // Replaying a collective from its isolated run is exact only while nothing else is in flight;
  // so run, find the collectives that overlapped another, run those as flows, and repeat until
  // no replayed collective overlaps anything (the set only grows, so this ends).
  std::vector<bool> as_flows(graph.ops.size(), false);
  for (;;) {
    FlowStats pass;
    auto r = runner.Run(as_flows, &pass);
    if (!r.ok()) return r.status();
    bool grew = false;
    for (int32_t id : Overlapping(graph, *r)) {
      if (!as_flows[static_cast<size_t>(id)]) {
        as_flows[static_cast<size_t>(id)] = true;
        grew = true;
      }
    }
    if (!grew) {
      if (stats != nullptr) *stats = pass;
      return r;
    }
  }
}

}  // namespace moesim
