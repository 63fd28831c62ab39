// topology_file.cc: topology .textproto files (proto/topology.proto) and the option helpers the
// builders share.
#include <charconv>
#include <map>
#include <memory>

#include "proto/field_locator.h"
#include "proto/topology.pb.h"
#include "proto/topology_file_reader.h"
#include "topologies/builders.h"

namespace moesim {
namespace {

LinkKind KindOf(pb::LinkSpec::Kind k) {
  switch (k) {
    case pb::LinkSpec::ICI:
      return LinkKind::kIci;
    case pb::LinkSpec::NVLINK:
      return LinkKind::kNvlink;
    case pb::LinkSpec::PCIE:
      return LinkKind::kPcie;
    case pb::LinkSpec::INFINIBAND:
      return LinkKind::kInfiniband;
    case pb::LinkSpec::ETHERNET:
      return LinkKind::kEthernet;
    default:
      return LinkKind::kDcn;
  }
}

Expected<std::shared_ptr<const Topology>> BuildGraphFile(const std::string& path,
                                                         const pb::TopologyFile& f,
                                                         const FieldLocator& where,
                                                         const HardwareProfile& hw) {
  const std::string name = f.name().empty() ? path : f.name();
  // "FILE:LINE: FIELD...: why", the line being where `field` (or its message) was written.
  auto bad = [&](const std::string& field, const std::string& why) {
    return Status::InvalidInput(where.Where(field) + ": " + why);
  };
  if (f.num_devices() <= 0) return bad("num_devices", "num_devices must be > 0 (or give base)");
  if (f.num_devices() > kMaxDevices) {
    return bad("num_devices", "num_devices is more than " + std::to_string(kMaxDevices));
  }
  TopologyBuilder b(name, f.num_devices(), hw);
  std::map<std::string, VertexId> by_name;
  for (int i = 0; i < f.vertices_size(); ++i) {
    const auto& v = f.vertices(i);
    const VertexId id =
        b.AddVertex(v.kind() == pb::Vertex::NIC ? VertexKind::kNic : VertexKind::kSwitch);
    if (v.name().empty() || !by_name.emplace(v.name(), id).second) {
      const std::string field = "vertices[" + std::to_string(i) + "]";
      return bad(field, field + ": name \"" + v.name() + "\" is empty or not unique");
    }
  }
  auto endpoint = [&](const std::string& s, VertexId* out) {
    int64_t id = -1;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
    if (!s.empty() && ec == std::errc() && p == s.data() + s.size()) {
      if (id < 0 || id >= f.num_devices()) return false;
      *out = static_cast<VertexId>(id);
      return true;
    }
    auto it = by_name.find(s);
    if (it == by_name.end()) return false;
    *out = it->second;
    return true;
  };
  for (int i = 0; i < f.links_size(); ++i) {
    const auto& l = f.links(i);
    const std::string field = "links[" + std::to_string(i) + "]";
    const std::string at = field + ": ";
    VertexId a = -1, c = -1;
    if (!endpoint(l.a(), &a) || !endpoint(l.b(), &c)) {
      return bad(field, at + "endpoint \"" + (endpoint(l.a(), &a) ? l.b() : l.a()) +
                            "\" is neither a device id in [0, " + std::to_string(f.num_devices()) +
                            ") nor a vertex name");
    }
    if (l.kind() == pb::LinkSpec::KIND_UNSPECIFIED) return bad(field, at + "kind is missing");
    const LinkKind kind = KindOf(l.kind());
    const bool device_link = kind == LinkKind::kIci || kind == LinkKind::kNvlink;
    const double scale = l.scale() > 0 ? l.scale() : 1.0;
    const double rate = l.bytes_per_s() > 0 ? l.bytes_per_s()
                        : device_link       ? scale * hw.link_bytes_per_s
                                            : scale * hw.scaleout_bytes_per_s;
    const double latency = l.has_latency_s()         ? l.latency_s()
                           : device_link             ? hw.link_latency_s
                           : kind == LinkKind::kPcie ? 0.0
                                                     : hw.scaleout_latency_s / 2;
    const Status st =
        l.one_way() ? b.AddLink(a, c, rate, latency, kind) : b.AddDuplex(a, c, rate, latency, kind);
    if (!st.ok()) return bad(field, at + st.message());
  }
  if (f.dims_size() > 0) {
    std::vector<PhysicalDim> dims;
    for (int i = 0; i < f.dims_size(); ++i) {
      const auto& d = f.dims(i);
      if (d.size() <= 0) {
        return bad("dims[" + std::to_string(i) + "]",
                   "dims \"" + d.name() + "\": size must be > 0");
      }
      dims.push_back({d.name(), d.size(), d.wraps(), d.speed_class()});
    }
    int64_t product = 1;
    for (const auto& d : dims) product *= d.size;
    if (product != f.num_devices()) {
      return bad("dims", "dims hold " + std::to_string(product) +
                             " devices, not num_devices=" + std::to_string(f.num_devices()));
    }
    b.SetPhysicalDims(std::move(dims));
  }
  auto topo = std::move(b).Finish();
  if (!topo.ok()) return Status::InvalidInput(path + ": " + topo.status().message());
  return topo;
}

}  // namespace

bool IsTopologyFilePath(const std::string& s) {
  const std::string ext = ".textproto";
  return s.find(':') == std::string::npos ||
         (s.size() >= ext.size() && s.compare(s.size() - ext.size(), ext.size(), ext) == 0);
}

Expected<std::shared_ptr<const Topology>> BuildTopologyFromFile(const std::string& path,
                                                                const HardwareProfile& hw) {
  auto parsed = ReadTopologyFile(path);
  if (!parsed.ok()) return parsed.status();
  const pb::TopologyFile& file = parsed->file;
  const FieldLocator& where = parsed->where;
  if (file.base().empty()) return BuildGraphFile(path, file, where, hw);
  if (file.num_devices() != 0 || file.links_size() > 0 || file.vertices_size() > 0) {
    return Status::InvalidInput(where.Where("base") + ": give either base or the graph, not both");
  }
  if (IsTopologyFilePath(file.base())) {
    return Status::InvalidInput(where.Where("base") + ": base \"" + file.base() +
                                "\" must be a parameterized topology name");
  }
  auto topo = BuildTopology(file.base(), hw);
  if (!topo.ok()) return topo.status().WithPrefix(where.Where("base") + ": ");
  return topo;
}

Expected<std::string> TopologyFileChip(const std::string& path) {
  auto parsed = ReadTopologyFile(path);
  if (!parsed.ok()) return parsed.status();
  auto chip = TopologyFileChip(*parsed);
  if (!chip.ok() && parsed->file.chip().empty() && parsed->file.base().empty()) {
    return Status::InvalidInput(path + ": chip is missing (needed without a scenario)");
  }
  return chip;
}

Status TopologyError(const TopologyName& name, const std::string& why) {
  return Status::InvalidInput("topology \"" + name.text + "\": " + why);
}

Status CheckOptions(const TopologyName& name, std::initializer_list<const char*> accepted) {
  for (const auto& [key, value] : name.options) {
    bool ok = false;
    std::string list;
    for (const char* a : accepted) {
      ok |= key == a;
      list += (list.empty() ? "" : ", ") + std::string(a);
    }
    if (!ok) {
      return TopologyError(
          name, "unknown option \"" + key + "\" (" + name.family + " accepts: " + list + ")");
    }
  }
  return Status::Ok();
}

Expected<double> PositiveOption(const TopologyName& name, const std::string& key, double fallback) {
  auto it = name.options.find(key);
  if (it == name.options.end()) return fallback;
  double v = 0;
  const std::string& s = it->second;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !(v > 0)) {
    return TopologyError(name, key + "=\"" + s + "\" is not a number > 0");
  }
  return v;
}

Expected<int64_t> PositiveIntOption(const TopologyName& name, const std::string& key,
                                    int64_t fallback) {
  auto it = name.options.find(key);
  if (it == name.options.end()) return fallback;
  int64_t v = 0;
  const std::string& s = it->second;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v <= 0) {
    return TopologyError(name, key + "=\"" + s + "\" is not an integer > 0");
  }
  return v;
}

}  // namespace moesim
