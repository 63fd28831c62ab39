// `moesim simulate [SCENARIO] [--set ...] [--network analytical|flow] [--json FILE|-]
// [--trace FILE]`: one training step simulated; readable table, JSON of DESIGN section 4,
// Chrome trace (opens in Perfetto / chrome://tracing).
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "proto/maxtext_preset.h"
#include "proto/megatron_args.h"
#include "proto/scenario_loader.h"
#include "schema/report_schema.h"
#include "sim/step/simulate.h"

namespace moesim::cli {
namespace {

// "data 4, expert 64, model 1, pipeline 1" (the legacy form), or a named mesh's axes as written:
// "dp_out 32, dp_in 4, tp 2".
std::string MeshText(const Mesh& mesh) {
  const Mesh legacy;
  std::string out;
  if (mesh.name == legacy.name && mesh.placement_order == legacy.placement_order) {
    for (int a = 0; a < kNumLegacyMeshAxes; ++a) {
      out += (out.empty() ? "" : ", ") + mesh.Name(static_cast<MeshAxis>(a)) + " " +
             std::to_string(mesh[static_cast<MeshAxis>(a)]);
    }
    return out;
  }
  for (MeshAxis a : mesh.placement_order) {
    if (mesh.Name(a).rfind('_', 0) == 0) continue;
    out += (out.empty() ? "" : ", ") + mesh.Name(a) + " " + std::to_string(mesh[a]);
  }
  return out;
}

void PrintTable(const Scenario& sc, const SimReport& r) {
  const auto& mesh = sc.sharding.mesh;
  std::cout << "scenario     " << (sc.name.empty() ? sc.source : sc.name) << "\n"
            << "cluster      " << sc.cluster.topology << " (" << sc.cluster.num_devices << " x "
            << sc.hardware.chip << "), " << ShardingStrategyName(sc.sharding.strategy) << " mesh ("
            << MeshText(mesh) << ")\n"
            << "network      " << r.network;
  if (r.network == "flow") {
    std::cout << " (" << r.flow.collectives << " collectives: " << r.flow.flow_runs
              << " overlapped others and ran as " << r.flow.flows << " flows, " << r.flow.replayed
              << " ran alone; " << r.flow.symmetric_steps
              << " collective steps ran as one flow per class of flows identical by symmetry)";
  }
  std::cout << "\n\n";
  std::cout << "step time    " << Fixed(r.step_time_s, 4) << " s\n";
  const Breakdown& b = r.breakdown;
  std::cout << "  compute          " << Fixed(b.compute_s, 4) << " s  "
            << Pct(b.compute_s, r.step_time_s) << "\n";
  for (const auto& [kind, s] : b.compute_by_class) {
    std::cout << "    " << kind << ": " << Fixed(s, 4) << " s\n";
  }
  std::cout << "  exposed comm     " << Fixed(b.exposed_comm_s, 4) << " s  "
            << Pct(b.exposed_comm_s, r.step_time_s) << "\n";
  for (const auto& [label, s] : b.exposed_by_collective) {
    if (s >= 1e-4 * r.step_time_s) std::cout << "    " << label << ": " << Fixed(s, 4) << " s\n";
  }
  std::cout << "  pipeline bubble  " << Fixed(b.bubble_s, 4) << " s  "
            << Pct(b.bubble_s, r.step_time_s) << "\n"
            << "  idle             " << Fixed(b.idle_s, 4) << " s  " << Pct(b.idle_s, r.step_time_s)
            << "\n"
            << "  (all communication, overlapped or not: " << Fixed(b.comm_total_s, 4) << " s)\n\n";
  std::cout << "MFU          " << Fixed(100 * r.mfu, 1) << "%\n"
            << "TFLOP/s/dev  " << Fixed(r.tflops_per_device, 1) << " (hardware FLOPs)\n"
            << "tokens/s     " << Count(r.tokens_per_s) << "\n"
            << "params       total " << Count(r.cost.params.total) << ", activated "
            << Count(r.cost.params.activated) << "\n"
            << "memory       " << GiB(r.memory.peak_bytes) << " of "
            << GiB(static_cast<double>(r.memory.capacity_bytes)) << " per device -> "
            << (r.memory.fits ? "fits" : "DOES NOT FIT") << "\n";
  if (r.dropped_token_fraction > 0) {
    std::cout << "MoE          " << Fixed(100 * r.dropped_token_fraction, 2)
              << "% of routed tokens dropped (over capacity)\n";
  }
  // A mesh in MaxText's form: the config overrides that launch it.
  if (auto maxtext = MaxTextOverrides(sc); maxtext.ok()) {
    std::cout << "maxtext      " << *maxtext << "\n";
  }
  // A scenario in Megatron-LM's sizes: the arguments that launch it (--megatron-args reads them).
  if (auto megatron = MegatronArgs(sc); megatron.ok()) {
    std::cout << "megatron     " << JoinShellArgs(*megatron) << "\n";
  }
  std::cout << "mesh axes   ";
  for (const auto& a : r.axes) {
    if (a.size <= 1) continue;
    std::cout << " " << a.name << " " << a.size << " on " << a.span;
    if (a.ring_bytes_per_s > 0) std::cout << " (" << Fixed(a.ring_bytes_per_s / 1e9, 0) << " GB/s)";
    std::cout << ";";
  }
  std::cout << "\n";
}

RunFn Setup(CLI::App* sub) {
  auto args = std::make_shared<ScenarioArgs>();
  auto json = std::make_shared<std::string>();
  auto trace = std::make_shared<std::string>();
  auto network = std::make_shared<std::string>("analytical");
  auto max_memory = std::make_shared<uint64_t>(0);
  AddScenarioOptions(sub, args.get(), false);
  AddMaxMemoryOption(sub, max_memory.get());
  sub->add_option("--network", *network,
                  "analytical: alpha-beta per collective, no contention (fast); flow: "
                  "congestion-aware")
      ->check(CLI::IsMember({"analytical", "flow"}));
  sub->add_option("--json", *json, "Write JSON to FILE, or to stdout with -")->type_name("FILE|-");
  sub->add_option("--trace", *trace, "Write a Chrome trace (Perfetto) of the step to FILE")
      ->type_name("FILE");
  return [args, json, trace, network, max_memory]() -> Status {
    auto sc = LoadScenario({args->path, args->overrides});
    if (!sc.ok()) return sc.status();
    SimulateOptions opts;
    opts.max_memory_bytes = static_cast<double>(*max_memory);
    opts.network = *network == "flow" ? NetworkLevel::kFlow : NetworkLevel::kAnalytical;
    opts.keep_program = !trace->empty();
    auto r = SimulateScenario(*sc, opts);
    if (!r.ok()) return r.status();
    if (*json != "-") PrintTable(*sc, *r);
    if (!trace->empty()) MOESIM_RETURN_IF_ERROR(StepTrace(*sc, *r).Write(*trace));
    if (!json->empty()) return WriteJson(StepReportJson(*sc, *r), *json);
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("simulate", "Simulate one training step: step time, breakdown, MFU, memory",
                        10, Setup);

}  // namespace moesim::cli
