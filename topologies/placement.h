// placement.h
//
// Placement maps a logical device mesh (ordered axes, e.g. data x expert x model, outermost
// first) onto a topology's devices. PlaceMesh() follows the rule of JAX's device-mesh helper:
// the innermost mesh axis goes on the fastest, nearest links, and an axis may span one or several
// physical dimensions (torus dimensions, the GPUs of an NVLink domain, nodes, slices):
//   - mesh axes are laid on the topology's physical_dims() innermost first, each taking whole
//     dimensions where the sizes allow (a size-16 axis on one 16-chip ring of a v5e torus, a
//     size-8 axis on the 8 GPUs of one DGX node) and factors of a dimension otherwise;
//   - dimensions of the same speed class may be taken in any order: the order with the fewest
//     dimensions shared between axes wins (ties: the topology's own order, innermost first);
//     slower classes (DCN slices, nodes) always come after faster ones;
//   - on multi-slice TPU pods an axis named "data" whose size is a multiple of the slice count
//     takes the slices (data parallelism across DCN), wherever it sits in the mesh;
//   - an axis spanning several dimensions is laid out as a snake (reflected mixed-radix Gray
//     code), so consecutive members of a group are neighbours: one hop on a torus, the same rail
//     across DGX nodes.
// When no factorization fits (sizes sharing no factor with the dimensions), devices are taken in
// id order. PlaceMeshExplicit() takes the device order from the caller.
//
// Invariants of a MeshPlacement: device_of is a permutation of 0..N-1 and N = product of
// axis_sizes. Thread safety: values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "topologies/topology.h"

namespace moesim {

struct MeshPlacement {
  std::vector<std::string> axis_names;  // outermost first, e.g. {"data","expert","model"}
  std::vector<int64_t> axis_sizes;
  std::vector<DeviceId> device_of;  // row-major mesh coordinate index -> device
  // What each axis spans, e.g. "slice(4)", "x(16) y(16)", "y(4 of 16)"; "explicit" when given.
  std::vector<std::string> axis_spans;

  // The device groups along `axis`: one group per combination of the other coordinates, each
  // ordered by the coordinate along `axis` (ring order). Groups come in row-major order of the
  // other coordinates. REQUIRES 0 <= axis < axis_sizes.size().
  std::vector<std::vector<DeviceId>> Groups(int axis) const;
};

// Errors (kInvalidInput): names and sizes of different lengths, an empty or repeated name, a
// size < 1, or a device count that differs from the topology's, e.g.
// `mesh data,expert,model=4,64,2 needs 512 devices; topology "tpu-v5e:16x16" has 256`.
Expected<MeshPlacement> PlaceMesh(const Topology& topo, const std::vector<std::string>& names,
                                  const std::vector<int64_t>& sizes);

// As PlaceMesh with the device of each row-major mesh index given; it must list every device
// exactly once.
Expected<MeshPlacement> PlaceMeshExplicit(const Topology& topo,
                                          const std::vector<std::string>& names,
                                          const std::vector<int64_t>& sizes,
                                          std::vector<DeviceId> device_of);

// Parses "data,expert,model=4,64,1" into names and sizes (kInvalidInput naming the text).
Status ParseMeshSpec(const std::string& text, std::vector<std::string>* names,
                     std::vector<int64_t>* sizes);

// How one mesh axis sits on the network when every group of the axis runs a unidirectional ring
// at once (each member sends to the next, the last to the first, along Route()).
struct AxisRing {
  std::string name;
  int64_t size = 0;
  // Rate each ring flow gets at the most loaded link: min over links of bytes_per_s / (ring flows
  // crossing it). 0 for an axis of size 1 (no communication).
  double ring_bytes_per_s = 0;
  int64_t max_hops = 0;  // the longest route between ring neighbours, in links
};
std::vector<AxisRing> AxisRings(const Topology& topo, const MeshPlacement& placement);

}  // namespace moesim
