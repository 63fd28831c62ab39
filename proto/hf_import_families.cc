// The family readers of hf_import.cc: which key of each model_type's config.json becomes which
// field of the model block (docs/import.md has the same table for users). Each reader books every
// key it reads (mapped, not mapped or ignored) and leaves the rest to Keys::Finish.
#include <string>
#include <vector>

#include "proto/hf_import_keys.h"

namespace moesim::hf {
namespace {

using nlohmann::json;

const char* kContext =
    "the longest context the model accepts, not a shape: the scenario trains on model.seq_len "
    "(--seq-len)";

bool IsMoeFamily(const std::string& f) {
  return f == "mixtral" || f == "qwen2_moe" || f == "qwen3_moe" || f == "olmoe" || f == "gpt_oss";
}

// hidden_act of a gated (three-matrix) FFN: any activation costs as moesim's SwiGLU.
Status MapGatedFfn(Keys& k, const Obj& o, pb::Model* m) {
  m->set_ffn_kind(pb::Model::SWIGLU);
  std::string act = "silu";
  auto a = k.OptString(o, "hidden_act", &act);
  if (!a.ok()) return a.status();
  k.Map(o, "hidden_act", "model.ffn_kind", "SWIGLU (gated FFN with " + act + ")");
  return Status::Ok();
}

// Sliding-window attention keys of the Mistral / Qwen2 / Qwen3 configs.
Status MapSlidingWindow(Keys& k, const Obj& o) {
  bool use = true;
  auto has_use = k.OptBool(o, "use_sliding_window", &use);
  if (!has_use.ok()) return has_use.status();
  if (*has_use && !use) {
    k.Ignore(o, "use_sliding_window", "false: every layer attends over the whole sequence");
    k.Ignore(o, "sliding_window", "unused: use_sliding_window is false");
    k.Ignore(o, "max_window_layers", "unused: use_sliding_window is false");
    return Status::Ok();
  }
  int64_t window = 0;
  auto has_window = k.OptInt(o, "sliding_window", &window);
  if (!has_window.ok()) return has_window.status();
  if (*has_window) {
    k.NotMapped(o, "sliding_window",
                "sliding-window attention over " + Num(window) +
                    " tokens: moesim's attention is causal over the whole model.seq_len, so "
                    "attention is overcounted when seq_len > " +
                    Num(window));
    k.NotMapped(o, "use_sliding_window", "sliding-window attention (see sliding_window)");
    k.NotMapped(o, "max_window_layers", "which layers use the sliding window (see sliding_window)");
  } else {
    k.Ignore(o, "sliding_window", "null: full attention");
  }
  return Status::Ok();
}

// attention_bias / mlp_bias: moesim's model.linear_bias puts biases on every linear layer.
Status MapBiases(Keys& k, const Obj& o, pb::Model* m) {
  bool attn = false, mlp = false;
  auto a = k.OptBool(o, "attention_bias", &attn);
  if (!a.ok()) return a.status();
  auto p = k.OptBool(o, "mlp_bias", &mlp);
  if (!p.ok()) return p.status();
  if (attn == mlp) {
    m->set_linear_bias(attn);
    k.Map(o, "attention_bias", "model.linear_bias", attn ? "true" : "false");
    k.Map(o, "mlp_bias", "model.linear_bias", mlp ? "true" : "false");
    return Status::Ok();
  }
  m->set_linear_bias(false);
  k.NotMapped(o, "attention_bias",
              std::string("biases on the attention projections only") +
                  (mlp ? "" : " (the FFN has none)") +
                  ": model.linear_bias puts them on every linear layer; left false, "
                  "(heads + 2 x kv_heads) x head_dim + d_model parameters per layer missing");
  k.NotMapped(o, "mlp_bias", "biases on the FFN only: see attention_bias");
  return Status::Ok();
}

}  // namespace

// The shape keys the llama-like families and Llama 4's text model share: width, depth, heads,
// key-value heads, head size, vocabulary, and the context length (booked as ignored).
Status ReadAttentionShape(Keys& k, const Obj& o, Built* b) {
  pb::Model* m = &b->model;
  int64_t v = 0;
  MOESIM_RETURN_IF_ERROR(k.Int(o, "hidden_size", &v));
  m->set_d_model(v);
  k.Map(o, "hidden_size", "model.d_model", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "num_hidden_layers", &v));
  m->set_num_layers(v);
  k.Map(o, "num_hidden_layers", "model.num_layers", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "num_attention_heads", &v));
  m->set_num_heads(v);
  k.Map(o, "num_attention_heads", "model.num_heads", Num(v));
  auto kv = k.OptInt(o, "num_key_value_heads", &v);
  if (!kv.ok()) return kv.status();
  if (*kv) {
    m->set_num_kv_heads(v);
    k.Map(o, "num_key_value_heads", "model.num_kv_heads", Num(v));
  }
  auto hd = k.OptInt(o, "head_dim", &v);
  if (!hd.ok()) return hd.status();
  if (*hd) {
    m->set_head_dim(v);
    k.Map(o, "head_dim", "model.head_dim", Num(v));
  }
  MOESIM_RETURN_IF_ERROR(k.Int(o, "vocab_size", &v));
  m->set_vocab_size(v);
  k.Map(o, "vocab_size", "model.vocab_size", Num(v));
  auto mp = k.OptInt(o, "max_position_embeddings", &b->max_positions);
  if (!mp.ok()) return mp.status();
  k.Ignore(o, "max_position_embeddings", kContext);
  return Status::Ok();
}

Status ReadLlamaLike(Keys& k, const Obj& o, const std::string& f, Built* b) {
  MOESIM_RETURN_IF_ERROR(ReadAttentionShape(k, o, b));
  pb::Model* m = &b->model;
  int64_t v = 0;
  bool tie = false;  // every family here defaults to untied embeddings
  auto t = k.OptBool(o, "tie_word_embeddings", &tie);
  if (!t.ok()) return t.status();
  m->set_tie_embeddings(tie);
  k.Map(o, "tie_word_embeddings", "model.tie_embeddings", tie ? "true" : "false");
  m->set_norm_kind(pb::Model::RMSNORM);
  m->set_position_kind(pb::Model::ROPE);
  MOESIM_RETURN_IF_ERROR(MapGatedFfn(k, o, m));

  // Dense FFN size, expert count and size.
  const bool moe = IsMoeFamily(f);
  MOESIM_RETURN_IF_ERROR(k.Int(o, "intermediate_size", &v));
  m->set_d_ff(v);
  k.Map(o, "intermediate_size",
        moe && f != "qwen2_moe" && f != "qwen3_moe" ? "model.d_ff, model.moe.expert_d_ff"
                                                    : "model.d_ff",
        Num(v));
  if (moe) {
    pb::Moe* e = m->mutable_moe();
    e->set_placement(pb::Moe::EVERY_K);
    e->set_placement_k(1);
    const std::string experts_key =
        f == "mixtral" || f == "gpt_oss" ? "num_local_experts" : "num_experts";
    MOESIM_RETURN_IF_ERROR(k.Int(o, experts_key, &v));
    e->set_num_experts(v);
    k.Map(o, experts_key, "model.moe.num_experts", Num(v));
    MOESIM_RETURN_IF_ERROR(k.Int(o, "num_experts_per_tok", &v));
    e->set_top_k(v);
    k.Map(o, "num_experts_per_tok", "model.moe.top_k", Num(v));
    if (f == "gpt_oss") {
      int64_t top = 0;
      auto ept = k.OptInt(o, "experts_per_token", &top);
      if (!ept.ok()) return ept.status();
      if (*ept && top != e->top_k()) {
        return k.Error(o, "experts_per_token",
                       Num(top) + " differs from num_experts_per_tok " + Num(e->top_k()));
      }
      k.Map(o, "experts_per_token", "model.moe.top_k", Num(top));
    }
    if (f == "qwen2_moe" || f == "qwen3_moe") {
      MOESIM_RETURN_IF_ERROR(k.Int(o, "moe_intermediate_size", &v));
      e->set_expert_d_ff(v);
      k.Map(o, "moe_intermediate_size", "model.moe.expert_d_ff", Num(v));
      auto step = k.OptInt(o, "decoder_sparse_step", &v);
      if (!step.ok()) return step.status();
      if (*step) {
        e->set_placement_k(v);
        k.Map(o, "decoder_sparse_step", "model.moe.placement EVERY_K, placement_k", Num(v));
      }
      if (k.Has(o, "mlp_only_layers")) {
        const json& only = o.j->at("mlp_only_layers");
        if (!only.is_array()) {
          return k.Error(o, "mlp_only_layers", "must be an array of layer indices");
        }
        if (only.empty()) {
          k.Map(o, "mlp_only_layers", "model.moe.placement", "[] (no layer forced dense)");
        } else {
          k.NotMapped(o, "mlp_only_layers",
                      "dense layers at a list of indices: model.moe.placement has no such list; "
                      "the scenario puts MoE layers every decoder_sparse_step layers");
        }
      }
    } else {
      e->set_expert_d_ff(m->d_ff());
    }
    if (f == "qwen2_moe") {
      auto sh = k.OptInt(o, "shared_expert_intermediate_size", &v);
      if (!sh.ok()) return sh.status();
      if (*sh && v % e->expert_d_ff() == 0) {
        e->set_num_shared_experts(v / e->expert_d_ff());
        k.Map(o, "shared_expert_intermediate_size", "model.moe.num_shared_experts",
              Num(v / e->expert_d_ff()) + " (of expert_d_ff " + Num(e->expert_d_ff()) + ")");
      } else if (*sh) {
        k.NotMapped(o, "shared_expert_intermediate_size",
                    "a shared expert of " + Num(v) + " hidden units, not a multiple of " +
                        Num(e->expert_d_ff()) +
                        ": model.moe.num_shared_experts counts experts of "
                        "expert_d_ff");
      }
      k.Note(
          "Qwen2-MoE's shared expert has a sigmoid gate (d_model parameters per layer), not "
          "counted");
    }
    if (f == "olmoe") {
      k.Ignore(o, "clip_qkv", "clamps the query/key/value activations: numerics");
      k.Note(
          "OLMoE normalises queries and keys (QK-norm, 2 x d_model parameters per layer), not "
          "counted");
    }
  }

  // Biases, attention layouts.
  if (f == "qwen2" || f == "qwen2_moe") {
    k.Note(
        "Qwen2's query, key and value projections have biases (no key says so): model."
        "linear_bias would put biases on every linear layer, so they are left out "
        "((heads + 2 x kv_heads) x head_dim parameters per layer)");
  }
  if (f == "qwen3" || f == "qwen3_moe") {
    k.Note(
        "Qwen3 normalises each head's query and key (QK-norm, 2 x head_dim parameters per "
        "layer), not counted");
  }
  if (f == "gpt_oss") {
    bool attn_bias = true;
    auto ab = k.OptBool(o, "attention_bias", &attn_bias);
    if (!ab.ok()) return ab.status();
    m->set_linear_bias(attn_bias);
    k.Map(o, "attention_bias", "model.linear_bias", attn_bias ? "true" : "false");
    k.Note(
        "GPT-OSS: model.linear_bias also gives the router no bias and each expert one bias on "
        "its gate-and-up projection where GPT-OSS has two (the gate's and the up's): "
        "parameters differ by under 0.01%");
    k.Note(
        "GPT-OSS's attention sinks (one learned logit per head, no key says so) are not "
        "modelled");
    if (k.Has(o, "layer_types")) {
      const json& types = o.j->at("layer_types");
      if (!types.is_array()) return k.Error(o, "layer_types", "must be an array of strings");
      int64_t sliding = 0;
      for (const json& l : types) sliding += l == "sliding_attention" ? 1 : 0;
      k.NotMapped(o, "layer_types",
                  Num(sliding) +
                      " layers attend over a sliding window (sliding_window tokens), "
                      "the others over the whole sequence: moesim's attention is full causal on "
                      "every layer, so the windowed layers' attention is overcounted");
      int64_t w = 0;
      auto sw = k.OptInt(o, "sliding_window", &w);
      if (!sw.ok()) return sw.status();
      k.NotMapped(o, "sliding_window",
                  "window of " + Num(w) + " tokens on the sliding layers (see layer_types)");
    } else {
      MOESIM_RETURN_IF_ERROR(MapSlidingWindow(k, o));
    }
    k.Ignore(o, "initial_context_length", "the context length before RoPE scaling: numerics");
  } else {
    MOESIM_RETURN_IF_ERROR(MapBiases(k, o, m));
    if (f == "mistral" || f == "mixtral" || f == "qwen2" || f == "qwen3" || f == "qwen2_moe" ||
        f == "qwen3_moe") {
      MOESIM_RETURN_IF_ERROR(MapSlidingWindow(k, o));
    }
  }
  if (f == "qwen2") k.Ignore(o, "use_mrope", "multimodal RoPE sections: numerics");
  k.Finish(o, f);
  return Status::Ok();
}

Status ReadDeepSeek(Keys& k, const Obj& o, const std::string& f, Built* b) {
  pb::Model* m = &b->model;
  int64_t v = 0;
  struct IntKey {
    const char* key;
    const char* field;
    void (pb::Model::*set)(int64_t);
  };
  for (const IntKey& ik :
       std::vector<IntKey>{{"hidden_size", "model.d_model", &pb::Model::set_d_model},
                           {"num_hidden_layers", "model.num_layers", &pb::Model::set_num_layers},
                           {"num_attention_heads", "model.num_heads", &pb::Model::set_num_heads},
                           {"intermediate_size", "model.d_ff", &pb::Model::set_d_ff},
                           {"vocab_size", "model.vocab_size", &pb::Model::set_vocab_size}}) {
    MOESIM_RETURN_IF_ERROR(k.Int(o, ik.key, &v));
    (m->*ik.set)(v);
    k.Map(o, ik.key, ik.field, Num(v));
  }
  int64_t kv_heads = 0;
  auto kv = k.OptInt(o, "num_key_value_heads", &kv_heads);
  if (!kv.ok()) return kv.status();
  if (*kv && kv_heads != m->num_heads()) {
    return k.Error(o, "num_key_value_heads",
                   Num(kv_heads) +
                       ": with Multi-head Latent Attention every head has its own "
                       "key and value (num_attention_heads " +
                       Num(m->num_heads()) + ")");
  }
  k.Ignore(o, "num_key_value_heads",
           "implied by Multi-head Latent Attention (a key and a value per head)");
  auto mp = k.OptInt(o, "max_position_embeddings", &b->max_positions);
  if (!mp.ok()) return mp.status();
  k.Ignore(o, "max_position_embeddings", kContext);
  bool tie = false;
  auto t = k.OptBool(o, "tie_word_embeddings", &tie);
  if (!t.ok()) return t.status();
  m->set_tie_embeddings(tie);
  k.Map(o, "tie_word_embeddings", "model.tie_embeddings", tie ? "true" : "false");
  m->set_norm_kind(pb::Model::RMSNORM);
  m->set_position_kind(pb::Model::ROPE);
  MOESIM_RETURN_IF_ERROR(MapGatedFfn(k, o, m));
  bool attn_bias = false;
  auto ab = k.OptBool(o, "attention_bias", &attn_bias);
  if (!ab.ok()) return ab.status();
  if (attn_bias) {
    k.NotMapped(o, "attention_bias", "biases on MLA's projections: moesim's MLA has none");
  } else {
    k.Map(o, "attention_bias", "model.linear_bias", "false");
  }
  m->set_linear_bias(false);

  // Multi-head Latent Attention.
  pb::Mla* mla = m->mutable_mla();
  if (k.Has(o, "q_lora_rank")) {
    MOESIM_RETURN_IF_ERROR(k.Int(o, "q_lora_rank", &v));
    mla->set_q_lora_rank(v);
    k.Map(o, "q_lora_rank", "model.mla.q_lora_rank", Num(v));
  } else {
    k.Map(o, "q_lora_rank", "model.mla.q_lora_rank", "0 (null: queries from the input)");
  }
  for (const auto& [key, field, set] :
       std::vector<std::tuple<const char*, const char*, void (pb::Mla::*)(int64_t)>>{
           {"kv_lora_rank", "model.mla.kv_lora_rank", &pb::Mla::set_kv_lora_rank},
           {"qk_rope_head_dim", "model.mla.qk_rope_head_dim", &pb::Mla::set_qk_rope_head_dim},
           {"qk_nope_head_dim", "model.mla.qk_nope_head_dim", &pb::Mla::set_qk_nope_head_dim},
           {"v_head_dim", "model.mla.v_head_dim", &pb::Mla::set_v_head_dim}}) {
    MOESIM_RETURN_IF_ERROR(k.Int(o, key, &v));
    (mla->*set)(v);
    k.Map(o, key, field, Num(v));
  }

  // DeepSeekMoE.
  pb::Moe* e = m->mutable_moe();
  MOESIM_RETURN_IF_ERROR(k.Int(o, "n_routed_experts", &v));
  e->set_num_experts(v);
  k.Map(o, "n_routed_experts", "model.moe.num_experts", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "num_experts_per_tok", &v));
  e->set_top_k(v);
  k.Map(o, "num_experts_per_tok", "model.moe.top_k", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "moe_intermediate_size", &v));
  e->set_expert_d_ff(v);
  k.Map(o, "moe_intermediate_size", "model.moe.expert_d_ff", Num(v));
  auto sh = k.OptInt(o, "n_shared_experts", &v);
  if (!sh.ok()) return sh.status();
  if (*sh) {
    e->set_num_shared_experts(v);
    k.Map(o, "n_shared_experts", "model.moe.num_shared_experts", Num(v));
  }
  int64_t first_dense = 0;
  if (k.Has(o, "first_k_dense_replace")) {
    const json& j = o.j->at("first_k_dense_replace");
    if (!j.is_number_integer() || j.get<int64_t>() < 0) {
      return k.Error(o, "first_k_dense_replace", "must be a non-negative integer");
    }
    first_dense = j.get<int64_t>();
  }
  e->set_placement(pb::Moe::FIRST_K_DENSE);
  e->set_placement_k(first_dense);
  k.Map(o, "first_k_dense_replace", "model.moe.placement FIRST_K_DENSE, placement_k",
        Num(first_dense));
  int64_t freq = 1;
  auto fq = k.OptInt(o, "moe_layer_freq", &freq);
  if (!fq.ok()) return fq.status();
  if (freq == 1) {
    k.Map(o, "moe_layer_freq", "model.moe.placement", "1 (every layer after the dense ones)");
  } else {
    k.NotMapped(o, "moe_layer_freq",
                "an MoE layer every " + Num(freq) + " layers after the first " + Num(first_dense) +
                    " dense ones: model.moe.placement cannot combine both; "
                    "the scenario makes every layer after them MoE");
  }
  int64_t groups = 0, group_topk = 0;
  auto g = k.OptInt(o, "n_group", &groups);
  if (!g.ok()) return g.status();
  auto gt = k.OptInt(o, "topk_group", &group_topk);
  if (!gt.ok()) return gt.status();
  if (*g && *gt && groups > 1) {
    e->set_router_num_groups(groups);
    e->set_router_group_topk(group_topk);
    k.Map(o, "n_group", "model.moe.router_num_groups", Num(groups));
    k.Map(o, "topk_group", "model.moe.router_group_topk", Num(group_topk));
  } else {
    k.Map(o, "n_group", "model.moe.router_num_groups", "0 (one group: not limited)");
    k.Map(o, "topk_group", "model.moe.router_group_topk", "0 (not limited)");
  }
  auto mtp = k.OptInt(o, "num_nextn_predict_layers", &v);
  if (!mtp.ok()) return mtp.status();
  if (*mtp) {
    m->set_mtp_depth(v);
    k.Map(o, "num_nextn_predict_layers", "model.mtp_depth", Num(v));
  }
  k.Finish(o, f);
  return Status::Ok();
}

Status ReadLlama4(Keys& k, const Obj& root, const std::string& f, Built* b) {
  Obj o = root;
  if (f == "llama4") {
    auto tc = k.OptObject(root, "text_config", &o);
    if (!tc.ok()) return tc.status();
    if (!*tc) return k.Error(root, "text_config", "missing: Llama 4's text model is in it");
    k.Map(root, "text_config", "model", "(its keys, text_config.*)");
    k.NotMapped(root, "vision_config",
                "the vision encoder and its projector: moesim models the text model only, so "
                "parameters and FLOPs of images are missing");
    k.NotMapped(root, "image_processor_config",
                "how an image is cut into tiles for the vision encoder, which is not imported: "
                "the cost of images is missing");
  }
  MOESIM_RETURN_IF_ERROR(ReadAttentionShape(k, o, b));
  pb::Model* m = &b->model;
  int64_t v = 0;
  bool tie = false;
  for (const Obj& where : {o, root}) {
    auto t = k.OptBool(where, "tie_word_embeddings", &tie);
    if (!t.ok()) return t.status();
    k.Map(where, "tie_word_embeddings", "model.tie_embeddings", tie ? "true" : "false");
  }
  m->set_tie_embeddings(tie);
  m->set_norm_kind(pb::Model::RMSNORM);
  m->set_position_kind(pb::Model::ROPE);
  // attention_bias puts biases on q, k, v and o; Llama 4's MLPs and experts have none.
  MOESIM_RETURN_IF_ERROR(MapBiases(k, o, m));
  MOESIM_RETURN_IF_ERROR(MapGatedFfn(k, o, m));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "intermediate_size_mlp", &v));
  m->set_d_ff(v);
  k.Map(o, "intermediate_size_mlp", "model.d_ff", Num(v));
  pb::Moe* e = m->mutable_moe();
  MOESIM_RETURN_IF_ERROR(k.Int(o, "intermediate_size", &v));
  e->set_expert_d_ff(v);
  e->set_num_shared_experts(1);
  k.Map(o, "intermediate_size", "model.moe.expert_d_ff", Num(v));
  k.Note(
      "Llama 4's MoE layers have one shared expert of intermediate_size (no key says so): "
      "model.moe.num_shared_experts 1");
  MOESIM_RETURN_IF_ERROR(k.Int(o, "num_local_experts", &v));
  e->set_num_experts(v);
  k.Map(o, "num_local_experts", "model.moe.num_experts", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "num_experts_per_tok", &v));
  e->set_top_k(v);
  k.Map(o, "num_experts_per_tok", "model.moe.top_k", Num(v));
  int64_t step = 1;
  auto st = k.OptInt(o, "interleave_moe_layer_step", &step);
  if (!st.ok()) return st.status();
  e->set_placement(pb::Moe::EVERY_K);
  e->set_placement_k(step);
  k.Map(o, "interleave_moe_layer_step", "model.moe.placement EVERY_K, placement_k", Num(step));
  if (k.Has(o, "moe_layers")) {
    const json& layers = o.j->at("moe_layers");
    bool same = layers.is_array();
    std::vector<int64_t> want;
    for (int64_t i = step - 1; i < m->num_layers(); i += step) want.push_back(i);
    same = same && layers.size() == want.size();
    for (size_t i = 0; same && i < want.size(); ++i) {
      same = layers[i].is_number_integer() && layers[i].get<int64_t>() == want[i];
    }
    if (same) {
      k.Map(o, "moe_layers", "model.moe.placement", "(the layers interleave_moe_layer_step gives)");
    } else {
      k.NotMapped(o, "moe_layers",
                  "MoE layers at a list of indices other than every interleave_moe_layer_step: "
                  "model.moe.placement cannot say it");
    }
  }
  int64_t chunk = 0;
  auto ch = k.OptInt(o, "attention_chunk_size", &chunk);
  if (!ch.ok()) return ch.status();
  if (*ch) {
    k.NotMapped(o, "attention_chunk_size",
                "chunked (local) attention in blocks of " + Num(chunk) +
                    " tokens on the RoPE layers: moesim's attention is full causal over "
                    "model.seq_len, so it is overcounted when seq_len > " +
                    Num(chunk));
  }
  k.NotMapped(o, "no_rope_layers",
              "which layers use no rotary embedding (NoPE, full attention): moesim applies RoPE "
              "and one attention pattern to every layer");
  k.Ignore(o, "use_qk_norm", "a parameter-free L2 norm of queries and keys: numerics");
  k.Finish(o, f);
  return Status::Ok();
}

Status ReadDbrx(Keys& k, const Obj& o, const std::string& f, Built* b) {
  pb::Model* m = &b->model;
  int64_t v = 0;
  MOESIM_RETURN_IF_ERROR(k.Int(o, "d_model", &v));
  m->set_d_model(v);
  k.Map(o, "d_model", "model.d_model", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "n_layers", &v));
  m->set_num_layers(v);
  k.Map(o, "n_layers", "model.num_layers", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "n_heads", &v));
  m->set_num_heads(v);
  k.Map(o, "n_heads", "model.num_heads", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "vocab_size", &v));
  m->set_vocab_size(v);
  k.Map(o, "vocab_size", "model.vocab_size", Num(v));
  auto mp = k.OptInt(o, "max_seq_len", &b->max_positions);
  if (!mp.ok()) return mp.status();
  k.Ignore(o, "max_seq_len", kContext);
  bool tie = false;
  auto t = k.OptBool(o, "tie_word_embeddings", &tie);
  if (!t.ok()) return t.status();
  m->set_tie_embeddings(tie);
  k.Map(o, "tie_word_embeddings", "model.tie_embeddings", tie ? "true" : "false");
  m->set_norm_kind(pb::Model::LAYERNORM);
  m->set_position_kind(pb::Model::ROPE);
  m->set_linear_bias(false);
  m->set_ffn_kind(pb::Model::SWIGLU);
  k.Note(
      "DBRX's LayerNorms have no bias; model.norm_kind LAYERNORM counts one (d_model "
      "parameters per norm)");

  Obj attn{nullptr, ""};
  auto a = k.OptObject(o, "attn_config", &attn);
  if (!a.ok()) return a.status();
  if (!*a) return k.Error(o, "attn_config", "missing: DBRX's attention sizes are in it");
  k.Map(o, "attn_config", "model", "(its keys, attn_config.*)");
  MOESIM_RETURN_IF_ERROR(k.Int(attn, "kv_n_heads", &v));
  m->set_num_kv_heads(v);
  k.Map(attn, "kv_n_heads", "model.num_kv_heads", Num(v));
  k.Ignore(attn, "clip_qkv", "clamps the query/key/value activations: numerics");
  k.Finish(attn, f);

  Obj ffn{nullptr, ""};
  auto fc = k.OptObject(o, "ffn_config", &ffn);
  if (!fc.ok()) return fc.status();
  if (!*fc) return k.Error(o, "ffn_config", "missing: DBRX's experts are in it");
  k.Map(o, "ffn_config", "model", "(its keys, ffn_config.*)");
  pb::Moe* e = m->mutable_moe();
  MOESIM_RETURN_IF_ERROR(k.Int(ffn, "ffn_hidden_size", &v));
  m->set_d_ff(v);
  e->set_expert_d_ff(v);
  k.Map(ffn, "ffn_hidden_size", "model.d_ff, model.moe.expert_d_ff", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(ffn, "moe_num_experts", &v));
  e->set_num_experts(v);
  k.Map(ffn, "moe_num_experts", "model.moe.num_experts", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(ffn, "moe_top_k", &v));
  e->set_top_k(v);
  k.Map(ffn, "moe_top_k", "model.moe.top_k", Num(v));
  e->set_placement(pb::Moe::EVERY_K);
  e->set_placement_k(1);
  std::string act = "silu";
  if (k.Has(ffn, "ffn_act_fn") && ffn.j->at("ffn_act_fn").is_object() &&
      ffn.j->at("ffn_act_fn").contains("name") && ffn.j->at("ffn_act_fn")["name"].is_string()) {
    act = ffn.j->at("ffn_act_fn")["name"].get<std::string>();
  }
  k.Map(ffn, "ffn_act_fn", "model.ffn_kind", "SWIGLU (gated experts with " + act + ")");
  k.Finish(ffn, f);
  k.Finish(o, f);
  return Status::Ok();
}

Status ReadGpt2(Keys& k, const Obj& o, const std::string& f, Built* b) {
  pb::Model* m = &b->model;
  int64_t v = 0;
  MOESIM_RETURN_IF_ERROR(k.Int(o, "n_embd", &v));
  m->set_d_model(v);
  k.Map(o, "n_embd", "model.d_model", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "n_layer", &v));
  m->set_num_layers(v);
  k.Map(o, "n_layer", "model.num_layers", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "n_head", &v));
  m->set_num_heads(v);
  k.Map(o, "n_head", "model.num_heads", Num(v));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "vocab_size", &v));
  m->set_vocab_size(v);
  k.Map(o, "vocab_size", "model.vocab_size", Num(v));
  int64_t inner = 4 * m->d_model();
  auto in = k.OptInt(o, "n_inner", &inner);
  if (!in.ok()) return in.status();
  m->set_d_ff(inner);
  k.Map(o, "n_inner", "model.d_ff", Num(inner));
  if (!*in) k.Note("GPT-2: n_inner unset, so d_ff = 4 x n_embd = " + Num(inner));
  MOESIM_RETURN_IF_ERROR(k.Int(o, "n_positions", &b->learned_positions));
  k.Map(o, "n_positions", "model.seq_len (rows of the learned position table)",
        Num(b->learned_positions));
  k.Ignore(o, "n_ctx", "the context length, as n_positions");
  std::string act = "gelu_new";
  auto ac = k.OptString(o, "activation_function", &act);
  if (!ac.ok()) return ac.status();
  m->set_ffn_kind(pb::Model::GELU);
  k.Map(o, "activation_function", "model.ffn_kind", "GELU (" + act + ")");
  bool tie = true;  // transformers' default, which GPT-2's config leaves unwritten
  auto t = k.OptBool(o, "tie_word_embeddings", &tie);
  if (!t.ok()) return t.status();
  m->set_tie_embeddings(tie);
  k.Map(o, "tie_word_embeddings", "model.tie_embeddings", tie ? "true" : "false");
  if (!*t) k.Note("GPT-2 ties its output projection to the token embedding (model.tie_embeddings)");
  m->set_norm_kind(pb::Model::LAYERNORM);
  m->set_position_kind(pb::Model::LEARNED);
  m->set_linear_bias(true);
  const std::string head =
      "a setting of the sequence-classification head, which a language model does not have";
  for (const char* key : {"summary_activation", "summary_first_dropout", "summary_proj_to_labels",
                          "summary_type", "summary_use_proj"}) {
    k.Ignore(o, key, head);
  }
  k.Finish(o, f);
  return Status::Ok();
}

}  // namespace moesim::hf
