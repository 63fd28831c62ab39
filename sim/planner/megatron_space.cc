#include "sim/planner/megatron_space.h"

#include <algorithm>

#include "proto/megatron_preset.h"
#include "sim/planner/budget.h"

namespace moesim {
namespace {

std::vector<int64_t> Divisors(int64_t n) {
  std::vector<int64_t> d;
  for (int64_t i = 1; i <= n; ++i) {
    if (n % i == 0) d.push_back(i);
  }
  return d;
}

}  // namespace

bool UnevenPipelineSplit(int64_t num_layers, int64_t ranks, int64_t chunks, int64_t* first,
                         int64_t* last) {
  if (ranks < 2 || chunks < 1) return false;
  int64_t best = -1;
  for (int64_t q = chunks; ranks == 2 || q * (ranks - 2) <= num_layers; q += chunks) {
    const int64_t rest = num_layers - q * (ranks - 2);
    // The last rank also runs the head, the loss and any MTP modules: it takes the smaller half.
    const int64_t l = rest / chunks / 2 * chunks;
    const int64_t f = rest - l;
    // Megatron-LM refuses an end rank without layers (TransformerConfig: "must be larger than 0").
    if (rest % chunks == 0 && f >= chunks && l >= chunks) {
      const int64_t busiest = std::max({ranks > 2 ? q : 0, f, l});
      if (best < 0 || busiest < best) {
        best = busiest;
        *first = f;
        *last = l;
      }
    }
    if (ranks == 2) break;
  }
  return best >= 0;
}

std::string BalancedPipelineLayout(int64_t num_layers, int64_t stages, int64_t mtp_layers) {
  const int64_t base = num_layers / stages, extra = num_layers % stages;
  std::string out = "E";
  for (int64_t i = 0; i < stages; ++i) {
    const int64_t n = base + (i >= 1 && i <= extra ? 1 : 0);
    if (n > 0) out += "t*" + std::to_string(n);
    if (i + 1 == stages && mtp_layers > 0) out += "m*" + std::to_string(mtp_layers);
    out += i + 1 < stages ? "|" : "L";
  }
  return out;
}

MegatronPoints EnumerateMegatronPoints(const Scenario& sc, const MegatronSpace& space,
                                       const std::vector<std::string>& base) {
  MegatronPoints out;
  const int64_t devices = sc.cluster.num_devices;
  const int64_t experts = sc.model.moe.num_experts;
  const int64_t layers = sc.model.num_layers;
  const int64_t seqs = sc.training.global_batch_tokens / sc.model.seq_len;
  std::vector<int64_t> pipelines = space.pipeline;
  if (pipelines.empty()) {
    for (int64_t p : Divisors(devices)) {
      if (p <= space.max_pipeline) pipelines.push_back(p);
    }
  }
  const std::vector<int64_t> tensors =
      space.tensor.empty() ? Divisors(std::max<int64_t>(sc.hardware.devices_per_host, 1))
                           : space.tensor;
  const std::vector<int64_t> eps = !space.expert.empty() ? space.expert
                                   : experts > 0         ? Divisors(experts)
                                                         : std::vector<int64_t>{1};
  for (int64_t pp : pipelines) {
    for (int64_t v : space.virtual_stages) {
      if (pp == 1 && v != 1) continue;
      if (v > 1 && layers < pp * v) {
        ++out.skipped;
        continue;
      }
      // Layer placements: the even split, or where the layers do not divide, the first/last
      // stage counts (when some exist) and the balanced layout string.
      struct Placement {
        int64_t first = -1, last = -1;
        std::string layout;
      };
      std::vector<Placement> placements(1);
      if (layers % (pp * v) != 0) {
        placements.clear();
        Placement fl;
        if (UnevenPipelineSplit(layers, pp, v, &fl.first, &fl.last)) placements.push_back(fl);
        Placement bal;
        bal.layout = BalancedPipelineLayout(layers, pp * v, sc.model.mtp_depth);
        placements.push_back(bal);
      }
      for (const Placement& place : placements) {
        for (int64_t tp : tensors) {
          for (int64_t cp : space.context) {
            for (int64_t ep : eps) {
              std::vector<int64_t> etps = {tp};
              if (space.expert_tensor_one && tp > 1 && experts > 0) etps.push_back(1);
              for (int64_t etp : etps) {
                MegatronSizes s;
                s.tensor = tp;
                s.context = cp;
                s.pipeline = pp;
                s.expert = ep;
                s.expert_tensor = etp;
                if (!MegatronMeshAxes(s, devices, experts).ok()) {
                  ++out.skipped;
                  continue;
                }
                const int64_t dp = devices / (tp * cp * pp);
                if (seqs % dp != 0) {
                  ++out.skipped;
                  continue;
                }
                const int64_t local = seqs / dp;
                for (bool fsdp : space.fsdp) {
                  for (int64_t mb : Divisors(local)) {
                    if (mb > space.max_micro_batch) break;
                    if (v > 1 && (local / mb) % pp != 0) {
                      ++out.skipped;
                      continue;
                    }
                    for (const std::string& rc : space.recompute) {
                      auto p = base;
                      p.push_back("sharding.megatron.tensor=" + std::to_string(tp));
                      p.push_back("sharding.megatron.context=" + std::to_string(cp));
                      p.push_back("sharding.megatron.pipeline=" + std::to_string(pp));
                      p.push_back("sharding.megatron.expert=" + std::to_string(ep));
                      p.push_back("sharding.megatron.expert_tensor=" + std::to_string(etp));
                      p.push_back("sharding.megatron.distributed_optimizer=true");
                      p.push_back(std::string("sharding.megatron.fsdp=") +
                                  (fsdp ? "true" : "false"));
                      p.push_back("training.virtual_stages=" + std::to_string(v));
                      p.push_back(std::string("training.pipeline_schedule=") +
                                  (v > 1 ? "INTERLEAVED" : "ONE_F_ONE_B"));
                      p.push_back("training.pipeline_layout=" + place.layout);
                      // An empty value clears the field: the base's own counts do not leak in.
                      p.push_back("training.first_stage_layers=" +
                                  (place.first >= 0 ? std::to_string(place.first) : ""));
                      p.push_back("training.last_stage_layers=" +
                                  (place.last >= 0 ? std::to_string(place.last) : ""));
                      p.push_back("training.micro_batch_size=" + std::to_string(mb));
                      p.push_back("training.recompute=" + rc);
                      out.points.push_back(std::move(p));
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  return out;
}

std::string DescribeMegatronPoint(const std::vector<std::string>& o) {
  const std::string tp = OverrideValue(o, "sharding.megatron.tensor");
  const std::string cp = OverrideValue(o, "sharding.megatron.context");
  const std::string pp = OverrideValue(o, "sharding.megatron.pipeline");
  std::string out =
      "TP" + tp + " CP" + cp + " PP" + pp + " VPP" + OverrideValue(o, "training.virtual_stages") +
      " EP" + OverrideValue(o, "sharding.megatron.expert") + " ETP" +
      OverrideValue(o, "sharding.megatron.expert_tensor") + " mb" +
      OverrideValue(o, "training.micro_batch_size") + " " + OverrideValue(o, "training.recompute");
  if (OverrideValue(o, "sharding.megatron.fsdp") == "true") out += " fsdp";
  const std::string first = OverrideValue(o, "training.first_stage_layers");
  if (!first.empty())
    out += " first" + first + "/last" + OverrideValue(o, "training.last_stage_layers");
  if (!OverrideValue(o, "training.pipeline_layout").empty()) out += " layout";
  return out;
}

}  // namespace moesim
