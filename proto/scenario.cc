#include "proto/scenario.h"

#include <algorithm>

namespace moesim {

bool ModelSpec::IsMoeLayer(int64_t layer) const {
  if (!is_moe()) return false;
  switch (moe.placement) {
    case MoePlacement::kEveryK:
      return (layer + 1) % moe.placement_k == 0;
    case MoePlacement::kLastK:
      return layer >= num_layers - moe.placement_k;
    case MoePlacement::kFirstKDense:
      return layer >= moe.placement_k;
  }
  return false;
}

int64_t ModelSpec::MoeLayerIndex(int64_t layer) const {
  switch (moe.placement) {
    case MoePlacement::kEveryK:
      return (layer + 1) / moe.placement_k - 1;
    case MoePlacement::kLastK:
      return layer - (num_layers - moe.placement_k);
    case MoePlacement::kFirstKDense:
      return layer - moe.placement_k;
  }
  return 0;
}

int64_t ModelSpec::NumMoeLayers() const {
  int64_t n = 0;
  for (int64_t i = 0; i < num_layers; ++i) n += IsMoeLayer(i) ? 1 : 0;
  return n;
}

namespace {
constexpr const char* kMemoryKernelNames[kNumMemoryKernels] = {
    "copy", "axpy", "swiglu", "rmsnorm", "softmax", "adamw", "fp8_cast"};
}  // namespace

const char* MemoryKernelName(MemoryKernel k) { return kMemoryKernelNames[static_cast<int>(k)]; }

bool ParseMemoryKernel(const std::string& name, MemoryKernel* out) {
  for (int i = 0; i < kNumMemoryKernels; ++i) {
    if (name == kMemoryKernelNames[i]) {
      *out = static_cast<MemoryKernel>(i);
      return true;
    }
  }
  return false;
}

std::string MemoryKernelChoices() {
  std::string out;
  for (const char* n : kMemoryKernelNames) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

const char* MeshAxisName(MeshAxis axis) {
  switch (axis) {
    case MeshAxis::kData:
      return "data";
    case MeshAxis::kExpert:
      return "expert";
    case MeshAxis::kModel:
      return "model";
    case MeshAxis::kPipeline:
      return "pipeline";
  }
  static const char* const kOther[] = {"axis4", "axis5", "axis6", "axis7"};
  const int i = static_cast<int>(axis);
  return i >= 4 && i < 8 ? kOther[i - 4] : "?";
}

std::string Mesh::Key() const {
  std::string out;
  for (MeshAxis a : placement_order) {
    out += (out.empty() ? "" : ",") + Name(a) + "=" + std::to_string((*this)[a]);
  }
  return out;
}

const char* TensorClassName(TensorClass c) {
  switch (c) {
    case TensorClass::kDenseWeights:
      return "DENSE_WEIGHTS";
    case TensorClass::kDenseActivations:
      return "DENSE_ACTIVATIONS";
    case TensorClass::kMoeWeights:
      return "MOE_WEIGHTS";
    case TensorClass::kMoeActivations:
      return "MOE_ACTIVATIONS";
  }
  return "?";
}

const char* ShardingStrategyName(ShardingStrategy s) {
  switch (s) {
    case ShardingStrategy::kApple3d:
      return "APPLE_3D";
    case ShardingStrategy::kNaive2d:
      return "NAIVE_2D";
    case ShardingStrategy::kPadded2d:
      return "PADDED_2D";
    case ShardingStrategy::kMegatron:
      return "MEGATRON";
    case ShardingStrategy::kFsdp:
      return "FSDP";
    case ShardingStrategy::kZero1:
      return "ZERO1";
    case ShardingStrategy::kDataParallel:
      return "DATA_PARALLEL";
    case ShardingStrategy::kCustom:
      return "CUSTOM";
  }
  return "?";
}

const std::vector<std::string>& LogicalDimNames() {
  static const std::vector<std::string> names = {
      "batch",   "seq",        "embed",    "heads",  "kv_heads", "head_dim",       "mlp",   "vocab",
      "experts", "expert_mlp", "capacity", "groups", "outer",    "router_experts", "latent"};
  return names;
}

const std::vector<MeshAxis>& ShardingSpec::AxesFor(TensorClass c, const std::string& dim) const {
  static const std::vector<MeshAxis> kNone;
  auto it = rules.find({c, dim});
  return it == rules.end() ? kNone : it->second;
}

int64_t ShardingSpec::ShardsFor(TensorClass c, const std::string& dim) const {
  int64_t n = 1;
  for (MeshAxis a : AxesFor(c, dim)) n *= mesh[a];
  return n;
}

std::vector<MeshAxis> ShardingSpec::ContextAxes() const {
  std::vector<MeshAxis> out;
  auto in = [](const std::vector<MeshAxis>& v, MeshAxis a) {
    return std::find(v.begin(), v.end(), a) != v.end();
  };
  const auto& batch = AxesFor(TensorClass::kDenseActivations, "batch");
  const auto& heads = AxesFor(TensorClass::kDenseWeights, "heads");
  const auto& mlp = AxesFor(TensorClass::kDenseWeights, "mlp");
  for (MeshAxis a : AxesFor(TensorClass::kDenseActivations, "seq")) {
    if (mesh[a] > 1 && !in(batch, a) && !in(heads, a) && !in(mlp, a)) out.push_back(a);
  }
  return out;
}

int64_t ShardingSpec::ContextShards() const {
  int64_t n = 1;
  for (MeshAxis a : ContextAxes()) n *= mesh[a];
  return n;
}

}  // namespace moesim
