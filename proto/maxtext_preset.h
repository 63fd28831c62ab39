// maxtext_preset.h
//
// sharding.maxtext (moesim.proto MaxTextMesh): MaxText's own mesh parameters, ici_*_parallelism
// and dcn_*_parallelism, expanded into the named mesh form (sharding.mesh.axes with roles and
// dcn flags, and sharding.moe_layers), and a resolved scenario written back as MaxText config
// overrides, which ParseMaxTextOverrides reads again.
//
// Source: AI-Hypercomputer/maxtext @e591f30c, src/maxtext/configs/base.yml ("# Parallelism":
// mesh_axes, logical_axis_rules, the dcn_* / ici_* keys and their defaults) and
// src/maxtext/utils/maxtext_utils.py create_device_mesh with max_utils.fill_unspecified_mesh_axes
// (-1 fills; the ici_* axes multiply to the devices of one slice, the dcn_* axes to the slices).
//
// Invariants of the expansion:
//  - Axes in MaxText's mesh order data, stage, fsdp, fsdp_transpose, sequence, context, tensor,
//    expert (base.yml mesh_axes, with sequence where MaxText had it before deprecating it), dcn_*
//    axes first (outermost, dcn: true), then the ici_* ones; axes of size 1 are left out (a mesh
//    of one device keeps a "data" axis of size 1).
//  - Names: the MaxText axis name for ici ("fsdp"), "dcn_" + it for dcn ("dcn_data").
//  - Roles: data DATA, stage PIPELINE, fsdp and fsdp_transpose FSDP, sequence and context
//    CONTEXT, tensor TENSOR, expert FSDP for dense layers (MaxText's logical_axis_rules shard the
//    batch ('activation_batch') and the dense weights' embed dimension ('embed') over 'expert':
//    ZeRO-3 over it) and, for MoE layers, the expert axis (sharding.moe_layers.expert = the expert
//    axes, dcn first; expert_tensor = the tensor axes, as 'mlp_moe' shards over 'tensor').
//  - A "fast domain" (what MaxText calls a slice) is a TPU slice (tpu-v5e:16x16*4 has 4), a GPU
//    node or NVL72 rack (dgx-h100:32 has 32, gb200-nvl72:2 has 2); one for other clusters.
// Units: sizes in devices; per_device_batch_size in sequences; max_target_length in tokens.
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/checker.h"
#include "proto/moesim.pb.h"
#include "proto/scenario.h"
#include "proto/scenario_loader.h"

namespace moesim {

// Fast domains (MaxText's slices) of the cluster named `topology` (see above).
int64_t MaxTextSlices(const std::string& topology);

// Expands in.maxtext() into *out: a copy of `in` with the named mesh and moe_layers written and
// maxtext cleared. Reports (and returns false on) a mesh, strategy, rules or moe_layers also
// given, a value other than -1 or >= 1, two -1 among the ici_* (or the dcn_*) keys, a product
// other than the devices of a slice (ici_*) or the number of slices (dcn_*), and pipeline on
// both dcn and ici (moesim has one pipeline axis). REQUIRES in.has_maxtext().
bool ExpandMaxTextMesh(const pb::Sharding& in, const std::string& topology, int64_t num_devices,
                       Checker& c, pb::Sharding* out);

// A scenario whose mesh is in MaxText's form (every axis named as ExpandMaxTextMesh names them)
// as MaxText config overrides, space-separated: every ici_* / dcn_* key of size > 1 in MaxText's
// order (ici_fsdp_parallelism and dcn_data_parallelism always, since their default is -1),
// per_device_batch_size (sequences per device per micro-step: global sequences / (devices x
// gradient accumulation steps); without pipeline), gradient_accumulation_steps when > 1 (or
// num_pipeline_microbatches with a pipeline), max_target_length (model.seq_len) and remat_policy
// (full for FULL, minimal for SELECTIVE, minimal_with_context, which saves every named tensor,
// for NONE), and use_batch_split_schedule=true with batch_split_factor when
// training.batch_split_factor > 1. kInvalidInput for another mesh.
Expected<std::string> MaxTextOverrides(const Scenario& scenario);

// MaxText overrides read back ("KEY=VALUE" separated by spaces; the keys above): the mesh keys,
// max_target_length and remat_policy as --set assignments, the batch keys kept apart (they
// need the device count and the mesh to become --set assignments: MaxTextBatchSets).
struct MaxTextArgs {
  std::vector<std::string> sets;  // "sharding.maxtext.ici_fsdp_parallelism=64", ...
  std::optional<double> per_device_batch_size;
  std::optional<int64_t> gradient_accumulation_steps;
  std::optional<int64_t> num_pipeline_microbatches;
};
// use_batch_split_schedule=true sets training.batch_split_factor to batch_split_factor (0, off,
// for a factor of 1), =false sets it to 0; batch_split_factor alone changes nothing (MaxText
// reads it only with the schedule on: maxtext@e591f30c configs/types.py).
// kInvalidInput names the key: not KEY=VALUE, a key moesim does not read (MaxText's other mesh
// keys are refused unless 1), a value that does not parse, a remat_policy with no counterpart.
Expected<MaxTextArgs> ParseMaxTextOverrides(const std::string& text);

// training.global_batch_tokens and training.micro_batch_size for args' batch keys on `s` (the
// scenario with args.sets applied): global sequences int(devices x per_device_batch_size) x
// gradient_accumulation_steps, as MaxText counts them. Empty when no batch key was given.
Expected<std::vector<std::string>> MaxTextBatchSets(const MaxTextArgs& args, const Scenario& s);

// Loads options' scenario with the MaxText overrides `maxtext` applied after options.overrides;
// *sets (optional) receives every --set the overrides became, in order.
Expected<Scenario> LoadScenarioWithMaxText(const LoadOptions& options, const std::string& maxtext,
                                           std::vector<std::string>* sets = nullptr);

}  // namespace moesim
