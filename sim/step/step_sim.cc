#include "sim/step/step_sim.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>

#include "costmodel/flop_sum.h"

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

namespace {

// The breakdown of one program, op by op in id order (ComputeBreakdown, and
// SimulateCompactSchedule on the ops of its critical program).
class BreakdownWalk {
 public:
  explicit BreakdownWalk(int32_t program) : p_(program) {}

  // A collective of the program.
  void Collective(double start, double end) {
    b_.comm_total_s += end - start;
    own_ = std::max(own_, end);
  }
  // A compute op of the program; `blocker` the dependency that finished last (at `latest`), on
  // `blocker_program`; null without dependencies.
  void Compute(const Op& op, double start, double end, const Op* blocker, int32_t blocker_program,
               double latest) {
    const double gap = start - cursor_;
    if (gap > 0) {
      // Blame the dependency that finished last (the one the op actually waited for).
      if (blocker == nullptr || latest <= cursor_) {
        b_.idle_s += gap;
      } else if (blocker_program != p_ || blocker->stream == kP2pStream) {
        b_.bubble_s += gap;
      } else if (blocker->is_collective) {
        b_.exposed_comm_s += gap;
        // Per label in a slot found by the blocker op (building the label per gap was a
        // twentieth of a plan's time); the same additions in the same order.
        auto [it, fresh] = label_of_.try_emplace(blocker, labels_.size());
        if (fresh) {
          const std::string label = CollectiveLabel(blocker->collective);
          auto same = std::find_if(labels_.begin(), labels_.end(),
                                   [&](const auto& l) { return l.first == label; });
          if (same != labels_.end()) {
            it->second = static_cast<size_t>(same - labels_.begin());
          } else {
            labels_.emplace_back(label, 0.0);
          }
        }
        labels_[it->second].second += gap;
      } else {
        b_.idle_s += gap;
      }
    }
    b_.compute_s += end - start;
    // Per class in a fixed slot (a map lookup by name per op was a fifth of a plan's time);
    // the same additions in the same order.
    const int c = op.compute.attention ? 0 : op.compute.matmul ? 1 : 2;
    by_class_[c] += end - start;
    class_name_[c] = KernelClassName(op.compute);
    cursor_ = end;
  }
  // After the stage's last compute op: its trailing collectives (exposed) or other stages.
  Breakdown Finish(double step_time_s) {
    for (int c = 0; c < 3; ++c) {
      if (class_name_[c] != nullptr) b_.compute_by_class[class_name_[c]] = by_class_[c];
    }
    for (const auto& [label, t] : labels_) b_.exposed_by_collective[label] = t;
    const double tail = step_time_s - cursor_;
    if (tail > 0) {
      const double exposed = std::max(0.0, std::min(own_, step_time_s) - cursor_);
      b_.exposed_comm_s += exposed;
      if (exposed > 0) b_.exposed_by_collective["after last compute"] += exposed;
      b_.bubble_s += tail - exposed;
    }
    return b_;
  }

 private:
  int32_t p_;
  Breakdown b_;
  double cursor_ = 0;               // end of the previous compute op on the program
  double own_ = 0;                  // latest end of the program's collectives
  double by_class_[3] = {0, 0, 0};  // attention, gemm, memory (KernelClassName)
  const char* class_name_[3] = {nullptr, nullptr, nullptr};  // seen: KernelClassName
  std::vector<std::pair<std::string, double>> labels_;       // exposed time per label
  std::unordered_map<const Op*, size_t> label_of_;           // blocker -> its label's slot
};

}  // namespace

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
  BreakdownWalk walk(p);
  for (const Op& op : g.ops) {
    if (op.program != p) continue;
    const OpTiming& t = r->timing[static_cast<size_t>(op.id)];
    if (op.is_collective) {
      walk.Collective(t.start_s, t.end_s);
      continue;
    }
    const Op* blocker = nullptr;
    double latest = -1;
    for (int32_t d : op.deps) {
      const double end = r->timing[static_cast<size_t>(d)].end_s;
      if (end > latest) {
        latest = end;
        blocker = &g.ops[static_cast<size_t>(d)];
      }
    }
    walk.Compute(op, t.start_s, t.end_s, blocker, blocker != nullptr ? blocker->program : -1,
                 latest);
  }
  r->breakdown = walk.Finish(r->step_time_s);
}

namespace {

void GrowTo(std::vector<double>* v, size_t n) {
  if (v->size() < n) v->resize(n);
}

}  // namespace

ScheduleResult SimulateCompactSchedule(const CompactGraph& cg,
                                       const CollectiveTimer& collective_time,
                                       const HardwareProfile& hw, double* hardware_flops,
                                       bool breakdown) {
  // Every unit's ops back to back (units[u] at [first[u], first[u + 1])), timed once (every
  // instance's are the same): durations, streams, FLOPs, dependencies (in the unit, or its
  // inputs: -1 - input), and a slot for the end of each op a later instance waits for. One set
  // of arrays per thread, reused call after call.
  struct Flat {
    std::vector<double> dur, flops;
    std::vector<int32_t> stream, dep_begin, deps, export_slot, first, exports;
    std::vector<uint8_t> compute;
  };
  thread_local Flat f;
  for (auto* v : {&f.dur, &f.flops}) v->clear();
  for (auto* v : {&f.stream, &f.dep_begin, &f.deps, &f.export_slot, &f.first, &f.exports}) {
    v->clear();
  }
  f.compute.clear();
  size_t widest = 0, most_inputs = 0;
  for (const GraphUnit& unit : cg.units) {
    f.first.push_back(static_cast<int32_t>(f.dur.size()));
    for (const Op& op : unit.ops) {
      f.dur.push_back(op.is_collective ? collective_time(op.collective, op.program)
                                       : ComputeTimeS(op.compute, hw));
      f.flops.push_back(op.compute.flops);
      f.stream.push_back(op.stream);
      f.compute.push_back(op.is_collective ? 0 : 1);
      f.dep_begin.push_back(static_cast<int32_t>(f.deps.size()));
      f.deps.insert(f.deps.end(), op.deps.begin(), op.deps.end());
      f.export_slot.push_back(-1);
    }
    widest = std::max(widest, unit.ops.size());
    most_inputs = std::max(most_inputs, static_cast<size_t>(unit.num_inputs));
  }
  f.first.push_back(static_cast<int32_t>(f.dur.size()));
  f.dep_begin.push_back(static_cast<int32_t>(f.deps.size()));
  f.exports.assign(cg.units.size(), 0);
  auto unit_of = [&](int32_t instance) {
    return static_cast<size_t>(cg.instances[static_cast<size_t>(instance)].unit);
  };
  auto slot_of = [&](const OpRef& r) -> int32_t& {
    return f.export_slot[static_cast<size_t>(f.first[unit_of(r.instance)] + r.op)];
  };
  for (const OpRef& r : cg.bindings) {
    int32_t& s = slot_of(r);
    if (s < 0) s = f.exports[unit_of(r.instance)]++;
  }
  thread_local std::vector<int64_t> export_base, bound;
  thread_local std::vector<double> exported;
  export_base.resize(cg.instances.size());
  int64_t total_exports = 0;
  for (size_t i = 0; i < cg.instances.size(); ++i) {
    export_base[i] = total_exports;
    total_exports += f.exports[static_cast<size_t>(cg.instances[i].unit)];
  }
  exported.assign(static_cast<size_t>(total_exports), 0.0);
  // Where each binding's op leaves its end time.
  bound.resize(cg.bindings.size());
  for (size_t b = 0; b < cg.bindings.size(); ++b) {
    const OpRef& r = cg.bindings[b];
    bound[b] = export_base[static_cast<size_t>(r.instance)] + slot_of(r);
  }

  // RunPass's arithmetic (start = max(stream free, dependencies' ends); end = start + duration),
  // op by op in the expanded graph's order, over the instances of program `only` (their inputs
  // from other programs already exported by the levels' pass); `visit` sees each op with its
  // start and end.
  std::vector<double> end(widest), in(most_inputs);
  std::vector<double> stream_free_all(static_cast<size_t>(cg.num_programs * kNumStreams), 0.0);
  auto replay = [&](int32_t only, auto&& visit) {
    std::vector<double> stream_free(static_cast<size_t>(cg.num_programs * kNumStreams), 0.0);
    for (size_t i = 0; i < cg.instances.size(); ++i) {
      const UnitInstance& inst = cg.instances[i];
      const GraphUnit& unit = cg.units[static_cast<size_t>(inst.unit)];
      if (inst.program != only) continue;
      const size_t u0 = static_cast<size_t>(f.first[static_cast<size_t>(inst.unit)]);
      for (int32_t k = 0; k < unit.num_inputs; ++k) {
        in[static_cast<size_t>(k)] =
            exported[static_cast<size_t>(bound[static_cast<size_t>(inst.first_binding + k)])];
      }
      double* free = &stream_free[static_cast<size_t>(inst.program * kNumStreams)];
      double* out = exported.data() + export_base[i];
      const double* dur = f.dur.data() + u0;
      const int32_t* stream = f.stream.data() + u0;
      const int32_t* dep_begin = f.dep_begin.data() + u0;
      const int32_t* deps = f.deps.data();
      const int32_t* slot = f.export_slot.data() + u0;
      const size_t n = unit.ops.size();
      for (size_t j = 0; j < n; ++j) {
        double start = free[stream[j]];
        for (int32_t k = dep_begin[j]; k < dep_begin[j + 1]; ++k) {
          const int32_t d = deps[k];
          start = std::max(start,
                           d >= 0 ? end[static_cast<size_t>(d)] : in[static_cast<size_t>(-1 - d)]);
        }
        const double e = start + dur[j];
        end[j] = e;
        free[stream[j]] = e;
        if (slot[j] >= 0) out[slot[j]] = e;
        visit(inst, unit, u0 + j, j, start, e);
      }
    }
  };

  ScheduleResult r;
  std::vector<double> compute(static_cast<size_t>(cg.num_programs), 0.0);
  // Each op's end is a function of its dependencies' ends and its stream's previous end only, so
  // any order that keeps every program's instances in their order and runs an instance after
  // the ones it is bound to gives the same values. The instances run in levels (Kahn's
  // algorithm: a level is every instance whose predecessors ran in earlier levels, at most one
  // per program; bindings point to earlier instances, so every instance is in one), and a
  // level's instances of one unit run in lockstep, op by op across them:
  // independent chains of additions side by side instead of one long chain.
  thread_local std::vector<int32_t> waiting, dep_begin, dependents, level, next_level;
  thread_local std::vector<double> lane_end, lane_in, lane_free, lane_compute, lane_start;
  const size_t num_inst = cg.instances.size();
  waiting.assign(num_inst, 0);
  dep_begin.assign(num_inst + 1, 0);
  {
    std::vector<int32_t> last(static_cast<size_t>(cg.num_programs), -1);
    auto edges = [&](auto&& edge) {
      std::fill(last.begin(), last.end(), -1);
      for (size_t i = 0; i < num_inst; ++i) {
        const UnitInstance& inst = cg.instances[i];
        const int32_t n_in = cg.units[static_cast<size_t>(inst.unit)].num_inputs;
        for (int32_t k = 0; k < n_in; ++k) {
          edge(cg.bindings[static_cast<size_t>(inst.first_binding + k)].instance, i);
        }
        int32_t& prev = last[static_cast<size_t>(inst.program)];
        if (prev >= 0) edge(prev, i);
        prev = static_cast<int32_t>(i);
      }
    };
    edges([&](int32_t from, size_t to) {
      ++dep_begin[static_cast<size_t>(from) + 1];
      ++waiting[to];
    });
    for (size_t i = 0; i < num_inst; ++i) dep_begin[i + 1] += dep_begin[i];
    dependents.resize(static_cast<size_t>(dep_begin[num_inst]));
    std::vector<int32_t> fill(dep_begin.begin(), dep_begin.end() - 1);
    edges([&](int32_t from, size_t to) {
      dependents[static_cast<size_t>(fill[static_cast<size_t>(from)]++)] = static_cast<int32_t>(to);
    });
  }
  level.clear();
  for (size_t i = 0; i < num_inst; ++i) {
    if (waiting[i] == 0) level.push_back(static_cast<int32_t>(i));
  }
  double step_time = 0;
  while (!level.empty()) {
    // A level's instances by unit (then instance), each unit's run in lockstep.
    std::sort(level.begin(), level.end(), [&](int32_t a, int32_t b) {
      const int32_t ua = cg.instances[static_cast<size_t>(a)].unit;
      const int32_t ub = cg.instances[static_cast<size_t>(b)].unit;
      return ua != ub ? ua < ub : a < b;
    });
    for (size_t g0 = 0; g0 < level.size();) {
      const int32_t u = cg.instances[static_cast<size_t>(level[g0])].unit;
      size_t g1 = g0;
      while (g1 < level.size() && cg.instances[static_cast<size_t>(level[g1])].unit == u) ++g1;
      const size_t L = g1 - g0;
      const GraphUnit& unit = cg.units[static_cast<size_t>(u)];
      const size_t n = unit.ops.size(), n_in = static_cast<size_t>(unit.num_inputs);
      // Grown, never shrunk: a resize down and up again would zero what it adds back.
      GrowTo(&lane_end, n * L);
      GrowTo(&lane_in, n_in * L);
      for (size_t l = 0; l < L; ++l) {
        const UnitInstance& inst = cg.instances[static_cast<size_t>(level[g0 + l])];
        for (size_t k = 0; k < n_in; ++k) {
          lane_in[k * L + l] = exported[static_cast<size_t>(
              bound[static_cast<size_t>(inst.first_binding + static_cast<int64_t>(k))])];
        }
      }
      // The lanes' stream ends and compute sums, lane-major per stream, loaded here and stored
      // back after the unit (the same values, the same additions in each program's order).
      GrowTo(&lane_free, kNumStreams * L);
      GrowTo(&lane_compute, L);
      GrowTo(&lane_start, L);
      for (size_t l = 0; l < L; ++l) {
        const size_t prog =
            static_cast<size_t>(cg.instances[static_cast<size_t>(level[g0 + l])].program);
        for (size_t st = 0; st < kNumStreams; ++st) {
          lane_free[st * L + l] = stream_free_all[prog * kNumStreams + st];
        }
        lane_compute[l] = compute[prog];
      }
      const size_t u0 = static_cast<size_t>(f.first[static_cast<size_t>(u)]);
      double* start = lane_start.data();  // the first dependencies of an op with many
      for (size_t j = 0; j < n; ++j) {
        const double d = f.dur[u0 + j];
        double* free = &lane_free[static_cast<size_t>(f.stream[u0 + j]) * L];
        double* ends = &lane_end[j * L];
        // The lanes of each dependency; past kFused of them, the first ones fold into `start`.
        constexpr int32_t kFused = 4;
        const double* src[kFused];
        int32_t k = f.dep_begin[u0 + j];
        const int32_t k1 = f.dep_begin[u0 + j + 1];
        auto lanes_of = [&](int32_t dep) -> const double* {
          return dep >= 0 ? &lane_end[static_cast<size_t>(dep) * L]
                          : &lane_in[static_cast<size_t>(-1 - dep) * L];
        };
        const double* first = free;
        if (k1 - k > kFused) {
          for (size_t l = 0; l < L; ++l) start[l] = free[l];
          for (; k1 - k > kFused; ++k) {
            const double* c = lanes_of(f.deps[static_cast<size_t>(k)]);
            for (size_t l = 0; l < L; ++l) start[l] = std::max(start[l], c[l]);
          }
          first = start;
        }
        int32_t ns = 0;
        for (; k < k1; ++k) src[ns++] = lanes_of(f.deps[static_cast<size_t>(k)]);
        // start = max(stream end, dependencies' ends) in that order, as the op-by-op replay.
        auto lane = [&](size_t l) {
          double s0 = first[l];
          for (int32_t q = 0; q < ns; ++q) s0 = std::max(s0, src[q][l]);
          return s0;
        };
        if (f.compute[u0 + j] != 0) {
          for (size_t l = 0; l < L; ++l) {
            const double s0 = lane(l), e = s0 + d;
            ends[l] = e;
            free[l] = e;
            lane_compute[l] += e - s0;
          }
        } else {
          for (size_t l = 0; l < L; ++l) {
            const double e = lane(l) + d;
            ends[l] = e;
            free[l] = e;
          }
        }
        if (const int32_t slot = f.export_slot[u0 + j]; slot >= 0) {
          for (size_t l = 0; l < L; ++l) {
            exported[static_cast<size_t>(export_base[static_cast<size_t>(level[g0 + l])] + slot)] =
                ends[l];
          }
        }
      }
      for (size_t l = 0; l < L; ++l) {
        const size_t prog =
            static_cast<size_t>(cg.instances[static_cast<size_t>(level[g0 + l])].program);
        for (size_t st = 0; st < kNumStreams; ++st) {
          stream_free_all[prog * kNumStreams + st] = lane_free[st * L + l];
        }
        compute[prog] = lane_compute[l];
      }
      g0 = g1;
    }
    next_level.clear();
    for (int32_t i : level) {
      for (int32_t k = dep_begin[static_cast<size_t>(i)]; k < dep_begin[static_cast<size_t>(i) + 1];
           ++k) {
        const int32_t d = dependents[static_cast<size_t>(k)];
        if (--waiting[static_cast<size_t>(d)] == 0) next_level.push_back(d);
      }
    }
    std::swap(level, next_level);
  }
  // Ends on a stream never decrease (an op starts after the one before it on its stream): the
  // step ends at the latest stream's end.
  for (double e : stream_free_all) step_time = std::max(step_time, e);
  r.step_time_s = step_time;
  // The FLOPs: each unit's once, times its instances (FlopSum's total is the same in any order).
  std::vector<FlopSum> unit_flops(cg.units.size());
  for (size_t u = 0; u < cg.units.size(); ++u) {
    for (int32_t j = f.first[u]; j < f.first[u + 1]; ++j) {
      unit_flops[u].Add(f.flops[static_cast<size_t>(j)]);
    }
  }
  FlopSum flops;
  for (const UnitInstance& inst : cg.instances)
    flops.Add(unit_flops[static_cast<size_t>(inst.unit)]);
  *hardware_flops = flops.Value() * static_cast<double>(cg.devices_per_program);
  if (!breakdown) return r;
  r.critical_program =
      static_cast<int32_t>(std::max_element(compute.begin(), compute.end()) - compute.begin());
  // The critical program again, its ops' blockers from the unit's ops and the bound inputs.
  BreakdownWalk walk(r.critical_program);
  replay(r.critical_program, [&](const UnitInstance& inst, const GraphUnit& unit, size_t at,
                                 size_t j, double start, double e) {
    const Op& op = unit.ops[j];
    if (!f.compute[at]) {
      walk.Collective(start, e);
      return;
    }
    const Op* blocker = nullptr;
    int32_t blocker_program = -1;
    double latest = -1;
    for (int32_t d : op.deps) {
      double dep_end;
      const Op* dep;
      int32_t dep_program = inst.program;
      if (d >= 0) {
        dep_end = end[static_cast<size_t>(d)];
        dep = &unit.ops[static_cast<size_t>(d)];
      } else {
        const OpRef& b = cg.bindings[static_cast<size_t>(inst.first_binding - 1 - d)];
        dep_end = in[static_cast<size_t>(-1 - d)];
        dep = &cg.units[unit_of(b.instance)].ops[static_cast<size_t>(b.op)];
        dep_program = cg.instances[static_cast<size_t>(b.instance)].program;
      }
      if (dep_end > latest) {
        latest = dep_end;
        blocker = dep;
        blocker_program = dep_program;
      }
    }
    walk.Compute(op, start, e, blocker, blocker_program, latest);
  });
  r.breakdown = walk.Finish(r.step_time_s);
  return r;
}

}  // namespace moesim
