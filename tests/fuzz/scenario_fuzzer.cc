// Fuzzes the scenario loader (proto/scenario_loader.h): protobuf text, `--set PATH=VALUE`
// overrides and validation; a scenario that loads is then costed (costmodel/: parameters,
// FLOPs, memory) and, when small, its step program is built.
//
// Input: a scenario file; its comment lines "#set PATH=VALUE" (at most 8) are applied as `--set`
// overrides, so the shipped scenarios are seeds as they are and the fuzzer mutates overrides
// too (scenario.dict holds "#set" entries). Relative file names (topology files, routing
// histograms) resolve against the source tree. An error Status is a fine outcome; only crashes,
// undefined behaviour, leaks, timeouts and running out of memory are findings.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "costmodel/costmodel.h"
#include "costmodel/opgraph.h"
#include "proto/scenario_loader.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

// Step programs grow with layers x micro-batches x pipeline stages; past this the harness
// stops at the cost model so that one input stays well under libFuzzer's -timeout.
constexpr double kMaxGraphWork = 4096;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = moesim::fuzz::AsString(data, size);
  const std::vector<std::string> overrides = moesim::fuzz::SetLines(text, 8);
  for (const std::string& o : overrides) (void)moesim::CheckOverride(o);
  moesim::Expected<moesim::Scenario> sc =
      moesim::LoadScenarioFromText(text, "fuzz.textproto", overrides, MOESIM_SOURCE_DIR);
  if (!sc.ok()) return 0;
  const moesim::ModelCost cost = moesim::ComputeScenarioCost(*sc);
  const moesim::MemoryReport memory = moesim::ComputeMemory(*sc);
  (void)cost;
  (void)memory;
  // In double: the fields are validated positive, not small, and the product may not fit.
  const double work = static_cast<double>(sc->model.num_layers) *
                      static_cast<double>(sc->training.num_micro_batches) *
                      static_cast<double>(sc->training.virtual_stages) *
                      static_cast<double>(sc->sharding.mesh[moesim::MeshAxis::kPipeline]);
  if (work > 0 && work <= kMaxGraphWork) {
    const moesim::OpGraph graph = moesim::BuildStepGraph(*sc);
    double seconds = 0;
    for (const moesim::Op& op : graph.ops) {
      if (!op.is_collective) seconds += moesim::ComputeTimeS(op.compute, sc->hardware);
    }
    (void)seconds;
  }
  return 0;
}
