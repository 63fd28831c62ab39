// `moesim topo TOPOLOGY [--placement AXES=SIZES] [--json FILE|-]`: devices, links, diameter in
// hops, bisection bandwidth (computed on the graph, one direction) and, for a placement, each mesh
// axis's ring bandwidth and hop count.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "cli/format.h"
#include "schema/report_schema.h"
#include "topologies/analysis.h"
#include "topologies/placement.h"
#include "topologies/topology.h"

namespace moesim::cli {
namespace {

// 1.44e12 -> "1.44 TB/s" (decimal units, as vendors quote them).
std::string Rate(double bytes_per_s) {
  const char* units[] = {"B/s", "KB/s", "MB/s", "GB/s", "TB/s", "PB/s"};
  int i = 0;
  while (bytes_per_s >= 1000 && i < 5) {
    bytes_per_s /= 1000;
    ++i;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f %s", bytes_per_s, units[i]);
  return buf;
}

std::string Pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

struct Args {
  std::string topology;
  std::string placement;
  std::string json;
};

Status Run(const Args& args) {
  auto hw = DefaultHardwareFor(args.topology);
  if (!hw.ok()) return hw.status();
  auto topo_or = BuildTopology(args.topology, *hw);
  if (!topo_or.ok()) return topo_or.status();
  const Topology& topo = **topo_or;

  std::vector<std::string> names;
  std::vector<int64_t> sizes;
  std::unique_ptr<MeshPlacement> placement;
  if (!args.placement.empty()) {
    MOESIM_RETURN_IF_ERROR(ParseMeshSpec(args.placement, &names, &sizes));
    auto p = PlaceMesh(topo, names, sizes);
    if (!p.ok()) return p.status();
    placement = std::make_unique<MeshPlacement>(std::move(*p));
  }

  const TopologySummary s = Summarize(topo);
  std::vector<AxisRing> rings;
  if (placement) rings = AxisRings(topo, *placement);

  const nlohmann::json j = TopologyJson(topo, s, rings, placement.get());

  if (args.json != "-") {
    std::cout << "topology   " << topo.name() << " (" << s.num_devices << " x "
              << topo.hardware().chip << ")\n";
    std::cout << "vertices   " << s.num_vertices << " (" << s.num_devices << " devices, "
              << s.num_vertices - s.num_devices << " switches/NICs)\n";
    std::cout << "links      " << s.num_links << " one-way (";
    bool first = true;
    for (int k = 0; k < kNumLinkKinds; ++k) {
      if (s.links_by_kind[static_cast<size_t>(k)] == 0) continue;
      std::cout << (first ? "" : ", ") << LinkKindName(static_cast<LinkKind>(k)) << " "
                << s.links_by_kind[static_cast<size_t>(k)];
      first = false;
    }
    std::cout << ")\n";
    if (s.diameter_hops >= 0) {
      std::cout << "diameter   " << s.diameter_hops << " hops\n";
    } else {
      std::cout << "diameter   not computed: " << s.num_devices
                << " devices without a symmetry need one search each, past the limit "
                   "(docs/limits.md)\n";
    }
    std::cout << "bisection  " << Rate(s.bisection_bytes_per_s) << " (one direction)\n";
    if (placement) {
      std::cout << "\nplacement  " << args.placement << "\n";
      std::cout << "  " << Pad("axis", 10) << Pad("size", 7) << Pad("ring bandwidth", 16)
                << Pad("max hops", 10) << "spans\n";
      for (size_t i = 0; i < rings.size(); ++i) {
        const AxisRing& r = rings[i];
        std::cout << "  " << Pad(r.name, 10) << Pad(std::to_string(r.size), 7)
                  << Pad(r.size > 1 ? Rate(r.ring_bytes_per_s) : "-", 16)
                  << Pad(std::to_string(r.max_hops), 10) << placement->axis_spans[i] << "\n";
      }
    }
  }
  if (!args.json.empty()) return WriteJson(j, args.json);
  return Status::Ok();
}

RunFn Setup(CLI::App* sub) {
  auto args = std::make_shared<Args>();
  sub->add_option("topology", args->topology,
                  std::string("A topology name or file: ") +
                      "tpu-v4:AxBxC, tpu-v5e:16x16*4, "
                      "dgx-h100:32,oversubscription=2, "
                      "gb200-nvl72:N, torus:AxB..., "
                      "fattree:N, or FILE.textproto")
      ->required();
  sub->add_option("--placement", args->placement,
                  "Place a mesh and report each axis, e.g. data,expert,model=4,64,1")
      ->type_name("AXES=SIZES");
  sub->add_option("--json", args->json, "Write JSON to FILE, or to stdout with -")
      ->type_name("FILE|-");
  return [args]() -> Status { return Run(*args); };
}

}  // namespace

MOESIM_REGISTER_COMMAND("topo",
                        "Devices, links, diameter, bisection bandwidth and per-axis ring "
                        "bandwidth of a cluster topology",
                        70, Setup);

}  // namespace moesim::cli
