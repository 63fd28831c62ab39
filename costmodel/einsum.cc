#include "costmodel/einsum.h"

#include <set>

namespace moesim {

Expected<double> EinsumFlops(const std::string& spec, const DimSizes& sizes) {
  const size_t arrow = spec.find("->");
  if (arrow == std::string::npos) {
    return Status::Internal("einsum \"" + spec + "\": missing \"->\"");
  }
  const std::string inputs = spec.substr(0, arrow);
  const std::string output = spec.substr(arrow + 2);
  std::set<char> labels;
  for (char c : inputs) {
    if (c == ',') continue;
    if (c < 'a' || c > 'z') {
      return Status::Internal("einsum \"" + spec + "\": label '" + std::string(1, c) +
                              "' is not a lowercase letter");
    }
    labels.insert(c);
  }
  for (char c : output) {
    if (labels.count(c) == 0) {
      return Status::Internal("einsum \"" + spec + "\": output label '" + std::string(1, c) +
                              "' is not in any input");
    }
  }
  double points = 1;
  for (char c : labels) {
    auto it = sizes.find(c);
    if (it == sizes.end()) {
      return Status::Internal("einsum \"" + spec + "\": no size for label '" + std::string(1, c) +
                              "'");
    }
    points *= it->second;
  }
  return 2 * points;
}

double TensorDesc::Elements() const {
  double n = 1;
  for (const auto& d : dims) n *= static_cast<double>(d.size);
  return n;
}

namespace {
// Per dim: the axes that actually shard it.
std::vector<std::vector<MeshAxis>> Assign(const TensorDesc& t, const ShardingSpec& sharding) {
  std::vector<std::vector<MeshAxis>> out;
  std::set<MeshAxis> used;
  for (const auto& d : t.dims) {
    std::vector<MeshAxis> mine;
    for (MeshAxis a : sharding.AxesFor(t.tensor_class, d.logical)) {
      if (used.insert(a).second) mine.push_back(a);
    }
    out.push_back(std::move(mine));
  }
  return out;
}
}  // namespace

std::vector<int64_t> LocalShape(const TensorDesc& t, const ShardingSpec& sharding) {
  const auto assigned = Assign(t, sharding);
  std::vector<int64_t> shape;
  for (size_t i = 0; i < t.dims.size(); ++i) {
    int64_t shards = 1;
    for (MeshAxis a : assigned[i]) shards *= sharding.mesh[a];
    shape.push_back((t.dims[i].size + shards - 1) / shards);
  }
  return shape;
}

double LocalElements(const TensorDesc& t, const ShardingSpec& sharding) {
  double n = 1;
  for (int64_t s : LocalShape(t, sharding)) n *= static_cast<double>(s);
  return n;
}

std::vector<MeshAxis> AxesUsed(const TensorDesc& t, const ShardingSpec& sharding) {
  std::vector<MeshAxis> out;
  for (const auto& axes : Assign(t, sharding)) out.insert(out.end(), axes.begin(), axes.end());
  return out;
}

}  // namespace moesim
