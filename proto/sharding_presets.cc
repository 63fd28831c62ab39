#include "proto/sharding_presets.h"

namespace moesim {
namespace {

using A = MeshAxis;
using TC = TensorClass;

// Every preset shards the "latent" dim of weights (MLA's latent ranks, the input or output
// features of its down and up projections) like "embed": over the FSDP axes, never over the
// tensor-parallel ones (costmodel/mla.h).
void Set(ShardingSpec* s, TC c, const std::string& dim, std::vector<MeshAxis> axes) {
  s->rules[{c, dim}] = std::move(axes);
}

// Weights replicated; batch over Data (and Expert, whose devices are data-parallel replicas for
// dense layers); experts over Expert.
void DataParallel(ShardingSpec* s) {
  Set(s, TC::kDenseActivations, "batch", {A::kData, A::kExpert});
  Set(s, TC::kMoeWeights, "experts", {A::kExpert});
  Set(s, TC::kMoeActivations, "outer", {A::kData});
  Set(s, TC::kMoeActivations, "groups", {A::kExpert});
  Set(s, TC::kMoeActivations, "experts", {A::kExpert});
}

void Apple3d(ShardingSpec* s) {
  // Du et al. 2024, Table 1, verbatim.
  for (const char* d : {"heads", "kv_heads", "mlp", "vocab"}) {
    Set(s, TC::kDenseWeights, d, {A::kModel});
    Set(s, TC::kDenseActivations, d, {A::kModel});
  }
  Set(s, TC::kDenseWeights, "embed", {A::kExpert});  // Expert doubles as FSDP for dense layers
  Set(s, TC::kDenseWeights, "latent", {A::kExpert});
  Set(s, TC::kDenseActivations, "batch", {A::kData, A::kExpert});
  Set(s, TC::kDenseActivations, "embed", {A::kModel});
  Set(s, TC::kMoeWeights, "experts", {A::kExpert});
  Set(s, TC::kMoeWeights, "expert_mlp", {A::kModel});
  Set(s, TC::kMoeActivations, "outer", {A::kData});
  Set(s, TC::kMoeActivations, "groups", {A::kExpert});
  Set(s, TC::kMoeActivations, "experts", {A::kExpert});
  Set(s, TC::kMoeActivations, "embed", {A::kModel});
  Set(s, TC::kMoeActivations, "expert_mlp", {A::kModel});
}

// 2D (Data, Model) mesh: experts on Data; whatever devices are left over go to Model, which then
// shards every layer's heads and hidden dims (tensor parallelism the dense model never needed).
void TwoD(ShardingSpec* s) {
  for (const char* d : {"heads", "kv_heads", "mlp", "vocab"}) {
    Set(s, TC::kDenseWeights, d, {A::kModel});
    Set(s, TC::kDenseActivations, d, {A::kModel});
  }
  Set(s, TC::kDenseWeights, "embed", {A::kData});
  Set(s, TC::kDenseWeights, "latent", {A::kData});
  Set(s, TC::kDenseActivations, "batch", {A::kData});
  Set(s, TC::kDenseActivations, "embed", {A::kModel});
  Set(s, TC::kMoeWeights, "experts", {A::kData});
  Set(s, TC::kMoeWeights, "expert_mlp", {A::kModel});
  Set(s, TC::kMoeActivations, "groups", {A::kData});
  Set(s, TC::kMoeActivations, "experts", {A::kData});
  Set(s, TC::kMoeActivations, "embed", {A::kModel});
  Set(s, TC::kMoeActivations, "expert_mlp", {A::kModel});
}

void Megatron(ShardingSpec* s) {
  // Tensor parallel on Model (heads, FFN hidden, vocab), sequence parallel on Model for the
  // norm/residual regions (seq is listed after heads/mlp in every tensor, so it only takes Model
  // where neither is present), expert parallel on Expert, data parallel on Data x Expert.
  for (const char* d : {"heads", "kv_heads", "mlp", "vocab"}) {
    Set(s, TC::kDenseWeights, d, {A::kModel});
    Set(s, TC::kDenseActivations, d, {A::kModel});
  }
  Set(s, TC::kDenseActivations, "batch", {A::kData, A::kExpert});
  Set(s, TC::kDenseActivations, "seq", {A::kModel});
  Set(s, TC::kMoeWeights, "experts", {A::kExpert});
  Set(s, TC::kMoeWeights, "expert_mlp", {A::kModel});
  Set(s, TC::kMoeActivations, "outer", {A::kData});
  Set(s, TC::kMoeActivations, "groups", {A::kExpert});
  Set(s, TC::kMoeActivations, "experts", {A::kExpert});
  Set(s, TC::kMoeActivations, "expert_mlp", {A::kModel});
}

}  // namespace

void ExpandShardingPreset(const ModelSpec& model, ShardingSpec* spec) {
  spec->rules.clear();
  spec->padded_num_experts = 0;
  switch (spec->strategy) {
    case ShardingStrategy::kApple3d:
      Apple3d(spec);
      break;
    case ShardingStrategy::kNaive2d:
      TwoD(spec);
      break;
    case ShardingStrategy::kPadded2d: {
      TwoD(spec);
      const int64_t axis = spec->mesh[MeshAxis::kData];
      const int64_t e = model.moe.num_experts;
      if (e > 0) spec->padded_num_experts = (e + axis - 1) / axis * axis;
      break;
    }
    case ShardingStrategy::kMegatron:
      Megatron(spec);
      break;
    case ShardingStrategy::kFsdp:
      DataParallel(spec);
      Set(spec, TC::kDenseWeights, "embed", {A::kData, A::kExpert});
      Set(spec, TC::kDenseWeights, "latent", {A::kData, A::kExpert});
      Set(spec, TC::kMoeWeights, "embed", {A::kData});
      break;
    case ShardingStrategy::kZero1:
      DataParallel(spec);
      spec->shard_optimizer_over_data = true;
      break;
    case ShardingStrategy::kDataParallel:
      DataParallel(spec);
      break;
    case ShardingStrategy::kCustom:
      break;
  }
}

}  // namespace moesim
