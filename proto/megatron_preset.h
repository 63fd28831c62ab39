// megatron_preset.h
//
// sharding.megatron (moesim.proto MegatronParallel): Megatron-LM's own parallel sizes, expanded
// into the named mesh form (sharding.mesh.axes with roles, sharding.moe_layers) that
// proto/named_mesh.h validates and turns into sharding rules.
//
// Megatron-Core numbers the ranks of one pipeline stage twice (megatron/core/parallel_state.py,
// initialize_model_parallel, RankGenerator with order "tp-cp-ep-dp-pp", core_r0.14.0): dense
// layers as tp (innermost, fastest varying) x cp x dp, MoE layers as etp x ep x edp. Both orders
// split the same tp x cp x dp ranks at cumulative sizes (breakpoints) tp, tp x cp and etp,
// etp x ep; the named mesh's axes are the intervals between consecutive breakpoints (the common
// refinement), each with its dense role (TENSOR, CONTEXT, DATA or FSDP) and its MoE role (expert
// tensor, expert, expert data). When the breakpoints do not nest (one does not divide the next)
// an interval would hold part of a rank group of each order: no mesh of axes can say that, and the
// expansion refuses it. Pipeline is one outermost axis "pp".
//
// Axis names: the dense part ("tp", "cp", "dp"), with the MoE part appended where it is not the
// dense part's own counterpart (tp's is etp, dp's edp): "tp_ep" is tensor parallel for dense
// layers and expert parallel for MoE layers, "dp_ep" data parallel and expert parallel. A dense
// model's axes are "tp", "cp", "dp". No axis is marked dcn: placement lays them out innermost
// first either way (named_mesh.h).
// Units: counts of devices. Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace moesim {

namespace pb {
class MegatronParallel;
class Sharding;
}  // namespace pb
class Checker;

// The sizes as written; 0 = 1 (expert_tensor 0 = tensor).
struct MegatronSizes {
  int64_t tensor = 0, context = 0, pipeline = 0, expert = 0, expert_tensor = 0;
  bool distributed_optimizer = false;
  bool fsdp = false;
};

enum class MegatronDenseRole { kTensor, kContext, kData, kPipeline };
enum class MegatronMoeRole { kExpertTensor, kExpert, kExpertData, kPipeline };

struct MegatronAxis {
  std::string name;
  int64_t size = 1;
  MegatronDenseRole dense = MegatronDenseRole::kData;
  MegatronMoeRole moe = MegatronMoeRole::kExpertData;
};

// The named mesh of `sizes` on `num_devices` devices, outermost first (pp, then the intervals
// from the outermost in), axes of size 1 left out (a single device gives one "dp" of size 1).
// `num_experts` 0 = a dense model (expert must then be 1). Errors (kInvalidInput): a size < 0; a
// size that does not divide what it splits; breakpoints that do not nest; expert not dividing
// num_experts. *field (when not null) is set to the field at fault, e.g.
// "sharding.megatron.expert", and the message starts with it.
Expected<std::vector<MegatronAxis>> MegatronMeshAxes(const MegatronSizes& sizes,
                                                     int64_t num_devices, int64_t num_experts,
                                                     std::string* field = nullptr);

// Data-parallel size: num_devices / (tensor x context x pipeline) (1 when it does not divide).
int64_t MegatronDataParallel(const MegatronSizes& sizes, int64_t num_devices);

MegatronSizes MegatronSizesOf(const pb::MegatronParallel& m);

// Internal to proto/ (validation): `in` with sharding.megatron replaced by what it expands to:
// mesh.axes (roles DATA, or FSDP with fsdp: true, TENSOR, CONTEXT, PIPELINE), moe_layers.expert
// and expert_tensor (the axes inside the EP and ETP intervals), shard_optimizer_over_data =
// distributed_optimizer. Reports (false) a sharding.mesh, strategy, rules, moe_layers or
// shard_optimizer_over_data written beside it, and what MegatronMeshAxes refuses.
bool ExpandMegatronSharding(const pb::Sharding& in, int64_t num_devices, int64_t num_experts,
                            Checker& c, pb::Sharding* out);

}  // namespace moesim
