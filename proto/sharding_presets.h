// sharding_presets.h
//
// Strategies are shardings: each preset expands to written-out rules (tensor class, logical dim)
// -> mesh axes, in the notation of Du et al. 2024, Table 1. A scenario's own rules are applied on
// top. Tensors list their dims in sharding-priority order: when two dims of one tensor ask for
// the same mesh axis, the earlier dim gets it (GSPMD shards a tensor over an axis only once),
// which is how [O,G,E,C,M] ends up sharded (Data, Expert, None, None, Model) while
// [O,E,G,C,M] is (Data, Expert, None, None, Model) on E.
#pragma once

#include "common/status.h"
#include "proto/scenario.h"

namespace moesim {

// Fills spec->rules, spec->shard_optimizer_over_data and spec->padded_num_experts for
// spec->strategy. REQUIRES: spec->mesh set; model validated.
void ExpandShardingPreset(const ModelSpec& model, ShardingSpec* spec);

}  // namespace moesim
