#include "topologies/topology.h"

#include <algorithm>
#include <boost/graph/breadth_first_search.hpp>
#include <cmath>
#include <mutex>
#include <numeric>

#include "proto/hardware_profiles.h"
#include "proto/topology_name.h"
#include "topologies/builders.h"
#include "topologies/graph.h"

namespace moesim {
namespace {

uint64_t PairKey(VertexId u, VertexId v) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(u)) << 32) | static_cast<uint32_t>(v);
}

// splitmix64's finalizer: spreads keys that differ in low bits of src or dst over the table.
size_t SlotOf(uint64_t key, size_t mask) {
  key ^= key >> 30;
  key *= 0xbf58476d1ce4e5b9ULL;
  key ^= key >> 27;
  key *= 0x94d049bb133111ebULL;
  key ^= key >> 31;
  return static_cast<size_t>(key) & mask;
}

// Default router: breadth-first shortest paths over all links (Boost BFS). Out-edges are visited
// in link-id order, so the route is deterministic: among shortest paths, the one whose links were
// declared first.
class BfsRouter : public Router {
 public:
  void Route(const Topology& topo, DeviceId a, DeviceId b,
             std::vector<LinkId>* out) const override {
    const auto& g = topo.graph().g;
    using Edge = TopologyGraph::Graph::edge_descriptor;
    std::vector<LinkId> pred(static_cast<size_t>(topo.num_vertices()), -1);
    struct Recorder : boost::default_bfs_visitor {
      std::vector<LinkId>* pred;
      void tree_edge(Edge e, const TopologyGraph::Graph& gr) const {
        (*pred)[boost::target(e, gr)] = gr[e].link;
      }
    } vis;
    vis.pred = &pred;
    boost::breadth_first_search(g, boost::vertex(a, g), boost::visitor(vis));
    const size_t start = out->size();
    for (VertexId v = b; v != a;) {
      const LinkId l = pred[v];
      if (l < 0) {  // unreachable: excluded by Finish(); leave the route empty
        out->resize(start);
        return;
      }
      out->push_back(l);
      v = topo.links()[l].src;
    }
    std::reverse(out->begin() + static_cast<std::ptrdiff_t>(start), out->end());
  }
};

}  // namespace

const char* LinkKindName(LinkKind k) {
  switch (k) {
    case LinkKind::kIci:
      return "ICI";
    case LinkKind::kNvlink:
      return "NVLINK";
    case LinkKind::kPcie:
      return "PCIE";
    case LinkKind::kInfiniband:
      return "INFINIBAND";
    case LinkKind::kEthernet:
      return "ETHERNET";
    case LinkKind::kDcn:
      return "DCN";
    case LinkKind::kSharedMemory:
      return "SHM";
  }
  return "?";
}

const char* VertexKindName(VertexKind k) {
  switch (k) {
    case VertexKind::kDevice:
      return "device";
    case VertexKind::kSwitch:
      return "switch";
    case VertexKind::kNic:
      return "nic";
  }
  return "?";
}

Topology::Topology() : route_shards_(new RouteShard[kRouteShards]) {}
Topology::~Topology() = default;

LinkId Topology::FindLink(VertexId u, VertexId v) const {
  const uint64_t key = PairKey(u, v);
  if (link_keys_.empty() || key == kNoKey) return -1;
  const size_t mask = link_keys_.size() - 1;
  for (size_t i = SlotOf(key, mask);; i = (i + 1) & mask) {
    if (link_keys_[i] == key) return link_slots_[i];
    if (link_keys_[i] == kNoKey) return -1;
  }
}

bool Topology::IndexLink(uint64_t key, LinkId id) {
  if (2 * (links_.size() + 1) > link_keys_.size()) {  // keep the table at most half full
    std::vector<uint64_t> keys(std::max<size_t>(64, 2 * link_keys_.size()), kNoKey);
    std::vector<LinkId> slots(keys.size(), -1);
    const size_t mask = keys.size() - 1;
    for (size_t j = 0; j < link_keys_.size(); ++j) {
      if (link_keys_[j] == kNoKey) continue;
      size_t i = SlotOf(link_keys_[j], mask);
      while (keys[i] != kNoKey) i = (i + 1) & mask;
      keys[i] = link_keys_[j];
      slots[i] = link_slots_[j];
    }
    link_keys_ = std::move(keys);
    link_slots_ = std::move(slots);
  }
  const size_t mask = link_keys_.size() - 1;
  size_t i = SlotOf(key, mask);
  for (; link_keys_[i] != kNoKey; i = (i + 1) & mask) {
    if (link_keys_[i] == key) return false;
  }
  link_keys_[i] = key;
  link_slots_[i] = id;
  return true;
}

const TopologyGraph& Topology::graph() const {
  std::call_once(graph_once_, [&] {
    graph_ = std::make_unique<TopologyGraph>(static_cast<size_t>(num_vertices()));
    for (LinkId id = 0; id < static_cast<LinkId>(links_.size()); ++id) {
      const Link& l = links_[static_cast<size_t>(id)];
      boost::add_edge(static_cast<size_t>(l.src), static_cast<size_t>(l.dst), TopologyEdge{id},
                      graph_->g);
    }
  });
  return *graph_;
}

std::array<int64_t, kNumLinkKinds> Topology::LinkCountsByKind() const {
  std::array<int64_t, kNumLinkKinds> counts{};
  for (const Link& l : links_) ++counts[static_cast<size_t>(l.kind)];
  return counts;
}

void Topology::ComputeRoute(DeviceId a, DeviceId b, std::vector<LinkId>* out) const {
  out->clear();
  router_->Route(*this, a, b, out);
}

void Topology::AddAllPairsLoads(std::span<const DeviceId> group,
                                std::vector<double>* pairs_per_link, double* max_latency_s) const {
  if (router_->AddAllPairsLoads(*this, group, pairs_per_link, max_latency_s)) return;
  std::vector<LinkId> route;
  for (DeviceId a : group) {
    for (DeviceId b : group) {
      if (a == b) continue;
      ComputeRoute(a, b, &route);
      double latency = 0;
      for (LinkId l : route) {
        (*pairs_per_link)[static_cast<size_t>(l)] += 1;
        latency += links_[static_cast<size_t>(l)].latency_s;
      }
      *max_latency_s = std::max(*max_latency_s, latency);
    }
  }
}

const std::vector<LinkId>& Topology::Route(DeviceId a, DeviceId b) const {
  const int64_t key = static_cast<int64_t>(a) * num_devices_ + b;
  RouteShard& shard = route_shards_[static_cast<size_t>(key % kRouteShards)];
  {
    std::shared_lock lock(shard.mu);
    auto it = shard.routes.find(key);
    if (it != shard.routes.end()) return it->second;
  }
  std::vector<LinkId> route;
  router_->Route(*this, a, b, &route);
  std::unique_lock lock(shard.mu);
  // If another thread got here first, its vector stays and ours is dropped.
  return shard.routes.try_emplace(key, std::move(route)).first->second;
}

TopologyBuilder::TopologyBuilder(std::string name, int64_t num_devices, const HardwareProfile& hw)
    : t_(new Topology()) {
  t_->name_ = std::move(name);
  t_->hardware_ = hw;
  t_->num_devices_ = num_devices;
  t_->vertex_kinds_.assign(static_cast<size_t>(num_devices), VertexKind::kDevice);
}

TopologyBuilder::~TopologyBuilder() = default;

VertexId TopologyBuilder::AddVertex(VertexKind kind) {
  t_->vertex_kinds_.push_back(kind);
  return static_cast<VertexId>(t_->vertex_kinds_.size() - 1);
}

Status TopologyBuilder::AddLink(VertexId src, VertexId dst, double bytes_per_s, double latency_s,
                                LinkKind kind) {
  const int64_t n = t_->num_vertices();
  if (src < 0 || src >= n || dst < 0 || dst >= n) {
    return Status::InvalidInput("link " + std::to_string(src) + " -> " + std::to_string(dst) +
                                ": vertex out of range [0, " + std::to_string(n) + ")");
  }
  if (src == dst) {
    return Status::InvalidInput("link " + std::to_string(src) + " -> " + std::to_string(dst) +
                                ": a link must join two different vertices");
  }
  if (!(bytes_per_s > 0) || !std::isfinite(bytes_per_s) || !(latency_s >= 0)) {
    return Status::InvalidInput("link " + std::to_string(src) + " -> " + std::to_string(dst) +
                                ": bytes_per_s must be > 0 and latency_s >= 0");
  }
  const LinkId id = static_cast<LinkId>(t_->links_.size());
  if (!t_->IndexLink(PairKey(src, dst), id)) {
    return Status::InvalidInput("link " + std::to_string(src) + " -> " + std::to_string(dst) +
                                " given twice");
  }
  t_->links_.push_back(Link{src, dst, bytes_per_s, latency_s, kind});
  return Status::Ok();
}

Status TopologyBuilder::AddDuplex(VertexId a, VertexId b, double bytes_per_s, double latency_s,
                                  LinkKind kind) {
  MOESIM_RETURN_IF_ERROR(AddLink(a, b, bytes_per_s, latency_s, kind));
  return AddLink(b, a, bytes_per_s, latency_s, kind);
}

bool Topology::routes_are_shortest_paths() const {
  return dynamic_cast<const BfsRouter*>(router_.get()) != nullptr;
}

void TopologyBuilder::SetPhysicalDims(std::vector<PhysicalDim> dims) {
  t_->physical_dims_ = std::move(dims);
}
void TopologyBuilder::SetDiameterSources(std::vector<DeviceId> sources) {
  t_->diameter_sources_ = std::move(sources);
}
void TopologyBuilder::AddBisectionOrder(std::vector<DeviceId> order) {
  t_->bisection_orders_.push_back(std::move(order));
}
void TopologyBuilder::SetRouter(std::unique_ptr<const Router> router) {
  t_->router_ = std::move(router);
}

Expected<std::shared_ptr<const Topology>> TopologyBuilder::Finish() && {
  Topology& t = *t_;
  const auto n = static_cast<DeviceId>(t.num_devices_);
  if (n <= 0) return Status::InvalidInput("topology \"" + t.name_ + "\" has no devices");
  std::vector<DeviceId> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  if (t.physical_dims_.empty()) t.physical_dims_ = {PhysicalDim{"device", n, false, 0}};
  if (t.diameter_sources_.empty()) t.diameter_sources_ = all;
  if (t.bisection_orders_.empty()) t.bisection_orders_.push_back(all);
  if (!t.router_) t.router_ = std::make_unique<BfsRouter>();

  int64_t dims_product = 1;
  for (const PhysicalDim& d : t.physical_dims_) dims_product *= d.size;
  if (dims_product != t.num_devices_) {
    return Status::Internal("topology \"" + t.name_ + "\": physical dims hold " +
                            std::to_string(dims_product) + " devices, not " +
                            std::to_string(t.num_devices_));
  }

  t.out_links_.assign(static_cast<size_t>(t.num_vertices()), {});
  std::vector<std::vector<LinkId>> in_links(static_cast<size_t>(t.num_vertices()));
  for (LinkId id = 0; id < static_cast<LinkId>(t.links_.size()); ++id) {
    const Link& l = t.links_[static_cast<size_t>(id)];
    t.out_links_[static_cast<size_t>(l.src)].push_back(id);
    in_links[static_cast<size_t>(l.dst)].push_back(id);
  }

  // Every device must reach every other: every device reaches device 0 and is reached from it
  // (the strongly connected component of device 0), by a search each way over the links.
  if (n > 1) {
    auto reached = [&](bool forward) {
      std::vector<char> seen(static_cast<size_t>(t.num_vertices()), 0);
      std::vector<VertexId> stack = {0};
      seen[0] = 1;
      while (!stack.empty()) {
        const VertexId v = stack.back();
        stack.pop_back();
        for (LinkId id :
             forward ? t.out_links_[static_cast<size_t>(v)] : in_links[static_cast<size_t>(v)]) {
          const Link& l = t.links_[static_cast<size_t>(id)];
          const VertexId w = forward ? l.dst : l.src;
          if (!seen[static_cast<size_t>(w)]) {
            seen[static_cast<size_t>(w)] = 1;
            stack.push_back(w);
          }
        }
      }
      return seen;
    };
    const std::vector<char> from0 = reached(true), to0 = reached(false);
    for (DeviceId d = 1; d < n; ++d) {
      if (!from0[static_cast<size_t>(d)] || !to0[static_cast<size_t>(d)]) {
        return Status::InvalidInput("topology \"" + t.name_ + "\": device " + std::to_string(d) +
                                    " and device 0 cannot reach each other");
      }
    }
  }
  return std::shared_ptr<const Topology>(std::move(t_));
}

Expected<std::shared_ptr<const Topology>> BuildTopology(const std::string& name_or_path,
                                                        const HardwareProfile& hw) {
  if (IsTopologyFilePath(name_or_path)) return BuildTopologyFromFile(name_or_path, hw);
  auto name = ParseTopologyName(name_or_path);
  if (!name.ok()) return name.status();
  if (name->is_tpu() || name->family == "torus") return BuildTorusTopology(*name, hw);
  if (name->is_gpu_cluster()) return BuildGpuClusterTopology(*name, hw);
  if (name->family == "fattree") return BuildFatTreeTopology(*name, hw);
  if (name->family == "cpu-host") return BuildCpuHostTopology(*name, hw);
  return Status::Internal("topology \"" + name_or_path + "\": no builder for family \"" +
                          name->family + "\"");
}

Expected<HardwareProfile> DefaultHardwareFor(const std::string& name_or_path) {
  std::string chip;
  if (IsTopologyFilePath(name_or_path)) {
    auto c = TopologyFileChip(name_or_path);
    if (!c.ok()) return c.status();
    chip = *c;
  } else {
    auto name = ParseTopologyName(name_or_path);
    if (!name.ok()) return name.status();
    chip = name->chip;
  }
  auto hw = BuiltinHardwareProfile(chip);
  if (!hw.ok()) return hw.status().WithPrefix("topology \"" + name_or_path + "\": ");
  return hw;
}

}  // namespace moesim
