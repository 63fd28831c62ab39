// Fuzzes topology files (proto/topology.proto, read by topologies/topology_file.cc through
// BuildTopology): protobuf text, a `base` topology name or an explicit graph of devices,
// switches and links, physical dimensions. A graph that builds is routed, placed and, when
// small, summarized (diameter, bisection).
//
// Input: a topology .textproto file (seeds: topologies/*.textproto), written to a temporary
// file because the reader takes a path. An error Status is a fine outcome; only crashes,
// undefined behaviour, leaks, timeouts and running out of memory are findings.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "proto/hardware_profiles.h"
#include "tests/fuzz/fuzz_util.h"
#include "topologies/analysis.h"
#include "topologies/placement.h"
#include "topologies/topology.h"

namespace {

// Diameter and bisection are all-pairs work on graphs read from files; past this many vertices
// the harness stops at routing and placement (libFuzzer's -timeout would end the run).
constexpr int64_t kMaxSummaryVertices = 512;
constexpr int64_t kMaxPlacementDevices = 1 << 14;

void Exercise(const moesim::Topology& topo) {
  const int64_t n = topo.num_devices();
  if (n >= 2) (void)topo.Route(0, static_cast<moesim::DeviceId>(n - 1));
  if (n <= kMaxPlacementDevices) {
    (void)moesim::PlaceMesh(topo, {"data"}, {n});
    std::vector<std::string> names;
    std::vector<int64_t> sizes;
    for (const moesim::PhysicalDim& d : topo.physical_dims()) {
      names.push_back("axis" + std::to_string(names.size()));
      sizes.push_back(d.size);
    }
    auto placed = moesim::PlaceMesh(topo, names, sizes);
    if (placed.ok() && !sizes.empty()) (void)placed->Groups(0);
  }
  if (topo.num_vertices() <= kMaxSummaryVertices) (void)moesim::Summarize(topo);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      moesim::fuzz::WriteTempFile("topology.textproto", moesim::fuzz::AsString(data, size));
  moesim::Expected<moesim::HardwareProfile> hw = moesim::DefaultHardwareFor(path);
  if (!hw.ok()) hw = moesim::BuiltinHardwareProfile("tpu-v5e");
  if (!hw.ok()) return 0;
  auto topo = moesim::BuildTopology(path, *hw);
  if (!topo.ok()) return 0;
  Exercise(**topo);
  return 0;
}
