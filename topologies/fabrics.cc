// fabrics.cc: GPU clusters (NVLink domains on a rail-optimized InfiniBand fat-tree) and the
// generic k-ary fat-tree.
//
// GPU clusters (dgx-a100:N, dgx-h100:N, dgx-b200:N, gb200-nvl72:N). Devices are numbered
// domain-major (an NVLink domain is one DGX node, or one 72-GPU NVL72 rack). Vertices:
//   GPUs | one NVSwitch vertex per domain | leaf (rail) switches | spine switches.
// - NVLink: each GPU has one full-duplex link to its domain's NVSwitch vertex at the profile's
//   link_bytes_per_s (the GPU's whole NVLink bundle, one direction; the NVSwitch chips of a
//   domain are lumped into one non-blocking vertex). Each link carries half of link_latency_s.
// - InfiniBand: one NIC per GPU at scaleout_bytes_per_s (HDR 200 Gb/s on A100, NDR 400 Gb/s on
//   H100/B200), GPU i of every host on rail i (hosts = devices_per_host GPUs: a DGX node, or a
//   4-GPU GB200 compute tray). A rail has ceil(hosts / hosts_per_leaf) leaf switches; each leaf
//   has hosts_per_leaf x NIC rate / oversubscription of uplink, spread evenly over the spines.
//   Leaves and spines have 2 x hosts_per_leaf ports (QM9700 NDR: 64 ports -> 32 hosts per leaf,
//   the 32-node DGX H100 SuperPOD scalable unit; QM8700 HDR: 40 ports -> 20, the DGX A100 SU), so
//   spines = ceil(leaves x uplink ports / (2 x hosts_per_leaf)), at most the uplink ports of one
//   leaf. Each leaf-spine pair is one aggregated link. Every IB hop carries half of
//   scaleout_latency_s. The GPU's PCIe link to its NIC is not the bottleneck and is not modelled.
// Routes: inside a domain GPU -> NVSwitch -> GPU; same rail and leaf GPU -> leaf -> GPU; otherwise
// GPU -> leaf -> spine -> leaf -> GPU with the spine chosen by destination host modulo the spine
// count (D-mod-k ECMP: deterministic, and even for shift permutations).
//
// Generic fat-tree (fattree:N[,k=K][,levels=2|3], chip default h100-sxm): N hosts, one device
// each, every link at the chip's scaleout_bytes_per_s. levels=2: leaves of k/2 hosts with one
// link to each of k/2 spines (at most k^2/2 hosts); levels=3: the k-ary fat-tree of Al-Fares et
// al. (SIGCOMM 2008): pods of k/2 edge and k/2 aggregation switches, (k/2)^2 cores, at most k^3/4
// hosts. Default k=16, levels = the fewest that hold N. D-mod-k up-down routing.
#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>
#include <unordered_map>

#include "topologies/builders.h"

namespace moesim {
namespace {

struct GpuFamily {
  const char* family;
  int64_t hosts_per_leaf;  // leaf switch radix / 2
  const char* domain_name;
};
const GpuFamily kGpuFamilies[] = {
    {"dgx-a100", 20, "node"},  // QM8700 HDR, 40 ports
    {"dgx-h100", 32, "node"},  // QM9700 NDR, 64 ports
    {"dgx-b200", 32, "node"},  // QM9700 NDR, 64 ports
    {"gb200-nvl72", 32, "rack"},
};

struct GpuLayout {
  int64_t domain = 8;  // GPUs per NVLink domain
  int64_t rails = 8;   // GPUs (= NICs) per host
  int64_t hosts_per_leaf = 32;
  int64_t leaves_per_rail = 0;
  int64_t spines = 0;
  VertexId first_nvswitch = -1;
  VertexId first_leaf = -1;
  VertexId first_spine = -1;

  VertexId LeafOf(DeviceId g) const {
    const int64_t host = g / rails;
    return static_cast<VertexId>(first_leaf + (g % rails) * leaves_per_rail +
                                 host / hosts_per_leaf);
  }
};

class GpuClusterRouter : public Router {
 public:
  explicit GpuClusterRouter(GpuLayout layout) : l_(layout) {}
  void Route(const Topology& topo, DeviceId a, DeviceId b,
             std::vector<LinkId>* out) const override {
    const LinkTable& t = Table(topo);
    if (a / l_.domain == b / l_.domain) {
      out->push_back(t.to_nvswitch[static_cast<size_t>(a)]);
      out->push_back(t.from_nvswitch[static_cast<size_t>(b)]);
      return;
    }
    const int64_t la = l_.LeafOf(a) - l_.first_leaf, lb = l_.LeafOf(b) - l_.first_leaf;
    out->push_back(t.to_leaf[static_cast<size_t>(a)]);
    if (la != lb) {
      const int64_t spine = (b / l_.rails) % l_.spines;
      out->push_back(t.leaf_to_spine[static_cast<size_t>(la * l_.spines + spine)]);
      out->push_back(t.spine_to_leaf[static_cast<size_t>(lb * l_.spines + spine)]);
    }
    out->push_back(t.from_leaf[static_cast<size_t>(b)]);
  }

  // The pairs of a group of distinct GPUs by kind of route, from counts per NVLink domain, leaf
  // and spine instead of pair by pair (a pair's links depend only on the ends' domains, leaves and
  // the destination's spine):
  //   NVLink: a's uplink carries (members in a's domain - 1) pairs, b's downlink likewise;
  //   a's IB uplink: members outside a's domain; b's IB downlink: likewise for b;
  //   leaf L -> spine s: over members a on L, members b outside a's domain, off L, whose host
  //     picks s (counted as all on s, minus those on L, minus those in a's domain, plus those in
  //     both, so as not to subtract them twice);
  //   spine s -> leaf L: over members b on L picking s, members a off L outside b's domain.
  // Latency: the longest route kind present, its hops summed in route order (every NVLink hop
  // has one latency and every IB hop one, as the builder makes them; otherwise no closed form).
  bool AddAllPairsLoads(const Topology& topo, std::span<const DeviceId> group,
                        std::vector<double>* pairs_per_link, double* max_latency_s) const override {
    const LinkTable& t = Table(topo);
    if (!t.uniform_latency) return false;
    if (group.size() < 2) return true;
    std::vector<DeviceId> sorted(group.begin(), group.end());
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) return false;
    auto& load = *pairs_per_link;
    const double n = static_cast<double>(group.size());
    // Members per domain (sorted: domain-major ids make each domain a run).
    std::unordered_map<int64_t, double> in_domain;
    for (DeviceId d : group) in_domain[d / l_.domain] += 1;
    bool nvlink_pairs = false, ib_pairs = false;
    for (DeviceId d : group) {
      const double same = in_domain[d / l_.domain];
      if (same > 1) {
        nvlink_pairs = true;
        load[static_cast<size_t>(t.to_nvswitch[static_cast<size_t>(d)])] += same - 1;
        load[static_cast<size_t>(t.from_nvswitch[static_cast<size_t>(d)])] += same - 1;
      }
      if (n - same > 0) {
        ib_pairs = true;
        load[static_cast<size_t>(t.to_leaf[static_cast<size_t>(d)])] += n - same;
        load[static_cast<size_t>(t.from_leaf[static_cast<size_t>(d)])] += n - same;
      }
    }
    bool spine_pairs = false;
    if (ib_pairs) {
      const auto spines = static_cast<size_t>(l_.spines);
      auto leaf_of = [&](DeviceId d) { return l_.LeafOf(d) - l_.first_leaf; };
      auto spine_of = [&](DeviceId d) { return static_cast<size_t>((d / l_.rails) % l_.spines); };
      // Counts of members by spine picked, and by (leaf), (leaf, spine), (domain, spine),
      // (domain, leaf), (domain, leaf, spine).
      std::vector<double> on_spine(spines, 0);
      std::unordered_map<int64_t, double> on_leaf, leaf_spine, domain_spine, domain_leaf,
          domain_leaf_spine;
      const int64_t leaves = l_.rails * l_.leaves_per_rail;
      auto dl = [&](DeviceId d) { return d / l_.domain * leaves + leaf_of(d); };
      for (DeviceId d : group) {
        const auto s = static_cast<int64_t>(spine_of(d));
        on_spine[static_cast<size_t>(s)] += 1;
        on_leaf[leaf_of(d)] += 1;
        leaf_spine[leaf_of(d) * l_.spines + s] += 1;
        domain_spine[d / l_.domain * l_.spines + s] += 1;
        domain_leaf[dl(d)] += 1;
        domain_leaf_spine[dl(d) * l_.spines + s] += 1;
      }
      // Uplinks: once per (domain, leaf) cell of sources.
      for (const auto& [cell, k] : domain_leaf) {
        const int64_t dom = cell / leaves, leaf = cell % leaves;
        for (int64_t s = 0; s < l_.spines; ++s) {
          auto get = [](const std::unordered_map<int64_t, double>& m, int64_t key) {
            auto it = m.find(key);
            return it == m.end() ? 0.0 : it->second;
          };
          const double dests =
              on_spine[static_cast<size_t>(s)] - get(leaf_spine, leaf * l_.spines + s) -
              get(domain_spine, dom * l_.spines + s) + get(domain_leaf_spine, cell * l_.spines + s);
          if (dests > 0) {
            spine_pairs = true;
            load[static_cast<size_t>(t.leaf_to_spine[static_cast<size_t>(leaf * l_.spines + s)])] +=
                k * dests;
          }
        }
      }
      // Downlinks: per destination.
      for (DeviceId d : group) {
        const double sources =
            n - on_leaf[leaf_of(d)] - in_domain[d / l_.domain] + domain_leaf[dl(d)];
        if (sources > 0) {
          load[static_cast<size_t>(
              t.spine_to_leaf[static_cast<size_t>(leaf_of(d) * l_.spines) + spine_of(d)])] +=
              sources;
        }
      }
    }
    // Route latencies summed as the per-pair sum does (from 0, hop by hop).
    if (nvlink_pairs) *max_latency_s = std::max(*max_latency_s, 0.0 + t.nvlink_s + t.nvlink_s);
    if (ib_pairs) {
      *max_latency_s =
          std::max(*max_latency_s,
                   spine_pairs ? 0.0 + t.ib_s + t.ib_s + t.ib_s + t.ib_s : 0.0 + t.ib_s + t.ib_s);
    }
    return true;
  }

 private:
  // Link ids by position, so a route is array lookups (a hash lookup per hop dominated routing
  // large groups). Built on first use (the router is installed before the links), once.
  struct LinkTable {
    std::vector<LinkId> to_nvswitch, from_nvswitch, to_leaf, from_leaf;  // by GPU
    std::vector<LinkId> leaf_to_spine, spine_to_leaf;  // by leaf index x spines + spine
    bool uniform_latency = true;  // one NVLink hop latency and one IB hop latency
    double nvlink_s = 0, ib_s = 0;
  };
  const LinkTable& Table(const Topology& topo) const {
    std::call_once(table_once_, [&] {
      LinkTable& t = table_;
      const auto n = static_cast<size_t>(topo.num_devices());
      t.to_nvswitch.resize(n);
      t.from_nvswitch.resize(n);
      t.to_leaf.assign(n, -1);
      t.from_leaf.assign(n, -1);
      std::vector<LinkId> nv, ib;
      for (DeviceId g = 0; g < static_cast<DeviceId>(n); ++g) {
        const auto nvs = static_cast<VertexId>(l_.first_nvswitch + g / l_.domain);
        t.to_nvswitch[static_cast<size_t>(g)] = topo.FindLink(g, nvs);
        t.from_nvswitch[static_cast<size_t>(g)] = topo.FindLink(nvs, g);
        nv.push_back(t.to_nvswitch[static_cast<size_t>(g)]);
        nv.push_back(t.from_nvswitch[static_cast<size_t>(g)]);
        if (l_.spines > 0) {
          t.to_leaf[static_cast<size_t>(g)] = topo.FindLink(g, l_.LeafOf(g));
          t.from_leaf[static_cast<size_t>(g)] = topo.FindLink(l_.LeafOf(g), g);
          ib.push_back(t.to_leaf[static_cast<size_t>(g)]);
          ib.push_back(t.from_leaf[static_cast<size_t>(g)]);
        }
      }
      const int64_t leaves = l_.rails * l_.leaves_per_rail;
      for (int64_t leaf = 0; l_.spines > 0 && leaf < leaves; ++leaf) {
        for (int64_t s = 0; s < l_.spines; ++s) {
          const auto lv = static_cast<VertexId>(l_.first_leaf + leaf);
          const auto sv = static_cast<VertexId>(l_.first_spine + s);
          t.leaf_to_spine.push_back(topo.FindLink(lv, sv));
          t.spine_to_leaf.push_back(topo.FindLink(sv, lv));
          ib.push_back(t.leaf_to_spine.back());
          ib.push_back(t.spine_to_leaf.back());
        }
      }
      auto one_latency = [&](const std::vector<LinkId>& ids, double* lat) {
        for (LinkId id : ids) {
          const double x = topo.links()[static_cast<size_t>(id)].latency_s;
          if (id == ids.front()) *lat = x;
          if (x != *lat) return false;
        }
        return true;
      };
      t.uniform_latency = one_latency(nv, &t.nvlink_s) && one_latency(ib, &t.ib_s);
    });
    return table_;
  }

  GpuLayout l_;
  mutable std::once_flag table_once_;
  mutable LinkTable table_;
};

struct FatTreeLayout {
  int64_t half_k = 8;  // k/2
  int levels = 2;
  VertexId first_edge = -1;  // leaves
  VertexId first_agg = -1;   // 3 levels: aggregation; 2 levels: spines
  VertexId first_core = -1;

  int64_t HostsPerPod() const { return half_k * half_k; }
  VertexId EdgeOf(DeviceId h) const { return static_cast<VertexId>(first_edge + h / half_k); }
  VertexId AggOf(int64_t pod, int64_t j) const {
    return static_cast<VertexId>(first_agg + pod * half_k + j);
  }
};

class FatTreeRouter : public Router {
 public:
  explicit FatTreeRouter(FatTreeLayout layout) : l_(layout) {}
  void Route(const Topology& topo, DeviceId a, DeviceId b,
             std::vector<LinkId>* out) const override {
    const VertexId ea = l_.EdgeOf(a), eb = l_.EdgeOf(b);
    out->push_back(topo.FindLink(a, ea));
    if (ea != eb) {
      const int64_t j = b % l_.half_k;  // D-mod-k
      if (l_.levels == 2) {
        const auto spine = static_cast<VertexId>(l_.first_agg + j);
        out->push_back(topo.FindLink(ea, spine));
        out->push_back(topo.FindLink(spine, eb));
      } else {
        const int64_t pa = a / l_.HostsPerPod(), pb = b / l_.HostsPerPod();
        const VertexId agg_a = l_.AggOf(pa, j), agg_b = l_.AggOf(pb, j);
        out->push_back(topo.FindLink(ea, agg_a));
        if (pa != pb) {
          const auto core =
              static_cast<VertexId>(l_.first_core + j * l_.half_k + (b / l_.half_k) % l_.half_k);
          out->push_back(topo.FindLink(agg_a, core));
          out->push_back(topo.FindLink(core, agg_b));
        }
        out->push_back(topo.FindLink(agg_b, eb));
      }
    }
    out->push_back(topo.FindLink(eb, b));
  }

 private:
  FatTreeLayout l_;
};

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

Expected<std::shared_ptr<const Topology>> BuildGpuClusterTopology(const TopologyName& name,
                                                                  const HardwareProfile& hw) {
  MOESIM_RETURN_IF_ERROR(CheckOptions(name, {"chip", "hosts_per_leaf", "oversubscription"}));
  MOESIM_RETURN_IF_ERROR(CheckDeviceCount(name));
  const GpuFamily* fam = nullptr;
  for (const auto& f : kGpuFamilies) {
    if (name.family == f.family) fam = &f;
  }
  if (fam == nullptr) return TopologyError(name, "not a GPU cluster family");
  if (!(hw.link_bytes_per_s > 0) || !(hw.scaleout_bytes_per_s > 0) || hw.devices_per_host < 1) {
    return TopologyError(name, "hardware profile \"" + hw.chip +
                                   "\" needs link_bytes_per_s, scaleout_bytes_per_s and "
                                   "devices_per_host");
  }
  auto oversub = PositiveOption(name, "oversubscription", 1.0);
  if (!oversub.ok()) return oversub.status();
  auto hpl = PositiveIntOption(name, "hosts_per_leaf", fam->hosts_per_leaf);
  if (!hpl.ok()) return hpl.status();

  GpuLayout l;
  const int64_t domains = name.dims[0];
  l.domain = name.devices_per_slice() / domains;
  l.rails = hw.devices_per_host;
  l.hosts_per_leaf = *hpl;
  if (l.domain % l.rails != 0) {
    return TopologyError(name, "devices_per_host=" + std::to_string(l.rails) + " of \"" + hw.chip +
                                   "\" does not divide the " + std::to_string(l.domain) +
                                   " GPUs of an NVLink domain");
  }
  const int64_t n = name.num_devices();

  TopologyBuilder b(name.text, n, hw);
  l.first_nvswitch = static_cast<VertexId>(n);
  for (int64_t d = 0; d < domains; ++d) b.AddVertex(VertexKind::kSwitch);
  for (DeviceId g = 0; g < n; ++g) {
    MOESIM_RETURN_IF_ERROR(b.AddDuplex(g, static_cast<VertexId>(l.first_nvswitch + g / l.domain),
                                       hw.link_bytes_per_s, hw.link_latency_s / 2,
                                       LinkKind::kNvlink));
  }
  if (domains > 1) {
    const int64_t hosts = n / l.rails;
    l.leaves_per_rail = CeilDiv(hosts, l.hosts_per_leaf);
    const int64_t leaves = l.rails * l.leaves_per_rail;
    const double uplink_ports = static_cast<double>(l.hosts_per_leaf) / *oversub;
    const double spines = std::ceil(static_cast<double>(leaves) * uplink_ports /
                                    static_cast<double>(2 * l.hosts_per_leaf));
    l.spines = std::max<int64_t>(
        1, std::min(static_cast<int64_t>(spines), static_cast<int64_t>(std::floor(uplink_ports))));
    l.first_leaf = static_cast<VertexId>(b.AddVertex(VertexKind::kSwitch));
    for (int64_t i = 1; i < leaves; ++i) b.AddVertex(VertexKind::kSwitch);
    l.first_spine = static_cast<VertexId>(b.AddVertex(VertexKind::kSwitch));
    for (int64_t i = 1; i < l.spines; ++i) b.AddVertex(VertexKind::kSwitch);
    const double half_latency_s = hw.scaleout_latency_s / 2;
    for (DeviceId g = 0; g < n; ++g) {
      MOESIM_RETURN_IF_ERROR(b.AddDuplex(g, l.LeafOf(g), hw.scaleout_bytes_per_s, half_latency_s,
                                         LinkKind::kInfiniband));
    }
    const double leaf_spine_bytes_per_s = static_cast<double>(l.hosts_per_leaf) *
                                          hw.scaleout_bytes_per_s / *oversub /
                                          static_cast<double>(l.spines);
    for (int64_t leaf = 0; leaf < leaves; ++leaf) {
      for (int64_t s = 0; s < l.spines; ++s) {
        MOESIM_RETURN_IF_ERROR(b.AddDuplex(
            static_cast<VertexId>(l.first_leaf + leaf), static_cast<VertexId>(l.first_spine + s),
            leaf_spine_bytes_per_s, half_latency_s, LinkKind::kInfiniband));
      }
    }
  }
  b.SetPhysicalDims({{fam->domain_name, domains, false, 1}, {"gpu", l.domain, false, 0}});
  // Every GPU sees the same distances (2 hops inside its domain, 2 or 4 outside), up to which
  // leaf of its rail it sits on; the two ends cover both.
  b.SetDiameterSources({0, static_cast<DeviceId>(n - 1)});
  b.SetRouter(std::make_unique<GpuClusterRouter>(l));
  return std::move(b).Finish();
}

Expected<std::shared_ptr<const Topology>> BuildFatTreeTopology(const TopologyName& name,
                                                               const HardwareProfile& hw) {
  MOESIM_RETURN_IF_ERROR(CheckOptions(name, {"chip", "k", "levels"}));
  MOESIM_RETURN_IF_ERROR(CheckDeviceCount(name));
  if (!(hw.scaleout_bytes_per_s > 0)) {
    return TopologyError(name, "hardware profile \"" + hw.chip + "\" has no scaleout_bytes_per_s");
  }
  auto k = PositiveIntOption(name, "k", 16);
  if (!k.ok()) return k.status();
  if (*k % 2 != 0 || *k > 1024) {
    return TopologyError(name, "k must be an even number in [2, 1024]");
  }
  const int64_t n = name.dims[0];
  const int64_t half_k = *k / 2;
  const int64_t max2 = 2 * half_k * half_k, max3 = 2 * half_k * half_k * half_k;
  auto levels = PositiveIntOption(name, "levels", n <= max2 ? 2 : 3);
  if (!levels.ok()) return levels.status();
  if (*levels != 2 && *levels != 3) return TopologyError(name, "levels must be 2 or 3");
  const int64_t max_hosts = *levels == 2 ? max2 : max3;
  if (n > max_hosts) {
    return TopologyError(
        name, "a " + std::to_string(*levels) + "-level fat-tree of k=" + std::to_string(*k) +
                  " holds at most " + std::to_string(max_hosts) + " hosts; raise k");
  }

  FatTreeLayout l;
  l.half_k = half_k;
  l.levels = static_cast<int>(*levels);
  TopologyBuilder b(name.text, n, hw);
  const double rate = hw.scaleout_bytes_per_s, lat = hw.scaleout_latency_s / 2;
  const LinkKind ib = LinkKind::kInfiniband;
  const int64_t edges = l.levels == 2 ? CeilDiv(n, half_k) : CeilDiv(n, half_k * half_k) * half_k;
  l.first_edge = static_cast<VertexId>(n);
  for (int64_t e = 0; e < edges; ++e) b.AddVertex(VertexKind::kSwitch);
  const int64_t aggs = l.levels == 2 ? half_k : edges;  // 2 levels: spines
  l.first_agg = static_cast<VertexId>(n + edges);
  for (int64_t a = 0; a < aggs; ++a) b.AddVertex(VertexKind::kSwitch);
  for (DeviceId h = 0; h < n; ++h) {
    MOESIM_RETURN_IF_ERROR(b.AddDuplex(h, l.EdgeOf(h), rate, lat, ib));
  }
  if (l.levels == 2) {
    for (int64_t e = 0; e < edges; ++e) {
      for (int64_t s = 0; s < half_k; ++s) {
        MOESIM_RETURN_IF_ERROR(b.AddDuplex(static_cast<VertexId>(l.first_edge + e),
                                           static_cast<VertexId>(l.first_agg + s), rate, lat, ib));
      }
    }
  } else {
    const int64_t pods = edges / half_k;
    l.first_core = static_cast<VertexId>(n + edges + aggs);
    for (int64_t c = 0; c < half_k * half_k; ++c) b.AddVertex(VertexKind::kSwitch);
    for (int64_t p = 0; p < pods; ++p) {
      for (int64_t j = 0; j < half_k; ++j) {
        for (int64_t e = 0; e < half_k; ++e) {
          MOESIM_RETURN_IF_ERROR(b.AddDuplex(static_cast<VertexId>(l.first_edge + p * half_k + e),
                                             l.AggOf(p, j), rate, lat, ib));
        }
        for (int64_t c = 0; c < half_k; ++c) {
          MOESIM_RETURN_IF_ERROR(b.AddDuplex(
              l.AggOf(p, j), static_cast<VertexId>(l.first_core + j * half_k + c), rate, lat, ib));
        }
      }
    }
  }
  b.SetPhysicalDims({{"host", n, false, 0}});
  b.SetDiameterSources({0, static_cast<DeviceId>(n - 1)});
  b.SetRouter(std::make_unique<FatTreeRouter>(l));
  return std::move(b).Finish();
}

}  // namespace moesim
