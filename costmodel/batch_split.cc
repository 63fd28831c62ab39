// BatchSplitOrder (batch_split.h): the interleaving of MaxText's batch-split schedule.
#include "costmodel/batch_split.h"

#include <array>
#include <map>
#include <utility>

namespace moesim {
namespace {

using LayerPart = std::pair<int32_t, int32_t>;  // (layer, part)
using Group = std::vector<LayerPart>;

// The phases of one layer in a pass: parts in the pass's order, grouped at the all-to-alls
// (a compute part and the collective after it; the last part alone).
std::array<Group, 3> LayerGroups(int32_t layer, bool backward) {
  if (backward) return {Group{{layer, 4}, {layer, 3}}, {{layer, 2}, {layer, 1}}, {{layer, 0}}};
  return {Group{{layer, 0}, {layer, 1}}, {{layer, 2}, {layer, 3}}, {{layer, 4}}};
}

// Groups of a run of layers in one pass, each layer's last group merged with the next's first.
std::vector<Group> RunGroups(std::span<const int32_t> layers, bool backward) {
  std::vector<Group> groups;
  for (size_t i = 0; i < layers.size(); ++i) {
    auto g = LayerGroups(layers[i], backward);
    if (i > 0) {
      groups.back().insert(groups.back().end(), g[0].begin(), g[0].end());
    } else {
      groups.push_back(g[0]);
    }
    groups.push_back(g[1]);
    groups.push_back(g[2]);
  }
  return groups;
}

void Emit(const std::vector<Group>& groups, int32_t factor, bool recompute,
          std::vector<SplitStep>* out) {
  for (const Group& g : groups) {
    for (int32_t s = 0; s < factor; ++s) {
      for (const auto& [layer, part] : g) out->push_back({layer, s, part, recompute});
    }
  }
}

}  // namespace

std::vector<SplitStep> BatchSplitOrder(std::span<const int32_t> layers, int32_t factor,
                                       bool backward, bool full_recompute) {
  std::vector<SplitStep> out;
  if (backward && full_recompute) {
    for (const int32_t l : layers) {
      const std::array<int32_t, 1> one = {l};
      Emit(RunGroups(one, false), factor, true, &out);
      Emit(RunGroups(one, true), factor, false, &out);
    }
  } else {
    Emit(RunGroups(layers, backward), factor, false, &out);
  }
  std::map<int32_t, size_t> first, last;
  for (size_t i = 0; i < out.size(); ++i) {
    first.try_emplace(out[i].layer, i);
    last[out[i].layer] = i;
  }
  for (const auto& [l, i] : first) out[i].opens = true;
  for (const auto& [l, i] : last) out[i].closes = true;
  return out;
}

}  // namespace moesim
