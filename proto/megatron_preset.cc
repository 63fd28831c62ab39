#include "proto/megatron_preset.h"

#include <algorithm>

#include "proto/checker.h"
#include "proto/moesim.pb.h"

namespace moesim {
namespace {

const char* DenseName(MegatronDenseRole r) {
  switch (r) {
    case MegatronDenseRole::kTensor:
      return "tp";
    case MegatronDenseRole::kContext:
      return "cp";
    case MegatronDenseRole::kData:
      return "dp";
    case MegatronDenseRole::kPipeline:
      break;
  }
  return "pp";
}

const char* MoeName(MegatronMoeRole r) {
  switch (r) {
    case MegatronMoeRole::kExpertTensor:
      return "etp";
    case MegatronMoeRole::kExpert:
      return "ep";
    case MegatronMoeRole::kExpertData:
      return "edp";
    case MegatronMoeRole::kPipeline:
      break;
  }
  return "pp";
}

int64_t Or1(int64_t v) { return v > 0 ? v : 1; }

}  // namespace

int64_t MegatronDataParallel(const MegatronSizes& s, int64_t num_devices) {
  const int64_t model = Or1(s.tensor) * Or1(s.context) * Or1(s.pipeline);
  return num_devices > 0 && num_devices % model == 0 ? num_devices / model : 1;
}

Expected<std::vector<MegatronAxis>> MegatronMeshAxes(const MegatronSizes& s, int64_t num_devices,
                                                     int64_t num_experts, std::string* field) {
  auto fail = [field](const std::string& f, const std::string& what) -> Status {
    if (field != nullptr) *field = f;
    return Status::InvalidInput(f + what);
  };
  if (num_devices < 1) {
    return fail("sharding.megatron", ": the cluster has no devices to lay out");
  }
  const std::pair<const char*, int64_t> given[] = {{"tensor", s.tensor},
                                                   {"context", s.context},
                                                   {"pipeline", s.pipeline},
                                                   {"expert", s.expert},
                                                   {"expert_tensor", s.expert_tensor}};
  for (const auto& [name, v] : given) {
    if (v < 0) {
      return fail(std::string("sharding.megatron.") + name,
                  "=" + std::to_string(v) + " must be >= 1 (0 = 1)");
    }
    // Each size within the device count keeps every product below of at most three of them far
    // inside int64 (limits::kMaxDevices is 2^17).
    if (v > num_devices) {
      return fail(std::string("sharding.megatron.") + name,
                  "=" + std::to_string(v) + " exceeds the " + std::to_string(num_devices) +
                      " devices of the cluster");
    }
  }
  const int64_t tp = Or1(s.tensor), cp = Or1(s.context), pp = Or1(s.pipeline);
  const int64_t ep = Or1(s.expert);
  const int64_t etp = s.expert_tensor > 0 ? s.expert_tensor : tp;
  const bool moe = num_experts > 0;
  if (num_devices % pp != 0) {
    return fail("sharding.megatron.pipeline", "=" + std::to_string(pp) + " does not divide the " +
                                                  std::to_string(num_devices) + " devices");
  }
  const int64_t ranks = num_devices / pp;  // one pipeline stage's ranks
  if (ranks % (tp * cp) != 0) {
    return fail(cp > 1 ? "sharding.megatron.context" : "sharding.megatron.tensor",
                ": tensor x context = " + std::to_string(tp) + " x " + std::to_string(cp) +
                    " does not divide the " + std::to_string(ranks) +
                    " ranks of a pipeline stage (devices / pipeline)");
  }
  if (!moe && ep > 1) {
    return fail("sharding.megatron.expert",
                "=" + std::to_string(ep) + " needs an MoE model (model.moe.num_experts > 0)");
  }
  if (moe && num_experts % ep != 0) {
    return fail("sharding.megatron.expert",
                "=" + std::to_string(ep) +
                    " does not divide model.moe.num_experts=" + std::to_string(num_experts));
  }
  if (moe && ranks % (etp * ep) != 0) {
    return fail(s.expert_tensor > 0 && ranks % ep == 0 ? "sharding.megatron.expert_tensor"
                                                       : "sharding.megatron.expert",
                ": expert_tensor x expert = " + std::to_string(etp) + " x " + std::to_string(ep) +
                    " does not divide the " + std::to_string(ranks) +
                    " ranks of a pipeline stage (devices / pipeline)");
  }
  // Breakpoints: cumulative sizes from the innermost rank out, with the segment each closes.
  std::vector<int64_t> cuts = {tp, tp * cp, ranks};
  if (moe) {
    cuts.push_back(etp);
    cuts.push_back(etp * ep);
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  for (size_t i = 1; i < cuts.size(); ++i) {
    if (cuts[i] % cuts[i - 1] == 0) continue;
    // Dense cuts nest by construction (tp | tp x cp | ranks): an MoE cut is at fault, the
    // expert_tensor one when it was written and does not nest with them by itself.
    bool etp_nests = true;
    for (int64_t d : {tp, tp * cp, ranks}) etp_nests = etp_nests && (d % etp == 0 || etp % d == 0);
    const bool etp_at_fault = s.expert_tensor > 0 && !etp_nests;
    return fail(etp_at_fault ? "sharding.megatron.expert_tensor" : "sharding.megatron.expert",
                ": the MoE layers' ranks (expert_tensor " + std::to_string(etp) + " innermost, " +
                    "then expert " + std::to_string(ep) + ") do not nest with the dense layers' " +
                    "(tensor " + std::to_string(tp) + ", then context " + std::to_string(cp) +
                    ", then data): group boundaries at " + std::to_string(cuts[i - 1]) + " and " +
                    std::to_string(cuts[i]) +
                    " ranks, one not dividing the other, cannot both be mesh axes");
  }
  // Intervals, innermost first.
  std::vector<MegatronAxis> inner;
  int64_t lo = 1;
  for (int64_t hi : cuts) {
    if (hi == lo) continue;
    MegatronAxis a;
    a.size = hi / lo;
    a.dense = hi <= tp        ? MegatronDenseRole::kTensor
              : hi <= tp * cp ? MegatronDenseRole::kContext
                              : MegatronDenseRole::kData;
    a.moe = hi <= etp        ? MegatronMoeRole::kExpertTensor
            : hi <= etp * ep ? MegatronMoeRole::kExpert
                             : MegatronMoeRole::kExpertData;
    a.name = DenseName(a.dense);
    const bool counterpart =
        (a.dense == MegatronDenseRole::kTensor && a.moe == MegatronMoeRole::kExpertTensor) ||
        (a.dense == MegatronDenseRole::kData && a.moe == MegatronMoeRole::kExpertData);
    if (moe && !counterpart) a.name += std::string("_") + MoeName(a.moe);
    inner.push_back(std::move(a));
    lo = hi;
  }
  std::vector<MegatronAxis> out;
  if (pp > 1) {
    out.push_back({"pp", pp, MegatronDenseRole::kPipeline, MegatronMoeRole::kPipeline});
  }
  out.insert(out.end(), inner.rbegin(), inner.rend());
  if (out.empty()) out.push_back({"dp", 1, MegatronDenseRole::kData, MegatronMoeRole::kExpertData});
  return out;
}

MegatronSizes MegatronSizesOf(const pb::MegatronParallel& m) {
  MegatronSizes s;
  s.tensor = m.tensor();
  s.context = m.context();
  s.pipeline = m.pipeline();
  s.expert = m.expert();
  s.expert_tensor = m.expert_tensor();
  s.distributed_optimizer = m.distributed_optimizer();
  s.fsdp = m.fsdp();
  return s;
}

bool ExpandMegatronSharding(const pb::Sharding& in, int64_t num_devices, int64_t num_experts,
                            Checker& c, pb::Sharding* out) {
  const size_t before = c.count();
  const std::string why =
      " and sharding.megatron both describe the parallelism: give one (sharding.megatron expands "
      "into the named mesh itself)";
  const pb::Mesh& mesh = in.mesh();
  if (mesh.axes_size() > 0 || mesh.data() != 0 || mesh.expert() != 0 || mesh.model() != 0 ||
      mesh.pipeline() != 0) {
    c.Fail("sharding.mesh", "sharding.mesh" + why);
  }
  if (in.strategy() != pb::Sharding::STRATEGY_UNSPECIFIED) {
    c.Fail("sharding.strategy", "sharding.strategy" + why);
  }
  if (in.has_maxtext()) c.Fail("sharding.maxtext", "sharding.maxtext" + why);
  if (in.rules_size() > 0) c.Fail("sharding.rules[0]", "sharding.rules" + why);
  if (in.has_moe_layers()) c.Fail("sharding.moe_layers", "sharding.moe_layers" + why);
  if (in.has_shard_optimizer_over_data()) {
    c.Fail("sharding.shard_optimizer_over_data",
           "sharding.shard_optimizer_over_data and sharding.megatron both say how the optimizer "
           "state is sharded: use sharding.megatron.distributed_optimizer");
  }
  if (c.count() > before) return false;
  std::string field;
  auto axes = MegatronMeshAxes(MegatronSizesOf(in.megatron()), num_devices, num_experts, &field);
  if (!axes.ok()) {
    c.Fail(field, axes.status().message());
    return false;
  }
  out->Clear();
  pb::MoeLayers* moe = out->mutable_moe_layers();
  for (const MegatronAxis& a : *axes) {
    pb::MeshAxis* m = out->mutable_mesh()->add_axes();
    m->set_name(a.name);
    m->set_size(a.size);
    switch (a.dense) {
      case MegatronDenseRole::kTensor:
        m->set_role(pb::MeshAxis::TENSOR);
        break;
      case MegatronDenseRole::kContext:
        m->set_role(pb::MeshAxis::CONTEXT);
        break;
      case MegatronDenseRole::kData:
        m->set_role(in.megatron().fsdp() ? pb::MeshAxis::FSDP : pb::MeshAxis::DATA);
        break;
      case MegatronDenseRole::kPipeline:
        m->set_role(pb::MeshAxis::PIPELINE);
        break;
    }
    if (a.moe == MegatronMoeRole::kExpert) moe->add_expert(a.name);
    if (a.moe == MegatronMoeRole::kExpertTensor) moe->add_expert_tensor(a.name);
  }
  if (in.megatron().distributed_optimizer()) out->set_shard_optimizer_over_data(true);
  return true;
}

}  // namespace moesim
