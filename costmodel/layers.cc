#include "costmodel/layers.h"

#include <cmath>

#include "costmodel/fp8.h"
#include "costmodel/mla.h"

namespace moesim {
namespace {

using TC = TensorClass;

TensorDesc T(std::string name, TC c, std::vector<TensorDim> dims, int64_t bytes) {
  return TensorDesc{std::move(name), c, std::move(dims), bytes};
}

void AddNorm(const ModelSpec& m, const std::string& name, TC c, int64_t bytes,
             std::vector<TensorDesc>* out) {
  out->push_back(T(name + ".scale", c, {{"embed", m.d_model}}, bytes));
  if (m.norm_kind == NormKind::kLayerNorm) {
    out->push_back(T(name + ".bias", c, {{"embed", m.d_model}}, bytes));
  }
}

// Multi-head (grouped-query) attention's projections and biases.
void AddAttentionWeights(const ModelSpec& m, int64_t bytes, std::vector<TensorDesc>* out) {
  std::vector<TensorDesc>& w = *out;
  const TC dw = TC::kDenseWeights;
  w.push_back(T("attn.wq", dw,
                {{"embed", m.d_model}, {"heads", m.num_heads}, {"head_dim", m.head_dim}}, bytes));
  w.push_back(T("attn.wk", dw,
                {{"embed", m.d_model}, {"kv_heads", m.num_kv_heads}, {"head_dim", m.head_dim}},
                bytes));
  w.push_back(T("attn.wv", dw,
                {{"embed", m.d_model}, {"kv_heads", m.num_kv_heads}, {"head_dim", m.head_dim}},
                bytes));
  w.push_back(T("attn.wo", dw,
                {{"heads", m.num_heads}, {"head_dim", m.head_dim}, {"embed", m.d_model}}, bytes));
  if (m.linear_bias) {
    w.push_back(T("attn.bq", dw, {{"heads", m.num_heads}, {"head_dim", m.head_dim}}, bytes));
    w.push_back(T("attn.bk", dw, {{"kv_heads", m.num_kv_heads}, {"head_dim", m.head_dim}}, bytes));
    w.push_back(T("attn.bv", dw, {{"kv_heads", m.num_kv_heads}, {"head_dim", m.head_dim}}, bytes));
    w.push_back(T("attn.bo", dw, {{"embed", m.d_model}}, bytes));
  }
}

// Multi-head attention's saved activations after the block input and its norm.
void AddAttentionSaved(const ModelSpec& m, const ActivationShape& a, const TrainingSpec& training,
                       std::vector<SavedTensor>* out) {
  const int64_t bytes = ActivationBytes(training);
  const TC da = TC::kDenseActivations;
  auto add = [&](std::string name, TC c, std::vector<TensorDim> dims, SavedKind k, int64_t b) {
    out->push_back({T(std::move(name), c, std::move(dims), b), k});
  };
  const TensorDim batch{"batch", a.batch}, seq{"seq", a.seq};
  add("attn.q", da, {batch, {"heads", m.num_heads}, seq, {"head_dim", m.head_dim}},
      SavedKind::kOther, bytes);
  add("attn.k", da, {batch, {"kv_heads", m.num_kv_heads}, seq, {"head_dim", m.head_dim}},
      SavedKind::kOther, bytes);
  add("attn.v", da, {batch, {"kv_heads", m.num_kv_heads}, seq, {"head_dim", m.head_dim}},
      SavedKind::kOther, bytes);
  if (training.flash_attention) {
    // Blockwise attention keeps only the softmax log-sum-exp per query (fp32).
    add("attn.lse", da, {batch, {"heads", m.num_heads}, seq}, SavedKind::kOther, 4);
  } else {
    add("attn.probs", da, {batch, {"heads", m.num_heads}, seq, {"seq", a.seq}},
        SavedKind::kAttentionCore, bytes);
  }
  add("attn.context", da, {batch, {"heads", m.num_heads}, seq, {"head_dim", m.head_dim}},
      SavedKind::kOther, bytes);
}

}  // namespace

int64_t ActivationBytes(const TrainingSpec& t) { return t.precision == Precision::kFp32 ? 4 : 2; }

int64_t ExpertCapacity(const MoeSpec& moe, int64_t group_size) {
  const double k = moe.capacity_per_routed_token ? static_cast<double>(moe.top_k) : 1.0;
  const double c = moe.capacity_factor * k * static_cast<double>(group_size) /
                   static_cast<double>(moe.num_experts);
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(c - 1e-9)));
}

std::vector<TensorDesc> LayerWeights(const ModelSpec& m, LayerKind kind, int64_t num_experts,
                                     int64_t bytes) {
  std::vector<TensorDesc> w;
  const TC dw = TC::kDenseWeights;
  AddNorm(m, "attn.norm", dw, bytes, &w);
  if (m.mla.enabled) {
    for (auto& t : MlaWeights(m, bytes)) w.push_back(std::move(t));
  } else {
    AddAttentionWeights(m, bytes, &w);
  }
  AddNorm(m, "ffn.norm", dw, bytes, &w);
  const bool swiglu = m.ffn_kind == FfnKind::kSwiglu;
  if (kind == LayerKind::kDense) {
    w.push_back(T("ffn.w1", dw, {{"embed", m.d_model}, {"mlp", m.d_ff}}, bytes));
    if (swiglu) w.push_back(T("ffn.w3", dw, {{"embed", m.d_model}, {"mlp", m.d_ff}}, bytes));
    w.push_back(T("ffn.w2", dw, {{"mlp", m.d_ff}, {"embed", m.d_model}}, bytes));
    if (m.linear_bias) {
      w.push_back(T("ffn.b1", dw, {{"mlp", m.d_ff}}, bytes));
      w.push_back(T("ffn.b2", dw, {{"embed", m.d_model}}, bytes));
    }
    return w;
  }
  const TC mw = TC::kMoeWeights;
  const int64_t h = m.moe.expert_d_ff;
  const int64_t e = num_experts;
  w.push_back(
      T("moe.router", mw, {{"embed", m.d_model}, {"router_experts", m.moe.num_experts}}, bytes));
  w.push_back(T("moe.w1", mw, {{"experts", e}, {"embed", m.d_model}, {"expert_mlp", h}}, bytes));
  if (swiglu) {
    w.push_back(T("moe.w3", mw, {{"experts", e}, {"embed", m.d_model}, {"expert_mlp", h}}, bytes));
  }
  w.push_back(T("moe.w2", mw, {{"experts", e}, {"expert_mlp", h}, {"embed", m.d_model}}, bytes));
  if (m.linear_bias) {
    w.push_back(T("moe.b1", mw, {{"experts", e}, {"expert_mlp", h}}, bytes));
    w.push_back(T("moe.b2", mw, {{"experts", e}, {"embed", m.d_model}}, bytes));
  }
  if (m.moe.num_shared_experts > 0) {
    // Shared experts run on every token like a dense FFN of n_shared x h hidden units.
    const int64_t y = m.moe.num_shared_experts * h;
    w.push_back(T("moe.shared_w1", dw, {{"embed", m.d_model}, {"mlp", y}}, bytes));
    if (swiglu) w.push_back(T("moe.shared_w3", dw, {{"embed", m.d_model}, {"mlp", y}}, bytes));
    w.push_back(T("moe.shared_w2", dw, {{"mlp", y}, {"embed", m.d_model}}, bytes));
  }
  return w;
}

std::vector<TensorDesc> EmbeddingWeights(const ModelSpec& m, int64_t bytes) {
  std::vector<TensorDesc> w;
  const TC dw = TC::kDenseWeights;
  w.push_back(T("embed.tokens", dw, {{"vocab", m.vocab_size}, {"embed", m.d_model}}, bytes));
  if (m.position_kind == PositionKind::kLearned) {
    w.push_back(T("embed.positions", dw, {{"seq", m.seq_len}, {"embed", m.d_model}}, bytes));
  }
  AddNorm(m, "final.norm", dw, bytes, &w);
  if (!m.tie_embeddings) {
    w.push_back(T("head.w", dw, {{"embed", m.d_model}, {"vocab", m.vocab_size}}, bytes));
  }
  return w;
}

std::vector<Einsum> LayerForwardEinsums(const ModelSpec& m, LayerKind kind) {
  std::vector<Einsum> ops;
  if (m.mla.enabled) {
    ops = MlaForwardEinsums(m);
  } else {
    ops = {
        {"attn.q", "bsm,mkrd->bskrd"},         {"attn.k", "bsm,mkd->bskd"},
        {"attn.v", "bsm,mkd->bskd"},           {"attn.scores", "bskrd,btkd->bkrst"},
        {"attn.context", "bkrst,btkd->bskrd"}, {"attn.out", "bskrd,krdm->bsm"},
    };
  }
  const bool swiglu = m.ffn_kind == FfnKind::kSwiglu;
  if (kind == LayerKind::kDense) {
    ops.push_back({"ffn.w1", "bsm,mf->bsf"});
    if (swiglu) ops.push_back({"ffn.w3", "bsm,mf->bsf"});
    ops.push_back({"ffn.w2", "bsf,fm->bsm"});
    return ops;
  }
  if (!m.moe.omit_router_flops) ops.push_back({"moe.router", "bsm,me->bse"});
  ops.push_back({"moe.w1", "xm,mh->xh"});
  if (swiglu) ops.push_back({"moe.w3", "xm,mh->xh"});
  ops.push_back({"moe.w2", "xh,hm->xm"});
  if (m.moe.num_shared_experts > 0) {
    ops.push_back({"moe.shared_w1", "bsm,my->bsy"});
    if (swiglu) ops.push_back({"moe.shared_w3", "bsm,my->bsy"});
    ops.push_back({"moe.shared_w2", "bsy,ym->bsm"});
  }
  return ops;
}

std::vector<Einsum> HeadForwardEinsums() { return {{"head.logits", "bsm,mv->bsv"}}; }

// DeepSeek-V3 sec 2.2: h' = M [RMSNorm(h); RMSNorm(Emb(t))], M of [d_model, 2 x d_model]; the
// Hugging Face checkpoint's enorm, hnorm, eh_proj and shared_head.norm (Megatron-Core's
// MultiTokenPredictionLayer: enorm, hnorm, eh_proj, final_layernorm).
std::vector<TensorDesc> MtpWeights(const ModelSpec& m, int64_t bytes) {
  std::vector<TensorDesc> w;
  const TC dw = TC::kDenseWeights;
  AddNorm(m, "mtp.hnorm", dw, bytes, &w);
  AddNorm(m, "mtp.enorm", dw, bytes, &w);
  // Both dims are embed-like: FSDP shards the first, tensor parallelism neither.
  w.push_back(T("mtp.proj", dw, {{"embed", 2 * m.d_model}, {"embed", m.d_model}}, bytes));
  AddNorm(m, "mtp.final_norm", dw, bytes, &w);
  return w;
}

std::vector<Einsum> MtpForwardEinsums() { return {{"mtp.proj", "bsi,im->bsm"}}; }

bool IsAttentionCore(const Einsum& e) {
  return e.name == "attn.scores" || e.name == "attn.context";
}

DimSizes LabelSizes(const ModelSpec& m, double batch, double seq, double expert_slots) {
  auto d = [](int64_t v) { return static_cast<double>(v); };
  DimSizes s = {{'b', batch},
                {'s', seq},
                {'t', seq},
                {'m', d(m.d_model)},
                {'k', d(m.num_kv_heads)},
                {'r', d(m.num_heads / m.num_kv_heads)},
                {'d', d(m.head_dim)},
                {'f', d(m.d_ff)},
                {'v', d(m.vocab_size)}};
  if (m.mla.enabled) AddMlaLabelSizes(m, &s);
  if (m.mtp_depth > 0) s['i'] = 2 * d(m.d_model);
  if (m.is_moe()) {
    s['e'] = d(m.moe.num_experts);
    s['x'] = expert_slots;
    s['h'] = d(m.moe.expert_d_ff);
    s['y'] = d(m.moe.num_shared_experts * m.moe.expert_d_ff);
  }
  return s;
}

std::vector<SavedTensor> LayerSavedActivations(const ModelSpec& m, LayerKind kind,
                                               const ActivationShape& a,
                                               const TrainingSpec& training) {
  const int64_t bytes = ActivationBytes(training);
  const TC da = TC::kDenseActivations;
  std::vector<SavedTensor> out;
  auto add = [&](std::string name, TC c, std::vector<TensorDim> dims, SavedKind k, int64_t b) {
    // FP8 GEMMs' inputs are kept in FP8 for the weight gradient (fp8.h).
    if (SavedInFp8(training.fp8_recipe, name)) b = 1;
    out.push_back({T(std::move(name), c, std::move(dims), b), k});
  };
  const TensorDim batch{"batch", a.batch}, seq{"seq", a.seq}, embed{"embed", m.d_model};
  // Attention block. Head dims come before seq so that sequence parallelism (seq over Model)
  // leaves head-sharded tensors alone.
  add("attn.input", da, {batch, seq, embed}, SavedKind::kLayerInput, bytes);
  add("attn.normed", da, {batch, seq, embed}, SavedKind::kOther, bytes);
  if (m.mla.enabled) {
    AddMlaSavedActivations(m, a, training, &out);
  } else {
    AddAttentionSaved(m, a, training, &out);
  }
  add("ffn.input", da, {batch, seq, embed}, SavedKind::kOther, bytes);
  add("ffn.normed", da, {batch, seq, embed}, SavedKind::kOther, bytes);
  const bool swiglu = m.ffn_kind == FfnKind::kSwiglu;
  if (kind == LayerKind::kDense) {
    const TensorDim mlp{"mlp", m.d_ff};
    add("ffn.h1", da, {batch, mlp, seq}, SavedKind::kOther, bytes);
    if (swiglu) add("ffn.h3", da, {batch, mlp, seq}, SavedKind::kOther, bytes);
    add("ffn.act", da, {batch, mlp, seq}, SavedKind::kOther, bytes);
    return out;
  }
  // MoE block in GShard layout: tokens [O, G, S, M], dispatched [O, E, G, C, M], expert hidden
  // [O, E, G, C, H] (Du et al. 2024, Table 1).
  const TC ma = TC::kMoeActivations;
  const TensorDim outer{"outer", a.outer}, groups{"groups", a.groups}, gsize{"seq", a.group_size},
      experts{"experts", m.moe.num_experts}, cap{"capacity", a.capacity},
      membed{"embed", m.d_model}, hidden{"expert_mlp", m.moe.expert_d_ff};
  add("moe.router_probs", ma, {outer, groups, gsize, experts}, SavedKind::kOther, 4);
  if (m.moe.dispatch == MoeDispatch::kEinsum) {
    add("moe.combine", ma, {outer, groups, gsize, experts, cap}, SavedKind::kOther, bytes);
  } else {
    // Permutation dispatch keeps, per routed token, an int32 index and a combine weight.
    add("moe.routing", ma, {outer, groups, gsize, {"top_k", m.moe.top_k}}, SavedKind::kOther, 8);
  }
  add("moe.expert_in", ma, {outer, experts, groups, cap, membed}, SavedKind::kOther, bytes);
  add("moe.h1", ma, {outer, experts, groups, cap, hidden}, SavedKind::kOther, bytes);
  if (swiglu) add("moe.h3", ma, {outer, experts, groups, cap, hidden}, SavedKind::kOther, bytes);
  add("moe.act", ma, {outer, experts, groups, cap, hidden}, SavedKind::kOther, bytes);
  add("moe.expert_out", ma, {outer, experts, groups, cap, membed}, SavedKind::kOther, bytes);
  if (m.moe.num_shared_experts > 0) {
    const TensorDim y{"mlp", m.moe.num_shared_experts * m.moe.expert_d_ff};
    add("moe.shared_h1", da, {batch, y, seq}, SavedKind::kOther, bytes);
    if (swiglu) add("moe.shared_h3", da, {batch, y, seq}, SavedKind::kOther, bytes);
    add("moe.shared_act", da, {batch, y, seq}, SavedKind::kOther, bytes);
  }
  return out;
}

std::vector<SavedTensor> MtpSavedActivations(const ModelSpec& m, const ActivationShape& a,
                                             const TrainingSpec& training) {
  const int64_t bytes = ActivationBytes(training);
  const TC da = TC::kDenseActivations;
  const TensorDim batch{"batch", a.batch}, seq{"seq", a.seq}, embed{"embed", m.d_model};
  std::vector<SavedTensor> out = {
      {T("mtp.hidden", da, {batch, seq, embed}, bytes), SavedKind::kOther},
      {T("mtp.embedded", da, {batch, seq, embed}, bytes), SavedKind::kOther},
      {T("mtp.proj_input", da, {batch, seq, {"embed", 2 * m.d_model}}, bytes), SavedKind::kOther},
  };
  for (auto& st : LayerSavedActivations(m, m.MtpLayerIsMoe() ? LayerKind::kMoe : LayerKind::kDense,
                                        a, training)) {
    st.tensor.name = "mtp." + st.tensor.name;
    out.push_back(std::move(st));
  }
  out.push_back({T("mtp.final_input", da, {batch, seq, embed}, bytes), SavedKind::kOther});
  return out;
}

TensorDesc LogitsActivation(const ModelSpec& m, const ActivationShape& a) {
  return T("head.logits", TC::kDenseActivations,
           {{"batch", a.batch}, {"vocab", m.vocab_size}, {"seq", a.seq}}, 4);
}

}  // namespace moesim
