#include "proto/megatron_args.h"

#include <cctype>
#include <charconv>
#include <map>
#include <optional>

#include <google/protobuf/text_format.h>

#include "proto/moesim.pb.h"
#include "proto/pipeline_layout.h"

namespace moesim {
namespace {

std::string Str(int64_t v) { return std::to_string(v); }

std::string Str(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, ptr);
}

int64_t Or1(int64_t v) { return v > 0 ? v : 1; }

// --moe-layer-freq for moesim's placements: Megatron-LM's integer N puts an MoE layer at every
// layer i with i % N == 0 (the first of every N), moesim's EVERY_K at (i + 1) % K == 0 (the
// last), so anything but every layer is written as Megatron-LM's list pattern.
std::string LayerFreq(const ModelSpec& m) {
  const int64_t k = m.moe.placement_k, n = m.num_layers;
  switch (m.moe.placement) {
    case MoePlacement::kEveryK:
      return k == 1 ? "1" : "([0]*" + Str(k - 1) + "+[1])*" + Str(n / k);
    case MoePlacement::kLastK:
      return "([0]*" + Str(n - k) + "+[1]*" + Str(k) + ")";
    case MoePlacement::kFirstKDense:
      return k == 0 ? "1" : "([0]*" + Str(k) + "+[1]*" + Str(n - k) + ")";
  }
  return "1";
}

}  // namespace

Expected<std::vector<std::string>> MegatronArgs(const Scenario& sc) {
  pb::Scenario in;
  if (!google::protobuf::TextFormat::ParseFromString(sc.resolved_text, &in) ||
      !in.sharding().has_megatron()) {
    return Status::InvalidInput(sc.source +
                                ": Megatron-LM arguments need a scenario in the megatron form "
                                "(sharding.megatron { tensor: ... pipeline: ... expert: ... })");
  }
  const TrainingSpec& t = sc.training;
  if (t.pipeline_schedule == PipelineSchedule::kGpipe && sc.sharding.mesh.PipelineSize() > 1) {
    return Status::InvalidInput(sc.source +
                                ": training.pipeline_schedule=GPIPE has no Megatron-LM "
                                "counterpart (it runs 1F1B, interleaved with virtual stages)");
  }
  if (t.pipeline_schedule == PipelineSchedule::kDualPipe) {
    return Status::InvalidInput(sc.source +
                                ": training.pipeline_schedule=DUALPIPE has no Megatron-LM "
                                "counterpart (it runs 1F1B, interleaved with virtual stages)");
  }
  if (t.batch_split_factor > 1) {
    return Status::InvalidInput(sc.source +
                                ": training.batch_split_factor=" + Str(t.batch_split_factor) +
                                " is MaxText's batch-split schedule and has no Megatron-LM "
                                "counterpart (its all-to-all overlap is "
                                "training.overlap_moe_expert_parallel_comm)");
  }
  const pb::MegatronParallel& mp = in.sharding().megatron();
  const ModelSpec& m = sc.model;
  std::vector<std::string> a;
  auto add = [&a](const std::string& flag, const std::string& value) {
    a.push_back(flag);
    a.push_back(value);
  };
  // Model.
  add("--num-layers", Str(m.num_layers));
  add("--hidden-size", Str(m.d_model));
  add("--ffn-hidden-size", Str(m.d_ff));
  add("--num-attention-heads", Str(m.num_heads));
  if (m.mla.enabled) {
    a.push_back("--multi-latent-attention");
    if (m.mla.q_lora_rank > 0) add("--q-lora-rank", Str(m.mla.q_lora_rank));
    add("--kv-lora-rank", Str(m.mla.kv_lora_rank));
    add("--qk-head-dim", Str(m.mla.qk_nope_head_dim));
    add("--qk-pos-emb-head-dim", Str(m.mla.qk_rope_head_dim));
    add("--v-head-dim", Str(m.mla.v_head_dim));
  } else {
    if (m.num_kv_heads != m.num_heads) {
      a.push_back("--group-query-attention");
      add("--num-query-groups", Str(m.num_kv_heads));
    }
    add("--kv-channels", Str(m.head_dim));
  }
  add("--seq-length", Str(m.seq_len));
  add("--max-position-embeddings", Str(m.seq_len));
  add("--vocab-size", Str(m.vocab_size));
  if (m.ffn_kind == FfnKind::kSwiglu) a.push_back("--swiglu");
  if (m.norm_kind == NormKind::kRmsNorm) add("--normalization", "RMSNorm");
  if (m.position_kind == PositionKind::kRope) add("--position-embedding-type", "rope");
  if (!m.tie_embeddings) a.push_back("--untie-embeddings-and-output-weights");
  if (!m.linear_bias) a.push_back("--disable-bias-linear");
  if (m.is_moe()) {
    add("--num-experts", Str(m.moe.num_experts));
    add("--moe-router-topk", Str(m.moe.top_k));
    add("--moe-ffn-hidden-size", Str(m.moe.expert_d_ff));
    if (m.moe.num_shared_experts > 0) {
      add("--moe-shared-expert-intermediate-size",
          Str(m.moe.num_shared_experts * m.moe.expert_d_ff));
    }
    add("--moe-layer-freq", LayerFreq(m));
    switch (m.moe.token_dispatcher) {
      case TokenDispatcherKind::kAllGather:
        add("--moe-token-dispatcher-type", "allgather");
        break;
      case TokenDispatcherKind::kDeepEp:
      case TokenDispatcherKind::kHybridEp:
        add("--moe-token-dispatcher-type", "flex");
        add("--moe-flex-dispatcher-backend",
            m.moe.token_dispatcher == TokenDispatcherKind::kDeepEp ? "deepep" : "hybridep");
        break;
      default:
        add("--moe-token-dispatcher-type", "alltoall");
    }
    if (m.moe.router_num_groups > 0) {
      add("--moe-router-num-groups", Str(m.moe.router_num_groups));
      add("--moe-router-group-topk", Str(m.moe.router_group_topk));
    }
    if (m.moe.shared_expert_overlap) a.push_back("--moe-shared-expert-overlap");
    // Megatron-LM's default is dropless: a capacity factor only where the scenario has one.
    if (!m.moe.dropless) add("--moe-expert-capacity-factor", Str(m.moe.capacity_factor));
    if (m.moe.pad_to_capacity) a.push_back("--moe-pad-expert-input-to-capacity");
  }
  if (m.mtp_depth > 0) add("--mtp-num-layers", Str(m.mtp_depth));
  // Parallelism.
  const int64_t tp = Or1(mp.tensor()), pp = Or1(mp.pipeline());
  add("--tensor-model-parallel-size", Str(tp));
  if (tp > 1) a.push_back("--sequence-parallel");
  if (t.tp_comm_overlap) a.push_back("--tp-comm-overlap");
  if (t.overlap_moe_expert_parallel_comm) a.push_back("--overlap-moe-expert-parallel-comm");
  if (t.delay_wgrad_compute) a.push_back("--delay-wgrad-compute");
  add("--context-parallel-size", Str(Or1(mp.context())));
  add("--pipeline-model-parallel-size", Str(pp));
  add("--expert-model-parallel-size", Str(Or1(mp.expert())));
  add("--expert-tensor-parallel-size", Str(mp.expert_tensor() > 0 ? mp.expert_tensor() : tp));
  const pb::Training& tr = in.training();
  if (!tr.pipeline_layout().empty()) {
    add("--pipeline-model-parallel-layout", tr.pipeline_layout());
  } else if (PipelineChunksPerRank(sc) > 1) {
    add("--num-virtual-stages-per-pipeline-rank", Str(t.virtual_stages));
  }
  if (tr.has_first_stage_layers()) {
    add("--decoder-first-pipeline-num-layers", Str(tr.first_stage_layers()));
  }
  if (tr.has_last_stage_layers()) {
    add("--decoder-last-pipeline-num-layers", Str(tr.last_stage_layers()));
  }
  if (mp.distributed_optimizer()) a.push_back("--use-distributed-optimizer");
  if (mp.fsdp()) {
    a.push_back("--use-megatron-fsdp");
    add("--data-parallel-sharding-strategy", "optim_grads_params");
  }
  // Training.
  add("--micro-batch-size", Str(t.micro_batch_size));
  add("--global-batch-size", Str(t.global_batch_tokens / m.seq_len));
  if (t.recompute == Recompute::kFull) {
    add("--recompute-granularity", "full");
    add("--recompute-method", "uniform");
    add("--recompute-num-layers", "1");
  } else if (t.recompute == Recompute::kSelective) {
    add("--recompute-granularity", "selective");
  }
  if (t.precision == Precision::kBf16Mixed) a.push_back("--bf16");
  if (t.fp8_recipe != Fp8Recipe::kNone) {
    // The format does not change time or memory; hybrid (e4m3 forward, e5m2 gradients) is the
    // common one.
    add("--fp8-format", "hybrid");
    add("--fp8-recipe", t.fp8_recipe == Fp8Recipe::kDelayed      ? "delayed"
                        : t.fp8_recipe == Fp8Recipe::kTensorwise ? "tensorwise"
                        : t.fp8_recipe == Fp8Recipe::kBlockwise  ? "blockwise"
                                                                 : "mxfp8");
  }
  add("--optimizer", t.optimizer == Optimizer::kSgd ? "sgd" : "adam");
  return a;
}

bool UsesMegatronForm(const Scenario& sc, bool* first_last) {
  pb::Scenario in;
  if (!google::protobuf::TextFormat::ParseFromString(sc.resolved_text, &in)) return false;
  if (first_last != nullptr) {
    *first_last = in.training().has_first_stage_layers() || in.training().has_last_stage_layers();
  }
  return in.sharding().has_megatron();
}

std::string JoinShellArgs(const std::vector<std::string>& tokens) {
  std::string out;
  for (const std::string& t : tokens) {
    if (!out.empty()) out += ' ';
    const bool plain = !t.empty() && t.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
                                         "OPQRSTUVWXYZ0123456789-_.=/:,+@%") == std::string::npos;
    if (plain) {
      out += t;
      continue;
    }
    out += '\'';
    for (char c : t) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

namespace {

// Shell-like words: whitespace separates, '...' is literal, "..." takes \" and \\, a backslash
// outside quotes escapes the next character and a backslash-newline joins lines.
Expected<std::vector<std::string>> SplitWords(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      if (s[i + 1] != '\n') {
        cur += s[i + 1];
        in_word = true;
      }
      ++i;
    } else if (c == '\'' || c == '"') {
      const size_t end = s.find(c, i + 1);
      if (end == std::string::npos) {
        return Status::InvalidInput("--megatron-args: unterminated " + std::string(1, c) +
                                    " quote at character " + Str(int64_t(i + 1)));
      }
      for (size_t j = i + 1; j < end; ++j) {
        if (c == '"' && s[j] == '\\' && j + 1 < end && (s[j + 1] == '"' || s[j + 1] == '\\')) ++j;
        cur += s[j];
      }
      in_word = true;
      i = end;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) out.push_back(cur);
      cur.clear();
      in_word = false;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (in_word) out.push_back(cur);
  return out;
}

// Flags that take no value (store_true in arguments.py).
bool IsSwitch(const std::string& f) {
  for (const char* s :
       {"--sequence-parallel", "--use-distributed-optimizer", "--use-megatron-fsdp", "--bf16",
        "--fp16", "--swiglu", "--untie-embeddings-and-output-weights", "--disable-bias-linear",
        "--group-query-attention", "--multi-latent-attention", "--moe-shared-expert-overlap",
        "--tp-comm-overlap", "--overlap-moe-expert-parallel-comm", "--delay-wgrad-compute",
        "--moe-enable-deepep", "--moe-pad-expert-input-to-capacity"}) {
    if (f == s) return true;
  }
  return false;
}

bool IsValueFlag(const std::string& f) {
  for (const char* s : {"--tensor-model-parallel-size",
                        "--context-parallel-size",
                        "--pipeline-model-parallel-size",
                        "--expert-model-parallel-size",
                        "--expert-tensor-parallel-size",
                        "--num-virtual-stages-per-pipeline-rank",
                        "--num-layers-per-virtual-pipeline-stage",
                        "--pipeline-model-parallel-layout",
                        "--decoder-first-pipeline-num-layers",
                        "--decoder-last-pipeline-num-layers",
                        "--data-parallel-sharding-strategy",
                        "--micro-batch-size",
                        "--global-batch-size",
                        "--seq-length",
                        "--recompute-granularity",
                        "--recompute-method",
                        "--recompute-num-layers",
                        "--optimizer",
                        "--num-layers",
                        "--hidden-size",
                        "--ffn-hidden-size",
                        "--num-attention-heads",
                        "--num-query-groups",
                        "--kv-channels",
                        "--max-position-embeddings",
                        "--vocab-size",
                        "--normalization",
                        "--position-embedding-type",
                        "--num-experts",
                        "--moe-router-topk",
                        "--moe-ffn-hidden-size",
                        "--moe-shared-expert-intermediate-size",
                        "--moe-layer-freq",
                        "--moe-token-dispatcher-type",
                        "--moe-flex-dispatcher-backend",
                        "--moe-router-num-groups",
                        "--moe-router-group-topk",
                        "--moe-expert-capacity-factor",
                        "--q-lora-rank",
                        "--kv-lora-rank",
                        "--qk-head-dim",
                        "--qk-pos-emb-head-dim",
                        "--v-head-dim",
                        "--mtp-num-layers",
                        "--fp8-format",
                        "--fp8-recipe"}) {
    if (f == s) return true;
  }
  return false;
}

// "([0]*a+[1])*n" -> EVERY_K a+1; "([0]*a+[1]*b)" -> FIRST_K_DENSE a; "1" -> every layer.
bool ParseLayerFreq(const std::string& v, std::string* placement, int64_t* k) {
  auto num = [](const std::string& s, size_t* pos, int64_t* out) {
    const char* b = s.data() + *pos;
    auto [ptr, ec] = std::from_chars(b, s.data() + s.size(), *out);
    if (ec != std::errc() || ptr == b) return false;
    *pos += static_cast<size_t>(ptr - b);
    return true;
  };
  auto lit = [](const std::string& s, size_t* pos, const char* l) {
    const std::string w(l);
    if (s.compare(*pos, w.size(), w) != 0) return false;
    *pos += w.size();
    return true;
  };
  if (v == "1") {
    *placement = "EVERY_K";
    *k = 1;
    return true;
  }
  size_t p = 0;
  int64_t a = 0, b = 0;
  if (!lit(v, &p, "([0]*") || !num(v, &p, &a) || !lit(v, &p, "+[1]")) return false;
  if (lit(v, &p, ")*") && num(v, &p, &b) && p == v.size()) {
    *placement = "EVERY_K";
    *k = a + 1;
    return true;
  }
  if (lit(v, &p, "*") && num(v, &p, &b) && lit(v, &p, ")") && p == v.size()) {
    *placement = "FIRST_K_DENSE";
    *k = a;
    return true;
  }
  return false;
}

}  // namespace

Expected<MegatronImport> ParseMegatronArgs(const std::string& text) {
  auto words = SplitWords(text);
  if (!words.ok()) return words.status();
  MegatronImport out;
  std::map<std::string, std::string> v;  // flag -> value ("" for switches)
  for (size_t i = 0; i < words->size(); ++i) {
    std::string w = (*words)[i];
    std::optional<std::string> inline_value;
    if (w.rfind("--", 0) == 0 && w.find('=') != std::string::npos) {
      inline_value = w.substr(w.find('=') + 1);
      w = w.substr(0, w.find('='));
    }
    if (IsSwitch(w)) {
      v[w] = "";
    } else if (IsValueFlag(w)) {
      if (!inline_value) {
        if (i + 1 >= words->size()) return Status::InvalidInput(w + " needs a value");
        inline_value = (*words)[++i];
      }
      v[w] = *inline_value;
    } else {
      std::string ignored = (*words)[i];
      if (w.rfind("--", 0) == 0 && !inline_value && i + 1 < words->size() &&
          (*words)[i + 1].rfind("--", 0) != 0) {
        ignored += " " + (*words)[++i];
      }
      out.ignored.push_back(ignored);
    }
  }
  auto has = [&v](const char* f) { return v.count(f) > 0; };
  auto integer = [&v](const char* f, int64_t* x) -> Status {
    const std::string& s = v[f];
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *x);
    if (ec != std::errc() || ptr != s.data() + s.size() || *x < 0) {
      return Status::InvalidInput(std::string(f) + " \"" + s + "\" is not a count (>= 0)");
    }
    return Status::Ok();
  };
  auto set = [&out](const std::string& path, const std::string& value) {
    out.overrides.push_back(path + "=" + value);
  };
  std::map<std::string, int64_t> n;  // integer flags given
  for (const auto& [flag, value] : v) {
    if (value.empty() || flag == "--pipeline-model-parallel-layout" || flag == "--moe-layer-freq" ||
        flag == "--moe-expert-capacity-factor" || flag == "--data-parallel-sharding-strategy" ||
        flag == "--recompute-granularity" || flag == "--recompute-method" ||
        flag == "--optimizer" || flag == "--normalization" || flag == "--position-embedding-type" ||
        flag == "--moe-token-dispatcher-type" || flag == "--moe-flex-dispatcher-backend" ||
        flag == "--fp8-format" || flag == "--fp8-recipe") {
      continue;
    }
    int64_t x = 0;
    if (Status st = integer(flag.c_str(), &x); !st.ok()) return st;
    n[flag] = x;
  }
  auto get = [&n](const char* f, int64_t dflt) { return n.count(f) ? n[f] : dflt; };
  // Sizes are at least 1; every count stays below 2^31, so that products of two fit in int64.
  for (const auto& [flag, x] : n) {
    if (x > (int64_t{1} << 31)) {
      return Status::InvalidInput(flag + " " + Str(x) + " is too large (limit 2^31)");
    }
  }
  for (const char* f :
       {"--tensor-model-parallel-size", "--context-parallel-size", "--pipeline-model-parallel-size",
        "--expert-model-parallel-size", "--expert-tensor-parallel-size",
        "--num-virtual-stages-per-pipeline-rank", "--num-layers-per-virtual-pipeline-stage",
        "--micro-batch-size", "--global-batch-size", "--seq-length"}) {
    if (n.count(f) && n[f] == 0) return Status::InvalidInput(std::string(f) + " 0 must be >= 1");
  }

  // Model, when the arguments describe one.
  if (has("--num-layers") || has("--hidden-size")) {
    for (const auto& [flag, path] : {std::pair{"--num-layers", "model.num_layers"},
                                     {"--hidden-size", "model.d_model"},
                                     {"--ffn-hidden-size", "model.d_ff"},
                                     {"--num-attention-heads", "model.num_heads"},
                                     {"--vocab-size", "model.vocab_size"}}) {
      if (n.count(flag)) set(path, Str(n[flag]));
    }
    set("model.num_kv_heads",
        has("--group-query-attention") ? Str(get("--num-query-groups", 1)) : "0");
    set("model.head_dim", Str(get("--kv-channels", 0)));
    set("model.ffn_kind", has("--swiglu") ? "SWIGLU" : "GELU");
    const std::string norm = has("--normalization") ? v["--normalization"] : "LayerNorm";
    if (norm != "RMSNorm" && norm != "LayerNorm") {
      return Status::InvalidInput("--normalization \"" + norm +
                                  "\": moesim models RMSNorm and "
                                  "LayerNorm");
    }
    set("model.norm_kind", norm == "RMSNorm" ? "RMSNORM" : "LAYERNORM");
    const std::string pos =
        has("--position-embedding-type") ? v["--position-embedding-type"] : "learned_absolute";
    if (pos != "rope" && pos != "learned_absolute") {
      return Status::InvalidInput("--position-embedding-type \"" + pos +
                                  "\": moesim models rope and learned_absolute");
    }
    set("model.position_kind", pos == "rope" ? "ROPE" : "LEARNED");
    set("model.tie_embeddings", has("--untie-embeddings-and-output-weights") ? "false" : "true");
    set("model.linear_bias", has("--disable-bias-linear") ? "false" : "true");
    const int64_t experts = get("--num-experts", 0);
    set("model.moe.num_experts", Str(experts));
    if (experts > 0) {
      set("model.moe.top_k", Str(get("--moe-router-topk", 2)));
      const int64_t expert_ff = get("--moe-ffn-hidden-size", 0);
      set("model.moe.expert_d_ff", Str(expert_ff));
      const int64_t shared = get("--moe-shared-expert-intermediate-size", 0);
      const int64_t each = expert_ff > 0 ? expert_ff : get("--ffn-hidden-size", 0);
      if (shared > 0 && (each <= 0 || shared % each != 0)) {
        return Status::InvalidInput("--moe-shared-expert-intermediate-size " + Str(shared) +
                                    " is not a whole number of experts of " + Str(each));
      }
      set("model.moe.num_shared_experts", Str(shared > 0 ? shared / each : 0));
      std::string placement = "EVERY_K";
      int64_t k = 1;
      if (has("--moe-layer-freq") && !ParseLayerFreq(v["--moe-layer-freq"], &placement, &k)) {
        return Status::InvalidInput("--moe-layer-freq \"" + v["--moe-layer-freq"] +
                                    "\": moesim reads 1, ([0]*a+[1])*n (the last of every "
                                    "a+1 layers) and ([0]*a+[1]*b) (the first a layers dense)");
      }
      set("model.moe.placement", placement);
      set("model.moe.placement_k", Str(k));
      set("model.moe.dispatch", "PERMUTE");
      set("model.moe.shared_expert_overlap", has("--moe-shared-expert-overlap") ? "true" : "false");
      // Megatron-LM's default dispatcher is allgather; flex runs DeepEP (--moe-enable-deepep
      // before core_r0.14) or the backend named.
      const std::string type =
          has("--moe-token-dispatcher-type") ? v["--moe-token-dispatcher-type"] : "allgather";
      const std::string backend = has("--moe-flex-dispatcher-backend")
                                      ? v["--moe-flex-dispatcher-backend"]
                                      : (has("--moe-enable-deepep") ? "deepep" : "");
      std::string dispatcher;
      if (type == "alltoall" || type == "allgather") {
        dispatcher = type == "alltoall" ? "ALLTOALL" : "ALLGATHER";
      } else if (type == "flex" && (backend == "deepep" || backend == "hybridep")) {
        dispatcher = backend == "deepep" ? "DEEPEP" : "HYBRIDEP";
      } else {
        return Status::InvalidInput(
            "--moe-token-dispatcher-type \"" + type + "\"" +
            (type == "flex" ? " with --moe-flex-dispatcher-backend \"" + backend + "\"" : "") +
            ": moesim models alltoall, allgather, and flex with deepep or hybridep");
      }
      set("model.moe.token_dispatcher", dispatcher);
      set("model.moe.router_num_groups", Str(get("--moe-router-num-groups", 0)));
      set("model.moe.router_group_topk", Str(get("--moe-router-group-topk", 0)));
      // No capacity factor: Megatron-LM's dropless routing.
      const bool dropless = !has("--moe-expert-capacity-factor");
      set("model.moe.dropless", dropless ? "true" : "false");
      set("model.moe.capacity_factor", dropless ? "0" : v["--moe-expert-capacity-factor"]);
      // A capacity is Megatron-Core's own: per rank's routed tokens, dropped before the exchange.
      if (!dropless) {
        set("model.moe.capacity_convention", "MEGATRON");
        set("model.moe.group_size_tokens", "0");
        set("model.moe.num_groups", "0");
      }
      set("model.moe.pad_expert_input_to_capacity",
          has("--moe-pad-expert-input-to-capacity") ? "true" : "false");
    }
    if (has("--multi-latent-attention")) {
      set("model.mla.q_lora_rank", Str(get("--q-lora-rank", 0)));
      set("model.mla.kv_lora_rank", Str(get("--kv-lora-rank", 32)));
      set("model.mla.qk_nope_head_dim", Str(get("--qk-head-dim", 128)));
      set("model.mla.qk_rope_head_dim", Str(get("--qk-pos-emb-head-dim", 64)));
      set("model.mla.v_head_dim", Str(get("--v-head-dim", 128)));
      set("model.num_kv_heads", "0");
      set("model.head_dim", "0");
    }
    set("model.mtp_depth", Str(get("--mtp-num-layers", 0)));
  }
  if (has("--seq-length")) set("model.seq_len", Str(n["--seq-length"]));

  // Parallelism: the whole configuration.
  const int64_t tp = get("--tensor-model-parallel-size", 1);
  const int64_t pp = get("--pipeline-model-parallel-size", 1);
  set("sharding.megatron.tensor", Str(tp));
  set("sharding.megatron.context", Str(get("--context-parallel-size", 1)));
  set("sharding.megatron.pipeline", Str(pp));
  set("sharding.megatron.expert", Str(get("--expert-model-parallel-size", 1)));
  set("sharding.megatron.expert_tensor", Str(get("--expert-tensor-parallel-size", 0)));
  set("sharding.megatron.distributed_optimizer",
      has("--use-distributed-optimizer") ? "true" : "false");
  const bool fsdp = has("--use-megatron-fsdp");
  if (fsdp && has("--data-parallel-sharding-strategy") &&
      v["--data-parallel-sharding-strategy"] != "optim_grads_params") {
    out.notes.push_back("--data-parallel-sharding-strategy " +
                        v["--data-parallel-sharding-strategy"] +
                        ": moesim's FSDP shards weights, gradients and optimizer state "
                        "(optim_grads_params)");
  }
  set("sharding.megatron.fsdp", fsdp ? "true" : "false");
  set("training.tp_comm_overlap", has("--tp-comm-overlap") ? "true" : "false");
  set("training.overlap_moe_expert_parallel_comm",
      has("--overlap-moe-expert-parallel-comm") ? "true" : "false");
  set("training.delay_wgrad_compute", has("--delay-wgrad-compute") ? "true" : "false");
  // FP8 is on with --fp8-format (arguments.py: --fp8-recipe defaults to delayed and does nothing
  // alone).
  std::string fp8 = "BF16";
  if (has("--fp8-format")) {
    const std::string& format = v["--fp8-format"];
    if (format != "e4m3" && format != "hybrid") {
      return Status::InvalidInput("--fp8-format \"" + format + "\" is not e4m3 or hybrid");
    }
    const std::string recipe = has("--fp8-recipe") ? v["--fp8-recipe"] : "delayed";
    if (recipe == "delayed" || recipe == "tensorwise" || recipe == "blockwise" ||
        recipe == "mxfp8") {
      fp8.clear();
      for (char ch : recipe) fp8 += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    } else {
      return Status::InvalidInput("--fp8-recipe \"" + recipe +
                                  "\" is not delayed, tensorwise, blockwise or mxfp8");
    }
  } else if (has("--fp8-recipe")) {
    out.notes.push_back("--fp8-recipe without --fp8-format: FP8 is off, as in Megatron-LM");
  }
  set("training.fp8_recipe", fp8);
  if (tp > 1 && !has("--sequence-parallel")) {
    out.notes.push_back(
        "--tensor-model-parallel-size > 1 without --sequence-parallel: moesim models tensor "
        "parallelism with sequence parallelism");
  }
  int64_t vpp = 1;
  std::string layout;
  const int given = int{has("--pipeline-model-parallel-layout")} +
                    int{has("--num-virtual-stages-per-pipeline-rank")} +
                    int{has("--num-layers-per-virtual-pipeline-stage")};
  if (given > 1) {
    return Status::InvalidInput(
        "give at most one of --pipeline-model-parallel-layout, "
        "--num-virtual-stages-per-pipeline-rank and --num-layers-per-virtual-pipeline-stage (as "
        "Megatron-LM requires)");
  }
  if (has("--pipeline-model-parallel-layout")) {
    layout = v["--pipeline-model-parallel-layout"];
    auto parsed = ParsePipelineLayout(layout);
    if (!parsed.ok()) {
      return Status::InvalidInput("--pipeline-model-parallel-layout \"" + layout + "\" " +
                                  parsed.status().message());
    }
    const auto stages = static_cast<int64_t>(parsed->segments.size());
    if (stages % pp != 0) {
      return Status::InvalidInput("--pipeline-model-parallel-layout has " + Str(stages) +
                                  " stages, not a multiple of --pipeline-model-parallel-size " +
                                  Str(pp));
    }
    vpp = stages / pp;
  } else if (has("--num-virtual-stages-per-pipeline-rank")) {
    vpp = n["--num-virtual-stages-per-pipeline-rank"];
  } else if (has("--num-layers-per-virtual-pipeline-stage")) {
    const int64_t per = n["--num-layers-per-virtual-pipeline-stage"];
    if (!has("--num-layers") || per == 0 || n["--num-layers"] % (pp * per) != 0) {
      return Status::InvalidInput(
          "--num-layers-per-virtual-pipeline-stage needs --num-layers, a multiple of it x "
          "--pipeline-model-parallel-size");
    }
    vpp = n["--num-layers"] / (pp * per);
  }
  set("training.virtual_stages", Str(vpp));
  set("training.pipeline_schedule", vpp > 1 && pp > 1 ? "INTERLEAVED" : "ONE_F_ONE_B");
  set("training.pipeline_layout", layout);
  // Left out: cleared (an empty --set value), so that a scenario's own counts do not stay.
  set("training.first_stage_layers", has("--decoder-first-pipeline-num-layers")
                                         ? Str(n["--decoder-first-pipeline-num-layers"])
                                         : "");
  set("training.last_stage_layers", has("--decoder-last-pipeline-num-layers")
                                        ? Str(n["--decoder-last-pipeline-num-layers"])
                                        : "");

  // Training.
  if (has("--micro-batch-size")) set("training.micro_batch_size", Str(n["--micro-batch-size"]));
  if (has("--global-batch-size")) {
    if (!has("--seq-length")) {
      return Status::InvalidInput("--global-batch-size counts sequences: give --seq-length too");
    }
    set("training.global_batch_tokens", Str(n["--global-batch-size"] * n["--seq-length"]));
  }
  const std::string gran = has("--recompute-granularity") ? v["--recompute-granularity"] : "";
  if (gran != "" && gran != "full" && gran != "selective") {
    return Status::InvalidInput("--recompute-granularity \"" + gran + "\": full or selective");
  }
  set("training.recompute", gran == "full" ? "FULL" : gran == "selective" ? "SELECTIVE" : "NONE");
  if (gran == "full" && (get("--recompute-num-layers", 1) != 1 ||
                         (has("--recompute-method") && v["--recompute-method"] != "uniform"))) {
    out.notes.push_back(
        "full recomputation: moesim recomputes every layer (--recompute-method uniform "
        "--recompute-num-layers 1)");
  }
  if (has("--bf16") || has("--fp16")) set("training.precision", "BF16_MIXED");
  if (has("--fp16")) out.notes.push_back("--fp16: simulated as bf16 mixed precision");
  if (has("--optimizer")) {
    const std::string& o = v["--optimizer"];
    if (o != "adam" && o != "sgd") {
      return Status::InvalidInput("--optimizer \"" + o + "\": moesim models adam and sgd");
    }
    set("training.optimizer", o == "sgd" ? "SGD" : "ADAMW");
  }
  return out;
}

}  // namespace moesim
