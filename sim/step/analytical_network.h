// analytical_network.h
//
// AnalyticalNetwork: the collectives of a step on the placed topology, in one model with
// sim/collectives. Every collective of a step (kind, mesh axes, bytes) is lowered to a
// sim::CollectivePlan (Plan()): the groups of its axes (in SPMD every group runs it at once, so
// they share links), each group's members in device order with its sim::GroupShape
// (sim/topology/topology_network.h), the algorithm sim::DefaultAlgorithm() picks for that shape
// (sim/collectives/algorithms.h: ring, bidir_ring, torus, hierarchical; direct for all-to-all),
// with one-dimension rings run as two opposite rings (bidir_ring; AlgorithmOptions::
// bidirectional_rings) when the placed routes make that faster on some dimension of the group
// and no slower on any, and the groups' plans merged step by step (sim::MergeConcurrent). The flow
// level runs that plan (flow_level.h); the `analytical` level (Time()) evaluates it in closed form,
// which equals sim::AnalyticalCollectiveTimer on the plan (tests/step/collective_model_test.cc
// proves it on a grid of topologies, group shapes, sizes and kinds).
//
// Closed form. For every nontrivial dimension j of the group shape, over the lines along j of
// all groups (members that differ only in coordinate j, in coordinate order):
//   u_j = max over links of (ring-neighbour routes crossing it) / capacity      [s per byte]
//   b_j = max over links of (routes of both directions crossing it) / capacity / 2
//   latency_j = the largest route latency between ring neighbours (both directions for b_j).
// A ring family (reduce-scatter RS, all-gather AG, all-reduce AR = RS then AG) over level dims L
// with n = their product and S bytes (nccl-tests sizes: opgraph.h):
//   ring / bidir_ring (one nontrivial dimension j): k (n-1) (S/n x r_j + latency_j), k = 2 for
//     AR, r = u for ring, b for bidir_ring (half the data each way);
//   torus (D >= 2 nontrivial dims): part p of S/D passes dims p, p+1, ... cyclically, one per
//     round; round r of RS takes max over parts p of (d - 1) (M_p / d x b + latency) on the
//     part's dimension, M_p its bytes before the round (S/D, then / d each round); AG the same
//     rounds in reverse, AR twice;
//   hierarchical (levels sim::SplitHierarchical: inner "node" of m members, outer): RS =
//     RS_inner(S) + RS_outer(S/m); AG = AG_outer(S/m) + AG_inner(S); AR = RS_inner(S) +
//     AR_outer(S/m) + AG_inner(S), each level by sim::LevelAlgorithm.
// All-to-all (direct): every pair of every group exchanges S/n x max_over_mean; time = that x max
// over links of (pairs crossing it / capacity) + the largest route latency (the pair counts in
// closed form on torus slices and GPU clusters: Topology::AddAllPairsLoads; counted on the first
// all-to-all over the axes, so axes that never run one never pay for their n^2 pairs). Send/recv:
// every pipeline pair
// (stage p to p + 1) at once; ring shift (one step of a context-parallel ring): every member sends
// S to its successor in mesh order, at once; both: S x (routes on the most loaded link /
// capacity) + the largest route latency.
// MoE token exchanges by another dispatcher (CollectiveWork::exchange): Megatron-Core's allgather
// dispatcher is the all-gather of the group's n x T token rows (combine: their reduce-scatter),
// lowered and timed as above; DeepEP / HybridEP's two-level exchange is lowered by
// sim::BuildDispatchPlan (hierarchical) on each expert-parallel group, with the group's NVLink
// domain (its dimensions of speed class 0) as the node and group-limited routing as at most min(N,
// group_topk x max(1, ceil(N / num_groups))) of the N nodes per token (an upper bound when groups
// are finer than nodes: two chosen groups may share a node); DeepEP's layout exchange precedes a
// hierarchical dispatch. No closed form: the plan runner times them, once per distinct exchange.
// Capacities are line rate x link efficiency per link kind, applied in one place:
// sim::TopologyNetwork::Make.
//
// Thread safety: Time() and Plan() may be called from several threads; per-axis results are
// computed once under a lock.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "common/status.h"
#include "costmodel/opgraph.h"
#include "sim/collectives/algorithms.h"
#include "sim/collectives/plan.h"
#include "sim/topology/topology_network.h"
#include "topologies/placement.h"
#include "topologies/topology.h"

namespace moesim {

class AnalyticalNetwork {
 public:
  // REQUIRES: placement's axes carry the names of `mesh`'s axes (any order, all present) and are
  // placed on `topo`; link_efficiency in (0, 1] (every kind not in `by_kind`). The default mesh
  // is the legacy one: "data", "expert", "model", "pipeline".
  AnalyticalNetwork(std::shared_ptr<const Topology> topo, MeshPlacement placement,
                    double link_efficiency, const Mesh& mesh = Mesh(),
                    const sim::LinkEfficiencies& by_kind = {});

  double Time(const CollectiveWork& work) const;

  // An MoE token exchange by another dispatcher than the flat all-to-all (work.exchange): its
  // plan (sim/collectives/dispatch.h) timed by sim::AnalyticalCollectiveTimer, cached. Time()
  // calls it and returns 0 on an error; callers that can report errors call this first
  // (SimulateScenario does for every exchange of the step).
  Expected<double> ExchangeTime(const CollectiveWork& work) const;

  // Effective ring bandwidth (bytes/s) of reduce-scatter over `axes`, for reports.
  double RingBytesPerS(const std::vector<MeshAxis>& axes) const;

  // The collective lowered to a plan over every group of its axes (stage < 0), or over the
  // groups inside pipeline stage `stage` only (in SPMD each stage runs its own program, so its
  // collectives happen when that stage reaches them). Send/recv: stage < 0 = every pipeline
  // pair p -> p + 1; else one transfer per pipeline group from its device in `stage` to its
  // device in work.peer_program. Errors: the algorithms' (an all-to-all past
  // limits::kMaxCollectiveTransfers).
  Expected<sim::CollectivePlan> Plan(const CollectiveWork& work, int32_t stage = -1) const;

  // The groups of `axes` inside pipeline stage `stage` (members in mesh order).
  std::vector<std::vector<DeviceId>> StageGroups(const std::vector<MeshAxis>& axes,
                                                 int32_t stage) const;
  const Topology& topology() const { return *net_.topology; }
  const std::shared_ptr<const Topology>& shared_topology() const { return net_.topology; }
  // Links with their efficiencies applied, and routes: what the plan runners take.
  const std::vector<sim::LinkSpec>& links() const { return net_.links; }
  const sim::RouteFn& route() const { return net_.route; }
  int32_t StageOf(DeviceId d) const { return stage_of_[static_cast<size_t>(d)]; }

 private:
  struct DimRates {
    int64_t size = 1;
    double uni_s_per_byte = 0, bi_s_per_byte = 0;
    double uni_latency_s = 0, bi_latency_s = 0;
  };
  struct AxesNet {
    int64_t n = 1;
    std::vector<std::vector<DeviceId>> groups;  // mesh order
    std::vector<std::vector<DeviceId>> sorted;  // device order (the algorithms' order)
    sim::GroupShape shape;                      // of every group
    std::vector<DimRates> dims;                 // by shape dimension
    // One-dimension ring levels run as two opposite rings: no slower on any dimension of the
    // group, and faster on one.
    bool bidirectional = false;
    // Pipeline sends (stage p to p + 1): set on the pipeline axis's entry only.
    double p2p_load_over_rate = 0;
    double p2p_latency_s = 0;
    std::vector<std::pair<DeviceId, DeviceId>> p2p_pairs;
  };
  enum class Pass { kReduceScatter, kAllGather, kAllReduce };
  // sim::DefaultAlgorithm, with ring as bidir_ring when `net.bidirectional`.
  static sim::Algorithm PickAlgorithm(const AxesNet& net, sim::CollectiveOp op);
  // A ring family over shape dims [first, last) by `algorithm` (ring, bidir_ring or torus).
  double RingFamilyTime(const AxesNet& net, Pass pass, size_t first, size_t last, double bytes,
                        sim::Algorithm algorithm) const;
  double ReduceTime(const AxesNet& net, Pass pass, double bytes) const;
  const AxesNet& Net(const std::vector<MeshAxis>& axes) const;
  // All-to-all over the axes: max over links of (pairs crossing it / rate), the longest route.
  // Computed on the first all-to-all over the axes (a dense model's data-parallel axis never
  // needs its O(n^2) pairs).
  struct A2aNet {
    double pairs_per_link_over_rate = 0;
    double latency_s = 0;
  };
  const A2aNet& A2a(const std::vector<MeshAxis>& axes) const;
  struct ShiftNet {
    double load_over_rate = 0;
    double latency_s = 0;
  };
  const ShiftNet& Shift(const std::vector<MeshAxis>& axes) const;
  AxesNet Compute(const std::vector<MeshAxis>& axes) const;
  std::vector<std::vector<DeviceId>> Groups(const std::vector<MeshAxis>& axes) const;
  // The most loaded link's (routes crossing it / capacity) and the largest route latency of a
  // set of transfers that start together.
  // The allgather dispatcher's exchange as the all-gather (reduce-scatter) it is.
  CollectiveWork AllGatherExchange(const CollectiveWork& work) const;
  Expected<sim::CollectivePlan> ExchangePlan(const AxesNet& net, const CollectiveWork& work,
                                             const std::vector<size_t>& groups) const;
  std::pair<double, double> LoadOverRate(
      const std::vector<std::pair<DeviceId, DeviceId>>& pairs) const;

  sim::TopologyNetwork net_;
  MeshPlacement placement_;
  std::vector<int> axis_index_;                         // MeshAxis -> index in placement
  MeshAxis pipeline_axis_ = MeshAxis::kPipeline;        // the mesh's pipeline axis
  std::vector<int32_t> stage_of_;                       // DeviceId -> pipeline stage
  std::vector<std::vector<DeviceId>> pipeline_groups_;  // devices differing only in stage
  mutable std::mutex mu_;
  mutable std::map<std::vector<MeshAxis>, std::unique_ptr<AxesNet>> cache_;
  mutable std::map<std::vector<MeshAxis>, std::unique_ptr<ShiftNet>> shift_cache_;
  mutable std::map<std::vector<MeshAxis>, std::unique_ptr<A2aNet>> a2a_cache_;
  using ExchangeKey = std::tuple<std::vector<MeshAxis>, TokenExchange, double>;
  mutable std::map<ExchangeKey, double> exchange_cache_;
};

}  // namespace moesim
