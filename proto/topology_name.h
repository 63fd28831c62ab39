// topology_name.h
//
// Parses the parameterized cluster names used in scenarios and on the command line:
//   FAMILY:SPEC[*SLICES][,KEY=VALUE...]
//   tpu-v4:16x16x16  tpu-v5p:4x4x8  tpu-v5e:16x16  tpu-v5e:16x16*4  tpu-v6e:8x8
//   dgx-a100:4  dgx-h100:32,oversubscription=2  dgx-b200:8  gb200-nvl72:2
//   torus:4x4x4,chip=tpu-v4  fattree:128,k=16,chip=h100-sxm  cpu-host:4 (MPI ranks, one host)
// The name alone fixes the device count and the chip, so validation can check a mesh against it
// without building the graph; topologies/ builds the graph from a TopologyName.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace moesim {

struct TopologyName {
  std::string text;    // as written
  std::string family;  // "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e", "dgx-a100", "dgx-h100",
                       // "dgx-b200", "gb200-nvl72", "torus", "fattree", "cpu-host"
  // Torus families: chips along each dimension of one slice. GPU families: {nodes}.
  // fattree: {hosts}. cpu-host: {ranks}.
  std::vector<int64_t> dims;
  int64_t slices = 1;                          // multi-slice TPU pods joined by DCN
  std::map<std::string, std::string> options;  // KEY=VALUE after the spec
  std::string chip;                            // hardware profile name

  bool is_tpu() const { return family.rfind("tpu-", 0) == 0; }
  bool is_gpu_cluster() const;
  int64_t devices_per_slice() const;
  int64_t num_devices() const { return devices_per_slice() * slices; }
};

// Parses `text`. Errors (kInvalidInput) say what is wrong without a location; callers prefix it.
Expected<TopologyName> ParseTopologyName(const std::string& text);

// Ok when the devices of `name` (dims x slices x GPUs per node) are within limits::kMaxDevices,
// computed without overflow; ParseTopologyName checks it, and every builder again.
Status CheckDeviceCount(const TopologyName& name);

// One line listing the accepted forms, for error messages and --help.
const char* TopologyNameForms();

}  // namespace moesim
