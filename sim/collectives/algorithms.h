// algorithms.h
//
// Collective algorithms: pure functions from (operation, group, sizes, group shape) to a
// CollectivePlan (plan.h). They know device ids only, never links: a runner maps each transfer
// to a route. Tests exercise them without an engine.
//
// A group is an ordered list of distinct device ids; its order is the ring order. A GroupShape
// says how the group sits on the machine: the group is the row-major enumeration of a box with
// these dimensions (outermost first), each with its wraparound and speed class (0 = fastest:
// ICI or an NVLink domain; higher = slower: nodes over InfiniBand, slices over DCN). Without a
// shape the group is one dimension of n members, no wraparound, class 0.
//
// Algorithms (n = group size, S = the CollectiveSpec's bytes, see plan.h for size conventions):
//   ring         unidirectional ring: reduce-scatter then all-gather, n-1 steps each, S/n per step.
//                All-reduce time 2(n-1)(alpha + S/(nB)).
//   bidir_ring   two rings in opposite directions, each with half the data.
//   torus        XLA's multi-dimensional scheme: per torus dimension a bidirectional ring on every
//                line along it; the data is split into one part per dimension, and part p
//                reduce-scatters along dimensions p, p+1, ... (one dimension per part at a time,
//                so all dimensions' links work at once), then all-gathers back in reverse. The
//                parts move in rounds (one stage per round: a round ends when its slowest part
//                does), so no two parts are ever on one dimension's links together.
//   double_binary_tree  NCCL's two complementary binary trees (a device interior in one is a
//                leaf in the other), each with half the data, pipelined in K chunks: reduce up,
//                then broadcast down, K + depth - 1 steps each. All-reduce only.
//   halving_doubling  Rabenseifner: recursive halving reduce-scatter (log2 n steps, S/2, S/4,
//                ...), then recursive doubling all-gather. REQUIRES n a power of two.
//   hierarchical reduce-scatter inside each node (the fastest dimensions), all-reduce across
//                nodes among devices of equal local rank (one ring per rank, S/m each for m
//                devices per node), all-gather inside nodes; all-gather and reduce-scatter take
//                the matching halves. Each level uses torus / bidir_ring / ring by its shape.
//   direct       all-to-all: every pair at once, one step.
//   pairwise     all-to-all: n-1 steps; in step k device i sends to i+k (mod n).
//   Broadcast is a pipelined chain from the root (ring); send/recv is one transfer (direct).
//
// DefaultAlgorithm() picks what NCCL / XLA would: all-to-all(v) and send/recv direct; broadcast
// ring; otherwise hierarchical when the group spans two speed classes (GPU nodes, TPU slices),
// torus when it spans two or more dimensions of one class, bidir_ring on one wrapped dimension
// (a TPU torus ring), ring otherwise (an NVSwitch node: NCCL's Ring, NVLS off).
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "sim/collectives/plan.h"

namespace moesim::sim {

enum class Algorithm {
  kRing,
  kBidirectionalRing,
  kTorus,
  kDoubleBinaryTree,
  kHalvingDoubling,
  kHierarchical,
  kDirect,
  kPairwise,
};
// "ring", "bidir_ring", "torus", "double_binary_tree", "halving_doubling", "hierarchical",
// "direct", "pairwise".
const char* AlgorithmName(Algorithm a);
Expected<Algorithm> ParseAlgorithm(const std::string& name);

struct GroupDim {
  int64_t size = 1;
  bool wraps = false;
  int speed_class = 0;
};
struct GroupShape {
  std::vector<GroupDim> dims;  // outermost first; empty = {{n, false, 0}}
};

struct CollectiveSpec {
  CollectiveOp op = CollectiveOp::kAllReduce;
  std::vector<DeviceId> group;
  double bytes = 0;            // S (plan.h); unused by all_to_all_v
  std::vector<double> matrix;  // all_to_all_v: n x n row-major, matrix[i*n+j] = bytes i -> j
  int64_t root = 0;            // broadcast: index into group
};

struct AlgorithmOptions {
  // Pipeline chunks for double_binary_tree and broadcast; 0 = auto: one chunk per 512 KiB of a
  // tree's (chain's) data, between 1 and 64.
  int64_t pipeline_chunks = 0;
  // Hierarchical's ring levels on one dimension without wraparound run as bidir_ring (two
  // opposite rings, half the data each) instead of ring. The step lowering sets it when the
  // placed routes make that no slower, as they do on full-duplex switched networks, where it
  // halves the load that a unidirectional ring puts on the links between switches.
  bool bidirectional_rings = false;
};

// Errors (kInvalidInput): an empty group or repeated devices, bytes < 0, a shape whose sizes do
// not multiply to n, a matrix of the wrong size, an algorithm that does not implement the op
// (the message names the ones that do), halving_doubling on n not a power of two.
Expected<CollectivePlan> BuildCollectivePlan(const CollectiveSpec& spec, Algorithm algorithm,
                                             const GroupShape& shape = {},
                                             const AlgorithmOptions& options = {});

Algorithm DefaultAlgorithm(CollectiveOp op, const GroupShape& shape);

// The structure choices the algorithms make, for closed forms of their plans
// (sim/step/analytical_network.h):
//   - hierarchical's levels: inner = the trailing dimensions of the fastest class among the
//     nontrivial ones (the "node"), outer = the rest; when all are of one class, the innermost
//     nontrivial dimension alone is inner. Both empty for a group of one.
//   - the ring family one level (or a whole one-class group) uses: torus on two or more
//     nontrivial dimensions, bidir_ring on one wrapped dimension (or on any one dimension with
//     bidirectional_rings: AlgorithmOptions), ring otherwise.
struct HierarchicalLevels {
  std::vector<GroupDim> outer, inner;
};
HierarchicalLevels SplitHierarchical(const std::vector<GroupDim>& dims);
Algorithm LevelAlgorithm(const std::vector<GroupDim>& dims, bool bidirectional_rings = false);

}  // namespace moesim::sim
