// `moesim cost [SCENARIO] [--set ...] [--json FILE|-]`: parameters, FLOPs, per-device memory and
// the compute time of a step by kernel class; no simulation.
#include <algorithm>
#include <iostream>
#include <map>

#include "cli/command.h"
#include "cli/format.h"
#include "costmodel/costmodel.h"
#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"

namespace moesim::cli {
namespace {

// "data 4 x expert 64 x model 1 x pipeline 1" (the legacy form), or a named mesh's axes in the
// order written: "dp_out 32 x dp_in 4 x tp 2" (size-1 placeholders, named "_...", left out).
std::string MeshSizes(const Mesh& mesh) {
  const Mesh legacy;
  const bool is_legacy = mesh.name == legacy.name && mesh.placement_order == legacy.placement_order;
  std::vector<MeshAxis> order;
  for (int a = 0; is_legacy && a < kNumLegacyMeshAxes; ++a) order.push_back(MeshAxis{a});
  if (!is_legacy) order = mesh.placement_order;
  std::string out;
  for (MeshAxis a : order) {
    if (mesh.Name(a).rfind('_', 0) == 0) continue;
    out += (out.empty() ? "" : " x ") + mesh.Name(a) + " " + std::to_string(mesh[a]);
  }
  return out;
}

// Compute time of one step by kernel class (KernelClassName) on the busiest pipeline stage: each
// op's time alone (ComputeTimeS), no communication, no overlap.
struct ClassTime {
  double time_s = 0, flops = 0;
};
struct StageCompute {
  int32_t stage = 0;
  std::map<std::string, ClassTime> by_class;
  double total_s = 0;
};
StageCompute ComputeByClass(const Scenario& sc) {
  OpGraph g;
  BuildStepGraph(sc, &g);
  std::vector<StageCompute> stages(static_cast<size_t>(g.num_programs));
  for (const Op& op : g.ops) {
    if (op.is_collective) continue;
    StageCompute& s = stages[static_cast<size_t>(op.program)];
    ClassTime& c = s.by_class[KernelClassName(op.compute)];
    const double t = ComputeTimeS(op.compute, sc.hardware);
    c.time_s += t;
    c.flops += op.compute.flops;
    s.total_s += t;
  }
  for (size_t p = 0; p < stages.size(); ++p) stages[p].stage = static_cast<int32_t>(p);
  return *std::max_element(
      stages.begin(), stages.end(),
      [](const StageCompute& a, const StageCompute& b) { return a.total_s < b.total_s; });
}

nlohmann::json CostJson(const Scenario& sc, const ModelCost& cost, const MemoryReport& mem,
                        const StageCompute& compute) {
  nlohmann::json j;
  j["name"] = sc.name;
  j["params"] = {{"total", cost.params.total},
                 {"activated", cost.params.activated},
                 {"embedding", cost.params.embedding},
                 {"per_expert", cost.params.per_expert}};
  if (cost.params.mtp > 0) j["params"]["mtp"] = cost.params.mtp;  // model.mtp_depth's modules
  j["flops_per_token"] = {{"model", cost.flops_per_token.model},
                          {"hardware", cost.flops_per_token.hardware},
                          {"forward", cost.flops_per_token.forward},
                          {"forward_by_op", cost.flops_per_token.forward_by_op}};
  j["flops_per_step"] = {
      {"model", cost.flops_per_token.model * static_cast<double>(sc.training.global_batch_tokens)},
      {"hardware",
       cost.flops_per_token.hardware * static_cast<double>(sc.training.global_batch_tokens)}};
  j["layers"] = {{"total", cost.num_layers}, {"moe", cost.num_moe_layers}};
  nlohmann::json by_class = nlohmann::json::object();
  for (const auto& [kind, c] : compute.by_class) {
    by_class[kind] = {{"time_s", c.time_s}, {"flops", c.flops}};
  }
  j["compute_per_step"] = {
      {"stage", compute.stage}, {"time_s", compute.total_s}, {"by_class", by_class}};
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : mem.tensors) {
    tensors.push_back({{"group", t.group},
                       {"name", t.name},
                       {"class", TensorClassName(t.tensor_class)},
                       {"dims", t.dims},
                       {"global_shape", t.global_shape},
                       {"local_shape", t.local_shape},
                       {"local_bytes", t.local_bytes}});
  }
  j["memory"] = {{"peak_bytes_per_device", mem.peak_bytes},
                 {"capacity_bytes", mem.capacity_bytes},
                 {"fits", mem.fits},
                 {"weights_bytes", mem.weights_bytes},
                 {"grads_bytes", mem.grads_bytes},
                 {"optimizer_bytes", mem.optimizer_bytes},
                 {"activations_bytes", mem.activations_bytes},
                 {"logits_bytes", mem.logits_bytes},
                 {"moe_dispatch_bytes", mem.moe_dispatch_bytes},
                 {"pipeline_stage", mem.stage},
                 {"micro_batches_in_flight", mem.micro_batches_in_flight},
                 {"tensors", tensors}};
  const PipelineLayout layout = ScenarioPipelineLayout(sc);
  nlohmann::json stages = nlohmann::json::array();
  for (int64_t r = 0; r < layout.ranks; ++r) {
    std::vector<int64_t> per_chunk;
    for (int64_t c = 0; c < layout.chunks; ++c) per_chunk.push_back(layout.At(r, c).num_layers);
    stages.push_back({{"stage", r},
                      {"layers", layout.LayersOnRank(r)},
                      {"layers_per_chunk", per_chunk},
                      {"peak_bytes", static_cast<size_t>(r) < mem.stage_peak_bytes.size()
                                         ? mem.stage_peak_bytes[static_cast<size_t>(r)]
                                         : 0.0}});
  }
  j["pipeline_stages"] = stages;
  j["scenario"] = sc.resolved_text;
  return j;
}

// Layers of every pipeline stage (chunk by chunk) and its peak memory; runs of stages alike are
// printed once ("stages 1-6").
void PrintPipeline(const Scenario& sc, const MemoryReport& mem) {
  const PipelineLayout layout = ScenarioPipelineLayout(sc);
  std::cout << "pipeline   " << layout.ranks << " stages x " << layout.chunks
            << (layout.chunks == 1 ? " chunk" : " chunks")
            << ": layers per stage (chunks in order; E embedding, L head), peak memory\n";
  auto row = [&](int64_t r) {
    const double peak = static_cast<size_t>(r) < mem.stage_peak_bytes.size()
                            ? mem.stage_peak_bytes[static_cast<size_t>(r)]
                            : 0;
    return DescribeRank(layout, r) + " = " + std::to_string(layout.LayersOnRank(r)) + " layers, " +
           GiB(peak);
  };
  for (int64_t r = 0; r < layout.ranks;) {
    int64_t end = r + 1;
    while (end < layout.ranks && row(end) == row(r)) ++end;
    std::string name = end - r == 1 ? "stage " + std::to_string(r)
                                    : "stages " + std::to_string(r) + "-" + std::to_string(end - 1);
    name.resize(std::max<size_t>(name.size(), 13), ' ');
    std::cout << "  " << name << row(r) << "\n";
    r = end;
  }
}

void PrintTable(const Scenario& sc, const ModelCost& cost, const MemoryReport& mem) {
  const auto& m = sc.model;
  const auto& mesh = sc.sharding.mesh;
  std::cout << "scenario   " << (sc.name.empty() ? sc.source : sc.name) << "\n";
  std::cout << "model      " << m.num_layers << " layers, d_model " << m.d_model << ", "
            << m.num_heads << " heads";
  if (m.is_moe()) {
    std::cout << ", " << m.moe.num_experts << " experts top-" << m.moe.top_k << " in "
              << cost.num_moe_layers << " MoE layers";
  }
  std::cout << "\ncluster    " << sc.cluster.topology << " (" << sc.cluster.num_devices << " x "
            << sc.hardware.chip << "), " << ShardingStrategyName(sc.sharding.strategy) << " mesh "
            << MeshSizes(mesh) << "\n";
  if (mesh[MeshAxis::kPipeline] > 1) PrintPipeline(sc, mem);
  std::cout << "\n";
  std::cout << "parameters         total " << Count(cost.params.total) << ", activated "
            << Count(cost.params.activated) << " per token\n";
  if (cost.params.mtp > 0) {
    std::cout << "                   MTP modules " << Count(cost.params.mtp)
              << " more (embedding and head shared)\n";
  }
  std::cout << "FLOPs per token    model (fwd+bwd) " << Count(cost.flops_per_token.model)
            << ", hardware (+recompute) " << Count(cost.flops_per_token.hardware) << "\n";
  std::cout << "FLOPs per step     model "
            << Count(cost.flops_per_token.model *
                     static_cast<double>(sc.training.global_batch_tokens))
            << " (" << sc.training.global_batch_tokens << " tokens)\n\n";
  std::cout << "memory per device"
            << (mesh[MeshAxis::kPipeline] > 1
                    ? " (pipeline stage " + std::to_string(mem.stage) + ")"
                    : std::string())
            << "\n";
  std::cout << "  weights          " << GiB(mem.weights_bytes) << "\n";
  std::cout << "  gradients        " << GiB(mem.grads_bytes) << "\n";
  std::cout << "  optimizer        " << GiB(mem.optimizer_bytes) << "\n";
  std::cout << "  activations      " << GiB(mem.activations_bytes) << "  ("
            << Fixed(mem.micro_batches_in_flight, 1) << " micro-batch in flight, micro-batch "
            << sc.training.micro_batch_size << " seq/shard)\n";
  if (m.is_moe()) {
    std::cout << "    MoE dispatch   " << GiB(mem.moe_dispatch_bytes) << " per MoE layer\n";
  }
  std::cout << "  logits           " << GiB(mem.logits_bytes) << "\n";
  std::cout << "  peak             " << GiB(mem.peak_bytes) << " of "
            << GiB(static_cast<double>(mem.capacity_bytes)) << "  -> "
            << (mem.fits ? "fits" : "DOES NOT FIT") << "\n";
}

void PrintCompute(const StageCompute& c) {
  std::cout << "\ncompute per step (pipeline stage " << c.stage
            << ", each op alone: no communication, no overlap)\n";
  for (const auto& [kind, t] : c.by_class) {
    std::cout << "  " << kind << std::string(kind.size() < 16 ? 17 - kind.size() : 1, ' ')
              << Fixed(t.time_s, 4) << " s  " << Pct(t.time_s, c.total_s);
    if (kind == "gemm" && t.flops > 0 && t.time_s > 0) {
      std::cout << "  " << Fixed(t.flops / t.time_s / 1e12, 1) << " TFLOP/s achieved";
    }
    std::cout << "\n";
  }
  std::cout << "  total            " << Fixed(c.total_s, 4) << " s\n";
}

RunFn Setup(CLI::App* sub) {
  auto args = std::make_shared<ScenarioArgs>();
  auto json = std::make_shared<std::string>();
  AddScenarioOptions(sub, args.get(), false);
  sub->add_option("--json", *json, "Write JSON to FILE, or to stdout with -")->type_name("FILE|-");
  return [args, json]() -> Status {
    auto sc = LoadScenario({args->path, args->overrides});
    if (!sc.ok()) return sc.status();
    const ModelCost cost = ComputeScenarioCost(*sc);
    const MemoryReport mem = ComputeMemory(*sc);
    const StageCompute compute = ComputeByClass(*sc);
    if (*json != "-") {
      PrintTable(*sc, cost, mem);
      PrintCompute(compute);
    }
    if (!json->empty()) return WriteJson(CostJson(*sc, cost, mem, compute), *json);
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("cost",
                        "Parameters, FLOPs per token, per-device memory and compute time by kernel "
                        "class (no simulation)",
                        20, Setup);

}  // namespace moesim::cli
