// cpu_host.cc: cpu-host:N, N MPI ranks of `moesim-real --backend cpu` on one host.
//
// Each rank is one device (one core; hardware profile "cpu"). MPI between processes of one host
// goes through shared memory: every rank copies into and out of a segment all ranks can reach.
// That is a star: one full-duplex SHM link per rank to a single "shared memory" switch vertex, at
// the profile's link_bytes_per_s with half of link_latency_s per hop, so a message between two
// ranks costs link_latency_s + bytes / link_bytes_per_s, and a rank's sends share its one link
// (a core copies one buffer at a time). `moesim calibrate` fits link_bytes_per_s and
// link_latency_s from `moesim-real bench` collectives through exactly this shape
// (calib/fit.h). The whole host is one speed class and one physical dimension, "rank".
#include "topologies/builders.h"

namespace moesim {

Expected<std::shared_ptr<const Topology>> BuildCpuHostTopology(const TopologyName& name,
                                                               const HardwareProfile& hw) {
  MOESIM_RETURN_IF_ERROR(CheckOptions(name, {"chip"}));
  MOESIM_RETURN_IF_ERROR(CheckDeviceCount(name));
  const int64_t n = name.dims.at(0);
  TopologyBuilder b(name.text, n, hw);
  if (n > 1) {
    const VertexId shm = b.AddVertex(VertexKind::kSwitch);
    for (int64_t i = 0; i < n; ++i) {
      MOESIM_RETURN_IF_ERROR(b.AddDuplex(static_cast<VertexId>(i), shm, hw.link_bytes_per_s,
                                         hw.link_latency_s / 2, LinkKind::kSharedMemory));
    }
  }
  b.SetPhysicalDims({PhysicalDim{"rank", n, false, 0}});
  b.SetDiameterSources({0});  // a star: every rank is alike
  return std::move(b).Finish();
}

}  // namespace moesim
