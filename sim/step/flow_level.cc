#include "sim/step/flow_level.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <tuple>

#include "sim/engine/engine.h"
#include "sim/net/flow_network.h"

namespace moesim {
namespace {

// What makes two collective ops the same transfer pattern.
using WorkKey =
    std::tuple<int, std::vector<MeshAxis>, double, double, int32_t, int32_t, TokenExchange>;

WorkKey KeyOf(const Op& op) {
  const CollectiveWork& w = op.collective;
  return {static_cast<int>(w.kind),
          w.axes,
          w.bytes,
          w.max_over_mean,
          op.program,
          w.kind == CollectiveKind::kSendRecv ? w.peer_program : -1,
          w.exchange};
}

// A phase with more flows than this runs as one bundle (FlowNetwork::StartBundle): simulating
// each of an all-to-all's 10^5..10^6 flows would cost seconds per step, and alone a bundle ends
// when its slowest flow would.
constexpr size_t kMaxFlowsPerPhase = 1024;

struct Phase {
  std::vector<std::span<const LinkId>> routes;  // by flow; the topology's cached routes
  std::vector<double> bytes;                    // by flow
  sim::FlowClasses classes;                     // its flows identical by symmetry
  // Bundle form (more than kMaxFlowsPerPhase flows, all of one size): links crossed and how many
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
  if (stats != nullptr) stats->flows += static_cast<int64_t>(ph.routes.size());
  network.StartGroup(ph.routes, ph.bytes, std::move(next), {}, &ph.classes);
}
// A collective as the flow level runs it: its plan's stages one after another; in a stage its
// streams ("chains") run concurrently, each a sequence of phases, one per plan step with the
// step's repeats run as one phase of repeat x the bytes (the same time alone on the network,
// without a re-solve per ring step).
using Chain = std::vector<Phase>;
using FlowPlan = std::vector<std::vector<Chain>>;

// Runs chain[i..] one after another: a phase starts when the previous one has been delivered and
// its extra latency has passed; `done` runs when the last one has.
void RunChain(sim::FlowNetwork& network, std::shared_ptr<const FlowPlan> plan, size_t stage,
              size_t chain, size_t i, std::function<void()> done, FlowStats* stats) {
  const Chain& c = (*plan)[stage][chain];
  if (i == c.size()) {
    done();
    return;
  }
  const Phase& ph = c[i];
  auto next = [&network, plan, stage, chain, i, done, stats] {
    network.engine()->ScheduleAfter((*plan)[stage][chain][i].extra_latency,
                                    [&network, plan, stage, chain, i, done, stats] {
                                      RunChain(network, plan, stage, chain, i + 1, done, stats);
                                    });
  };
  if (ph.routes.empty() && !ph.bundle) {
    next();
    return;
  }
  StartPhase(network, ph, next, stats);
}

// Runs the plan's stages from `stage` on; `done` runs when the last chain of the last one ends.
void RunPlan(sim::FlowNetwork& network, std::shared_ptr<const FlowPlan> plan, size_t stage,
             std::function<void()> done, FlowStats* stats) {
  if (stage == plan->size()) {
    done();
    return;
  }
  const size_t chains = (*plan)[stage].size();
  if (chains == 0) {
    RunPlan(network, plan, stage + 1, done, stats);
    return;
  }
  auto left = std::make_shared<size_t>(chains);
  for (size_t c = 0; c < chains; ++c) {
    RunChain(
        network, plan, stage, c, 0,
        [&network, plan, stage, done, stats, left] {
          if (--*left == 0) RunPlan(network, plan, stage + 1, done, stats);
        },
        stats);
  }
}

// A plan's canonical form: its phases with every link id replaced by its rank among the plan's
// distinct links, with those links' capacities and latencies. Plans of equal forms are the same
// system of flows under a renaming of links that keeps their order (the collectives of two
// pipeline stages placed alike on alike hardware), so alone they run the same events with the
// same arithmetic (every tie is broken by link or flow order, which the renaming keeps):
// isolated runs are memoised by form. Exact integers and doubles only, so equal means equal.
std::vector<double> CanonicalForm(const FlowPlan& plan, const std::vector<sim::LinkSpec>& links) {
  std::vector<LinkId> used;
  for (const auto& stage : plan) {
    for (const Chain& chain : stage) {
      for (const Phase& ph : chain) {
        for (const auto& r : ph.routes) used.insert(used.end(), r.begin(), r.end());
        used.insert(used.end(), ph.bundle_links.begin(), ph.bundle_links.end());
      }
    }
  }
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  auto rank = [&used](LinkId l) {
    return static_cast<double>(std::lower_bound(used.begin(), used.end(), l) - used.begin());
  };
  std::vector<double> f = {static_cast<double>(used.size())};
  for (LinkId l : used) {
    f.push_back(links[static_cast<size_t>(l)].bytes_per_s);
    f.push_back(links[static_cast<size_t>(l)].latency_s);
  }
  f.push_back(static_cast<double>(plan.size()));
  for (const auto& stage : plan) {
    f.push_back(static_cast<double>(stage.size()));
    for (const Chain& chain : stage) {
      f.push_back(static_cast<double>(chain.size()));
      for (const Phase& ph : chain) {
        f.push_back(ph.bundle ? 1 : 0);
        f.push_back(static_cast<double>(ph.extra_latency.picoseconds()));
        if (ph.bundle) {
          f.push_back(static_cast<double>(ph.bundle_flows));
          f.push_back(ph.bundle_bytes);
          f.push_back(static_cast<double>(ph.bundle_latency.picoseconds()));
          f.push_back(static_cast<double>(ph.bundle_links.size()));
          for (size_t i = 0; i < ph.bundle_links.size(); ++i) {
            f.push_back(rank(ph.bundle_links[i]));
            f.push_back(ph.bundle_counts[i]);
          }
          continue;
        }
        f.push_back(static_cast<double>(ph.routes.size()));
        for (size_t i = 0; i < ph.routes.size(); ++i) {
          f.push_back(ph.bytes[i]);
          f.push_back(static_cast<double>(ph.routes[i].size()));
          for (LinkId l : ph.routes[i]) f.push_back(rank(l));
        }
      }
    }
  }
  return f;
}

class FlowRunner {
 public:
  FlowRunner(const OpGraph& g, const HardwareProfile& hw, const AnalyticalNetwork& net,
             const FlowOptions& options)
      : g_(g), net_(net), options_(options) {
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
    compute_s_.assign(g.ops.size(), 0);
    for (const Op& op : g.ops) {
      if (!op.is_collective) compute_s_[static_cast<size_t>(op.id)] = ComputeTimeS(op.compute, hw);
    }
    alone_s_ = compute_s_;
  }

  // Isolated runs simulated, and taken from another plan of the same canonical form, so far.
  int64_t isolated_runs() const { return isolated_runs_; }
  int64_t isolated_reused() const { return isolated_reused_; }

  // Compute ops' durations alone (collectives: 0).
  const std::vector<double>& alone_compute() const { return alone_s_; }
  // The compute ops' durations for the next Run (Hardware.comm_sm_fraction's slowdown).
  void set_compute_times(std::vector<double> s) { compute_s_ = std::move(s); }

  // One pass: collectives in `as_flows` run on the shared network, the others are replayed from
  // their isolated time.
  Expected<ScheduleResult> Run(const std::vector<bool>& as_flows, FlowStats* stats) {
    sim::Engine engine;
    sim::FlowNetwork network(&engine, net_.links());
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
        engine.ScheduleAfter(sim::SimTime::FromSeconds(compute_s_[static_cast<size_t>(id)]),
                             [&finish, id] { finish(id); });
        return;
      }
      if (stats != nullptr) ++stats->collectives;
      if (as_flows[static_cast<size_t>(id)]) {
        if (stats != nullptr) ++stats->flow_runs;
        auto plan = PlanOf(op);
        if (!plan.ok()) {
          error_ = plan.status();
          engine.Stop();
          return;
        }
        RunPlan(
            network, *plan, 0, [&finish, id] { finish(id); }, stats);
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
    if (stats != nullptr) {
      stats->events += engine.events_run();
      stats->symmetric_steps += network.aggregated_groups();
      stats->split_steps += network.split_groups();
    }
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
  Expected<std::shared_ptr<const FlowPlan>> PlanOf(const Op& op) {
    const WorkKey key = KeyOf(op);
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    auto out = std::make_shared<FlowPlan>();
    const auto& links = net_.links();
    // An all-to-all too big to run flow by flow: its bundle straight from the topology's
    // all-pairs link loads (closed form on torus slices), without listing its flows.
    const CollectiveWork& w = op.collective;
    if (w.kind == CollectiveKind::kAllToAll &&
        w.exchange.dispatcher == TokenDispatcher::kAllToAll) {
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
        std::vector<double> count(links.size(), 0);
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
        out->push_back({{std::move(ph)}});
        plans_.emplace(key, out);
        return std::shared_ptr<const FlowPlan>(out);
      }
    }
    auto plan = net_.Plan(w, op.program);
    if (!plan.ok()) return plan.status();
    std::vector<LinkId> route;
    for (const sim::Stage& stage : plan->stages) {
      std::vector<Chain>& chains = out->emplace_back();
      for (const sim::Stream& stream : stage.streams) {
        Chain& chain = chains.emplace_back();
        for (const sim::Step& step : stream) {
          Phase ph;
          const double repeat = static_cast<double>(step.repeat);
          double slowest_route = 0;
          bool same_size = true;
          for (const sim::Transfer& t : step.transfers) {
            same_size = same_size && t.bytes == step.transfers[0].bytes;
          }
          if (step.transfers.size() > kMaxFlowsPerPhase && same_size) {
            ph.bundle = true;
            ph.bundle_flows = static_cast<int64_t>(step.transfers.size());
            ph.bundle_bytes = step.transfers[0].bytes * repeat;
            std::vector<double> count(links.size(), 0);
            for (const sim::Transfer& t : step.transfers) {
              // Not the topology's route cache: a million one-off routes would only bloat it.
              net_.topology().ComputeRoute(t.src, t.dst, &(route = {}));
              for (LinkId l : route) count[static_cast<size_t>(l)] += 1;
              slowest_route = std::max(slowest_route, sim::RouteLatencySeconds(links, route));
            }
            for (size_t l = 0; l < count.size(); ++l) {
              if (count[l] > 0) {
                ph.bundle_links.push_back(static_cast<LinkId>(l));
                ph.bundle_counts.push_back(count[l]);
              }
            }
            ph.bundle_latency = sim::SimTime::FromSeconds(slowest_route);
          } else {
            for (const sim::Transfer& t : step.transfers) {
              const std::vector<LinkId>& r = net_.topology().Route(t.src, t.dst);
              ph.routes.emplace_back(r);
              ph.bytes.push_back(t.bytes * repeat);
              slowest_route = std::max(slowest_route,
                                       sim::RouteLatencySeconds(links, std::span<const LinkId>(r)));
            }
            ph.classes = sim::ClassifyFlows(links, ph.routes, ph.bytes);
          }
          // A step's repeats each wait for the slowest route; the flows (or the bundle) account
          // for one such wait.
          ph.extra_latency = sim::SimTime::FromSeconds((repeat - 1) * slowest_route);
          chain.push_back(std::move(ph));
        }
      }
    }
    plans_.emplace(key, out);
    return std::shared_ptr<const FlowPlan>(out);
  }

  // The collective alone on an idle network, as flows; once per canonical form of its plan.
  Expected<sim::SimTime> IsolatedTime(const Op& op) {
    const WorkKey key = KeyOf(op);
    auto it = alone_.find(key);
    if (it != alone_.end()) return it->second;
    auto plan = PlanOf(op);
    if (!plan.ok()) return plan.status();
    std::vector<double> form;
    if (options_.memoise_isolated) {
      form = CanonicalForm(**plan, net_.links());
      auto same = alone_by_form_.find(form);
      if (same != alone_by_form_.end()) {
        ++isolated_reused_;
        alone_.emplace(key, same->second);
        return same->second;
      }
    }
    // The phases on a fresh engine; the duration is when the last one ends.
    sim::Engine engine;
    sim::FlowNetwork network(&engine, net_.links());
    RunPlan(
        network, *plan, 0, [] {}, nullptr);
    Status st = engine.Run();
    if (!st.ok()) return st;
    ++isolated_runs_;
    alone_.emplace(key, engine.now());
    if (options_.memoise_isolated) alone_by_form_.emplace(std::move(form), engine.now());
    return engine.now();
  }

  const OpGraph& g_;
  const AnalyticalNetwork& net_;
  std::vector<double> compute_s_, alone_s_;  // by op id; collectives 0
  std::vector<std::vector<int32_t>> succ_;
  std::vector<int32_t> waits_;
  std::map<WorkKey, std::shared_ptr<const FlowPlan>> plans_;
  std::map<WorkKey, sim::SimTime> alone_;
  std::map<std::vector<double>, sim::SimTime> alone_by_form_;
  const FlowOptions options_;
  int64_t isolated_runs_ = 0, isolated_reused_ = 0;
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
                                              const AnalyticalNetwork& net, FlowStats* stats,
                                              const FlowOptions& options) {
  FlowRunner runner(graph, hw, net, options);
  // Replaying a collective from its isolated run is exact only while nothing else is in flight;
  // so run, find the collectives that overlapped another, run those as flows, and repeat until
  // no replayed collective overlaps anything (the set only grows, so this ends).
  std::vector<bool> as_flows(graph.ops.size(), false);
  auto run = [&]() -> Expected<ScheduleResult> {
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
  };
  auto r = run();
  if (!r.ok()) return r;
  // A communication kernel's SMs slow the compute it overlaps (Hardware.comm_sm_fraction, applied
  // by CommSmContendedTimes as on the analytical level): passes repeat until they agree.
  for (int pass = 0; hw.comm_sm_fraction > 0 && pass < kMaxContentionPasses; ++pass) {
    std::vector<double> dur =
        CommSmContendedTimes(graph, hw.comm_sm_fraction, runner.alone_compute(), r->timing);
    runner.set_compute_times(dur);
    auto next = run();
    if (!next.ok()) return next;
    bool same = true;
    for (size_t i = 0; i < dur.size() && same; ++i) {
      same = std::abs((next->timing[i].end_s - next->timing[i].start_s) -
                      (r->timing[i].end_s - r->timing[i].start_s)) <= 1e-12 * (1 + dur[i]);
    }
    r = std::move(next);
    if (same) break;
  }
  if (stats != nullptr) {
    stats->isolated_runs = runner.isolated_runs();
    stats->isolated_reused = runner.isolated_reused();
  }
  return r;
}

}  // namespace moesim
