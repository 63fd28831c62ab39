#include "sim/step/analytical_network.h"

#include <algorithm>
#include <limits>
#include <set>

namespace moesim {
namespace {

std::vector<int64_t> Coords(DeviceId id, const std::vector<PhysicalDim>& dims) {
  std::vector<int64_t> c(dims.size());
  int64_t rest = id;
  for (size_t i = dims.size(); i-- > 0;) {
    c[i] = rest % dims[i].size;
    rest /= dims[i].size;
  }
  return c;
}

}  // namespace

AnalyticalNetwork::AnalyticalNetwork(std::shared_ptr<const Topology> topo, MeshPlacement placement,
                                     double link_efficiency, const Mesh& mesh)
    : topo_(std::move(topo)),
      placement_(std::move(placement)),
      efficiency_(link_efficiency),
      pipeline_axis_(mesh.pipeline_axis) {
  axis_index_.assign(static_cast<size_t>(mesh.num_axes), -1);
  for (int a = 0; a < mesh.num_axes; ++a) {
    const std::string& name = mesh.Name(static_cast<MeshAxis>(a));
    for (size_t i = 0; i < placement_.axis_names.size(); ++i) {
      if (placement_.axis_names[i] == name)
        axis_index_[static_cast<size_t>(a)] = static_cast<int>(i);
    }
  }
  stage_of_.assign(static_cast<size_t>(topo_->num_devices()), 0);
  const int pi = axis_index_[static_cast<size_t>(pipeline_axis_)];
  if (pi >= 0) {
    int64_t inner = 1;
    for (size_t i = static_cast<size_t>(pi) + 1; i < placement_.axis_sizes.size(); ++i) {
      inner *= placement_.axis_sizes[i];
    }
    const int64_t stages = placement_.axis_sizes[static_cast<size_t>(pi)];
    for (size_t idx = 0; idx < placement_.device_of.size(); ++idx) {
      stage_of_[static_cast<size_t>(placement_.device_of[idx])] =
          static_cast<int32_t>((static_cast<int64_t>(idx) / inner) % stages);
    }
  }
  pipeline_groups_ = Groups({pipeline_axis_});
}

std::vector<std::vector<DeviceId>> AnalyticalNetwork::Groups(
    const std::vector<MeshAxis>& axes) const {
  const auto& sizes = placement_.axis_sizes;
  std::vector<bool> in(sizes.size(), false);
  for (MeshAxis a : axes) in[static_cast<size_t>(axis_index_[static_cast<size_t>(a)])] = true;
  std::map<std::vector<int64_t>, std::vector<DeviceId>> groups;
  std::vector<int64_t> coord(sizes.size(), 0);
  const int64_t total = static_cast<int64_t>(placement_.device_of.size());
  for (int64_t idx = 0; idx < total; ++idx) {
    int64_t rest = idx;
    for (size_t i = sizes.size(); i-- > 0;) {
      coord[i] = rest % sizes[i];
      rest /= sizes[i];
    }
    std::vector<int64_t> key = coord;
    for (size_t i = 0; i < key.size(); ++i) {
      if (in[i]) key[i] = 0;
    }
    groups[key].push_back(placement_.device_of[static_cast<size_t>(idx)]);
  }
  std::vector<std::vector<DeviceId>> out;
  for (auto& [k, g] : groups) out.push_back(std::move(g));
  return out;
}

AnalyticalNetwork::AxesNet AnalyticalNetwork::Compute(const std::vector<MeshAxis>& axes) const {
  AxesNet net;
  const auto groups = Groups(axes);
  net.groups = groups;
  net.n = static_cast<int64_t>(groups.front().size());
  const auto& links = topo_->links();
  const auto& pdims = topo_->physical_dims();
  auto rate = [&](LinkId l) { return links[static_cast<size_t>(l)].bytes_per_s * efficiency_; };
  auto latency = [&](const std::vector<LinkId>& route) {
    double s = 0;
    for (LinkId l : route) s += links[static_cast<size_t>(l)].latency_s;
    return s;
  };
  std::vector<LinkId> route;
  if (net.n > 1) {
    // Which physical dimensions the members vary along.
    std::set<size_t> varying;
    for (const auto& g : groups) {
      const auto c0 = Coords(g.front(), pdims);
      for (DeviceId d : g) {
        const auto c = Coords(d, pdims);
        for (size_t i = 0; i < c.size(); ++i) {
          if (c[i] != c0[i]) varying.insert(i);
        }
      }
      break;  // every group has the same shape
    }
    for (size_t d : varying) {
      std::vector<double> fwd(links.size(), 0), rev(links.size(), 0);
      DimRing ring;
      ring.speed_class = pdims[d].speed_class;
      for (const auto& g : groups) {
        // Sub-rings along d: members sharing every other coordinate, ordered along d.
        std::map<std::vector<int64_t>, std::vector<std::pair<int64_t, DeviceId>>> subs;
        for (DeviceId dev : g) {
          auto c = Coords(dev, pdims);
          const int64_t along = c[d];
          c[d] = 0;
          subs[c].push_back({along, dev});
        }
        for (auto& [k, members] : subs) {
          std::sort(members.begin(), members.end());
          const size_t m = members.size();
          ring.n = static_cast<int64_t>(m);
          if (m < 2) continue;
          std::vector<DeviceId> sub;
          for (const auto& mem : members) sub.push_back(mem.second);
          ring.subrings.push_back(std::move(sub));
          for (size_t i = 0; i < m; ++i) {
            const DeviceId a = members[i].second, b = members[(i + 1) % m].second;
            topo_->ComputeRoute(a, b, &(route = {}));
            for (LinkId l : route) fwd[static_cast<size_t>(l)] += 1;
            ring.step_latency_s = std::max(ring.step_latency_s, latency(route));
            topo_->ComputeRoute(b, a, &(route = {}));
            for (LinkId l : route) rev[static_cast<size_t>(l)] += 1;
          }
        }
      }
      double uni = std::numeric_limits<double>::infinity(), bi = uni;
      for (size_t l = 0; l < links.size(); ++l) {
        if (fwd[l] > 0) uni = std::min(uni, rate(static_cast<LinkId>(l)) / fwd[l]);
        if (fwd[l] + rev[l] > 0) {
          bi = std::min(bi, rate(static_cast<LinkId>(l)) / (fwd[l] + rev[l]));
        }
      }
      ring.bytes_per_s = std::max(uni, 2 * bi);
      ring.bidirectional = 2 * bi > uni;
      if (ring.n > 1) net.dims.push_back(ring);
    }
    std::stable_sort(net.dims.begin(), net.dims.end(), [](const DimRing& a, const DimRing& b) {
      return a.speed_class < b.speed_class;
    });
    for (const DimRing& r : net.dims)
      net.same_class = net.same_class && r.speed_class == net.dims[0].speed_class;

    // All-to-all: every ordered pair of every group, exactly (a sample of sources overestimates
    // the most loaded link: the maximum of noisy counts is biased up). In closed form on torus
    // slices (Topology::AddAllPairsLoads), else O(n^2) routes per group; once per axis set,
    // shared by every point of a sweep.
    std::vector<double> pairs(links.size(), 0);
    for (const auto& g : groups) topo_->AddAllPairsLoads(g, &pairs, &net.a2a_latency_s);
    for (size_t l = 0; l < links.size(); ++l) {
      if (pairs[l] > 0) {
        net.a2a_pairs_per_link_over_rate =
            std::max(net.a2a_pairs_per_link_over_rate, pairs[l] / rate(static_cast<LinkId>(l)));
      }
    }
  }
  // Pipeline neighbours: stage p to stage p + 1, every other coordinate equal.
  const int pi = axis_index_[static_cast<size_t>(pipeline_axis_)];
  if (pi >= 0 && placement_.axis_sizes[static_cast<size_t>(pi)] > 1) {
    const auto stage_groups = Groups({pipeline_axis_});
    std::vector<double> load(links.size(), 0);
    for (const auto& g : stage_groups) {
      for (size_t i = 0; i + 1 < g.size(); ++i) {
        net.p2p_pairs.push_back({g[i], g[i + 1]});
        topo_->ComputeRoute(g[i], g[i + 1], &(route = {}));
        for (LinkId l : route) load[static_cast<size_t>(l)] += 1;
        net.p2p_latency_s = std::max(net.p2p_latency_s, latency(route));
      }
    }
    for (size_t l = 0; l < links.size(); ++l) {
      if (load[l] > 0) {
        net.p2p_load_over_rate =
            std::max(net.p2p_load_over_rate, load[l] / rate(static_cast<LinkId>(l)));
      }
    }
  }
  return net;
}

const AnalyticalNetwork::AxesNet& AnalyticalNetwork::Net(const std::vector<MeshAxis>& axes) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(axes);
  if (it == cache_.end()) {
    it = cache_.emplace(axes, std::make_unique<AxesNet>(Compute(axes))).first;
  }
  return *it->second;
}

const AnalyticalNetwork::ShiftNet& AnalyticalNetwork::Shift(
    const std::vector<MeshAxis>& axes) const {
  const AxesNet& net = Net(axes);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = shift_cache_.find(axes);
  if (it != shift_cache_.end()) return *it->second;
  auto shift = std::make_unique<ShiftNet>();
  const auto& links = topo_->links();
  std::vector<double> load(links.size(), 0);
  std::vector<LinkId> route;
  for (const auto& g : net.groups) {
    for (size_t i = 0; g.size() > 1 && i < g.size(); ++i) {
      topo_->ComputeRoute(g[i], g[(i + 1) % g.size()], &(route = {}));
      double latency = 0;
      for (LinkId l : route) {
        load[static_cast<size_t>(l)] += 1;
        latency += links[static_cast<size_t>(l)].latency_s;
      }
      shift->latency_s = std::max(shift->latency_s, latency);
    }
  }
  for (size_t l = 0; l < links.size(); ++l) {
    if (load[l] > 0) {
      shift->load_over_rate =
          std::max(shift->load_over_rate, load[l] / (links[l].bytes_per_s * efficiency_));
    }
  }
  return *shift_cache_.emplace(axes, std::move(shift)).first->second;
}

double AnalyticalNetwork::ReduceScatterTime(const AxesNet& net, double bytes) const {
  if (net.n <= 1 || net.dims.empty()) return 0;
  double t = 0;
  if (net.same_class) {
    double sum = 0;
    for (const DimRing& r : net.dims) {
      sum += r.bytes_per_s;
      t += static_cast<double>(r.n - 1) * r.step_latency_s;
    }
    const double n = static_cast<double>(net.n);
    return t + (n - 1) / n * bytes / sum;
  }
  double s = bytes;
  for (const DimRing& r : net.dims) {
    const double n = static_cast<double>(r.n);
    t += (n - 1) / n * s / r.bytes_per_s + (n - 1) * r.step_latency_s;
    s /= n;
  }
  return t;
}

double AnalyticalNetwork::Time(const CollectiveWork& w) const {
  if (w.kind == CollectiveKind::kSendRecv) {
    const AxesNet& net = Net({pipeline_axis_});
    return w.bytes * net.p2p_load_over_rate + net.p2p_latency_s;
  }
  const AxesNet& net = Net(w.axes);
  if (net.n <= 1) return 0;
  switch (w.kind) {
    case CollectiveKind::kReduceScatter:
    case CollectiveKind::kAllGather:
      return ReduceScatterTime(net, w.bytes);
    case CollectiveKind::kAllReduce:
      return 2 * ReduceScatterTime(net, w.bytes);
    case CollectiveKind::kAllToAll:
      return w.bytes / static_cast<double>(net.n) * net.a2a_pairs_per_link_over_rate *
                 w.max_over_mean +
             net.a2a_latency_s;
    case CollectiveKind::kRingShift: {
      const ShiftNet& shift = Shift(w.axes);
      return w.bytes * shift.load_over_rate + shift.latency_s;
    }
    case CollectiveKind::kSendRecv:
      break;
  }
  return 0;
}

void AnalyticalNetwork::RingPhase(const DimRing& r, double bytes,
                                  std::vector<CollectiveFlow>* out) const {
  // Each member sends (n-1)/n of its share to its ring neighbour, split over both directions
  // when the bidirectional pair of rings is the faster way.
  const double n = static_cast<double>(r.n);
  const double volume = (n - 1) / n * bytes / (r.bidirectional ? 2 : 1);
  for (const auto& ring : r.subrings) {
    const size_t m = ring.size();
    for (size_t i = 0; i < m; ++i) {
      out->push_back({ring[i], ring[(i + 1) % m], volume});
      if (r.bidirectional) out->push_back({ring[i], ring[(i + m - 1) % m], volume});
    }
  }
}

std::vector<CollectivePhase> AnalyticalNetwork::Phases(const CollectiveWork& w) const {
  std::vector<CollectivePhase> phases;
  if (w.kind == CollectiveKind::kSendRecv) {
    const AxesNet& net = Net({pipeline_axis_});
    CollectivePhase ph;
    ph.latency_s = net.p2p_latency_s;
    for (const auto& [a, b] : net.p2p_pairs) ph.flows.push_back({a, b, w.bytes});
    phases.push_back(std::move(ph));
    return phases;
  }
  const AxesNet& net = Net(w.axes);
  if (net.n <= 1) return phases;
  if (w.kind == CollectiveKind::kRingShift) {
    CollectivePhase ph;
    ph.latency_s = Shift(w.axes).latency_s;
    for (const auto& g : net.groups) {
      for (size_t i = 0; i < g.size(); ++i)
        ph.flows.push_back({g[i], g[(i + 1) % g.size()], w.bytes});
    }
    phases.push_back(std::move(ph));
    return phases;
  }
  if (w.kind == CollectiveKind::kAllToAll) {
    CollectivePhase ph;
    ph.latency_s = net.a2a_latency_s;
    const double pair = w.bytes / static_cast<double>(net.n) * w.max_over_mean;
    for (const auto& g : net.groups) {
      for (DeviceId a : g) {
        for (DeviceId b : g) {
          if (a != b) ph.flows.push_back({a, b, pair});
        }
      }
    }
    phases.push_back(std::move(ph));
    return phases;
  }
  // Reduce-scatter (and all-gather, its mirror): the phases of one pass.
  std::vector<CollectivePhase> pass;
  if (net.same_class) {
    double sum = 0;
    for (const DimRing& r : net.dims) sum += r.bytes_per_s;
    CollectivePhase ph;
    const double n = static_cast<double>(net.n);
    for (const DimRing& r : net.dims) {
      // This dimension carries its bandwidth's share of the data; scaled so that the ring's
      // (n_d-1)/n_d factor becomes the whole group's (n-1)/n.
      const double nd = static_cast<double>(r.n);
      const double share = w.bytes * (r.bytes_per_s / sum) * ((n - 1) / n) / ((nd - 1) / nd);
      RingPhase(r, share, &ph.flows);
      ph.latency_s = std::max(ph.latency_s, 0.0);
    }
    for (const DimRing& r : net.dims)
      ph.latency_s += static_cast<double>(r.n - 1) * r.step_latency_s;
    pass.push_back(std::move(ph));
  } else {
    double bytes = w.bytes;
    for (const DimRing& r : net.dims) {
      CollectivePhase ph;
      RingPhase(r, bytes, &ph.flows);
      ph.latency_s = static_cast<double>(r.n - 1) * r.step_latency_s;
      pass.push_back(std::move(ph));
      bytes /= static_cast<double>(r.n);
    }
  }
  phases = pass;
  if (w.kind == CollectiveKind::kAllReduce) {
    // All-gather back: the same phases in reverse order.
    for (auto it = pass.rbegin(); it != pass.rend(); ++it) phases.push_back(*it);
  }
  return phases;
}

std::vector<CollectivePhase> AnalyticalNetwork::StagePhases(const CollectiveWork& w,
                                                            int32_t stage) const {
  if (w.kind == CollectiveKind::kSendRecv) {
    CollectivePhase ph;
    for (const auto& g : pipeline_groups_) {
      const size_t from = static_cast<size_t>(stage), to = static_cast<size_t>(w.peer_program);
      if (from < g.size() && to < g.size() && from != to) {
        ph.flows.push_back({g[from], g[to], w.bytes});
      }
    }
    return {std::move(ph)};
  }
  std::vector<CollectivePhase> phases = Phases(w);
  if (placement_.axis_sizes.empty()) return phases;
  for (CollectivePhase& ph : phases) {
    std::erase_if(ph.flows, [&](const CollectiveFlow& f) { return StageOf(f.src) != stage; });
  }
  return phases;
}

std::vector<std::vector<DeviceId>> AnalyticalNetwork::StageGroups(const std::vector<MeshAxis>& axes,
                                                                  int32_t stage) const {
  std::vector<std::vector<DeviceId>> out;
  for (const auto& g : Net(axes).groups) {
    if (!g.empty() && StageOf(g[0]) == stage) out.push_back(g);
  }
  return out;
}

double AnalyticalNetwork::RingBytesPerS(const std::vector<MeshAxis>& axes) const {
  const AxesNet& net = Net(axes);
  if (net.n <= 1) return 0;
  const double t = ReduceScatterTime(net, 1e9);
  const double n = static_cast<double>(net.n);
  return t > 0 ? (n - 1) / n * 1e9 / t : 0;
}

}  // namespace moesim
