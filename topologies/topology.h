// topology.h
//
// A cluster as a directed graph. Vertices are devices (chips / GPUs) first, ids 0..N-1, then
// switches, host NICs and other non-device vertices. A Link is ONE DIRECTION of a full-duplex
// link: a full-duplex cable or ICI port is two Links, one per direction, each with its own line
// rate. Line rates are raw (vendor, or the HardwareProfile's): efficiencies are applied by sim/.
//
// Topologies are built by BuildTopology() from a parameterized name (proto/topology_name.h:
// "tpu-v4:16x16x16", "tpu-v5e:16x16*4", "dgx-h100:32,oversubscription=2", "fattree:128,k=16")
// or from a topology .textproto file (proto/topology.proto; examples in topologies/). Link rates
// and latencies come from the HardwareProfile passed in, so calibration changes them in one place.
//
// Routing is the builder's: dimension-order on tori (shorter way round where the dimension wraps),
// up-down with deterministic ECMP (D-mod-k) on fat-trees, breadth-first shortest paths on graphs
// read from files. Routes are minimal in the network they use (ICI inside a slice, DCN between
// slices; NVLink inside an NVLink domain, InfiniBand between domains).
//
// Invariants: links() never changes after construction; at most one Link per ordered vertex pair;
// every device can reach every other device (checked when built).
// Thread safety: a built Topology is immutable except for its route cache, which is internally
// synchronized: Route() may be called from many threads at once. Share it as
// std::shared_ptr<const Topology>.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "proto/scenario.h"

namespace moesim {

using DeviceId = int32_t;  // 0..num_devices()-1; devices are the first vertices of the graph
using LinkId = int32_t;    // index into links()
using VertexId = int32_t;  // 0..num_vertices()-1

// kSharedMemory: MPI ranks of one host exchanging through shared memory (cpu-host).
enum class LinkKind { kIci, kNvlink, kPcie, kInfiniband, kEthernet, kDcn, kSharedMemory };
inline constexpr int kNumLinkKinds = 7;
// "ICI", "NVLINK", "PCIE", "INFINIBAND", "ETHERNET", "DCN", "SHM"
const char* LinkKindName(LinkKind k);

enum class VertexKind { kDevice, kSwitch, kNic };
const char* VertexKindName(VertexKind k);  // "device", "switch", "nic"

struct Link {   // ONE DIRECTION of a full-duplex link (full duplex = two Links)
  int32_t src;  // vertex id (devices first, then switches / NICs / hosts)
  int32_t dst;
  double bytes_per_s;  // line rate in this direction (efficiency is applied by sim/, not here)
  double latency_s;
  LinkKind kind;
};

// One dimension of the physical layout that placement (placement.h) maps mesh axes onto.
// Device ids are row-major over a topology's physical_dims() (outermost first), so the product of
// their sizes is num_devices(). Dimensions of a lower speed_class are faster (0 = ICI / NVLink
// domain, 1 = DCN / scale-out); placement may reorder dimensions only within one class.
struct PhysicalDim {
  std::string name;  // "x", "y", "z", "slice", "gpu", "node", "device"
  int64_t size = 1;
  bool wraps = false;  // a ring: the last coordinate is linked to the first
  int speed_class = 0;
};

class Topology;

// Computes routes for one family of topologies; installed by its builder.
class Router {
 public:
  virtual ~Router() = default;
  // Appends the link ids from device a to device b to *out. REQUIRES a != b.
  virtual void Route(const Topology& topo, DeviceId a, DeviceId b,
                     std::vector<LinkId>* out) const = 0;
  // All-to-all link loads without routing every pair: adds to (*pairs_per_link)[l] the number of
  // ordered pairs (a != b) of `group` whose route crosses l, and raises *max_latency_s to the
  // largest route latency among them. Returns false, adding nothing, when this router has no
  // closed form for the group (the caller then routes every pair).
  virtual bool AddAllPairsLoads(const Topology& /*topo*/, std::span<const DeviceId> /*group*/,
                                std::vector<double>* /*pairs_per_link*/,
                                double* /*max_latency_s*/) const {
    return false;
  }
};

struct TopologyGraph;  // the Boost.Graph view (topologies/graph.h)

class Topology {
 public:
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  const std::string& name() const { return name_; }
  // The hardware profile whose figures the links were built from.
  const HardwareProfile& hardware() const { return hardware_; }
  int64_t num_devices() const { return num_devices_; }
  int64_t num_vertices() const { return static_cast<int64_t>(vertex_kinds_.size()); }
  VertexKind vertex_kind(VertexId v) const { return vertex_kinds_[v]; }
  const std::vector<Link>& links() const { return links_; }
  // The link from u to v, or -1 when there is none. O(1): a flat hash of (u, v).
  LinkId FindLink(VertexId u, VertexId v) const;
  // Links leaving v, in increasing id order.
  const std::vector<LinkId>& out_links(VertexId v) const { return out_links_[v]; }
  // Number of links of each kind, indexed by static_cast<int>(LinkKind).
  std::array<int64_t, kNumLinkKinds> LinkCountsByKind() const;

  const std::vector<PhysicalDim>& physical_dims() const { return physical_dims_; }
  // Devices whose eccentricity is the diameter (by the family's symmetry; all devices for graphs
  // read from files). Used by DiameterHops().
  const std::vector<DeviceId>& diameter_sources() const { return diameter_sources_; }
  // Candidate bisections, each an ordering of all devices whose first half (rounded down) is one
  // side. They include the minimum bisection of the family (cut across the longest torus
  // dimension, halves of the node list on fat-trees). Used by BisectionBytesPerS().
  const std::vector<std::vector<DeviceId>>& bisection_orders() const { return bisection_orders_; }

  // Directed link ids from device a to device b: minimal, deterministic (dimension-order on tori,
  // shorter way round where wraparound exists; ECMP spread deterministically on fat-trees).
  // REQUIRES a != b, both in [0, num_devices()). Cached: repeated calls return the same vector
  // without recomputing. Safe to call from several threads at once.
  const std::vector<LinkId>& Route(DeviceId a, DeviceId b) const;
  // As Route() but computed afresh into *out and not cached (for sweeps over all pairs).
  void ComputeRoute(DeviceId a, DeviceId b, std::vector<LinkId>* out) const;
  // True when routes are the default breadth-first shortest paths: a route's length is then the
  // graph's hop distance, which one search from a source gives for every destination at once.
  bool routes_are_shortest_paths() const;
  // Link loads of an all-to-all over `group`: for every ordered pair (a != b), +1 on each link
  // of Route(a, b); *max_latency_s raised to the largest route latency. The same numbers as
  // routing every pair, in closed form (Router::AddAllPairsLoads) on a torus slice when the group
  // is a box of coordinates (O(group)) and on GPU clusters for any group of distinct GPUs
  // (O(group x spines), from counts per NVLink domain, leaf and spine), else by routing every
  // pair. REQUIRES pairs_per_link sized to links().size().
  void AddAllPairsLoads(std::span<const DeviceId> group, std::vector<double>* pairs_per_link,
                        double* max_latency_s) const;

  // The Boost.Graph adjacency view over all vertices and links (edge property = LinkId).
  // Built on first use (routing by shortest paths, analysis), once; thread-safe.
  const TopologyGraph& graph() const;

 private:
  friend class TopologyBuilder;
  Topology();

  std::string name_;
  HardwareProfile hardware_;
  int64_t num_devices_ = 0;
  std::vector<VertexKind> vertex_kinds_;
  std::vector<Link> links_;
  std::vector<std::vector<LinkId>> out_links_;
  // FindLink's index: open addressing (linear probing) over keys src << 32 | dst, a power-of-two
  // table at most half full; empty slots hold kNoKey. Flat arrays: O(1) lookups without a node
  // per link to allocate, rehash and free (hundreds of thousands of links at 100k devices).
  static constexpr uint64_t kNoKey = ~uint64_t{0};
  std::vector<uint64_t> link_keys_;
  std::vector<LinkId> link_slots_;
  // Inserts key -> id; false when the key is present.
  bool IndexLink(uint64_t key, LinkId id);
  std::vector<PhysicalDim> physical_dims_;
  std::vector<DeviceId> diameter_sources_;
  std::vector<std::vector<DeviceId>> bisection_orders_;
  std::unique_ptr<const Router> router_;
  mutable std::once_flag graph_once_;
  mutable std::unique_ptr<TopologyGraph> graph_;

  // Route cache, sharded to keep lock contention low. unordered_map nodes are stable, so a
  // reference handed out stays valid while the Topology lives.
  static constexpr int kRouteShards = 64;
  struct RouteShard {
    mutable std::shared_mutex mu;
    std::unordered_map<int64_t, std::vector<LinkId>> routes;
  };
  std::unique_ptr<RouteShard[]> route_shards_;
};

// Assembles a Topology; used by the builders (one per family) and by the file reader.
// Not thread-safe; Finish() consumes it.
class TopologyBuilder {
 public:
  TopologyBuilder(std::string name, int64_t num_devices, const HardwareProfile& hw);
  ~TopologyBuilder();

  VertexId AddVertex(VertexKind kind);
  // Adds one direction. Errors (kInvalidInput) on a duplicate (src, dst), a vertex out of range,
  // a self loop or a rate <= 0.
  Status AddLink(VertexId src, VertexId dst, double bytes_per_s, double latency_s, LinkKind kind);
  // Adds both directions with the same rate and latency.
  Status AddDuplex(VertexId a, VertexId b, double bytes_per_s, double latency_s, LinkKind kind);

  void SetPhysicalDims(std::vector<PhysicalDim> dims);
  void SetDiameterSources(std::vector<DeviceId> sources);
  void AddBisectionOrder(std::vector<DeviceId> order);
  void SetRouter(std::unique_ptr<const Router> router);

  // Builds the Boost graph, checks that every device can reach every other (strongly connected
  // components) and hands the Topology out. Defaults: physical dims = {"device", N}; diameter
  // sources = all devices; bisection orders = {0..N-1}; router = breadth-first shortest paths.
  Expected<std::shared_ptr<const Topology>> Finish() &&;

 private:
  std::unique_ptr<Topology> t_;
};

// Builds from a parameterized name (proto/topology_name.h) or a .textproto file path (anything
// without ':' or ending in ".textproto"). Errors are kInvalidInput with a message naming the
// topology, e.g. `topology "tpu-v5e:8x16,wrap=11": tpu-v5e has wraparound only on a full
// 16-chip dimension; dimension 0 has size 8`.
Expected<std::shared_ptr<const Topology>> BuildTopology(const std::string& name_or_path,
                                                        const HardwareProfile& hw);

// The built-in hardware profile of a topology's chip: the name's chip (or its chip= option), or
// the `chip` field of a topology file. For callers without a scenario (e.g. `moesim topo`).
Expected<HardwareProfile> DefaultHardwareFor(const std::string& name_or_path);

}  // namespace moesim
