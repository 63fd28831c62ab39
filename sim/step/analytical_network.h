// analytical_network.h
//
// AnalyticalNetwork: the time of one collective of a step, alpha-beta style, from the bottleneck
// links of its groups on the placed topology, with no contention between collectives (the
// `analytical` network level; fast enough for sweeps). In SPMD every group of a mesh axis runs
// the collective at once, so link loads are counted over all groups together.
//
// For one mesh axis the group's members vary along some physical dimensions of the topology
// (torus dimensions, GPUs of a node, nodes, slices). For each such dimension d the sub-rings
// along d get a ring bandwidth B_d: the better of a unidirectional ring and a bidirectional pair
// of rings (each carrying half the data), each limited by its most loaded link
// (bytes_per_s x link_efficiency / flows crossing it). Then, with n_d members along d:
//   - all dimensions of one speed class (a torus): the data is split over the dimensions and
//     reduced along all of them at once (XLA's multi-dimensional algorithm):
//       reduce-scatter / all-gather: (n-1)/n * S / sum_d B_d;  all-reduce: twice that;
//   - otherwise (NVLink inside nodes, InfiniBand / DCN between): hierarchically, fastest class
//     first, each stage on the data left by the previous one:
//       reduce-scatter: sum_i (n_i - 1)/n_i * S_i / B_i with S_i = S / (n_1 ... n_{i-1});
//   - all-to-all: every pair exchanges S/n over its route; time = S/n x (the largest number of
//     pairs on any link) / rate of that link; an all-to-all-v's busiest rank scales it (all n^2
//     routes are counted: O(n^2) per axis set, once per placement);
//   - send/recv between pipeline stages: the message over the most loaded link of all
//     stage-to-stage pairs;
//   - ring shift (one step of a context-parallel ring): every member sends S to its successor in
//     its group; time = S x (the largest number of such routes on any link) / rate of that link.
// Latency: (n-1) ring steps (2(n-1) for all-reduce) of the largest route latency between ring
// neighbours; one route for all-to-all, send/recv and a ring shift.
//
// Thread safety: Time() may be called from several threads; per-axis results are computed once
// under a lock.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "costmodel/opgraph.h"
#include "topologies/placement.h"
#include "topologies/topology.h"

namespace moesim {

// One step of a collective as flows: every flow of a phase starts together; the next phase
// starts when all have arrived and `latency_s` has passed.
struct CollectiveFlow {
  DeviceId src;
  DeviceId dst;
  double bytes;
};
struct CollectivePhase {
  std::vector<CollectiveFlow> flows;
  double latency_s = 0;
};

class AnalyticalNetwork {
 public:
  // REQUIRES: placement's axes carry the names of `mesh`'s axes (any order, all present) and are
  // placed on `topo`. The default mesh is the legacy one: "data", "expert", "model", "pipeline".
  AnalyticalNetwork(std::shared_ptr<const Topology> topo, MeshPlacement placement,
                    double link_efficiency, const Mesh& mesh = Mesh());

  double Time(const CollectiveWork& work) const;

  // Effective ring bandwidth (bytes/s) of reduce-scatter over `axes`, for reports.
  double RingBytesPerS(const std::vector<MeshAxis>& axes) const;

  // The same algorithm as flows on every group of the collective's axes, for the flow level:
  // reduce-scatter / all-gather as (bidirectional) rings along each physical dimension, all
  // dimensions at once on a torus (data split by their bandwidths) or one after another from
  // the fastest (hierarchical); all-reduce as reduce-scatter then all-gather; all-to-all as all
  // pairs at once; send/recv between pipeline neighbours; a ring shift as one flow from each
  // member to its successor. With no contention each phase takes
  // what Time() charges it.
  std::vector<CollectivePhase> Phases(const CollectiveWork& work) const;
  // Phases() of the groups inside pipeline stage `stage` only: in SPMD each stage runs its own
  // program, so its collectives happen when that stage reaches them, not with the others'.
  // Send/recv: one flow per pipeline group from its device in `stage` to its device in
  // work.peer_program.
  std::vector<CollectivePhase> StagePhases(const CollectiveWork& work, int32_t stage) const;
  // The groups of `axes` inside pipeline stage `stage` (members in mesh order).
  std::vector<std::vector<DeviceId>> StageGroups(const std::vector<MeshAxis>& axes,
                                                 int32_t stage) const;
  const Topology& topology() const { return *topo_; }
  const std::shared_ptr<const Topology>& shared_topology() const { return topo_; }
  double link_efficiency() const { return efficiency_; }
  int32_t StageOf(DeviceId d) const { return stage_of_[static_cast<size_t>(d)]; }

 private:
  struct DimRing {
    int64_t n = 1;
    double bytes_per_s = 0;
    double step_latency_s = 0;
    int speed_class = 0;
    bool bidirectional = false;                   // the rate came from a pair of rings
    std::vector<std::vector<DeviceId>> subrings;  // every group's rings along this dimension
  };
  struct AxesNet {
    int64_t n = 1;
    std::vector<DimRing> dims;  // fastest class first
    bool same_class = true;
    double a2a_pairs_per_link_over_rate = 0;  // max over links of pairs / rate
    double a2a_latency_s = 0;
    double p2p_load_over_rate = 0;
    double p2p_latency_s = 0;
    std::vector<std::vector<DeviceId>> groups;
    std::vector<std::pair<DeviceId, DeviceId>> p2p_pairs;
  };
  void RingPhase(const DimRing& r, double bytes, std::vector<CollectiveFlow>* out) const;
  const AxesNet& Net(const std::vector<MeshAxis>& axes) const;
  // Ring shift over `axes`: the most loaded link's routes over its rate, the largest latency.
  struct ShiftNet {
    double load_over_rate = 0;
    double latency_s = 0;
  };
  const ShiftNet& Shift(const std::vector<MeshAxis>& axes) const;
  AxesNet Compute(const std::vector<MeshAxis>& axes) const;
  std::vector<std::vector<DeviceId>> Groups(const std::vector<MeshAxis>& axes) const;
  double ReduceScatterTime(const AxesNet& net, double bytes) const;

  std::shared_ptr<const Topology> topo_;
  MeshPlacement placement_;
  double efficiency_;
  std::vector<int> axis_index_;                         // MeshAxis -> index in placement
  MeshAxis pipeline_axis_ = MeshAxis::kPipeline;        // the mesh's pipeline axis
  std::vector<int32_t> stage_of_;                       // DeviceId -> pipeline stage
  std::vector<std::vector<DeviceId>> pipeline_groups_;  // devices differing only in stage
  mutable std::mutex mu_;
  mutable std::map<std::vector<MeshAxis>, std::unique_ptr<AxesNet>> cache_;
  mutable std::map<std::vector<MeshAxis>, std::unique_ptr<ShiftNet>> shift_cache_;
};

}  // namespace moesim
