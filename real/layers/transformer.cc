#include "real/layers/transformer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moesim::real {

// One pre-norm transformer layer: attention then a dense or MoE SwiGLU FFN, each residual.
template <typename T>
class Block {
 public:
  Block(const ModelConfig& c, int64_t layer, int64_t batch, int64_t ep_size, int64_t ep_rank,
        ParamSet<T>* params)
      : layer_(layer),
        tokens_(batch * c.seq_len),
        d_model_(c.d_model),
        eps_(c.norm_eps),
        params_(params) {
    const std::string p = "layers." + std::to_string(layer);
    const double out_std = c.init_std / std::sqrt(2.0 * static_cast<double>(c.num_layers));
    auto norm = [&](const std::string& name) {
      ParamEntry e;
      e.name = p + "." + name;
      e.count = c.d_model;
      e.decay = false;
      e.init = ParamInit::kOnes;
      return params->Add(e);
    };
    attn_norm_ = norm("attn.norm");
    AttentionShape as{batch,          c.seq_len,  c.d_model,   c.num_heads,
                      c.num_kv_heads, c.head_dim, c.rope_theta};
    attn_ = std::make_unique<Attention<T>>(as, p + ".attn", layer, c.init_std, out_std, params);
    ffn_norm_ = norm("ffn.norm");
    if (c.moe_layer[static_cast<size_t>(layer)]) {
      MoeShape ms;
      ms.tokens = tokens_;
      ms.d_model = c.d_model;
      ms.num_experts = c.num_experts;
      ms.top_k = c.top_k;
      ms.expert_hidden = c.expert_d_ff;
      ms.group_size = c.group_size;
      ms.capacity = c.capacity;
      ms.num_shared_experts = c.num_shared_experts;
      ms.ep_size = ep_size;
      ms.ep_rank = ep_rank;
      ms.aux_coef = c.aux_loss_coef;
      ms.z_coef = c.z_loss_coef;
      moe_ = std::make_unique<MoeLayer<T>>(ms, p + ".moe", layer, c.init_std, out_std, params);
    } else {
      ffn_ = std::make_unique<SwiGluFfn<T>>(FfnShape{tokens_, c.d_model, c.d_ff}, p + ".ffn",
                                            kDenseFfnOps, layer, c.init_std, out_std, params);
    }
  }

  Status Allocate(DeviceBase* dev) {
    const std::string p = "layer " + std::to_string(layer_) + " ";
    const int64_t nm = tokens_ * d_model_;
    for (auto [t, name, count] :
         {std::tuple{&a_, "attn.normed", nm}, std::tuple{&rstd1_, "attn.rstd", tokens_},
          std::tuple{&x1_, "attn.residual", nm}, std::tuple{&b_, "ffn.normed", nm},
          std::tuple{&rstd2_, "ffn.rstd", tokens_}}) {
      Expected<Tensor<T>> buf = Tensor<T>::Make(dev, p + name, count);
      if (!buf.ok()) return buf.status();
      *t = std::move(*buf);
    }
    MOESIM_RETURN_IF_ERROR(attn_->AllocateActivations(dev));
    return moe_ ? moe_->AllocateActivations(dev) : ffn_->AllocateActivations(dev);
  }

  int64_t ScratchElems() const {
    return Workspace<T>::Footprint(tokens_ * d_model_) +
           std::max(attn_->ScratchElems(), moe_ ? moe_->ScratchElems() : ffn_->ScratchElems());
  }

  // x_out = block(x_in). x_in must stay unchanged until Backward.
  Status Forward(Context<T>& ctx, const T* x_in, T* x_out) {
    Device<T>& d = *ctx.dev;
    const int64_t n = tokens_, m = d_model_;
    const Phase f = Phase::kForward;
    x_in_ = x_in;
    {
      ScopedOp op(ctx.prof, "attn.norm", f, layer_);
      d.RmsNormForward(x_in, params_->param(attn_norm_), a_.data(), rstd1_.data(), n, m, eps_);
    }
    const int64_t mark = ctx.ws->Mark();
    T* tmp = ctx.ws->Take(n * m);
    attn_->Forward(ctx, a_.data(), tmp);
    {
      ScopedOp op(ctx.prof, "attn.residual", f, layer_);
      d.Add(x_in, tmp, x1_.data(), n * m);
    }
    {
      ScopedOp op(ctx.prof, moe_ ? "moe.norm" : "ffn.norm", f, layer_);
      d.RmsNormForward(x1_.data(), params_->param(ffn_norm_), b_.data(), rstd2_.data(), n, m, eps_);
    }
    if (moe_) {
      MOESIM_RETURN_IF_ERROR(moe_->Forward(ctx, b_.data(), tmp));
    } else {
      ffn_->Forward(ctx, b_.data(), tmp);
    }
    {
      ScopedOp op(ctx.prof, moe_ ? "moe.residual" : "ffn.residual", f, layer_);
      d.Add(x1_.data(), tmp, x_out, n * m);
    }
    ctx.ws->Release(mark);
    return Status::Ok();
  }

  // dx_out: gradient w.r.t. the output (overwritten: used as scratch); dx_in receives the
  // gradient w.r.t. the input.
  Status Backward(Context<T>& ctx, T* dx_out, T* dx_in) {
    Device<T>& d = *ctx.dev;
    const int64_t n = tokens_, m = d_model_;
    const Phase bw = Phase::kBackward;
    const int64_t mark = ctx.ws->Mark();
    T* dnorm = ctx.ws->Take(n * m);
    if (moe_) {
      MOESIM_RETURN_IF_ERROR(moe_->Backward(ctx, dx_out, dnorm, /*accumulate=*/false));
    } else {
      ffn_->Backward(ctx, dx_out, dnorm, /*accumulate=*/false);
    }
    {
      ScopedOp op(ctx.prof, moe_ ? "moe.norm.bwd" : "ffn.norm.bwd", bw, layer_);
      d.RmsNormBackward(x1_.data(), params_->param(ffn_norm_), rstd2_.data(), dnorm, dx_out,
                        params_->grad(ffn_norm_), n, m);
    }
    attn_->Backward(ctx, dx_out, dnorm, /*accumulate=*/false);
    {
      ScopedOp op(ctx.prof, "attn.residual.bwd", bw, layer_);
      d.CopyBytes(dx_out, dx_in, n * m * static_cast<int64_t>(sizeof(T)));
    }
    {
      ScopedOp op(ctx.prof, "attn.norm.bwd", bw, layer_);
      d.RmsNormBackward(x_in_, params_->param(attn_norm_), rstd1_.data(), dnorm, dx_in,
                        params_->grad(attn_norm_), n, m);
    }
    ctx.ws->Release(mark);
    return Status::Ok();
  }

  const MoeLayer<T>* moe() const { return moe_.get(); }

 private:
  int64_t layer_, tokens_, d_model_;
  double eps_;
  ParamSet<T>* params_;
  int attn_norm_, ffn_norm_;
  std::unique_ptr<Attention<T>> attn_;
  std::unique_ptr<SwiGluFfn<T>> ffn_;
  std::unique_ptr<MoeLayer<T>> moe_;
  const T* x_in_ = nullptr;
  Tensor<T> a_, rstd1_, x1_, b_, rstd2_;
};

template <typename T>
Transformer<T>::Transformer(const ModelConfig& cfg, int64_t batch, int64_t ep_size, int64_t ep_rank,
                            Device<T>* dev)
    : cfg_(cfg), batch_(batch), ep_size_(ep_size), ep_rank_(ep_rank), dev_(dev) {}

template <typename T>
Transformer<T>::~Transformer() = default;

template <typename T>
Expected<std::unique_ptr<Transformer<T>>> Transformer<T>::Create(const ModelConfig& cfg,
                                                                 int64_t batch, int64_t ep_size,
                                                                 int64_t ep_rank, Device<T>* dev) {
  if (batch <= 0) return Status::InvalidInput("micro-batch must hold at least one sequence");
  if (cfg.is_moe()) {
    if (cfg.num_experts % ep_size != 0) {
      return Status::InvalidInput(
          "expert parallelism " + std::to_string(ep_size) +
          " does not divide model.moe.num_experts=" + std::to_string(cfg.num_experts));
    }
    if ((batch * cfg.seq_len) % cfg.group_size != 0) {
      return Status::InvalidInput("routing group of " + std::to_string(cfg.group_size) +
                                  " tokens does not divide the micro-batch's " +
                                  std::to_string(batch * cfg.seq_len) + " tokens");
    }
  }
  std::unique_ptr<Transformer> t(new Transformer(cfg, batch, ep_size, ep_rank, dev));
  MOESIM_RETURN_IF_ERROR(t->Allocate());
  return t;
}

template <typename T>
Status Transformer<T>::Allocate() {
  const ModelConfig& c = cfg_;
  ParamEntry e;
  e.name = "embed.tokens";
  e.count = c.vocab_size * c.d_model;
  e.std = c.init_std;
  embed_ = params_.Add(e);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    blocks_.push_back(std::make_unique<Block<T>>(c, l, batch_, ep_size_, ep_rank_, &params_));
  }
  ParamEntry fn;
  fn.name = "final.norm";
  fn.count = c.d_model;
  fn.decay = false;
  fn.init = ParamInit::kOnes;
  final_norm_ = params_.Add(fn);
  if (!c.tie_embeddings) {
    ParamEntry h;
    h.name = "head.w";
    h.count = c.d_model * c.vocab_size;
    h.std = c.init_std;
    head_ = params_.Add(h);
  }
  MOESIM_RETURN_IF_ERROR(params_.Allocate(dev_));

  const int64_t n = tokens(), m = c.d_model;
  auto make = [&](Tensor<T>* t, const std::string& name, int64_t count) -> Status {
    Expected<Tensor<T>> buf = Tensor<T>::Make(dev_, name, count);
    if (!buf.ok()) return buf.status();
    *t = std::move(*buf);
    activation_bytes_ += count * static_cast<int64_t>(sizeof(T));
    return Status::Ok();
  };
  xs_.resize(static_cast<size_t>(c.num_layers + 1));
  for (size_t l = 0; l < xs_.size(); ++l) {
    MOESIM_RETURN_IF_ERROR(make(&xs_[l], "residual " + std::to_string(l), n * m));
  }
  MOESIM_RETURN_IF_ERROR(make(&hf_, "final.normed", n * m));
  MOESIM_RETURN_IF_ERROR(make(&rstdf_, "final.rstd", n));
  MOESIM_RETURN_IF_ERROR(make(&logits_, "head.logits", n * c.vocab_size));
  MOESIM_RETURN_IF_ERROR(make(&loss_rows_, "loss.per_token", n));
  MOESIM_RETURN_IF_ERROR(make(&dx_a_, "grad.residual_a", n * m));
  MOESIM_RETURN_IF_ERROR(make(&dx_b_, "grad.residual_b", n * m));
  for (auto [t, name, count] :
       {std::tuple{&tokens_, "tokens", n}, std::tuple{&targets_, "targets", n},
        std::tuple{&csr_ids_, "embed.grad_ids", n},
        std::tuple{&csr_offsets_, "embed.grad_offsets", n + 1},
        std::tuple{&csr_pos_, "embed.grad_positions", n}}) {
    Expected<Tensor<int32_t>> buf = Tensor<int32_t>::Make(dev_, name, count);
    if (!buf.ok()) return buf.status();
    *t = std::move(*buf);
  }
  int64_t scratch = 0;
  for (auto& b : blocks_) {
    MOESIM_RETURN_IF_ERROR(b->Allocate(dev_));
    scratch = std::max(scratch, b->ScratchElems());
  }
  MOESIM_RETURN_IF_ERROR(ws_.Allocate(dev_, scratch));
  activation_bytes_ += scratch * static_cast<int64_t>(sizeof(T));
  return Status::Ok();
}

template <typename T>
Context<T> Transformer<T>::MakeContext(Comm* comm, Profiler* prof) {
  Context<T> ctx;
  ctx.dev = dev_;
  ctx.comm = comm;
  ctx.prof = prof;
  ctx.ws = &ws_;
  ctx.loss_scale = loss_scale_;
  return ctx;
}

template <typename T>
std::vector<const MoeLayer<T>*> Transformer<T>::moe_layers() const {
  std::vector<const MoeLayer<T>*> out;
  for (const auto& b : blocks_) {
    if (b->moe() != nullptr) out.push_back(b->moe());
  }
  return out;
}

template <typename T>
Expected<LossParts> Transformer<T>::Forward(Comm* comm, Profiler* prof,
                                            const std::vector<int32_t>& tokens,
                                            const std::vector<int32_t>& targets,
                                            double loss_scale) {
  const ModelConfig& c = cfg_;
  const int64_t n = this->tokens(), m = c.d_model, v = c.vocab_size;
  if (static_cast<int64_t>(tokens.size()) != n || static_cast<int64_t>(targets.size()) != n) {
    return Status::Internal("Forward: expected " + std::to_string(n) + " tokens and targets");
  }
  loss_scale_ = loss_scale;
  Context<T> ctx = MakeContext(comm, prof);
  Device<T>& d = *dev_;
  const Phase f = Phase::kForward;
  {
    ScopedOp op(prof, "embed.lookup", f);
    tokens_.Upload(tokens);
    targets_.Upload(targets);
    // Embedding-gradient CSR: positions grouped by token id, ascending, in position order.
    std::vector<int32_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return tokens[static_cast<size_t>(a)] < tokens[static_cast<size_t>(b)];
    });
    std::vector<int32_t> ids, offsets;
    for (int64_t i = 0; i < n; ++i) {
      const int32_t id = tokens[static_cast<size_t>(order[static_cast<size_t>(i)])];
      if (id < 0 || id >= v) {
        return Status::InvalidInput("token id " + std::to_string(id) + " outside vocabulary of " +
                                    std::to_string(v));
      }
      if (ids.empty() || ids.back() != id) {
        ids.push_back(id);
        offsets.push_back(static_cast<int32_t>(i));
      }
    }
    offsets.push_back(static_cast<int32_t>(n));
    num_unique_ = static_cast<int64_t>(ids.size());
    csr_ids_.Upload(ids);
    csr_offsets_.Upload(offsets);
    csr_pos_.Upload(order);
    d.GatherRows(params_.param(embed_), tokens_.data(), nullptr, xs_[0].data(), n, m);
  }
  for (size_t l = 0; l < blocks_.size(); ++l) {
    MOESIM_RETURN_IF_ERROR(blocks_[l]->Forward(ctx, xs_[l].data(), xs_[l + 1].data()));
  }
  {
    ScopedOp op(prof, "final.norm", f);
    d.RmsNormForward(xs_.back().data(), params_.param(final_norm_), hf_.data(), rstdf_.data(), n, m,
                     c.norm_eps);
  }
  {
    ScopedOp op(prof, "head.logits", f, -1, GemmFlops(n, v, m));
    if (c.tie_embeddings) {
      d.Gemm(false, true, n, v, m, T(1), hf_.data(), m, params_.param(embed_), m, T(0),
             logits_.data(), v);
    } else {
      d.Gemm(false, false, n, v, m, T(1), hf_.data(), m, params_.param(head_), v, T(0),
             logits_.data(), v);
    }
  }
  LossParts loss;
  {
    ScopedOp op(prof, "head.loss", f);
    d.CrossEntropy(logits_.data(), targets_.data(), loss_rows_.data(), logits_.data(), n, v,
                   loss_scale / static_cast<double>(n));
    const std::vector<T> rows = loss_rows_.Download(n);
    double sum = 0;
    for (T x : rows) sum += static_cast<double>(x);
    loss.cross_entropy = sum / static_cast<double>(n);
  }
  int64_t moe_count = 0;
  for (const MoeLayer<T>* layer : moe_layers()) {
    loss.aux += layer->aux_loss();
    loss.load_balance += layer->routing().load_balance_loss;
    loss.dropped += layer->routing().dropped;
    loss.assignments += layer->routing().tokens * layer->shape().top_k;
    ++moe_count;
  }
  if (moe_count > 0) loss.load_balance /= static_cast<double>(moe_count);
  if (ws_.overflow()) return Status::Internal("workspace overflow (a sizing bug)");
  return loss;
}

template <typename T>
Status Transformer<T>::Backward(Comm* comm, Profiler* prof) {
  const ModelConfig& c = cfg_;
  const int64_t n = tokens(), m = c.d_model, v = c.vocab_size;
  Context<T> ctx = MakeContext(comm, prof);
  Device<T>& d = *dev_;
  const Phase bw = Phase::kBackward;
  T* dh = dx_a_.data();
  {
    ScopedOp op(prof, "head.logits.dgrad", bw, -1, GemmFlops(n, v, m));
    if (c.tie_embeddings) {
      d.Gemm(false, false, n, m, v, T(1), logits_.data(), v, params_.param(embed_), m, T(0), dh, m);
    } else {
      d.Gemm(false, true, n, m, v, T(1), logits_.data(), v, params_.param(head_), v, T(0), dh, m);
    }
  }
  {
    ScopedOp op(prof, "head.logits.wgrad", bw, -1, GemmFlops(n, v, m));
    if (c.tie_embeddings) {
      d.Gemm(true, false, v, m, n, T(1), logits_.data(), v, hf_.data(), m, T(1),
             params_.grad(embed_), m);
    } else {
      d.Gemm(true, false, m, v, n, T(1), hf_.data(), m, logits_.data(), v, T(1),
             params_.grad(head_), v);
    }
  }
  T* cur = dx_b_.data();
  T* other = dx_a_.data();
  {
    ScopedOp op(prof, "final.norm.bwd", bw);
    d.Fill(cur, n * m, T(0));
    d.RmsNormBackward(xs_.back().data(), params_.param(final_norm_), rstdf_.data(), dh, cur,
                      params_.grad(final_norm_), n, m);
  }
  for (size_t l = blocks_.size(); l-- > 0;) {
    MOESIM_RETURN_IF_ERROR(blocks_[l]->Backward(ctx, cur, other));
    std::swap(cur, other);
  }
  {
    ScopedOp op(prof, "embed.lookup.bwd", bw);
    d.ScatterAddRows(cur, csr_ids_.data(), csr_offsets_.data(), csr_pos_.data(), num_unique_,
                     params_.grad(embed_), m);
  }
  if (ws_.overflow()) return Status::Internal("workspace overflow (a sizing bug)");
  return Status::Ok();
}

template class Transformer<float>;
template class Transformer<double>;

}  // namespace moesim::real
