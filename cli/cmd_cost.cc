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
#include "schema/report_schema.h"

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
    const CostReport report = ComputeCostReport(*sc);
    if (*json != "-") {
      PrintTable(*sc, report.cost, report.memory);
      PrintCompute(report.compute);
    }
    if (!json->empty()) return WriteJson(CostReportJson(*sc, report), *json);
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("cost",
                        "Parameters, FLOPs per token, per-device memory and compute time by kernel "
                        "class (no simulation)",
                        20, Setup);

}  // namespace moesim::cli
