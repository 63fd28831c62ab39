#include "sim/topology/topology_network.h"

#include <algorithm>
#include <charconv>

namespace moesim::sim {

TopologyNetwork TopologyNetwork::Make(std::shared_ptr<const Topology> topology,
                                      const HardwareProfile& hw, const LinkEfficiencies& eff) {
  return Make(std::move(topology), hw.link_efficiency, eff);
}

TopologyNetwork TopologyNetwork::Make(std::shared_ptr<const Topology> topology,
                                      double link_efficiency, const LinkEfficiencies& eff) {
  TopologyNetwork net;
  net.topology = std::move(topology);
  const std::vector<Link>& links = net.topology->links();
  net.links.reserve(links.size());
  for (const Link& l : links) {
    const auto& e = eff.by_kind[static_cast<size_t>(l.kind)];
    net.links.push_back(LinkSpec{l.bytes_per_s * e.value_or(link_efficiency), l.latency_s});
  }
  // The function shares ownership of the topology: its spans stay valid as long as it lives.
  net.route = [topo = net.topology](DeviceId a, DeviceId b) -> std::span<const LinkId> {
    return topo->Route(a, b);
  };
  return net;
}

GroupShape GroupShapeOf(const Topology& topo, const std::vector<DeviceId>& group) {
  const std::vector<PhysicalDim>& pd = topo.physical_dims();
  const size_t nd = pd.size();
  GroupShape linear;
  linear.dims.push_back(GroupDim{static_cast<int64_t>(group.size()), false, 0});
  if (group.empty()) return linear;
  // The coordinates the members take along each dimension; the group must be their product
  // (a box, or a strided subset such as every other GPU of each node) in row-major order.
  std::vector<int64_t> stride(nd, 1);
  for (size_t d = nd; d-- > 1;) stride[d - 1] = stride[d] * pd[d].size;
  auto coord = [&](DeviceId dev, size_t d) { return (dev / stride[d]) % pd[d].size; };
  std::vector<std::vector<int64_t>> taken(nd);
  int64_t volume = 1;
  for (size_t d = 0; d < nd; ++d) {
    for (DeviceId dev : group) taken[d].push_back(coord(dev, d));
    std::sort(taken[d].begin(), taken[d].end());
    taken[d].erase(std::unique(taken[d].begin(), taken[d].end()), taken[d].end());
    volume *= static_cast<int64_t>(taken[d].size());
    if (volume > static_cast<int64_t>(group.size())) return linear;
  }
  if (volume != static_cast<int64_t>(group.size())) return linear;
  for (size_t i = 0; i < group.size(); ++i) {
    int64_t rest = static_cast<int64_t>(i);
    DeviceId expect = 0;
    for (size_t d = nd; d-- > 0;) {
      const int64_t extent = static_cast<int64_t>(taken[d].size());
      expect += static_cast<DeviceId>(taken[d][static_cast<size_t>(rest % extent)] * stride[d]);
      rest /= extent;
    }
    if (group[i] != expect) return linear;
  }
  GroupShape shape;
  for (size_t d = 0; d < nd; ++d) {
    const int64_t extent = static_cast<int64_t>(taken[d].size());
    shape.dims.push_back(GroupDim{extent, pd[d].wraps && extent == pd[d].size, pd[d].speed_class});
  }
  return shape;
}

Expected<std::vector<DeviceId>> ParseDeviceGroup(const Topology& topo, const std::string& text) {
  const int64_t n = topo.num_devices();
  int64_t count = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, count);
  if (ec == std::errc() && ptr == end) {
    if (count < 1 || count > n) {
      return Status::InvalidInput("--group " + text + ": topology \"" + topo.name() + "\" has " +
                                  std::to_string(n) + " devices");
    }
    std::vector<DeviceId> g(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) g[static_cast<size_t>(i)] = static_cast<DeviceId>(i);
    return g;
  }
  const std::vector<PhysicalDim>& pd = topo.physical_dims();
  std::vector<bool> take(pd.size(), false);
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string name = text.substr(start, comma - start);
    size_t d = 0;
    while (d < pd.size() && pd[d].name != name) ++d;
    if (d == pd.size()) {
      std::string names;
      for (const PhysicalDim& p : pd) {
        names += (names.empty() ? "" : ", ") + p.name + "(" + std::to_string(p.size) + ")";
      }
      return Status::InvalidInput("--group " + text + ": \"" + name +
                                  "\" is neither a device count nor a dimension of topology \"" +
                                  topo.name() + "\" (dimensions: " + names + ")");
    }
    take[d] = true;
    start = comma + 1;
  }
  std::vector<DeviceId> g;
  for (DeviceId dev = 0; dev < n; ++dev) {
    int64_t rest = dev;
    bool in = true;
    for (size_t d = pd.size(); d-- > 0;) {
      if (!take[d] && rest % pd[d].size != 0) in = false;
      rest /= pd[d].size;
    }
    if (in) g.push_back(dev);
  }
  return g;
}

}  // namespace moesim::sim
