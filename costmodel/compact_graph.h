// compact_graph.h
//
// A step program (opgraph.h) with its repeated pipeline tasks stored once. Every micro-batch
// of a pipeline stage runs the same ops: a stage's forward (or backward) of micro-batch 7 is its
// forward of micro-batch 6, waiting for another receive. BuildCompactStepGraph keeps one copy
// of each distinct task of each stage (a Unit: its ops, their dependencies inside the task, and
// numbered inputs for the ops before it they wait for) and the list of task instances in the
// order BuildStepGraph emits them, each with the ops its inputs are bound to. Megatron-1T
// (PP 64, 512 micro-batches, 4.2 million ops) keeps ~300 units of ~50 ops and 66,000 instances.
//
// The expansion (ExpandCompactGraph) is BuildStepGraph's graph op for op: same order, ids,
// streams, dependencies and work (a test compares them). sim/step/step_sim.h runs a
// CompactGraph directly with the same arithmetic as the expanded graph, so every result is the
// same to the bit, without holding the ops.
//
// Supported: every schedule of one task at a time (GPipe, 1F1B, interleaved, no pipeline),
// with recomputation, FSDP, context parallelism, MoE dispatchers and batch split. Not (the
// caller builds the full graph): DualPipe and Megatron-Core's combined 1F1B step
// (training.overlap_moe_expert_parallel_comm), whose tasks run in pairs and queues.
//
// Without names, a unit also serves every pipeline chunk whose ops are the same up to their
// program, layer numbers and the peers of their sends (the middle stages of a pipeline): a
// program's collectives are then timed once for all (the analytical network's times do not
// depend on the program).
//
// Invariants: instances are in BuildStepGraph's emission order; a binding refers to an earlier
// instance; each program's instances run in that program's op order.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "costmodel/opgraph.h"

namespace moesim {

// An op of an instance: the instance's index and the op's index in its unit.
struct OpRef {
  int32_t instance = -1;
  int32_t op = -1;
  auto operator<=>(const OpRef&) const = default;
};

struct GraphUnit {
  // The program (and the first layer of the pipeline chunk) it was built on; a unit shared by
  // several (see BuildCompactStepGraph) serves each instance with its own.
  int32_t program = 0;
  int32_t first_layer = 0;
  // The unit's ops, op.id = their index. A dependency d >= 0 is op d of the unit; d < 0 is the
  // unit's input -1 - d (an op of an earlier instance, bound per instance).
  std::vector<Op> ops;
  int32_t num_inputs = 0;
  int32_t micro_batch = -1;  // the micro-batch of the task it was built from (-1: none)
};

struct UnitInstance {
  int32_t unit = 0;
  int32_t program = 0;        // replaces the unit's program in its ops (and its sends' peers
                              // move with it)
  int32_t layer_offset = 0;   // added to the layer of its ops that have one
  int32_t micro_batch = -1;   // replaces the unit's micro_batch in its ops
  int64_t first_op_id = 0;    // the id of its first op in the expanded graph
  int64_t first_binding = 0;  // its inputs: CompactGraph::bindings[first_binding + i]
};

struct CompactGraph {
  int32_t num_programs = 1;
  int64_t devices_per_program = 1;
  std::vector<GraphUnit> units;
  std::vector<UnitInstance> instances;
  std::vector<OpRef> bindings;
  int64_t num_ops = 0;  // ops of the expanded graph
  // As OpGraph's, except hardware_flops_per_step, which the simulation of the compact graph
  // sums (SimulateCompactSchedule: each unit's FLOPs times its instances, a FlopSum).
  double tokens_per_step = 0;
  double model_flops_per_step = 0;
  double dropped_token_fraction = 0;
  double busiest_expert_rank_load = 1;
};

// Whether `scenario`'s program has a compact form (see the list above), without building it.
bool HasCompactStepGraph(const Scenario& scenario);

// The compact program of `scenario` into *out, whose storage is reused (a caller that builds
// one after another keeps its pages). Without `names` the ops' names stay empty (a caller that
// only runs the program: a fifth of the building's time went to them) and units are shared
// between pipeline chunks that run the same ops (above).
// REQUIRES: HasCompactStepGraph(scenario).
void BuildCompactStepGraph(const Scenario& scenario, CompactGraph* out, bool names = true);

// The full graph: equal, op for op, to BuildStepGraph(scenario) for the scenario it came from
// (names empty when built without), hardware_flops_per_step included (a FlopSum: the same in
// any order).
OpGraph ExpandCompactGraph(const CompactGraph& compact);

}  // namespace moesim
