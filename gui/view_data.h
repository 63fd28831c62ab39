// view_data.h
//
// What the GUI's views plot, computed (off the GUI thread) with the planner and simulate
// libraries; no Qt, no formula of its own. Every number plotted is a SimReport field of a point
// that `moesim simulate [SCENARIO] --set ...` reproduces with that point's overrides.
//
// Experts view: for each strategy and expert count, the fastest mesh (data, expert, model) of
// the scenario's cluster at the scenario's own pipeline depth, recompute and micro-batching;
// "infeasible" = no mesh fits in memory (the fastest unfit mesh is shown, marked). The same
// points feed the Breakdown view (the scenario's strategy) and the Trade-off view (all).
// Thread safety: pure functions of their inputs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "schema/report_schema.h"
#include "sim/planner/planner.h"

namespace moesim::gui {

struct ExpertsSweepSpec {
  std::vector<int64_t> experts = {8, 16, 32, 64, 128, 256};
  std::vector<std::string> strategies = {"APPLE_3D", "NAIVE_2D", "PADDED_2D"};
};

struct ExpertsSweep {
  ExpertsSweepSpec spec;
  std::string scenario_strategy;  // the line the Breakdown view follows; also the dense one's
  std::vector<PointResult> points;
  std::vector<std::string> point_strategy;  // by point
  std::vector<int64_t> point_experts;       // by point; 0 = the dense baseline
  struct Best {
    std::string strategy;  // "" for the dense baseline
    int64_t experts = 0;
    int index = -1;         // into points; -1 = every mesh invalid
    bool feasible = false;  // false: the fastest mesh that does not fit is shown
  };
  std::vector<Best> best;  // dense first, then strategy-major, experts ascending
  size_t finished = 0;     // points run (not cancelled)
  bool cancelled = false;
};

// The overrides of every point (appended to `base`), with their strategy and expert count.
std::vector<std::vector<std::string>> ExpertsSweepPoints(const Scenario& sc,
                                                         const std::vector<std::string>& base,
                                                         const ExpertsSweepSpec& spec,
                                                         std::vector<std::string>* strategy_out,
                                                         std::vector<int64_t>* experts_out);

ExpertsSweep RunExpertsSweep(const ScenarioText& text, const std::vector<std::string>& overrides,
                             const Scenario& sc, const ExpertsSweepSpec& spec,
                             const RunOptions& options);

// Indices of the points on the Pareto front among those with feasible[i], in increasing x:
// lower y is better; lower x is better unless `higher_x_better` (parameters: more capacity for
// the same step time is the trade worth making; memory: less is better).
std::vector<size_t> ParetoFront(const std::vector<double>& x, const std::vector<double>& y,
                                const std::vector<bool>& feasible, bool higher_x_better = false);

// Timeline of one simulated step (SimulateOptions::keep_program).
enum class OpKind {
  kMatmul,
  kElementwise,
  kAllReduce,
  kAllGather,
  kReduceScatter,
  kAllToAll,
  kSendRecv
};
inline constexpr int kNumOpKinds = 7;
const char* OpKindName(OpKind k);

struct Timeline {
  struct Lane {
    int32_t program = 0;
    int32_t stream = 0;
    std::string name;  // "stage 0 compute"
  };
  struct Bar {
    int lane = 0;
    int32_t op = 0;  // index into program->ops
    OpKind kind = OpKind::kMatmul;
    double start_s = 0, end_s = 0;
  };
  std::vector<Lane> lanes;
  std::vector<Bar> bars;
  double step_time_s = 0;
  int32_t num_programs = 0;  // stages simulated (lanes show at most a few representatives)
  std::shared_ptr<const OpGraph> program;
  Mesh mesh;  // the scenario's mesh: names the axes of collective ops
  // The step's ops as the report schema has them (StepOps, by op id; set by the caller, which
  // has the scenario): what the CSV export writes for each bar.
  std::vector<OpRecord> ops;
};

// Lanes for the representative stages (all when at most `max_stages`, else the first two, the
// critical one and the last), one per stream that runs anything.
// REQUIRES: report.program and report.timing set; `mesh` is the simulated scenario's.
Timeline BuildTimeline(const SimReport& report, const Mesh& mesh, int max_stages = 4);

// One line of what the timeline's tooltip shows: op name, stream, phase, FLOPs or bytes, time;
// a collective's axes by the names `mesh` gives them.
std::string DescribeOp(const Op& op, const OpTiming& t, const Mesh& mesh);

}  // namespace moesim::gui
