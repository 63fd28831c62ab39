// einsum.h
//
// Ops of the cost model are written as textbook einsums over one-letter dimension labels, e.g.
// attention scores "bskrd,btkd->bkrst". A matmul-like einsum costs 2 FLOPs (multiply + add) per
// point of the iteration space, the product of the sizes of every distinct label. Sizes are
// doubles so that an expected count (tokens routed to one expert) need not be an integer.
//
// Tensors carry logical dimension names (embed, heads, experts, ...) for sharding; TensorDesc
// lists them in sharding-priority order (see proto/sharding_presets.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/scenario.h"

namespace moesim {

using DimSizes = std::map<char, double>;

// 2 x product of the sizes of all labels in `spec` ("ab,bc->ac"). Fails on a malformed spec,
// an output label absent from the inputs, or a label without a size.
Expected<double> EinsumFlops(const std::string& spec, const DimSizes& sizes);

struct Einsum {
  std::string name;  // "attn.q"
  std::string spec;  // "bsm,mkrd->bskrd"
};

struct TensorDim {
  std::string logical;  // sharding name: "embed", "experts", ...
  int64_t size;
};

struct TensorDesc {
  std::string name;  // "attn.wq"
  TensorClass tensor_class;
  std::vector<TensorDim> dims;  // sharding-priority order
  int64_t bytes_per_element;

  double Elements() const;
};

// The shape of `t` on one device under `sharding`: each dim divided by the product of the mesh
// axes its rule names, skipping an axis already used by an earlier dim of the same tensor.
// Non-divisible dims round up (the largest shard).
std::vector<int64_t> LocalShape(const TensorDesc& t, const ShardingSpec& sharding);
double LocalElements(const TensorDesc& t, const ShardingSpec& sharding);
// Mesh axes that shard `t` (union over its dims, as used by LocalShape).
std::vector<MeshAxis> AxesUsed(const TensorDesc& t, const ShardingSpec& sharding);

}  // namespace moesim
