// builders.h
//
// The builders behind BuildTopology(), one per family, and the option helpers they share.
// Internal to topologies/. Each returns kInvalidInput with a message that starts with
// `topology "NAME": ` for anything wrong in the name or file. Thread safety: pure functions.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>

#include "common/limits.h"
#include "common/status.h"
#include "proto/scenario.h"
#include "proto/topology_name.h"
#include "topologies/topology.h"

namespace moesim {

// tpu-v4, tpu-v5p, tpu-v5e, tpu-v6e (with *SLICES over DCN) and the generic torus.
Expected<std::shared_ptr<const Topology>> BuildTorusTopology(const TopologyName& name,
                                                             const HardwareProfile& hw);
// dgx-a100, dgx-h100, dgx-b200, gb200-nvl72: NVLink domains on a rail-optimized fat-tree.
Expected<std::shared_ptr<const Topology>> BuildGpuClusterTopology(const TopologyName& name,
                                                                  const HardwareProfile& hw);
// fattree:N[,k=K][,levels=2|3]: k-ary leaf-spine or three-level (Al-Fares) fat-tree.
Expected<std::shared_ptr<const Topology>> BuildFatTreeTopology(const TopologyName& name,
                                                               const HardwareProfile& hw);
// cpu-host:N: N MPI ranks (one device each) on one host, joined by shared memory.
Expected<std::shared_ptr<const Topology>> BuildCpuHostTopology(const TopologyName& name,
                                                               const HardwareProfile& hw);

// True when `s` names a file rather than a parameterized topology: no ':' or ends ".textproto".
bool IsTopologyFilePath(const std::string& s);
Expected<std::shared_ptr<const Topology>> BuildTopologyFromFile(const std::string& path,
                                                                const HardwareProfile& hw);
// The `chip` field of a topology file (kInvalidInput when missing).
Expected<std::string> TopologyFileChip(const std::string& path);

// kInvalidInput `topology "T": unknown option "K" (FAMILY accepts: a, b)` for an option not in
// `accepted`.
Status CheckOptions(const TopologyName& name, std::initializer_list<const char*> accepted);
// The option `key` as a number, `fallback` when absent; kInvalidInput when not a number > 0.
Expected<double> PositiveOption(const TopologyName& name, const std::string& key, double fallback);
// The option `key` as an integer, `fallback` when absent; kInvalidInput when not an integer > 0.
Expected<int64_t> PositiveIntOption(const TopologyName& name, const std::string& key,
                                    int64_t fallback);
// The largest device count a builder accepts: limits::kMaxDevices (names are checked with
// CheckDeviceCount of proto/topology_name.h).
inline constexpr int64_t kMaxDevices = limits::kMaxDevices;
// kInvalidInput `topology "T": WHY`.
Status TopologyError(const TopologyName& name, const std::string& why);

}  // namespace moesim
