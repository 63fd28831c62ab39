// named_mesh.h (internal to proto/)
//
// The named form of sharding.mesh (moesim.proto MeshAxis, MoeLayers): validates the axes, stores
// them in a Mesh and turns their roles into the ShardingSpec's rules, so that StepPlan derives
// its per-layer-kind axis vectors (batch, tp, sp, fsdp, grad, moe_batch, ep, moe_tp, moe_fsdp,
// moe_grad) from them as it does for the presets.
//
// Storage (scenario.h Mesh): the PIPELINE axis always sits at index MeshAxis::kPipeline (3), a
// size-1 placeholder "_pipeline" when the mesh has none; the other axes fill indices 0, 1, 2, 4,
// ... in the order written, with size-1 placeholders "_0", "_1", "_2" where fewer than three are
// written. Placeholders (names starting with '_', which written names cannot) have size 1, never
// form a group, and are left out of reports. placement_order lists the placeholders first, then
// the written axes in the order written (outermost first).
#pragma once

#include <string>

#include "proto/checker.h"
#include "proto/moesim.pb.h"
#include "proto/scenario.h"

namespace moesim {

// True for the legacy form's mesh: axes data, expert, model, pipeline placed pipeline-outermost.
bool IsLegacyMesh(const Mesh& mesh);

// True for the placeholder axes described above.
bool IsPlaceholderAxis(const Mesh& mesh, MeshAxis a);

// The field path of axis `a` of a named mesh: "sharding.mesh.axes[2]" (by its written position).
std::string NamedAxisPath(const Mesh& mesh, MeshAxis a);

// Reads in.mesh().axes into *mesh (REQUIRES in.mesh().axes_size() > 0), reporting every problem:
// the legacy fields also set, a strategy or rules also given, more than limits::kMaxMeshAxes axes,
// a missing, malformed or repeated name, a size < 1, a product past limits::kMaxDevices or other
// than `num_devices`, a missing role, two PIPELINE axes,
// a dcn axis inside a non-dcn one.
void ValidateNamedMesh(const pb::Sharding& in, int64_t num_devices, Checker& c, Mesh* mesh);

// The rules of a named mesh (after ValidateNamedMesh succeeded): dense layers by the roles, MoE
// layers by sharding.moe_layers (names checked here: known, not the pipeline axis, expert and
// expert_tensor disjoint). Replaces spec->rules.
void ApplyNamedMeshRules(const pb::Sharding& in, Checker& c, ShardingSpec* spec);

}  // namespace moesim
