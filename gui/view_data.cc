#include "gui/view_data.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

namespace moesim::gui {
namespace {

void AppendMesh(std::vector<std::string>* p, const std::array<int64_t, 4>& mesh) {
  p->push_back("sharding.mesh.data=" + std::to_string(mesh[0]));
  p->push_back("sharding.mesh.expert=" + std::to_string(mesh[1]));
  p->push_back("sharding.mesh.model=" + std::to_string(mesh[2]));
  p->push_back("sharding.mesh.pipeline=" + std::to_string(mesh[3]));
}

// Fastest feasible point, else fastest simulated unfit one, among `indices`.
ExpertsSweep::Best PickBest(const ExpertsSweep& s, const std::vector<size_t>& indices) {
  ExpertsSweep::Best b;
  for (const bool want_fit : {true, false}) {
    for (size_t i : indices) {
      const PointResult& p = s.points[i];
      const bool ok =
          want_fit ? p.outcome == PointResult::Outcome::kOk
                   : p.outcome == PointResult::Outcome::kDoesNotFit && p.report.step_time_s > 0;
      if (!ok) continue;
      if (b.index < 0 ||
          p.report.step_time_s < s.points[static_cast<size_t>(b.index)].report.step_time_s) {
        b.index = static_cast<int>(i);
        b.feasible = want_fit;
      }
    }
    if (b.index >= 0) break;
  }
  return b;
}

std::string Engineering(double v, const char* unit) {
  const char* prefixes[] = {"", "K", "M", "G", "T", "P", "E"};
  int i = 0;
  while (v >= 1000 && i < 6) {
    v /= 1000;
    ++i;
  }
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.3g %s%s", v, prefixes[i], unit);
  return buf;
}

}  // namespace

std::vector<std::vector<std::string>> ExpertsSweepPoints(const Scenario& sc,
                                                         const std::vector<std::string>& base,
                                                         const ExpertsSweepSpec& spec,
                                                         std::vector<std::string>* strategy_out,
                                                         std::vector<int64_t>* experts_out) {
  std::vector<std::vector<std::string>> out;
  const int64_t devices = sc.cluster.num_devices;
  const int64_t pipeline = sc.sharding.mesh[MeshAxis::kPipeline];
  auto meshes = [&](int64_t experts) {
    std::vector<std::array<int64_t, 4>> m;
    for (const auto& f : MeshFactorizations(devices, experts, sc.model.num_layers,
                                            std::max<int64_t>(1, pipeline))) {
      if (f[3] == pipeline) m.push_back(f);
    }
    return m;
  };
  const std::string own = ShardingStrategyName(sc.sharding.strategy);
  for (const auto& mesh : meshes(0)) {
    auto p = base;
    p.push_back("model.moe.num_experts=0");
    p.push_back("sharding.strategy=" + own);
    AppendMesh(&p, mesh);
    out.push_back(std::move(p));
    strategy_out->push_back("");
    experts_out->push_back(0);
  }
  for (const std::string& strategy : spec.strategies) {
    for (int64_t e : spec.experts) {
      for (const auto& mesh : meshes(e)) {
        auto p = base;
        if (!sc.model.is_moe()) {
          // A dense base has no MoE settings; these are the budget planner's (Du et al.).
          p.push_back("model.moe.top_k=2");
          p.push_back("model.moe.capacity_factor=2");
          p.push_back("model.moe.placement=EVERY_K");
          p.push_back("model.moe.placement_k=2");
        }
        p.push_back("model.moe.num_experts=" + std::to_string(e));
        p.push_back("sharding.strategy=" + strategy);
        AppendMesh(&p, mesh);
        out.push_back(std::move(p));
        strategy_out->push_back(strategy);
        experts_out->push_back(e);
      }
    }
  }
  return out;
}

ExpertsSweep RunExpertsSweep(const ScenarioText& text, const std::vector<std::string>& overrides,
                             const Scenario& sc, const ExpertsSweepSpec& spec,
                             const RunOptions& options) {
  ExpertsSweep s;
  s.spec = spec;
  s.scenario_strategy = ShardingStrategyName(sc.sharding.strategy);
  const auto points = ExpertsSweepPoints(sc, overrides, spec, &s.point_strategy, &s.point_experts);
  s.points = RunPoints(text, points, options);
  for (const auto& p : s.points) {
    if (p.cancelled) {
      s.cancelled = true;
    } else {
      ++s.finished;
    }
  }
  auto group = [&](const std::string& strategy, int64_t experts) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < s.points.size(); ++i) {
      if (s.point_strategy[i] == strategy && s.point_experts[i] == experts) idx.push_back(i);
    }
    auto b = PickBest(s, idx);
    b.strategy = strategy;
    b.experts = experts;
    return b;
  };
  s.best.push_back(group("", 0));
  for (const std::string& strategy : spec.strategies) {
    for (int64_t e : spec.experts) s.best.push_back(group(strategy, e));
  }
  return s;
}

std::vector<size_t> ParetoFront(const std::vector<double>& x, const std::vector<double>& y,
                                const std::vector<bool>& feasible, bool higher_x_better) {
  std::vector<size_t> order;
  for (size_t i = 0; i < x.size(); ++i) {
    if (feasible[i]) order.push_back(i);
  }
  // Best x first; a point is on the front when it is faster than every point with a better x.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (x[a] != x[b]) return higher_x_better ? x[a] > x[b] : x[a] < x[b];
    return y[a] < y[b];
  });
  std::vector<size_t> front;
  for (size_t i : order) {
    if (front.empty() || y[i] < y[front.back()]) front.push_back(i);
  }
  if (higher_x_better) std::reverse(front.begin(), front.end());
  return front;
}

const char* OpKindName(OpKind k) {
  switch (k) {
    case OpKind::kMatmul:
      return "matmul";
    case OpKind::kElementwise:
      return "memory-bound";
    case OpKind::kAllReduce:
      return "all_reduce";
    case OpKind::kAllGather:
      return "all_gather";
    case OpKind::kReduceScatter:
      return "reduce_scatter";
    case OpKind::kAllToAll:
      return "all_to_all";
    case OpKind::kSendRecv:
      return "send_recv";
  }
  return "?";
}

Timeline BuildTimeline(const SimReport& report, const Mesh& mesh, int max_stages) {
  Timeline t;
  t.program = report.program;
  t.mesh = mesh;
  t.step_time_s = report.step_time_s;
  const OpGraph& g = *report.program;
  t.num_programs = g.num_programs;
  std::vector<int32_t> stages;
  if (g.num_programs <= max_stages) {
    stages.resize(static_cast<size_t>(g.num_programs));
    std::iota(stages.begin(), stages.end(), 0);
  } else {
    stages = {0, 1, report.critical_program, g.num_programs - 1};
    std::sort(stages.begin(), stages.end());
    stages.erase(std::unique(stages.begin(), stages.end()), stages.end());
  }
  std::vector<std::vector<bool>> used(static_cast<size_t>(g.num_programs),
                                      std::vector<bool>(kNumStreams, false));
  for (const Op& op : g.ops)
    used[static_cast<size_t>(op.program)][static_cast<size_t>(op.stream)] = true;
  std::vector<std::vector<int>> lane_of(static_cast<size_t>(g.num_programs),
                                        std::vector<int>(kNumStreams, -1));
  for (int32_t p : stages) {
    for (int32_t s = 0; s < kNumStreams; ++s) {
      if (!used[static_cast<size_t>(p)][static_cast<size_t>(s)]) continue;
      lane_of[static_cast<size_t>(p)][static_cast<size_t>(s)] = static_cast<int>(t.lanes.size());
      t.lanes.push_back({p, s, "stage " + std::to_string(p) + " " + StreamName(s)});
    }
  }
  for (const Op& op : g.ops) {
    const int lane = lane_of[static_cast<size_t>(op.program)][static_cast<size_t>(op.stream)];
    if (lane < 0) continue;
    Timeline::Bar b;
    b.lane = lane;
    b.op = op.id;
    const OpTiming& tm = report.timing[static_cast<size_t>(op.id)];
    b.start_s = tm.start_s;
    b.end_s = tm.end_s;
    if (!op.is_collective) {
      b.kind = op.compute.matmul ? OpKind::kMatmul : OpKind::kElementwise;
    } else {
      switch (op.collective.kind) {
        case CollectiveKind::kAllReduce:
          b.kind = OpKind::kAllReduce;
          break;
        case CollectiveKind::kAllGather:
          b.kind = OpKind::kAllGather;
          break;
        case CollectiveKind::kReduceScatter:
          b.kind = OpKind::kReduceScatter;
          break;
        case CollectiveKind::kAllToAll:
          b.kind = OpKind::kAllToAll;
          break;
        case CollectiveKind::kSendRecv:
        case CollectiveKind::kRingShift:
          b.kind = OpKind::kSendRecv;
          break;
      }
    }
    t.bars.push_back(b);
  }
  return t;
}

std::string DescribeOp(const Op& op, const OpTiming& t, const Mesh& mesh) {
  std::string s = op.name + "  [" + StreamName(op.stream) + ", " + PhaseName(op.phase);
  if (op.micro_batch >= 0) s += ", micro-batch " + std::to_string(op.micro_batch);
  s += "]\n";
  if (op.is_collective) {
    std::string axes;
    for (MeshAxis a : op.collective.axes) axes += (axes.empty() ? "" : ",") + mesh.Name(a);
    s += std::string(CollectiveKindName(op.collective.kind)) + " over " +
         (axes.empty() ? "-" : axes) + ", " + Engineering(op.collective.bytes, "B") + "\n";
  } else {
    s += Engineering(op.compute.flops, "FLOP") + ", " + Engineering(op.compute.bytes, "B");
    if (op.compute.matmul) {
      s += ", GEMM " + std::to_string(op.compute.m) + "x" + std::to_string(op.compute.n) + "x" +
           std::to_string(op.compute.k);
    }
    s += "\n";
  }
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%.3f ms -> %.3f ms (%.1f us)", t.start_s * 1e3, t.end_s * 1e3,
                (t.end_s - t.start_s) * 1e6);
  return s + buf;
}

}  // namespace moesim::gui
