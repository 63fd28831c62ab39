#include "proto/hf_import.h"

#include <algorithm>
#include <map>

#include <google/protobuf/text_format.h>

#include "proto/hf_import_keys.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace hf {
namespace {

using nlohmann::json;

std::string TypeName(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

// Keys every family shares that change neither the model's parameters nor its training step's
// cost, with the reason shown to the user.
const std::map<std::string, std::string>& SharedIgnored() {
  static const auto* m = [] {
    auto* t = new std::map<std::string, std::string>;
    const std::string token = "a special token's id (the tokenizer's, not the model's shape)";
    for (const char* k : {"bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id",
                          "decoder_start_token_id", "forced_bos_token_id", "forced_eos_token_id",
                          "boi_token_index", "eoi_token_index", "image_token_index"}) {
      (*t)[k] = token;
    }
    const std::string dropout = "dropout: no parameters, and moesim does not time it";
    for (const char* k : {"attention_dropout", "hidden_dropout", "resid_pdrop", "embd_pdrop",
                          "emb_pdrop", "attn_pdrop", "summary_first_dropout", "dropout"}) {
      (*t)[k] = dropout;
    }
    const std::string numerics = "numerics (an epsilon, a base, a scale): no parameter or FLOP";
    for (const char* k : {"rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps", "rope_theta",
                          "routed_scaling_factor", "swiglu_limit", "attn_scale", "floor_scale",
                          "attn_temperature_tuning", "scale_attn_weights",
                          "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"}) {
      (*t)[k] = numerics;
    }
    (*t)["rope_scaling"] =
        "RoPE frequency scaling (long-context extension): changes no parameter or FLOP";
    (*t)["initializer_range"] = "initialisation only";
    const std::string loss = "an auxiliary loss's weight or router noise: not a cost of the step";
    for (const char* k :
         {"router_aux_loss_coef", "aux_loss_alpha", "seq_aux", "router_z_loss_coef",
          "router_jitter_noise", "output_router_logits", "moe_loss_weight", "moe_jitter_eps"}) {
      (*t)[k] = loss;
    }
    const std::string routing =
        "how router scores are normalised or scored: the same experts' cost per token";
    for (const char* k : {"norm_topk_prob", "scoring_func", "topk_method",
                          "moe_normalize_expert_weights", "uniform_expert_assignment"}) {
      (*t)[k] = routing;
    }
    const std::string book = "bookkeeping of the checkpoint or of transformers";
    for (const char* k : {"architectures",
                          "_name_or_path",
                          "transformers_version",
                          "auto_map",
                          "use_cache",
                          "return_dict",
                          "output_hidden_states",
                          "output_attentions",
                          "torchscript",
                          "use_bfloat16",
                          "tf_legacy_loss",
                          "pruned_heads",
                          "chunk_size_feed_forward",
                          "is_decoder",
                          "cross_attention_hidden_size",
                          "add_cross_attention",
                          "tie_encoder_decoder",
                          "finetuning_task",
                          "id2label",
                          "label2id",
                          "tokenizer_class",
                          "prefix",
                          "problem_type",
                          "task_specific_params",
                          "_attn_implementation_autoset"}) {
      (*t)[k] = book;
    }
    const std::string dtype =
        "the checkpoint's storage type: the scenario trains in training.precision (BF16 mixed)";
    (*t)["torch_dtype"] = dtype;
    (*t)["dtype"] = dtype;
    const std::string gen = "a text generation setting (inference), not training cost";
    for (const char* k : {"max_length",
                          "min_length",
                          "do_sample",
                          "early_stopping",
                          "num_beams",
                          "num_beam_groups",
                          "diversity_penalty",
                          "temperature",
                          "top_k",
                          "top_p",
                          "typical_p",
                          "repetition_penalty",
                          "length_penalty",
                          "no_repeat_ngram_size",
                          "encoder_no_repeat_ngram_size",
                          "bad_words_ids",
                          "num_return_sequences",
                          "output_scores",
                          "return_dict_in_generate",
                          "remove_invalid_values",
                          "exponential_decay_length_penalty",
                          "suppress_tokens",
                          "begin_suppress_tokens"}) {
      (*t)[k] = gen;
    }
    (*t)["ep_size"] = "an inference setting of DeepSeek's own code (expert parallel size)";
    (*t)["pretraining_tp"] = "tensor parallel degree used in pre-training: numerics only";
    return t;
  }();
  return *m;
}

}  // namespace

std::string Num(int64_t v) { return std::to_string(v); }

int Keys::LineOf(const std::string& key) const {
  const std::string quoted = "\"" + key + "\"";
  size_t pos = 0;
  while ((pos = text_.find(quoted, pos)) != std::string::npos) {
    size_t after = pos + quoted.size();
    while (after < text_.size() && std::isspace(static_cast<unsigned char>(text_[after]))) {
      ++after;
    }
    if (after < text_.size() && text_[after] == ':') {
      return 1 + static_cast<int>(std::count(text_.begin(), text_.begin() + pos, '\n'));
    }
    pos = after;
  }
  return 0;
}

Status Keys::Error(const Obj& o, const std::string& key, const std::string& message) const {
  const int line = LineOf(key);
  return Status::InvalidInput(source_ + (line > 0 ? ":" + std::to_string(line) : "") + ": key \"" +
                              o.prefix + key + "\": " + message);
}

bool Keys::Present(const Obj& o, const std::string& key) const {
  return o.j->is_object() && o.j->contains(key);
}

bool Keys::Has(const Obj& o, const std::string& key) const {
  return Present(o, key) && !o.j->at(key).is_null();
}

Status Keys::Int(const Obj& o, const std::string& key, int64_t* v) const {
  if (!Has(o, key)) {
    return Error(o, key, "missing (or null): the importer needs it for this model_type");
  }
  auto r = OptInt(o, key, v);
  return r.ok() ? Status::Ok() : r.status();
}

Expected<bool> Keys::OptInt(const Obj& o, const std::string& key, int64_t* v) const {
  if (!Has(o, key)) return false;
  const json& j = o.j->at(key);
  if (!j.is_number_integer() && !j.is_number_unsigned()) {
    return Error(o, key, "must be an integer, not " + TypeName(j));
  }
  const int64_t x = j.get<int64_t>();
  if (x <= 0) return Error(o, key, "must be positive, not " + std::to_string(x));
  *v = x;
  return true;
}

Expected<bool> Keys::OptBool(const Obj& o, const std::string& key, bool* v) const {
  if (!Has(o, key)) return false;
  const json& j = o.j->at(key);
  if (!j.is_boolean()) return Error(o, key, "must be true or false, not " + TypeName(j));
  *v = j.get<bool>();
  return true;
}

Expected<bool> Keys::OptString(const Obj& o, const std::string& key, std::string* v) const {
  if (!Has(o, key)) return false;
  const json& j = o.j->at(key);
  if (!j.is_string()) return Error(o, key, "must be a string, not " + TypeName(j));
  *v = j.get<std::string>();
  return true;
}

Expected<bool> Keys::OptObject(const Obj& o, const std::string& key, Obj* sub) const {
  if (!Has(o, key)) return false;
  const json& j = o.j->at(key);
  if (!j.is_object()) return Error(o, key, "must be an object, not " + TypeName(j));
  *sub = Obj{&j, o.prefix + key + "."};
  return true;
}

bool Keys::Book(const Obj& o, const std::string& key) {
  if (!Present(o, key)) return false;
  return booked_.insert(o.prefix + key).second;
}

void Keys::Map(const Obj& o, const std::string& key, const std::string& field,
               const std::string& value) {
  if (Book(o, key)) out_->mapped.push_back({o.prefix + key, field, value});
}

void Keys::NotMapped(const Obj& o, const std::string& key, const std::string& reason) {
  if (Book(o, key)) out_->not_mapped.push_back({o.prefix + key, reason});
}

void Keys::Ignore(const Obj& o, const std::string& key, const std::string& reason) {
  if (Book(o, key)) out_->ignored.push_back({o.prefix + key, reason});
}

void Keys::Finish(const Obj& o, const std::string& family) {
  for (const auto& [key, value] : o.j->items()) {
    if (booked_.count(o.prefix + key) > 0) continue;
    const auto& shared = SharedIgnored();
    if (!o.prefix.empty() && key == "model_type") {
      Ignore(o, key, "the nested config's own type name");
    } else if (auto it = shared.find(key); it != shared.end()) {
      Ignore(o, key, it->second);
    } else if (value.is_null()) {
      Ignore(o, key, "null: not set");
    } else {
      NotMapped(o, key,
                "not read by the importer for model_type " + family +
                    ": it may change the model's shape or cost, which the scenario then misses");
    }
  }
}

}  // namespace hf

namespace {

using hf::Built;
using hf::Keys;
using hf::Num;
using hf::Obj;

struct Family {
  const char* name;
  Status (*read)(Keys&, const Obj&, const std::string&, Built*);
};

const std::vector<Family>& Families() {
  static const std::vector<Family> f = {
      {"mixtral", hf::ReadLlamaLike},
      {"qwen2_moe", hf::ReadLlamaLike},
      {"qwen3_moe", hf::ReadLlamaLike},
      {"deepseek_v2", hf::ReadDeepSeek},
      {"deepseek_v3", hf::ReadDeepSeek},
      {"llama4", hf::ReadLlama4},
      {"llama4_text", hf::ReadLlama4},
      {"olmoe", hf::ReadLlamaLike},
      {"dbrx", hf::ReadDbrx},
      {"gpt_oss", hf::ReadLlamaLike},
      {"llama", hf::ReadLlamaLike},
      {"mistral", hf::ReadLlamaLike},
      {"qwen2", hf::ReadLlamaLike},
      {"qwen3", hf::ReadLlamaLike},
      {"gpt2", hf::ReadGpt2},
  };
  return f;
}

// Expert-parallel ranks for the default 8-GPU node: the largest of 8, 4, 2, 1 dividing the
// experts.
int64_t ExpertRanks(int64_t experts) {
  for (int64_t ep : {8, 4, 2}) {
    if (experts % ep == 0) return ep;
  }
  return 1;
}

std::string Basename(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "tests/data/hf/mixtral-8x7b.json" -> "mixtral-8x7b".
std::string Stem(const std::string& path) {
  std::string b = Basename(path);
  const size_t dot = b.rfind('.');
  return dot == std::string::npos || dot == 0 ? b : b.substr(0, dot);
}

}  // namespace

std::string HfFamilies() {
  std::string s;
  for (const Family& f : Families()) s += (s.empty() ? "" : ", ") + std::string(f.name);
  return s;
}

Expected<HfImport> ImportHfConfig(const std::string& json_text, const std::string& source_name,
                                  const HfImportOptions& options) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::parse_error& e) {
    const size_t byte = std::min(e.byte, json_text.size());
    const int line = 1 + static_cast<int>(std::count(
                             json_text.begin(), json_text.begin() + static_cast<long>(byte), '\n'));
    return Status::InvalidInput(source_name + ":" + std::to_string(line) +
                                ": not JSON: " + e.what());
  }
  if (!root.is_object()) {
    return Status::InvalidInput(source_name + ": a config.json is a JSON object, not " +
                                std::string(root.type_name()));
  }
  HfImport out;
  Keys keys(json_text, source_name, &out);
  const Obj top{&root, ""};
  std::string family;
  auto has_type = keys.OptString(top, "model_type", &family);
  if (!has_type.ok()) return has_type.status();
  if (!*has_type) {
    return keys.Error(top, "model_type", "missing: it names the family (" + HfFamilies() + ")");
  }
  const auto it = std::find_if(Families().begin(), Families().end(),
                               [&](const Family& f) { return family == f.name; });
  if (it == Families().end()) {
    return keys.Error(
        top, "model_type",
        "\"" + family + "\" is not a family the importer reads (" + HfFamilies() + ")");
  }
  out.family = family;
  keys.Map(top, "model_type", "(family)", family);

  Built b;
  MOESIM_RETURN_IF_ERROR(it->read(keys, top, family, &b));
  std::string name;
  if (keys.Has(top, "_name_or_path") && top.j->at("_name_or_path").is_string()) {
    name = top.j->at("_name_or_path").get<std::string>();
    keys.Map(top, "_name_or_path", "model.name", name);
  }
  if (name.empty()) name = Stem(source_name);
  if (keys.Has(top, "quantization_config")) {
    std::string method = "?";
    const auto& q = root.at("quantization_config");
    if (q.is_object() && q.contains("quant_method") && q["quant_method"].is_string()) {
      method = q["quant_method"].get<std::string>();
    }
    keys.NotMapped(top, "quantization_config",
                   "the checkpoint's weights are quantized (" + method +
                       "): the scenario trains in BF16; set training.fp8_recipe to time FP8 "
                       "GEMMs");
  }
  keys.Finish(top, family);

  pb::Scenario sc;
  sc.set_name("hf/" + Stem(source_name));
  sc.set_description("Imported from " + Basename(source_name) + " (model_type " + family +
                     ") by moesim import hf; cluster, sharding and training are defaults");
  *sc.mutable_model() = b.model;
  pb::Model& m = *sc.mutable_model();
  m.set_name(name);
  int64_t seq = options.seq_len;
  if (seq <= 0) {
    seq = b.learned_positions > 0 ? b.learned_positions
          : b.max_positions > 0   ? std::min<int64_t>(b.max_positions, 4096)
                                  : 4096;
  }
  m.set_seq_len(seq);
  int64_t ep = 1;
  if (m.moe().num_experts() > 0) {
    pb::Moe& moe = *m.mutable_moe();
    moe.set_dispatch(pb::Moe::PERMUTE);
    moe.set_dropless(true);
    ep = ExpertRanks(moe.num_experts());
  }
  sc.mutable_cluster()->set_topology("dgx-h100:1");
  pb::MegatronParallel& meg = *sc.mutable_sharding()->mutable_megatron();
  if (ep > 1) meg.set_expert(ep);
  meg.set_distributed_optimizer(true);
  pb::Training& t = *sc.mutable_training();
  // 1,024 sequences (4M tokens at 4,096, Megatron-LM's usual batch): divides over any cluster
  // of up to 1,024 GPUs in powers of two, so .set("cluster.topology", ...) keeps it valid.
  t.set_global_batch_tokens(1024 * seq);
  t.set_micro_batch_size(1);
  t.set_recompute(pb::Training::FULL);

  std::string body;
  google::protobuf::TextFormat::Printer printer;
  if (!printer.PrintToString(sc, &body)) return Status::Internal("cannot print the scenario");
  std::string head =
      "# Imported by `moesim import hf` from " + source_name + " (model_type " + family + ").\n";
  head +=
      "# The model block is the config's; cluster (one 8-GPU H100 node), sharding (Megatron-LM"
      " data\n# parallel";
  head += ep > 1 ? " with expert parallel " + Num(ep) : std::string();
  head += ", distributed optimizer) and training (1,024 sequences of " + Num(seq) +
          " tokens,\n# micro-batches of one, full recomputation) are defaults to edit.\n";
  if (!out.not_mapped.empty()) {
    head += "# Not mapped (the model block cannot say them; see `moesim import hf`):\n";
    for (const auto& k : out.not_mapped) head += "#   " + k.key + ": " + k.reason + "\n";
  }
  for (const auto& n : out.notes) head += "# Note: " + n + "\n";
  out.scenario_text = head + body;
  // The scenario must load as written: values a model block refuses (a placement past the
  // layers, heads that do not divide the width) are the config's error, named here.
  auto loaded = LoadScenarioFromText(out.scenario_text, source_name, {});
  if (!loaded.ok()) {
    return Status::InvalidInput(
        source_name + ": its values do not make a valid model: " + loaded.status().message());
  }
  return out;
}

}  // namespace moesim
