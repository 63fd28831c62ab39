#include "costmodel/mla.h"

namespace moesim {
namespace {

using TC = TensorClass;

TensorDesc T(std::string name, TC c, std::vector<TensorDim> dims, int64_t bytes) {
  return TensorDesc{std::move(name), c, std::move(dims), bytes};
}

}  // namespace

std::vector<TensorDesc> MlaWeights(const ModelSpec& m, int64_t bytes) {
  const MlaSpec& a = m.mla;
  const TC dw = TC::kDenseWeights;
  const TensorDim embed{"embed", m.d_model}, heads{"heads", m.num_heads},
      q_lat{"latent", a.q_lora_rank}, kv_lat{"latent", a.kv_lora_rank},
      qk{"head_dim", a.qk_head_dim()};
  std::vector<TensorDesc> w;
  if (a.q_lora_rank > 0) {
    w.push_back(T("attn.wq_down", dw, {embed, q_lat}, bytes));    // W_DQ, q_a_proj
    w.push_back(T("attn.q_norm.scale", dw, {q_lat}, bytes));      // q_a_layernorm
    w.push_back(T("attn.wq_up", dw, {heads, q_lat, qk}, bytes));  // W_UQ and W_QR, q_b_proj
  } else {
    w.push_back(T("attn.wq", dw, {embed, heads, qk}, bytes));  // q_proj
  }
  w.push_back(T("attn.wkv_down", dw, {embed, kv_lat}, bytes));                           // W_DKV
  w.push_back(T("attn.wk_rope", dw, {embed, {"head_dim", a.qk_rope_head_dim}}, bytes));  // W_KR
  w.push_back(T("attn.kv_norm.scale", dw, {kv_lat}, bytes));  // kv_a_layernorm
  w.push_back(
      T("attn.wk_up", dw, {heads, kv_lat, {"head_dim", a.qk_nope_head_dim}}, bytes));    // W_UK
  w.push_back(T("attn.wv_up", dw, {heads, kv_lat, {"head_dim", a.v_head_dim}}, bytes));  // W_UV
  w.push_back(T("attn.wo", dw, {heads, {"head_dim", a.v_head_dim}, embed}, bytes));      // o_proj
  return w;
}

std::vector<Einsum> MlaForwardEinsums(const ModelSpec& m) {
  std::vector<Einsum> ops;
  if (m.mla.q_lora_rank > 0) {
    ops.push_back({"attn.q_down", "bsm,mq->bsq"});
    ops.push_back({"attn.q_up", "bsq,qaj->bsaj"});
  } else {
    ops.push_back({"attn.q", "bsm,maj->bsaj"});
  }
  ops.push_back({"attn.kv_down", "bsm,mc->bsc"});
  ops.push_back({"attn.k_rope", "bsm,mp->bsp"});
  ops.push_back({"attn.k_up", "bsc,can->bsan"});
  ops.push_back({"attn.v_up", "bsc,caw->bsaw"});
  // Keys: the per-head nope part with the shared rope part broadcast to every head.
  ops.push_back({"attn.scores", "bsaj,btaj->bast"});
  ops.push_back({"attn.context", "bast,btaw->bsaw"});
  ops.push_back({"attn.out", "bsaw,awm->bsm"});
  return ops;
}

void AddMlaLabelSizes(const ModelSpec& m, DimSizes* s) {
  auto d = [](int64_t v) { return static_cast<double>(v); };
  const MlaSpec& a = m.mla;
  (*s)['a'] = d(m.num_heads);
  (*s)['q'] = d(a.q_lora_rank);
  (*s)['c'] = d(a.kv_lora_rank);
  (*s)['p'] = d(a.qk_rope_head_dim);
  (*s)['n'] = d(a.qk_nope_head_dim);
  (*s)['j'] = d(a.qk_head_dim());
  (*s)['w'] = d(a.v_head_dim);
}

void AddMlaSavedActivations(const ModelSpec& m, const ActivationShape& sh,
                            const TrainingSpec& training, std::vector<SavedTensor>* out) {
  const MlaSpec& a = m.mla;
  const int64_t bytes = ActivationBytes(training);
  const TC da = TC::kDenseActivations;
  auto add = [&](std::string name, std::vector<TensorDim> dims, SavedKind k, int64_t b) {
    out->push_back({T(std::move(name), da, std::move(dims), b), k});
  };
  const TensorDim batch{"batch", sh.batch}, seq{"seq", sh.seq}, heads{"heads", m.num_heads};
  // Latents: the down projections' outputs (the norms' inputs) and the normed latents (the up
  // projections' inputs).
  if (a.q_lora_rank > 0) {
    add("attn.q_latent", {batch, seq, {"latent", a.q_lora_rank}}, SavedKind::kOther, bytes);
    add("attn.q_latent_normed", {batch, seq, {"latent", a.q_lora_rank}}, SavedKind::kOther, bytes);
  }
  add("attn.kv_latent", {batch, seq, {"latent", a.kv_lora_rank}}, SavedKind::kOther, bytes);
  add("attn.kv_latent_normed", {batch, seq, {"latent", a.kv_lora_rank}}, SavedKind::kOther, bytes);
  // q and k per head after RoPE (k with the shared rope part copied to every head, as attention
  // kernels take it), v per head.
  add("attn.q", {batch, heads, seq, {"head_dim", a.qk_head_dim()}}, SavedKind::kOther, bytes);
  add("attn.k", {batch, heads, seq, {"head_dim", a.qk_head_dim()}}, SavedKind::kOther, bytes);
  add("attn.v", {batch, heads, seq, {"head_dim", a.v_head_dim}}, SavedKind::kOther, bytes);
  if (training.flash_attention) {
    add("attn.lse", {batch, heads, seq}, SavedKind::kOther, 4);
  } else {
    add("attn.probs", {batch, heads, seq, {"seq", sh.seq}}, SavedKind::kAttentionCore, bytes);
  }
  add("attn.context", {batch, heads, seq, {"head_dim", a.v_head_dim}}, SavedKind::kOther, bytes);
}

}  // namespace moesim
