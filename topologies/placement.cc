#include "topologies/placement.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <numeric>
#include <set>

namespace moesim {
namespace {

// One factor of a mesh axis: `size` consecutive steps of `stride` along physical dim `dim`.
struct Factor {
  size_t dim;
  int64_t size;
  int64_t stride;  // in coordinates of that dim
};

struct Assignment {
  std::vector<std::vector<Factor>> factors;  // per axis, innermost first
  int shared_dims = 0;                       // dims holding factors of two or more axes
  int num_factors = 0;
};

std::string MeshText(const std::vector<std::string>& names, const std::vector<int64_t>& sizes) {
  std::string a, s;
  for (size_t i = 0; i < names.size(); ++i) {
    a += (i ? "," : "") + names[i];
    s += (i ? "," : "") + std::to_string(sizes[i]);
  }
  return a + "=" + s;
}

Status CheckMesh(const Topology& topo, const std::vector<std::string>& names,
                 const std::vector<int64_t>& sizes) {
  if (names.empty() || names.size() != sizes.size()) {
    return Status::InvalidInput("mesh: " + std::to_string(names.size()) + " axis names but " +
                                std::to_string(sizes.size()) + " sizes");
  }
  std::set<std::string> seen;
  int64_t product = 1;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) return Status::InvalidInput("mesh: an axis name is empty");
    if (!seen.insert(names[i]).second) {
      return Status::InvalidInput("mesh: axis \"" + names[i] + "\" given twice");
    }
    if (sizes[i] < 1) {
      return Status::InvalidInput("mesh: axis " + names[i] + "=" + std::to_string(sizes[i]) +
                                  " must be >= 1");
    }
    if (product > (int64_t{1} << 40) / sizes[i]) {
      return Status::InvalidInput("mesh " + MeshText(names, sizes) + " is too large");
    }
    product *= sizes[i];
  }
  if (product != topo.num_devices()) {
    return Status::InvalidInput("mesh " + MeshText(names, sizes) + " needs " +
                                std::to_string(product) + " devices; topology \"" + topo.name() +
                                "\" has " + std::to_string(topo.num_devices()));
  }
  return Status::Ok();
}

// Lays axes (innermost first) on dims in `slot_order` (indices into dims, innermost first),
// starting from the sizes left in `left`. Each axis takes factors from the first slots that
// share a factor with what it still needs, inner part of a dimension first. False when some
// axis cannot be factored.
bool Assign(const std::vector<int64_t>& dim_sizes, const std::vector<size_t>& slot_order,
            std::vector<int64_t> left, const std::vector<int64_t>& need_sizes, Assignment* out) {
  const size_t k = need_sizes.size();
  out->factors.assign(k, {});
  std::vector<std::set<size_t>> axes_on_dim(dim_sizes.size());
  for (size_t i = k; i-- > 0;) {
    int64_t need = need_sizes[i];
    for (size_t slot = 0; slot < slot_order.size() && need > 1; ++slot) {
      const size_t d = slot_order[slot];
      const int64_t g = std::gcd(need, left[d]);
      if (g == 1) continue;
      out->factors[i].push_back({d, g, dim_sizes[d] / left[d]});
      axes_on_dim[d].insert(i);
      left[d] /= g;
      need /= g;
    }
    if (need > 1) return false;
  }
  out->shared_dims = 0;
  out->num_factors = 0;
  for (const auto& s : axes_on_dim) out->shared_dims += s.size() > 1 ? 1 : 0;
  for (const auto& f : out->factors) out->num_factors += static_cast<int>(f.size());
  return true;
}

// Digits of `a` in the reflected (snake) mixed-radix Gray code over `factors` (innermost first):
// consecutive values of `a` differ in one digit by one.
void SnakeDigits(int64_t a, const std::vector<Factor>& factors, std::vector<int64_t>* digits) {
  digits->assign(factors.size(), 0);
  int64_t inner = 1;
  for (const Factor& f : factors) inner *= f.size;
  int64_t rem = a;
  for (size_t t = factors.size(); t-- > 0;) {
    inner /= factors[t].size;
    const int64_t d = rem / inner;
    rem %= inner;
    (*digits)[t] = d;
    if (d % 2 == 1) rem = inner - 1 - rem;
  }
}

std::string Span(const std::vector<PhysicalDim>& dims, const std::vector<Factor>& factors) {
  if (factors.empty()) return "-";
  std::string s;
  for (size_t t = factors.size(); t-- > 0;) {
    const Factor& f = factors[t];
    s += (s.empty() ? "" : " ") + dims[f.dim].name + "(" + std::to_string(f.size);
    if (f.size != dims[f.dim].size) s += " of " + std::to_string(dims[f.dim].size);
    s += ")";
  }
  return s;
}

}  // namespace

std::vector<std::vector<DeviceId>> MeshPlacement::Groups(int axis) const {
  const auto ax = static_cast<size_t>(axis);
  int64_t stride = 1;
  for (size_t i = ax + 1; i < axis_sizes.size(); ++i) stride *= axis_sizes[i];
  const int64_t m = axis_sizes[ax];
  std::vector<std::vector<DeviceId>> groups;
  groups.reserve(device_of.size() / static_cast<size_t>(m));
  for (int64_t idx = 0; idx < static_cast<int64_t>(device_of.size()); ++idx) {
    if ((idx / stride) % m != 0) continue;
    std::vector<DeviceId> g(static_cast<size_t>(m));
    for (int64_t j = 0; j < m; ++j) g[static_cast<size_t>(j)] = device_of[idx + j * stride];
    groups.push_back(std::move(g));
  }
  return groups;
}

Expected<MeshPlacement> PlaceMesh(const Topology& topo, const std::vector<std::string>& names,
                                  const std::vector<int64_t>& sizes) {
  MOESIM_RETURN_IF_ERROR(CheckMesh(topo, names, sizes));
  const std::vector<PhysicalDim>& dims = topo.physical_dims();
  const size_t nd = dims.size(), k = sizes.size();
  std::vector<int64_t> dim_sizes(nd), left(nd);
  for (size_t d = 0; d < nd; ++d) dim_sizes[d] = left[d] = dims[d].size;

  // Data parallelism across DCN slices.
  std::vector<int64_t> need = sizes;
  std::vector<Factor> data_slices;
  size_t data_axis = k;
  for (size_t d = 0; d < nd; ++d) {
    if (dims[d].name != "slice" || dims[d].size < 2) continue;
    for (size_t i = 0; i < k; ++i) {
      if (names[i] == "data" && need[i] % dims[d].size == 0) {
        data_axis = i;
        data_slices.push_back({d, dims[d].size, 1});
        need[i] /= dims[d].size;
        left[d] = 1;
      }
    }
  }

  // Candidate slot orders: classes fastest first; within a class every permutation, starting
  // from the topology's own order (innermost dimension first).
  std::vector<int> classes;
  for (const auto& d : dims) classes.push_back(d.speed_class);
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  std::vector<std::vector<size_t>> per_class;
  for (int c : classes) {
    std::vector<size_t> members;
    for (size_t d = nd; d-- > 0;) {
      if (dims[d].speed_class == c) members.push_back(d);
    }
    per_class.push_back(members);
  }
  Assignment best;
  bool found = false;
  // Odometer over the permutations of each class (ranks of permutations, first = identity).
  std::vector<std::vector<size_t>> perm = per_class;
  while (true) {
    std::vector<size_t> order;
    for (const auto& p : perm) order.insert(order.end(), p.begin(), p.end());
    Assignment a;
    if (Assign(dim_sizes, order, left, need, &a) &&
        (!found || a.shared_dims < best.shared_dims ||
         (a.shared_dims == best.shared_dims && a.num_factors < best.num_factors))) {
      best = std::move(a);
      found = true;
    }
    // Next permutation, class by class, innermost class fastest; next_permutation over the
    // positions keeps the identity first.
    size_t c = 0;
    for (; c < perm.size(); ++c) {
      std::vector<size_t> pos(perm[c].size());
      for (size_t i = 0; i < pos.size(); ++i) {
        pos[i] = static_cast<size_t>(
            std::find(per_class[c].begin(), per_class[c].end(), perm[c][i]) - per_class[c].begin());
      }
      const bool more = std::next_permutation(pos.begin(), pos.end());
      for (size_t i = 0; i < pos.size(); ++i) perm[c][i] = per_class[c][pos[i]];
      if (more) break;
    }
    if (c == perm.size()) break;
  }

  MeshPlacement p;
  p.axis_names = names;
  p.axis_sizes = sizes;
  const int64_t n = topo.num_devices();
  p.device_of.resize(static_cast<size_t>(n));
  if (!found) {
    std::iota(p.device_of.begin(), p.device_of.end(), 0);
    p.axis_spans.assign(k, "device order");
    return p;
  }
  if (data_axis < k) {
    auto& f = best.factors[data_axis];
    f.insert(f.end(), data_slices.begin(), data_slices.end());
  }
  for (size_t i = 0; i < k; ++i) p.axis_spans.push_back(Span(dims, best.factors[i]));

  std::vector<int64_t> dim_strides(nd, 1);  // row-major device id strides
  for (size_t d = nd; d-- > 1;) dim_strides[d - 1] = dim_strides[d] * dims[d].size;
  std::vector<int64_t> axis_strides(k, 1);
  for (size_t i = k; i-- > 1;) axis_strides[i - 1] = axis_strides[i] * sizes[i];
  std::vector<int64_t> digits;
  // Device of each axis coordinate, per axis, as an offset in device ids (axes are independent).
  std::vector<std::vector<int64_t>> offset(k);
  for (size_t i = 0; i < k; ++i) {
    offset[i].resize(static_cast<size_t>(sizes[i]));
    for (int64_t a = 0; a < sizes[i]; ++a) {
      SnakeDigits(a, best.factors[i], &digits);
      int64_t off = 0;
      for (size_t t = 0; t < digits.size(); ++t) {
        const Factor& f = best.factors[i][t];
        off += digits[t] * f.stride * dim_strides[f.dim];
      }
      offset[i][static_cast<size_t>(a)] = off;
    }
  }
  for (int64_t idx = 0; idx < n; ++idx) {
    int64_t dev = 0;
    for (size_t i = 0; i < k; ++i) {
      dev += offset[i][static_cast<size_t>((idx / axis_strides[i]) % sizes[i])];
    }
    p.device_of[static_cast<size_t>(idx)] = static_cast<DeviceId>(dev);
  }
  return p;
}

Expected<MeshPlacement> PlaceMeshExplicit(const Topology& topo,
                                          const std::vector<std::string>& names,
                                          const std::vector<int64_t>& sizes,
                                          std::vector<DeviceId> device_of) {
  MOESIM_RETURN_IF_ERROR(CheckMesh(topo, names, sizes));
  const int64_t n = topo.num_devices();
  if (static_cast<int64_t>(device_of.size()) != n) {
    return Status::InvalidInput("explicit placement lists " + std::to_string(device_of.size()) +
                                " devices; mesh " + MeshText(names, sizes) + " has " +
                                std::to_string(n));
  }
  std::vector<bool> used(static_cast<size_t>(n), false);
  for (DeviceId d : device_of) {
    if (d < 0 || d >= n) {
      return Status::InvalidInput("explicit placement: device " + std::to_string(d) +
                                  " is out of range [0, " + std::to_string(n) + ")");
    }
    if (used[static_cast<size_t>(d)]) {
      return Status::InvalidInput("explicit placement lists device " + std::to_string(d) +
                                  " twice");
    }
    used[static_cast<size_t>(d)] = true;
  }
  MeshPlacement p;
  p.axis_names = names;
  p.axis_sizes = sizes;
  p.device_of = std::move(device_of);
  p.axis_spans.assign(names.size(), "explicit");
  return p;
}

Status ParseMeshSpec(const std::string& text, std::vector<std::string>* names,
                     std::vector<int64_t>* sizes) {
  auto bad = [&]() {
    return Status::InvalidInput("placement \"" + text +
                                "\": expected AXES=SIZES, e.g. data,expert,model=4,64,1");
  };
  const size_t eq = text.find('=');
  if (eq == std::string::npos) return bad();
  names->clear();
  sizes->clear();
  auto split = [](const std::string& s) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
      const size_t c = s.find(',', start);
      parts.push_back(s.substr(start, c == std::string::npos ? std::string::npos : c - start));
      if (c == std::string::npos) break;
      start = c + 1;
    }
    return parts;
  };
  *names = split(text.substr(0, eq));
  for (const std::string& s : split(text.substr(eq + 1))) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return bad();
    sizes->push_back(v);
  }
  if (names->size() != sizes->size()) return bad();
  return Status::Ok();
}

std::vector<AxisRing> AxisRings(const Topology& topo, const MeshPlacement& placement) {
  std::vector<AxisRing> out;
  std::vector<int32_t> load(topo.links().size(), 0);
  std::vector<LinkId> touched, route;
  for (size_t i = 0; i < placement.axis_sizes.size(); ++i) {
    AxisRing r;
    r.name = placement.axis_names[i];
    r.size = placement.axis_sizes[i];
    if (r.size > 1) {
      for (const auto& g : placement.Groups(static_cast<int>(i))) {
        for (size_t j = 0; j < g.size(); ++j) {
          topo.ComputeRoute(g[j], g[(j + 1) % g.size()], &route);
          r.max_hops = std::max(r.max_hops, static_cast<int64_t>(route.size()));
          for (LinkId l : route) {
            if (load[static_cast<size_t>(l)]++ == 0) touched.push_back(l);
          }
        }
      }
      double rate = std::numeric_limits<double>::infinity();
      for (LinkId l : touched) {
        rate = std::min(
            rate, topo.links()[static_cast<size_t>(l)].bytes_per_s / load[static_cast<size_t>(l)]);
        load[static_cast<size_t>(l)] = 0;
      }
      touched.clear();
      r.ring_bytes_per_s = rate;
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace moesim
