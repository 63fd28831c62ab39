// checkpoint_layout.h: the parameter layout the checkpoint harness loads into and
// checkpoint_seed saves from (a dense tensor, a norm gain and an expert tensor, as a model's
// ParamSet holds them), and the single-input form of a checkpoint directory:
//   meta.json's bytes, the line kRankFileMarker, rank-00000.bin's bytes.
#pragma once

#include <cstdlib>
#include <string_view>

#include "real/kernels/cpu_device.h"
#include "real/layers/params.h"

namespace moesim::fuzz {

inline constexpr std::string_view kRankFileMarker = "\n--- rank-00000.bin ---\n";

template <typename T>
struct CheckpointParams {
  real::CpuDevice<T> dev;
  real::ParamSet<T> params;

  CheckpointParams() {
    real::ParamEntry embed;
    embed.name = "embed";
    embed.count = 48;
    params.Add(embed);
    real::ParamEntry norm;
    norm.name = "layers.0.norm";
    norm.count = 8;
    norm.decay = false;
    norm.init = real::ParamInit::kOnes;
    params.Add(norm);
    real::ParamEntry w1;
    w1.name = "layers.0.moe.w1";
    w1.kind = real::ParamKind::kExpert;
    w1.count = 2 * 24;
    w1.num_local_experts = 2;
    params.Add(w1);
    if (!params.Allocate(&dev).ok()) std::abort();
    params.Initialize(&dev, 7);
  }
};

}  // namespace moesim::fuzz
