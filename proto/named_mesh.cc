#include "proto/named_mesh.h"

#include <algorithm>
#include <map>
#include <vector>

#include "common/limits.h"

namespace moesim {
namespace {

using TC = TensorClass;
using Role = pb::MeshAxis::Role;

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 64 || n[0] == '_') return false;
  return std::all_of(n.begin(), n.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
  });
}

std::string AxisPath(int i) { return "sharding.mesh.axes[" + std::to_string(i) + "]"; }

// The written axes in written order, as stored MeshAxis indices.
std::vector<MeshAxis> WrittenAxes(const Mesh& mesh) {
  std::vector<MeshAxis> out;
  for (MeshAxis a : mesh.placement_order) {
    if (!IsPlaceholderAxis(mesh, a)) out.push_back(a);
  }
  return out;
}

// Names of `list` (a moe_layers field) as axes; reports unknown names, the pipeline axis and
// repeats.
std::vector<MeshAxis> Lookup(const google::protobuf::RepeatedPtrField<std::string>& list,
                             const std::string& field, const std::map<std::string, MeshAxis>& by,
                             const Mesh& mesh, Checker& c) {
  std::vector<MeshAxis> out;
  for (int i = 0; i < list.size(); ++i) {
    const std::string p = field + "[" + std::to_string(i) + "]";
    auto it = by.find(list.Get(i));
    if (it == by.end()) {
      std::string names;
      for (const auto& [n, a] : by) names += (names.empty() ? "" : ", ") + n;
      c.Fail(p, p + "=\"" + list.Get(i) + "\" is not an axis of sharding.mesh (" + names + ")");
      continue;
    }
    if (it->second == mesh.pipeline_axis) {
      c.Fail(p, p + "=\"" + list.Get(i) + "\" is the pipeline axis: MoE layers cannot use it");
      continue;
    }
    if (std::find(out.begin(), out.end(), it->second) != out.end()) {
      c.Fail(p, p + "=\"" + list.Get(i) + "\" is listed twice");
      continue;
    }
    out.push_back(it->second);
  }
  return out;
}

}  // namespace

bool IsLegacyMesh(const Mesh& mesh) {
  const Mesh legacy;
  return mesh.num_axes == legacy.num_axes && mesh.name == legacy.name &&
         mesh.placement_order == legacy.placement_order;
}

bool IsPlaceholderAxis(const Mesh& mesh, MeshAxis a) {
  const std::string& n = mesh.Name(a);
  return !n.empty() && n[0] == '_';
}

std::string NamedAxisPath(const Mesh& mesh, MeshAxis a) {
  const auto written = WrittenAxes(mesh);
  const auto it = std::find(written.begin(), written.end(), a);
  if (it == written.end()) return "sharding.mesh";
  return AxisPath(static_cast<int>(it - written.begin()));
}

void ValidateNamedMesh(const pb::Sharding& in, int64_t num_devices, Checker& c, Mesh* mesh) {
  const pb::Mesh& m = in.mesh();
  const int n = m.axes_size();
  if (m.data() != 0 || m.expert() != 0 || m.model() != 0 || m.pipeline() != 0) {
    c.Fail("sharding.mesh",
           "sharding.mesh gives both the legacy sizes (data, expert, model, "
           "pipeline) and named axes: write only the axes");
  }
  if (in.strategy() != pb::Sharding::STRATEGY_UNSPECIFIED) {
    c.Fail("sharding.strategy",
           "sharding.strategy is for the legacy mesh form; with named sharding.mesh.axes the "
           "axes' roles say how layers are sharded: remove it");
  }
  if (in.rules_size() > 0) {
    c.Fail("sharding.rules[0]",
           "sharding.rules name the legacy axes; with named sharding.mesh.axes the roles (and "
           "sharding.moe_layers) say how layers are sharded: remove them");
  }
  if (n > limits::kMaxMeshAxes) {
    c.Fail(AxisPath(limits::kMaxMeshAxes),
           "sharding.mesh has " + Num(int64_t{n}) + " axes, past the limit of " +
               Num(int64_t{limits::kMaxMeshAxes}) + " (docs/limits.md)");
    return;
  }
  const size_t errors = c.count();
  std::map<std::string, int> seen;
  int pipeline = -1;
  int64_t product = 1;
  bool overflow = false;
  int last_dcn = -1, first_ici = n;
  for (int i = 0; i < n; ++i) {
    const pb::MeshAxis& a = m.axes(i);
    const std::string p = AxisPath(i);
    if (!ValidName(a.name())) {
      c.Fail(p + ".name", p + ".name=\"" + a.name() +
                              "\" must be 1 to 64 letters, digits or '_', not starting with '_'");
    } else if (!seen.emplace(a.name(), i).second) {
      c.Fail(p + ".name", p + ".name=\"" + a.name() + "\" repeats " + AxisPath(seen[a.name()]) +
                              ".name: axis names must be unique");
    }
    if (a.size() < 1) {
      c.Fail(p + ".size", p + ".size=" + Num(a.size()) + " must be >= 1");
    } else if (c.AtMost(p + ".size", a.size(), limits::kMaxDevices) && !overflow) {
      product *= a.size();
      if (product > limits::kMaxDevices) {
        overflow = true;
        c.Fail("sharding.mesh", "sharding.mesh axes multiply past the limit of " +
                                    Num(limits::kMaxDevices) + " devices (docs/limits.md)");
      }
    }
    switch (a.role()) {
      case pb::MeshAxis::ROLE_UNSPECIFIED:
        c.Fail(p + ".role", p + ".role is missing (DATA, FSDP, TENSOR, CONTEXT, EXPERT or "
                                "PIPELINE)");
        break;
      case pb::MeshAxis::PIPELINE:
        if (pipeline >= 0) {
          c.Fail(p + ".role", p + ".role=PIPELINE: " + AxisPath(pipeline) +
                                  " is the pipeline axis already (at most one)");
        }
        pipeline = i;
        break;
      default:
        if (!pb::MeshAxis::Role_IsValid(a.role())) {
          c.Fail(p + ".role", p + ".role=" + Num(int64_t{a.role()}) + " is not a Role");
        }
        break;
    }
    if (a.dcn()) {
      last_dcn = i;
    } else {
      first_ici = std::min(first_ici, i);
    }
  }
  if (last_dcn > first_ici) {
    c.Fail(AxisPath(last_dcn) + ".dcn",
           AxisPath(last_dcn) + " \"" + m.axes(last_dcn).name() + "\" is dcn: true but " +
               AxisPath(first_ici) + " \"" + m.axes(first_ici).name() +
               "\", outside it, is not; dcn axes come first (outermost)");
  }
  const int others = n - (pipeline >= 0 ? 1 : 0);
  const int stored = std::max(others, 3) + 1;
  if (stored > limits::kMaxMeshAxes) {
    c.Fail("sharding.mesh", "sharding.mesh has " + Num(int64_t{n}) +
                                " axes and none is PIPELINE: with the implicit size-1 pipeline "
                                "axis that makes " +
                                Num(int64_t{stored}) + ", past the limit of " +
                                Num(int64_t{limits::kMaxMeshAxes}));
  }
  if (c.count() > errors) return;
  if (num_devices > 0 && product != num_devices) {
    std::string text;
    for (int i = 0; i < n; ++i) {
      text += (i == 0 ? "" : " x ") + m.axes(i).name() + " " + Num(m.axes(i).size());
    }
    c.Fail("sharding.mesh", "sharding.mesh axes " + text + " = " + Num(product) +
                                " devices, but the cluster has " + Num(num_devices));
    return;
  }

  Mesh out;
  out.num_axes = stored;
  out.placement_order.clear();
  out.pipeline_axis = MeshAxis::kPipeline;
  for (int i = 0; i < limits::kMaxMeshAxes; ++i) {
    out.name[static_cast<size_t>(i)].clear();
    out.size[static_cast<size_t>(i)] = 1;
    out.dcn[static_cast<size_t>(i)] = false;
  }
  std::vector<int> free_slots;
  for (int i = 0; i < stored; ++i) {
    if (i != static_cast<int>(MeshAxis::kPipeline)) free_slots.push_back(i);
  }
  std::vector<MeshAxis> written;
  size_t next = 0;
  for (int i = 0; i < n; ++i) {
    const int slot = i == pipeline ? static_cast<int>(MeshAxis::kPipeline) : free_slots[next++];
    const auto s = static_cast<size_t>(slot);
    out.name[s] = m.axes(i).name();
    out.size[s] = m.axes(i).size();
    out.dcn[s] = m.axes(i).dcn();
    written.push_back(static_cast<MeshAxis>(slot));
  }
  if (pipeline < 0) {
    out.name[static_cast<size_t>(MeshAxis::kPipeline)] = "_pipeline";
    out.placement_order.push_back(MeshAxis::kPipeline);
  }
  for (size_t k = next; k < free_slots.size(); ++k) {
    out.name[static_cast<size_t>(free_slots[k])] = "_" + std::to_string(free_slots[k]);
    out.placement_order.push_back(static_cast<MeshAxis>(free_slots[k]));
  }
  for (MeshAxis a : written) out.placement_order.push_back(a);
  *mesh = out;
}

void ApplyNamedMeshRules(const pb::Sharding& in, Checker& c, ShardingSpec* spec) {
  const Mesh& mesh = spec->mesh;
  const pb::Mesh& m = in.mesh();
  std::map<std::string, MeshAxis> by_name;
  std::vector<MeshAxis> batch, tensor, context, fsdp, expert_role, non_pipeline;
  const auto written = WrittenAxes(mesh);
  for (int i = 0; i < m.axes_size(); ++i) {
    const MeshAxis a = written[static_cast<size_t>(i)];
    by_name[m.axes(i).name()] = a;
    const Role r = m.axes(i).role();
    if (r == pb::MeshAxis::DATA || r == pb::MeshAxis::FSDP || r == pb::MeshAxis::EXPERT) {
      batch.push_back(a);
    }
    if (r == pb::MeshAxis::FSDP) fsdp.push_back(a);
    if (r == pb::MeshAxis::TENSOR) tensor.push_back(a);
    if (r == pb::MeshAxis::CONTEXT) context.push_back(a);
    if (r == pb::MeshAxis::EXPERT) expert_role.push_back(a);
    if (r != pb::MeshAxis::PIPELINE) non_pipeline.push_back(a);
  }
  std::vector<MeshAxis> ep = expert_role, etp = tensor;
  if (in.has_moe_layers()) {
    ep = Lookup(in.moe_layers().expert(), "sharding.moe_layers.expert", by_name, mesh, c);
    etp = Lookup(in.moe_layers().expert_tensor(), "sharding.moe_layers.expert_tensor", by_name,
                 mesh, c);
    for (size_t i = 0; i < etp.size(); ++i) {
      if (std::find(ep.begin(), ep.end(), etp[i]) != ep.end()) {
        const std::string p = "sharding.moe_layers.expert_tensor[" + std::to_string(i) + "]";
        c.Fail(p, p + "=\"" + mesh.Name(etp[i]) +
                      "\" is in sharding.moe_layers.expert too: an axis splits either the "
                      "experts or each expert's hidden dimension");
      }
    }
  } else {
    etp.erase(
        std::remove_if(etp.begin(), etp.end(),
                       [&](MeshAxis a) { return std::find(ep.begin(), ep.end(), a) != ep.end(); }),
        etp.end());
  }
  // Expert-data-parallel axes: the tokens of MoE layers are split over them.
  std::vector<MeshAxis> edp;
  for (MeshAxis a : non_pipeline) {
    if (std::find(ep.begin(), ep.end(), a) == ep.end() &&
        std::find(etp.begin(), etp.end(), a) == etp.end()) {
      edp.push_back(a);
    }
  }
  std::vector<MeshAxis> moe_fsdp;
  for (MeshAxis a : edp) {
    if (std::find(fsdp.begin(), fsdp.end(), a) != fsdp.end()) moe_fsdp.push_back(a);
  }

  auto& r = spec->rules;
  r.clear();
  spec->strategy = ShardingStrategy::kCustom;
  spec->padded_num_experts = 0;
  auto set = [&r](TC cls, const char* dim, const std::vector<MeshAxis>& axes) {
    if (!axes.empty()) r[{cls, dim}] = axes;
  };
  // Dense layers: Megatron-LM's TP with sequence parallelism on TENSOR axes (seq is listed after
  // heads / mlp in every tensor, so it takes them only in the norm and residual regions), batch
  // over DATA, FSDP and EXPERT axes, weights gathered over FSDP axes.
  for (const char* d : {"heads", "kv_heads", "mlp", "vocab"}) {
    set(TC::kDenseWeights, d, tensor);
    set(TC::kDenseActivations, d, tensor);
  }
  // The sequence over CONTEXT axes everywhere (ShardingSpec::ContextAxes: the ring attention of
  // costmodel/step_plan.cc), and over TENSOR axes too between the tensor-parallel regions.
  std::vector<MeshAxis> seq = context;
  seq.insert(seq.end(), tensor.begin(), tensor.end());
  set(TC::kDenseActivations, "seq", seq);
  set(TC::kDenseActivations, "batch", batch);
  set(TC::kDenseWeights, "embed", fsdp);
  set(TC::kDenseWeights, "latent", fsdp);
  // MoE layers: experts over EP, each expert's hidden over ETP, tokens over EDP (outer) and EP
  // (groups: the all-to-all exchanges them), expert weights gathered over the FSDP axes of EDP.
  set(TC::kMoeWeights, "experts", ep);
  set(TC::kMoeWeights, "expert_mlp", etp);
  set(TC::kMoeWeights, "embed", moe_fsdp);
  set(TC::kMoeActivations, "outer", edp);
  set(TC::kMoeActivations, "groups", ep);
  set(TC::kMoeActivations, "experts", ep);
  set(TC::kMoeActivations, "expert_mlp", etp);
}

}  // namespace moesim
