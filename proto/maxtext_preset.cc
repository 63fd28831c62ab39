#include "proto/maxtext_preset.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <optional>
#include <sstream>

#include <google/protobuf/descriptor.h>

#include "common/limits.h"
#include "proto/named_mesh.h"
#include "proto/topology_name.h"

namespace moesim {
namespace {

namespace gp = google::protobuf;
using Role = pb::MeshAxis::Role;

// One row per MaxText mesh axis, in base.yml's mesh_axes order (outermost first). The one owner
// of the names, keys and roles.
struct AxisRow {
  const char* axis;  // MaxText's mesh axis name
  const char* key;   // the middle of ici_KEY_parallelism / dcn_KEY_parallelism
  Role role;
};
constexpr std::array<AxisRow, 8> kAxes = {{
    {"data", "data", pb::MeshAxis::DATA},
    {"stage", "pipeline", pb::MeshAxis::PIPELINE},
    {"fsdp", "fsdp", pb::MeshAxis::FSDP},
    {"fsdp_transpose", "fsdp_transpose", pb::MeshAxis::FSDP},
    {"sequence", "sequence", pb::MeshAxis::CONTEXT},
    {"context", "context", pb::MeshAxis::CONTEXT},
    {"tensor", "tensor", pb::MeshAxis::TENSOR},
    // Dense layers: ZeRO-3 over it (see maxtext_preset.h); MoE layers: expert parallel.
    {"expert", "expert", pb::MeshAxis::FSDP},
}};

// MaxText's mesh keys that moesim does not model: accepted by the parser only when 1.
constexpr std::array<const char*, 5> kUnmodelled = {
    "diloco", "tensor_sequence", "context_autoregressive", "autoregressive", "context_usp_ulysses"};

std::string Key(bool dcn, const AxisRow& r) {
  return std::string(dcn ? "dcn_" : "ici_") + r.key + "_parallelism";
}
std::string AxisName(bool dcn, const AxisRow& r) { return std::string(dcn ? "dcn_" : "") + r.axis; }

// base.yml's defaults: ici_fsdp_parallelism -1, dcn_data_parallelism -1, the rest 1.
int64_t Default(bool dcn, const AxisRow& r) {
  const std::string k = r.key;
  return (dcn ? k == "data" : k == "fsdp") ? -1 : 1;
}

// Resolves one kind's (ici or dcn) values in place as fill_unspecified_mesh_axes does; false
// (reported) when they cannot fill `target`.
bool Resolve(bool dcn, const pb::MaxTextMesh& m, int64_t target, const std::string& target_text,
             Checker& c, std::array<int64_t, kAxes.size()>* vals) {
  const gp::Reflection* refl = m.GetReflection();
  const gp::Descriptor* desc = m.GetDescriptor();
  const size_t before = c.count();
  std::vector<size_t> fills;
  std::string first_written;
  for (size_t i = 0; i < kAxes.size(); ++i) {
    const std::string key = Key(dcn, kAxes[i]);
    const gp::FieldDescriptor* f = desc->FindFieldByName(key);
    const bool written = refl->HasField(m, f);
    const int64_t v = written ? refl->GetInt64(m, f) : Default(dcn, kAxes[i]);
    const std::string path = "sharding.maxtext." + key;
    if (written && first_written.empty()) first_written = path;
    (*vals)[i] = v;
    if (v == -1) {
      fills.push_back(i);
    } else if (v < 1) {
      c.Fail(path, path + "=" + Num(v) + " must be >= 1, or -1 (fill: the devices the other " +
                       (dcn ? "dcn" : "ici") + "_* axes leave)");
    } else {
      c.AtMost(path, v, limits::kMaxDevices);
    }
  }
  if (c.count() > before) return false;
  const std::string kind = dcn ? "dcn_*" : "ici_*";
  if (fills.size() > 1) {
    std::string names;
    for (size_t i : fills) {
      const std::string k = Key(dcn, kAxes[i]);
      names += (names.empty() ? "" : " and ") + k;
      if (!refl->HasField(m, desc->FindFieldByName(k))) names += " (-1 unless written)";
    }
    const std::string path = "sharding.maxtext." + Key(dcn, kAxes[fills.back()]);
    c.Fail(path, "sharding.maxtext: " + names + " are both -1; at most one " + kind +
                     " axis fills (MaxText's fill_unspecified_mesh_axes)");
    return false;
  }
  int64_t product = 1;
  std::string text;
  for (size_t i = 0; i < kAxes.size(); ++i) {
    if ((*vals)[i] == -1) continue;
    // Each value is <= kMaxDevices; stopping past it keeps the product within int64.
    product = std::min(product * (*vals)[i], limits::kMaxDevices + 1);
    if ((*vals)[i] > 1) {
      text += (text.empty() ? "" : " x ") + Key(dcn, kAxes[i]) + "=" + Num((*vals)[i]);
    }
  }
  if (text.empty()) text = "1";
  if (!fills.empty()) {
    const std::string path = "sharding.maxtext." + Key(dcn, kAxes[fills[0]]);
    if (product > target || target % product != 0) {
      c.Fail(path, path + "=-1 cannot fill " + target_text + ": the other " + kind + " axes (" +
                       text + ") multiply to " + Num(product) + ", which does not divide " +
                       Num(target));
      return false;
    }
    (*vals)[fills[0]] = target / product;
    return true;
  }
  if (product != target) {
    c.Fail(first_written.empty() ? "sharding.maxtext" : first_written,
           "sharding.maxtext " + kind + " axes " + text + " multiply to " + Num(product) +
               ", but " + target_text + " is " + Num(target) +
               (dcn ? " (the dcn_* axes multiply to the slices)"
                    : " (the ici_* axes multiply to the devices of one slice)"));
    return false;
  }
  return true;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string Unquote(const std::string& s) {
  if (s.size() >= 2 && (s.front() == '\'' || s.front() == '"') && s.back() == s.front()) {
    return s.substr(1, s.size() - 2);
  }
  return s;
}

bool ParseInt(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool ParseDouble(const std::string& s, double* out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(*out);
}

}  // namespace

int64_t MaxTextSlices(const std::string& topology) {
  auto name = ParseTopologyName(topology);
  if (!name.ok()) return 1;
  if (name->is_tpu()) return name->slices;
  if (name->is_gpu_cluster() && !name->dims.empty()) return name->dims[0] * name->slices;
  return 1;
}

bool ExpandMaxTextMesh(const pb::Sharding& in, const std::string& topology, int64_t num_devices,
                       Checker& c, pb::Sharding* out) {
  const size_t before = c.count();
  const std::string why = ": sharding.maxtext gives the mesh (MaxText's ici_* / dcn_* axes); ";
  if (in.has_mesh()) {
    c.Fail("sharding.mesh", "sharding.mesh" + why + "remove one of them");
  }
  if (in.strategy() != pb::Sharding::STRATEGY_UNSPECIFIED) {
    c.Fail("sharding.strategy",
           "sharding.strategy" + why + "its axes say how layers are sharded: remove it");
  }
  if (in.rules_size() > 0) {
    c.Fail("sharding.rules[0]", "sharding.rules" + why + "remove them");
  }
  if (in.has_moe_layers()) {
    c.Fail("sharding.moe_layers",
           "sharding.moe_layers" + why + "MoE layers follow its expert and tensor axes: remove it");
  }
  if (c.count() > before) return false;
  const int64_t slices = MaxTextSlices(topology);
  if (num_devices <= 0 || num_devices % slices != 0) {
    c.Fail("cluster.topology", "sharding.maxtext needs the device count of cluster.topology");
    return false;
  }
  const std::string where = "cluster.topology=\"" + topology + "\"";
  std::array<int64_t, kAxes.size()> ici{}, dcn{};
  const bool ok_ici = Resolve(false, in.maxtext(), num_devices / slices,
                              "the devices of one slice of " + where, c, &ici);
  const bool ok_dcn = Resolve(true, in.maxtext(), slices, "the slices of " + where, c, &dcn);
  if (!ok_ici || !ok_dcn) return false;
  const size_t stage = 1;
  if (ici[stage] > 1 && dcn[stage] > 1) {
    const std::string p = "sharding.maxtext.dcn_pipeline_parallelism";
    c.Fail(p, p + "=" + Num(dcn[stage]) + " and ici_pipeline_parallelism=" + Num(ici[stage]) +
                  ": moesim has one pipeline axis; put the stages on one of them");
    return false;
  }

  *out = in;
  out->clear_maxtext();
  pb::Mesh* mesh = out->mutable_mesh();
  pb::MoeLayers* moe = out->mutable_moe_layers();
  for (const bool is_dcn : {true, false}) {
    const auto& vals = is_dcn ? dcn : ici;
    for (size_t i = 0; i < kAxes.size(); ++i) {
      if (vals[i] <= 1) continue;
      pb::MeshAxis* a = mesh->add_axes();
      a->set_name(AxisName(is_dcn, kAxes[i]));
      a->set_size(vals[i]);
      a->set_role(kAxes[i].role);
      a->set_dcn(is_dcn);
      const std::string axis = kAxes[i].axis;
      if (axis == "expert") moe->add_expert(a->name());
      if (axis == "tensor") moe->add_expert_tensor(a->name());
    }
  }
  if (mesh->axes_size() == 0) {
    pb::MeshAxis* a = mesh->add_axes();
    a->set_name("data");
    a->set_size(1);
    a->set_role(pb::MeshAxis::DATA);
  }
  return true;
}

Expected<std::string> MaxTextOverrides(const Scenario& s) {
  const Mesh& mesh = s.sharding.mesh;
  std::array<int64_t, kAxes.size()> ici, dcn;
  ici.fill(1);
  dcn.fill(1);
  if (IsLegacyMesh(mesh)) {
    return Status::InvalidInput(
        "the scenario's mesh is the legacy form (sharding.mesh data/expert/model/pipeline), not "
        "MaxText's: write it as sharding.maxtext");
  }
  for (MeshAxis a : mesh.placement_order) {
    if (IsPlaceholderAxis(mesh, a)) continue;
    bool found = false;
    for (size_t i = 0; i < kAxes.size() && !found; ++i) {
      for (const bool is_dcn : {false, true}) {
        if (mesh.Name(a) != AxisName(is_dcn, kAxes[i])) continue;
        if (mesh.dcn[static_cast<size_t>(a)] != is_dcn) break;
        (is_dcn ? dcn : ici)[i] = mesh[a];
        found = true;
        break;
      }
    }
    if (!found) {
      return Status::InvalidInput("the scenario's mesh axis \"" + mesh.Name(a) +
                                  "\" is not one of MaxText's (write the mesh as "
                                  "sharding.maxtext to get MaxText overrides)");
    }
  }
  std::string out;
  auto add = [&out](const std::string& kv) { out += (out.empty() ? "" : " ") + kv; };
  for (const bool is_dcn : {false, true}) {
    const auto& vals = is_dcn ? dcn : ici;
    for (size_t i = 0; i < kAxes.size(); ++i) {
      if (vals[i] > 1 || Default(is_dcn, kAxes[i]) == -1) {
        add(Key(is_dcn, kAxes[i]) + "=" + Num(vals[i]));
      }
    }
  }
  const TrainingSpec& t = s.training;
  const int64_t sequences = t.global_batch_tokens / s.model.seq_len;
  const int64_t micro = t.num_micro_batches;
  const bool pipelined = mesh.PipelineSize() > 1;
  const double per_step = static_cast<double>(pipelined ? sequences : sequences / micro);
  add("per_device_batch_size=" + Num(per_step / static_cast<double>(s.cluster.num_devices)));
  if (micro > 1) {
    add(std::string(pipelined ? "num_pipeline_microbatches=" : "gradient_accumulation_steps=") +
        Num(micro));
  }
  add("max_target_length=" + Num(s.model.seq_len));
  const char* remat = t.recompute == Recompute::kFull        ? "full"
                      : t.recompute == Recompute::kSelective ? "minimal"
                                                             : "minimal_with_context";
  add(std::string("remat_policy=") + remat);
  // MoE paths MaxText names (configs/base.yml): written only for the scenarios that model one.
  const MoeSpec& moe = s.model.moe;
  if (s.model.is_moe() && moe.token_dispatcher == TokenDispatcherKind::kRaggedAllToAll) {
    add("sparse_matmul=true");
    if (moe.ragged_buffer_factor > 0) add("ragged_buffer_factor=" + Num(moe.ragged_buffer_factor));
  } else if (s.model.is_moe() && moe.capacity_convention == CapacityConvention::kMaxText) {
    add("sparse_matmul=false");
    add("capacity_factor=" + Num(moe.capacity_factor));
  }
  if (t.batch_split_factor > 1) {
    add("use_batch_split_schedule=true");
    add("batch_split_factor=" + Num(t.batch_split_factor));
  }
  return out;
}

namespace {

bool ParseBool(const std::string& s, bool* out) {
  if (s == "true" || s == "True") {
    *out = true;
  } else if (s == "false" || s == "False") {
    *out = false;
  } else {
    return false;
  }
  return true;
}

}  // namespace

Expected<MaxTextArgs> ParseMaxTextOverrides(const std::string& text) {
  MaxTextArgs args;
  std::istringstream in(text);
  std::string item;
  // MaxText's MoE keys, applied after the loop whatever their order (base.yml: sparse_matmul
  // true, capacity_factor -1, ragged_buffer_factor -1).
  std::optional<bool> sparse;
  std::optional<double> capacity_factor, ragged_factor;
  // The batch-split schedule (base.yml: use_batch_split_schedule false, batch_split_factor 1);
  // MaxText reads batch_split_factor only when use_batch_split_schedule is true.
  std::optional<bool> batch_split;
  std::optional<int64_t> batch_split_factor;
  while (in >> item) {
    const std::string where = "--maxtext " + item + ": ";
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidInput("--maxtext \"" + item + "\": expected KEY=VALUE");
    }
    const std::string key = item.substr(0, eq);
    const std::string value = Unquote(Trim(item.substr(eq + 1)));
    int64_t n = 0;
    bool mesh_key = false;
    for (const bool is_dcn : {false, true}) {
      for (const AxisRow& r : kAxes) mesh_key = mesh_key || key == Key(is_dcn, r);
    }
    if (mesh_key) {
      if (!ParseInt(value, &n)) return Status::InvalidInput(where + "expected an integer");
      args.sets.push_back("sharding.maxtext." + key + "=" + value);
      continue;
    }
    bool unmodelled = false;
    for (const char* u : kUnmodelled) {
      for (const char* prefix : {"ici_", "dcn_"}) {
        unmodelled = unmodelled || key == std::string(prefix) + u + "_parallelism";
      }
    }
    if (unmodelled) {
      if (!ParseInt(value, &n)) return Status::InvalidInput(where + "expected an integer");
      if (n != 1) {
        return Status::InvalidInput(where + "MaxText's " + key.substr(4, key.size() - 16) +
                                    " axis is not modelled by moesim; only 1 is accepted");
      }
      continue;
    }
    if (key == "per_device_batch_size") {
      double v = 0;
      if (!ParseDouble(value, &v) || v <= 0) {
        return Status::InvalidInput(where + "expected a number > 0");
      }
      args.per_device_batch_size = v;
    } else if (key == "gradient_accumulation_steps" || key == "num_pipeline_microbatches") {
      if (!ParseInt(value, &n) || n < 1) {
        return Status::InvalidInput(where + "expected an integer >= 1");
      }
      (key == "gradient_accumulation_steps" ? args.gradient_accumulation_steps
                                            : args.num_pipeline_microbatches) = n;
    } else if (key == "max_target_length") {
      if (!ParseInt(value, &n) || n < 1) {
        return Status::InvalidInput(where + "expected an integer >= 1");
      }
      args.sets.push_back("model.seq_len=" + value);
    } else if (key == "sparse_matmul" || key == "megablox") {
      bool b = false;
      if (!ParseBool(value, &b)) return Status::InvalidInput(where + "expected true or false");
      // megablox picks the grouped-GEMM kernel of the sparse path: no effect on the model.
      if (key == "sparse_matmul") sparse = b;
    } else if (key == "capacity_factor" || key == "ragged_buffer_factor") {
      double v = 0;
      if (!ParseDouble(value, &v)) return Status::InvalidInput(where + "expected a number");
      (key == "capacity_factor" ? capacity_factor : ragged_factor) = v;
    } else if (key == "use_batch_split_schedule") {
      bool b = false;
      if (!ParseBool(value, &b)) return Status::InvalidInput(where + "expected true or false");
      batch_split = b;
    } else if (key == "batch_split_factor") {
      if (!ParseInt(value, &n) || n < 1) {
        return Status::InvalidInput(where + "expected an integer >= 1");
      }
      batch_split_factor = n;
    } else if (key == "remat_policy") {
      const char* r = value == "full"                   ? "FULL"
                      : value == "minimal"              ? "SELECTIVE"
                      : value == "minimal_with_context" ? "NONE"
                                                        : nullptr;
      if (r == nullptr) {
        return Status::InvalidInput(where +
                                    "moesim models remat_policy full (training.recompute "
                                    "FULL), minimal (SELECTIVE) and minimal_with_context (NONE)");
      }
      args.sets.push_back(std::string("training.recompute=") + r);
    } else {
      return Status::InvalidInput(
          where + "not a MaxText key moesim reads (ici_*_parallelism and dcn_*_parallelism for " +
          "data, fsdp, fsdp_transpose, sequence, context, tensor, expert, pipeline; " +
          "per_device_batch_size, gradient_accumulation_steps, num_pipeline_microbatches, " +
          "max_target_length, remat_policy, sparse_matmul, megablox, capacity_factor, " +
          "ragged_buffer_factor, use_batch_split_schedule, batch_split_factor)");
    }
  }
  if (batch_split) {
    // Off, or on with factor 1 (one part: nothing to interleave), is training.batch_split_factor
    // 0; a factor without use_batch_split_schedule=true is ignored, as MaxText ignores it.
    const int64_t f = *batch_split ? batch_split_factor.value_or(1) : 0;
    args.sets.push_back("training.batch_split_factor=" + Num(f > 1 ? f : 0));
  }
  const bool dropping = capacity_factor && *capacity_factor > 0;
  if (sparse.value_or(true)) {
    // The sparse-matmul path: ragged all-to-all of the routed tokens, no expert capacity.
    if (dropping) {
      return Status::InvalidInput(
          "--maxtext capacity_factor=" + Num(*capacity_factor) +
          ": MaxText drops by capacity only with sparse_matmul=false (its dense_matmul path); "
          "the sparse-matmul path has no capacity (ragged_buffer_factor bounds its buffer)");
    }
    if (sparse || ragged_factor) {
      for (const char* kv :
           {"model.moe.dispatch=PERMUTE", "model.moe.token_dispatcher=RAGGED_ALL_TO_ALL",
            "model.moe.dropless=true", "model.moe.capacity_factor=0",
            "model.moe.capacity_convention=PER_ROUTED_TOKEN"}) {
        args.sets.push_back(kv);
      }
    }
    if (ragged_factor) {
      args.sets.push_back("model.moe.ragged_buffer_factor=" + Num(std::max(0.0, *ragged_factor)));
    }
  } else {
    if (!dropping) {
      return Status::InvalidInput(
          "--maxtext sparse_matmul=false: moesim models MaxText's dense_matmul path with token "
          "dropping; give capacity_factor > 0");
    }
    if (ragged_factor) {
      return Status::InvalidInput("--maxtext ragged_buffer_factor=" + Num(*ragged_factor) +
                                  ": it sizes the sparse-matmul path's buffer, and "
                                  "sparse_matmul is false");
    }
    for (const char* kv : {"model.moe.dispatch=EINSUM", "model.moe.token_dispatcher=ALLTOALL",
                           "model.moe.dropless=false", "model.moe.ragged_buffer_factor=0",
                           "model.moe.capacity_convention=MAXTEXT"}) {
      args.sets.push_back(kv);
    }
    args.sets.push_back("model.moe.capacity_factor=" + Num(*capacity_factor));
  }
  return args;
}

Expected<std::vector<std::string>> MaxTextBatchSets(const MaxTextArgs& args, const Scenario& s) {
  std::vector<std::string> sets;
  if (!args.per_device_batch_size && !args.gradient_accumulation_steps &&
      !args.num_pipeline_microbatches) {
    return sets;
  }
  const bool pipelined = s.sharding.mesh.PipelineSize() > 1;
  const int64_t n = s.cluster.num_devices;
  const int64_t sequences = s.training.global_batch_tokens / s.model.seq_len;
  const int64_t micro = pipelined ? args.num_pipeline_microbatches.value_or(1)
                                  : args.gradient_accumulation_steps.value_or(1);
  // MaxText: int(devices x per_device_batch_size) sequences per micro-step (per step with a
  // pipeline, which splits them into num_pipeline_microbatches).
  const double p = args.per_device_batch_size.value_or(
      static_cast<double>(pipelined ? sequences : sequences / s.training.num_micro_batches) /
      static_cast<double>(n));
  const std::string shown = "--maxtext per_device_batch_size=" + Num(p);
  // Sequences per step within limits::kMaxGlobalBatchTokens before any int64 arithmetic.
  const double max_sequences = static_cast<double>(limits::kMaxGlobalBatchTokens);
  if (static_cast<double>(n) * p * static_cast<double>(pipelined ? 1 : micro) > max_sequences ||
      micro > limits::kMaxMicroBatches) {
    return Status::InvalidInput(shown + ": the step's sequences exceed the limit of " +
                                Num(limits::kMaxGlobalBatchTokens) + " tokens (docs/limits.md)");
  }
  const auto per_step = static_cast<int64_t>(static_cast<double>(n) * p);
  const int64_t global = pipelined ? per_step : per_step * micro;
  const int64_t shards = s.sharding.ShardsFor(TensorClass::kDenseActivations, "batch");
  if (global < 1 || global % (shards * micro) != 0) {
    return Status::InvalidInput(shown + ": " + Num(global) + " sequences per step do not split " +
                                "into " + Num(micro) + " micro-batches on each of the " +
                                Num(shards) + " batch shards of the mesh");
  }
  if (static_cast<double>(global) * static_cast<double>(s.model.seq_len) > max_sequences) {
    return Status::InvalidInput(shown + ": " + Num(global) + " sequences of " +
                                Num(s.model.seq_len) + " tokens exceed the limit of " +
                                Num(limits::kMaxGlobalBatchTokens) +
                                " tokens per step (docs/limits.md)");
  }
  sets.push_back("training.global_batch_tokens=" + Num(global * s.model.seq_len));
  sets.push_back("training.micro_batch_size=" + Num(global / (shards * micro)));
  return sets;
}

Expected<Scenario> LoadScenarioWithMaxText(const LoadOptions& options, const std::string& maxtext,
                                           std::vector<std::string>* sets) {
  auto args = ParseMaxTextOverrides(maxtext);
  if (!args.ok()) return args.status();
  LoadOptions with = options;
  with.overrides.insert(with.overrides.end(), args->sets.begin(), args->sets.end());
  auto first = LoadScenario(with);
  if (!first.ok()) return first;
  auto batch = MaxTextBatchSets(*args, *first);
  if (!batch.ok()) return batch.status();
  if (sets != nullptr) {
    *sets = args->sets;
    sets->insert(sets->end(), batch->begin(), batch->end());
  }
  if (batch->empty()) return first;
  with.overrides.insert(with.overrides.end(), batch->begin(), batch->end());
  return LoadScenario(with);
}

}  // namespace moesim
