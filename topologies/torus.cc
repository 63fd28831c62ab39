// torus.cc: TPU slices (tpu-v4, tpu-v5p: 3D; tpu-v5e, tpu-v6e: 2D), multi-slice pods joined by
// DCN, and the generic torus.
//
// Devices are numbered slice-major, then row-major over the slice's dimensions (the last
// dimension varies fastest). Each chip has one full-duplex ICI link to its neighbour on each side
// of each dimension of size > 1; wraparound links close a dimension into a ring only where the
// real system has them (../shared/data/hardware.md; scaling-book "TPUs"):
//   tpu-v5e, tpu-v6e: only a full 16-chip dimension wraps;
//   tpu-v4, tpu-v5p: slices made of full 4x4x4 cubes (every dimension a multiple of 4) wrap on
//                    every dimension (the optical switches close the rings); smaller slices do not;
//   torus:           every dimension of size >= 3 wraps.
// `wrap=none|all|auto|BITS` (one 0/1 per dimension) overrides; asking for wraparound the real
// system does not have is an error, turning it off is allowed (what-if).
//
// Multi-slice (tpu-v5e:16x16*4): each host (devices_per_host chips in a block, e.g. 2x4 on v5e,
// 1x2x2 on v4) has one NIC vertex joined to its chips by PCIe links and to a single DCN switch
// vertex by a DCN link of devices_per_host x scaleout_bytes_per_s (the host's NIC). The DCN is
// modelled as non-blocking; each DCN hop carries half the profile's scale-out latency, so the
// shortest crossing (NIC -> switch -> NIC) costs scaleout_latency_s. PCIe is not the bottleneck
// and is given the host NIC's rate and no latency.
#include <algorithm>
#include <mutex>
#include <numeric>

#include "topologies/builders.h"

namespace moesim {
namespace {

struct TorusLayout {
  std::vector<int64_t> dims;  // one slice, outermost first
  std::vector<bool> wrap;
  std::vector<int64_t> strides;  // row-major strides of dims
  int64_t slices = 1;
  int64_t per_slice = 1;
  // Multi-slice only.
  std::vector<int64_t> host_block;  // chips of one host along each dim
  std::vector<int64_t> host_dims;   // hosts along each dim
  int64_t hosts_per_slice = 0;
  VertexId first_nic = -1;
  VertexId dcn_switch = -1;

  VertexId NicOf(DeviceId dev) const {
    const int64_t slice = dev / per_slice;
    int64_t host = 0;
    for (size_t d = 0; d < dims.size(); ++d) {
      host = host * host_dims[d] + ((dev % per_slice) / strides[d]) % dims[d] / host_block[d];
    }
    return static_cast<VertexId>(first_nic + slice * hosts_per_slice + host);
  }
};

// Direction from coordinate a to b along a ring of n (wrap) or a line. A half-way tie on a ring
// goes the positive way from even coordinates and the negative way from odd ones, so each
// direction of every link carries the same all-to-all load (always taking the positive way
// would load the + links 10 : 6 on a ring of 8).
int64_t RingDirection(int64_t a, int64_t b, int64_t n, bool wrap) {
  if (!wrap) return b > a ? 1 : -1;
  const int64_t forward = (b - a + n) % n;
  if (forward != n - forward) return forward < n - forward ? 1 : -1;
  return a % 2 == 0 ? 1 : -1;
}

// Dimension-order routing: dimensions in order (x, then y, then z), each the shorter way round
// where it wraps (ties split by RingDirection). Between slices: own host NIC, DCN, target's host
// NIC.
class TorusRouter : public Router {
 public:
  explicit TorusRouter(TorusLayout layout) : l_(std::move(layout)) {}

  void Route(const Topology& topo, DeviceId a, DeviceId b,
             std::vector<LinkId>* out) const override {
    if (a / l_.per_slice != b / l_.per_slice) {
      const VertexId na = l_.NicOf(a), nb = l_.NicOf(b);
      out->push_back(topo.FindLink(a, na));
      out->push_back(topo.FindLink(na, l_.dcn_switch));
      out->push_back(topo.FindLink(l_.dcn_switch, nb));
      out->push_back(topo.FindLink(nb, b));
      return;
    }
    const std::vector<LinkId>& step = StepLinks(topo);
    const size_t nd = l_.dims.size();
    const int64_t base = a / l_.per_slice * l_.per_slice;
    int64_t cur = a - base;
    const int64_t dst = b - base;
    for (size_t d = 0; d < l_.dims.size(); ++d) {
      const int64_t n = l_.dims[d], stride = l_.strides[d];
      int64_t c = (cur / stride) % n;
      const int64_t t = (dst / stride) % n;
      if (c == t) continue;
      const int64_t dir = RingDirection(c, t, n, l_.wrap[d]);
      while (c != t) {
        const int64_t next = (c + dir + n) % n;
        out->push_back(step[(static_cast<size_t>(base + cur) * nd + d) * 2 + (dir > 0 ? 1 : 0)]);
        cur += (next - c) * stride;
        c = next;
      }
    }
  }

  // Dimension-order routes of a box group S_0 x S_1 x ... (S_d: the members' coordinates along
  // d) inside one slice: a pair's segment along d runs from a_d to b_d at coordinates b_e (e < d,
  // already routed) and a_e (e > d, not yet). So a link along d at position p, direction dir,
  // whose other coordinates lie in the box, is crossed by cross_d(p, dir) x prod_{e != d} |S_e|
  // pairs, cross_d counting the pairs of S_d x S_d whose segment crosses it (the free
  // coordinates: a_e for e < d, b_e for e > d). Latency: every ICI hop costs the same, and the
  // longest route takes the longest segment along every dimension.
  bool AddAllPairsLoads(const Topology& topo, std::span<const DeviceId> group,
                        std::vector<double>* pairs_per_link, double* max_latency_s) const override {
    if (group.empty()) return true;
    const std::vector<LinkId>& step = StepLinks(topo);
    if (hop_latency_s_ < 0) return false;
    const size_t nd = l_.dims.size();
    const int64_t base = group[0] / l_.per_slice * l_.per_slice;
    std::vector<std::vector<bool>> in(nd);
    for (size_t d = 0; d < nd; ++d) in[d].assign(static_cast<size_t>(l_.dims[d]), false);
    for (DeviceId dev : group) {
      if (dev / l_.per_slice * l_.per_slice != base) return false;
      for (size_t d = 0; d < nd; ++d) {
        in[d][static_cast<size_t>(((dev - base) / l_.strides[d]) % l_.dims[d])] = true;
      }
    }
    std::vector<std::vector<int64_t>> sets(nd);
    int64_t product = 1;
    for (size_t d = 0; d < nd; ++d) {
      for (int64_t c = 0; c < l_.dims[d]; ++c) {
        if (in[d][static_cast<size_t>(c)]) sets[d].push_back(c);
      }
      product *= static_cast<int64_t>(sets[d].size());
    }
    if (product != static_cast<int64_t>(group.size())) return false;  // not a box

    int64_t longest_hops = 0;
    for (size_t d = 0; d < nd; ++d) {
      const int64_t n = l_.dims[d];
      if (sets[d].size() < 2) continue;
      // cross[c * 2 + (dir > 0)]: pairs of S_d whose segment leaves coordinate c towards dir.
      std::vector<double> cross(static_cast<size_t>(n) * 2, 0);
      int64_t hops_max = 0;
      for (int64_t a : sets[d]) {
        for (int64_t b : sets[d]) {
          if (a == b) continue;
          const int64_t dir = RingDirection(a, b, n, l_.wrap[d]);
          int64_t hops = 0;
          for (int64_t c = a; c != b; c = (c + dir + n) % n, ++hops) {
            cross[static_cast<size_t>(c) * 2 + (dir > 0 ? 1 : 0)] += 1;
          }
          hops_max = std::max(hops_max, hops);
        }
      }
      longest_hops += hops_max;
      double mult = 1;
      for (size_t e = 0; e < nd; ++e) {
        if (e != d) mult *= static_cast<double>(sets[e].size());
      }
      // Every position along d, at every combination of the box's other coordinates.
      std::vector<size_t> idx(nd, 0);
      for (;;) {
        int64_t other = base;
        for (size_t e = 0; e < nd; ++e) {
          if (e != d) other += sets[e][idx[e]] * l_.strides[e];
        }
        for (int64_t c = 0; c < n; ++c) {
          const size_t dev = static_cast<size_t>(other + c * l_.strides[d]);
          for (int k = 0; k < 2; ++k) {
            const double pairs = cross[static_cast<size_t>(c) * 2 + static_cast<size_t>(k)];
            if (pairs > 0) {
              (*pairs_per_link)[static_cast<size_t>(
                  step[(dev * nd + d) * 2 + static_cast<size_t>(k)])] += pairs * mult;
            }
          }
        }
        size_t e = 0;
        for (; e < nd; ++e) {
          if (e == d) continue;
          if (++idx[e] < sets[e].size()) break;
          idx[e] = 0;
        }
        if (e == nd) break;
      }
    }
    *max_latency_s = std::max(*max_latency_s, static_cast<double>(longest_hops) * hop_latency_s_);
    return true;
  }

 private:
  // The link one step along dimension d in direction dir from every device, by
  // (device x dims + d) x 2 + (dir > 0): all-pairs routing (all-to-all link loads) looks up
  // millions of hops, and a hash lookup per hop dominated it. Built on first use (the router
  // is created before the links), once, whichever thread gets there first.
  const std::vector<LinkId>& StepLinks(const Topology& topo) const {
    std::call_once(step_once_, [&] {
      const size_t nd = l_.dims.size();
      step_links_.assign(static_cast<size_t>(topo.num_devices()) * nd * 2, -1);
      for (DeviceId dev = 0; dev < topo.num_devices(); ++dev) {
        const int64_t base = dev / l_.per_slice * l_.per_slice, cur = dev - base;
        for (size_t d = 0; d < nd; ++d) {
          const int64_t n = l_.dims[d], stride = l_.strides[d], c = (cur / stride) % n;
          for (int64_t dir : {-1, 1}) {
            const int64_t next = (c + dir + n) % n;
            if (n < 2 || (!l_.wrap[d] && (c + dir < 0 || c + dir >= n))) continue;
            step_links_[(static_cast<size_t>(dev) * nd + d) * 2 + (dir > 0 ? 1 : 0)] =
                topo.FindLink(static_cast<VertexId>(dev),
                              static_cast<VertexId>(base + cur + (next - c) * stride));
          }
        }
      }
      // One latency for every ICI hop (what the builders make), or -1: no closed form.
      hop_latency_s_ = -1;
      bool uniform = true;
      for (LinkId l : step_links_) {
        if (l < 0) continue;
        const double lat = topo.links()[static_cast<size_t>(l)].latency_s;
        if (hop_latency_s_ < 0) hop_latency_s_ = lat;
        uniform = uniform && lat == hop_latency_s_;
      }
      if (!uniform) hop_latency_s_ = -1;
    });
    return step_links_;
  }

  TorusLayout l_;
  mutable std::once_flag step_once_;
  mutable std::vector<LinkId> step_links_;
  mutable double hop_latency_s_ = -1;
};

std::string Shape(const std::vector<int64_t>& dims) {
  std::string s;
  for (int64_t d : dims) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

// Which dimensions wrap, by the family's rule and the wrap= option.
Expected<std::vector<bool>> ResolveWrap(const TopologyName& name) {
  const auto& dims = name.dims;
  const size_t nd = dims.size();
  const bool is_2d_tpu = name.family == "tpu-v5e" || name.family == "tpu-v6e";
  const bool is_3d_tpu = name.family == "tpu-v4" || name.family == "tpu-v5p";
  const bool full_cubes =
      std::all_of(dims.begin(), dims.end(), [](int64_t d) { return d % 4 == 0; });
  std::vector<bool> natural(nd);
  for (size_t d = 0; d < nd; ++d) {
    natural[d] = is_2d_tpu ? dims[d] == 16 : is_3d_tpu ? full_cubes : dims[d] >= 3;
  }
  auto it = name.options.find("wrap");
  if (it == name.options.end() || it->second == "auto") return natural;
  std::vector<bool> want(nd);
  const std::string& v = it->second;
  if (v == "none" || v == "all") {
    std::fill(want.begin(), want.end(), v == "all");
  } else if (v.size() == nd && v.find_first_not_of("01") == std::string::npos) {
    for (size_t d = 0; d < nd; ++d) want[d] = v[d] == '1';
  } else {
    return TopologyError(name, "wrap=\"" + v + "\" must be auto, none, all or one 0/1 per " +
                                   "dimension (e.g. wrap=" + std::string(nd, '1') + ")");
  }
  for (size_t d = 0; d < nd; ++d) {
    if (!want[d] || natural[d]) continue;
    const std::string dim =
        "dimension " + std::to_string(d) + " has size " + std::to_string(dims[d]);
    if (is_2d_tpu) {
      return TopologyError(
          name, name.family + " has wraparound only on a full 16-chip dimension; " + dim);
    }
    if (is_3d_tpu) {
      return TopologyError(name, name.family +
                                     " has wraparound only on slices made of full 4x4x4 cubes "
                                     "(every dimension a multiple of 4), not on " +
                                     Shape(dims));
    }
    return TopologyError(name, "wraparound needs at least 3 chips along a dimension; " + dim);
  }
  return want;
}

// Chips of one host: devices_per_host split into factors of 2 over the dimensions, innermost
// first, round-robin (v5e/v6e 8 -> 2x4 on XxY, v4/v5p 4 -> 1x2x2), each dividing its dimension.
std::vector<int64_t> HostBlock(const std::vector<int64_t>& dims, int64_t per_host) {
  std::vector<int64_t> block(dims.size(), 1);
  int64_t left = per_host;
  bool grew = true;
  while (left % 2 == 0 && left > 1 && grew) {
    grew = false;
    for (size_t i = dims.size(); i-- > 0 && left % 2 == 0 && left > 1;) {
      if (dims[i] % (block[i] * 2) == 0) {
        block[i] *= 2;
        left /= 2;
        grew = true;
      }
    }
  }
  return block;
}

}  // namespace

Expected<std::shared_ptr<const Topology>> BuildTorusTopology(const TopologyName& name,
                                                             const HardwareProfile& hw) {
  MOESIM_RETURN_IF_ERROR(CheckOptions(name, {"chip", "wrap"}));
  MOESIM_RETURN_IF_ERROR(CheckDeviceCount(name));
  if (!(hw.link_bytes_per_s > 0)) {
    return TopologyError(name, "hardware profile \"" + hw.chip + "\" has no link_bytes_per_s");
  }
  auto wrap = ResolveWrap(name);
  if (!wrap.ok()) return wrap.status();

  TorusLayout l;
  l.dims = name.dims;
  l.wrap = *wrap;
  l.slices = name.slices;
  const size_t nd = l.dims.size();
  l.strides.assign(nd, 1);
  for (size_t d = nd; d-- > 1;) l.strides[d - 1] = l.strides[d] * l.dims[d];
  l.per_slice = l.strides[0] * l.dims[0];
  const int64_t n = l.per_slice * l.slices;

  TopologyBuilder b(name.text, n, hw);
  for (int64_t s = 0; s < l.slices; ++s) {
    for (int64_t i = 0; i < l.per_slice; ++i) {
      for (size_t d = 0; d < nd; ++d) {
        if (l.dims[d] < 2) continue;
        const int64_t c = (i / l.strides[d]) % l.dims[d];
        int64_t j = -1;
        if (c + 1 < l.dims[d]) {
          j = i + l.strides[d];
        } else if (l.wrap[d]) {
          j = i - c * l.strides[d];
        }
        if (j < 0) continue;
        MOESIM_RETURN_IF_ERROR(b.AddDuplex(static_cast<VertexId>(s * l.per_slice + i),
                                           static_cast<VertexId>(s * l.per_slice + j),
                                           hw.link_bytes_per_s, hw.link_latency_s, LinkKind::kIci));
      }
    }
  }

  if (l.slices > 1) {
    if (!(hw.scaleout_bytes_per_s > 0) || hw.devices_per_host < 1) {
      return TopologyError(name, "hardware profile \"" + hw.chip +
                                     "\" has no scaleout_bytes_per_s or devices_per_host");
    }
    l.host_block = HostBlock(l.dims, hw.devices_per_host);
    l.host_dims.resize(nd);
    l.hosts_per_slice = 1;
    for (size_t d = 0; d < nd; ++d) {
      l.host_dims[d] = l.dims[d] / l.host_block[d];
      l.hosts_per_slice *= l.host_dims[d];
    }
    l.first_nic = static_cast<VertexId>(n);
    for (int64_t h = 0; h < l.slices * l.hosts_per_slice; ++h) b.AddVertex(VertexKind::kNic);
    l.dcn_switch = b.AddVertex(VertexKind::kSwitch);
    const double host_bytes_per_s =
        static_cast<double>(hw.devices_per_host) * hw.scaleout_bytes_per_s;
    for (int64_t h = 0; h < l.slices * l.hosts_per_slice; ++h) {
      MOESIM_RETURN_IF_ERROR(b.AddDuplex(static_cast<VertexId>(l.first_nic + h), l.dcn_switch,
                                         host_bytes_per_s, hw.scaleout_latency_s / 2,
                                         LinkKind::kDcn));
    }
    for (DeviceId dev = 0; dev < n; ++dev) {
      MOESIM_RETURN_IF_ERROR(
          b.AddDuplex(dev, l.NicOf(dev), host_bytes_per_s, 0.0, LinkKind::kPcie));
    }
  }

  // Placement dims: slices (DCN) outermost, then the ICI dimensions.
  static const char* const kDimNames[] = {"x", "y", "z", "w"};
  std::vector<PhysicalDim> pdims;
  if (l.slices > 1) pdims.push_back({"slice", l.slices, false, 1});
  for (size_t d = 0; d < nd; ++d) {
    pdims.push_back({d < 4 ? kDimNames[d] : "d" + std::to_string(d), l.dims[d], l.wrap[d], 0});
  }
  b.SetPhysicalDims(std::move(pdims));
  // Device 0 is a corner: dimension-order hop counts add up per dimension, and on each dimension
  // the farthest coordinate is floor(n/2) away on a ring and n-1 away from an end of a line, so no
  // device is farther from its farthest device than device 0.
  b.SetDiameterSources({0});
  // Bisections: halves of the device list (cuts dimension 0, or the slices), and a cut across
  // each other dimension; dimensions with the same size and wraparound cut the same by symmetry.
  std::vector<DeviceId> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  b.AddBisectionOrder(ids);
  for (size_t d = (l.slices > 1 ? 0 : 1); d < nd; ++d) {
    bool seen = false;
    for (size_t e = 0; e < d; ++e) seen |= l.dims[e] == l.dims[d] && l.wrap[e] == l.wrap[d];
    if (seen || l.dims[d] < 2) continue;
    std::vector<DeviceId> order = ids;
    std::stable_sort(order.begin(), order.end(), [&](DeviceId x, DeviceId y) {
      return (x % l.per_slice / l.strides[d]) % l.dims[d] <
             (y % l.per_slice / l.strides[d]) % l.dims[d];
    });
    b.AddBisectionOrder(std::move(order));
  }
  b.SetRouter(std::make_unique<TorusRouter>(std::move(l)));
  return std::move(b).Finish();
}

}  // namespace moesim
