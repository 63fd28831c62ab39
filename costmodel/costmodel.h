// costmodel.h
//
// The cost model: pure functions from a validated Scenario to parameters, FLOPs and memory.
// Each layer is a short list of einsums over named dimensions (layers.h); shardings map those
// dimensions to mesh axes (proto/sharding_presets.h); parameters (model_cost.h), FLOPs per token
// (model_cost.h) and per-device memory (memory.h) are all derived from that one description.
// Knows nothing of events, networks or time. Thread safety: pure functions.
#pragma once

#include "costmodel/einsum.h"
#include "costmodel/layers.h"
#include "costmodel/memory.h"
#include "costmodel/model_cost.h"
