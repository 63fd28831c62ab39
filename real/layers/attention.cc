#include "real/layers/attention.h"

#include <cmath>

namespace moesim::real {

template <typename T>
Attention<T>::Attention(const AttentionShape& s, const std::string& prefix, int64_t layer,
                        double std, double out_std, ParamSet<T>* params)
    : s_(s), layer_(layer), params_(params) {
  const int64_t hd = s.heads * s.head_dim, kvd = s.kv_heads * s.head_dim;
  auto add = [&](const char* name, int64_t count, double sd) {
    ParamEntry e;
    e.name = prefix + "." + name;
    e.count = count;
    e.std = sd;
    return params->Add(e);
  };
  wq_ = add("wq", s.d_model * hd, std);
  wk_ = add("wk", s.d_model * kvd, std);
  wv_ = add("wv", s.d_model * kvd, std);
  wo_ = add("wo", hd * s.d_model, out_std);
}

template <typename T>
Status Attention<T>::AllocateActivations(DeviceBase* dev) {
  const int64_t n = s_.tokens(), hd = s_.heads * s_.head_dim, kvd = s_.kv_heads * s_.head_dim;
  const std::string p = "layer " + std::to_string(layer_) + " attn.";
  struct Item {
    Tensor<T>* t;
    std::string name;
    int64_t count;
  };
  for (const Item& it :
       {Item{&q_, p + "q", n * hd}, Item{&k_, p + "k", n * kvd}, Item{&v_, p + "v", n * kvd},
        Item{&probs_, p + "probs", s_.batch * s_.heads * s_.seq * s_.seq},
        Item{&context_, p + "context", n * hd}}) {
    Expected<Tensor<T>> t = Tensor<T>::Make(dev, it.name, it.count);
    if (!t.ok()) return t.status();
    *it.t = std::move(*t);
  }
  return Status::Ok();
}

template <typename T>
int64_t Attention<T>::ScratchElems() const {
  const int64_t n = s_.tokens(), hd = s_.heads * s_.head_dim, kvd = s_.kv_heads * s_.head_dim;
  using W = Workspace<T>;
  const int64_t fwd = W::Footprint(n * hd) + 2 * W::Footprint(n * kvd);
  const int64_t bwd = 3 * W::Footprint(n * hd) + 4 * W::Footprint(n * kvd) +
                      W::Footprint(s_.batch * s_.heads * s_.seq * s_.seq);
  return std::max(fwd, bwd);
}

template <typename T>
void Attention<T>::Forward(Context<T>& ctx, const T* a, T* out) {
  Device<T>& d = *ctx.dev;
  Profiler* pr = ctx.prof;
  const int64_t b = s_.batch, sq = s_.seq, m = s_.d_model, h = s_.heads, kv = s_.kv_heads,
                hdim = s_.head_dim, n = s_.tokens(), hd = h * hdim, kvd = kv * hdim, r = h / kv;
  const Phase f = Phase::kForward;
  input_ = a;
  const int64_t mark = ctx.ws->Mark();
  T* qt = ctx.ws->Take(n * hd);
  T* kt = ctx.ws->Take(n * kvd);
  T* vt = ctx.ws->Take(n * kvd);
  {
    ScopedOp op(pr, "attn.q", f, layer_, GemmFlops(n, hd, m));
    d.Gemm(false, false, n, hd, m, T(1), a, m, params_->param(wq_), hd, T(0), qt, hd);
  }
  {
    ScopedOp op(pr, "attn.k", f, layer_, GemmFlops(n, kvd, m));
    d.Gemm(false, false, n, kvd, m, T(1), a, m, params_->param(wk_), kvd, T(0), kt, kvd);
  }
  {
    ScopedOp op(pr, "attn.v", f, layer_, GemmFlops(n, kvd, m));
    d.Gemm(false, false, n, kvd, m, T(1), a, m, params_->param(wv_), kvd, T(0), vt, kvd);
  }
  {
    ScopedOp op(pr, "attn.rope", f, layer_);
    d.Rope(qt, n, h, hdim, sq, s_.rope_theta, false);
    d.Rope(kt, n, kv, hdim, sq, s_.rope_theta, false);
  }
  {
    ScopedOp op(pr, "attn.layout", f, layer_);
    d.Permute0213(qt, q_.data(), b, sq, h, hdim);
    d.Permute0213(kt, k_.data(), b, sq, kv, hdim);
    d.Permute0213(vt, v_.data(), b, sq, kv, hdim);
  }
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hdim)));
  const double core_flops = 2.0 * static_cast<double>(b * h * sq * sq * hdim);
  {
    ScopedOp op(pr, "attn.scores", f, layer_, core_flops);
    d.GemmStridedBatched(false, true, r * sq, sq, hdim, scale, q_.data(), hdim, r * sq * hdim,
                         k_.data(), hdim, sq * hdim, T(0), probs_.data(), sq, r * sq * sq, b * kv);
  }
  {
    ScopedOp op(pr, "attn.softmax", f, layer_);
    d.Softmax(probs_.data(), b * h * sq, sq, /*causal=*/true);
  }
  T* ctxh = qt;  // free after the permute above
  {
    ScopedOp op(pr, "attn.context", f, layer_, core_flops);
    d.GemmStridedBatched(false, false, r * sq, hdim, sq, T(1), probs_.data(), sq, r * sq * sq,
                         v_.data(), hdim, sq * hdim, T(0), ctxh, hdim, r * sq * hdim, b * kv);
  }
  {
    ScopedOp op(pr, "attn.layout", f, layer_);
    d.Permute0213(ctxh, context_.data(), b, h, sq, hdim);
  }
  {
    ScopedOp op(pr, "attn.out", f, layer_, GemmFlops(n, m, hd));
    d.Gemm(false, false, n, m, hd, T(1), context_.data(), hd, params_->param(wo_), m, T(0), out, m);
  }
  ctx.ws->Release(mark);
}

template <typename T>
void Attention<T>::Backward(Context<T>& ctx, const T* dout, T* da, bool accumulate) {
  Device<T>& d = *ctx.dev;
  Profiler* pr = ctx.prof;
  const int64_t b = s_.batch, sq = s_.seq, m = s_.d_model, h = s_.heads, kv = s_.kv_heads,
                hdim = s_.head_dim, n = s_.tokens(), hd = h * hdim, kvd = kv * hdim, r = h / kv;
  const Phase bw = Phase::kBackward;
  const int64_t mark = ctx.ws->Mark();
  T* dctx = ctx.ws->Take(n * hd);
  T* dctxh = ctx.ws->Take(n * hd);
  T* dp = ctx.ws->Take(b * h * sq * sq);
  T* dqh = ctx.ws->Take(n * hd);
  T* dkh = ctx.ws->Take(n * kvd);
  T* dvh = ctx.ws->Take(n * kvd);
  T* dk = ctx.ws->Take(n * kvd);
  T* dv = ctx.ws->Take(n * kvd);
  T* dq = dctx;  // free once permuted
  {
    ScopedOp op(pr, "attn.out.dgrad", bw, layer_, GemmFlops(n, m, hd));
    d.Gemm(false, true, n, hd, m, T(1), dout, m, params_->param(wo_), m, T(0), dctx, hd);
  }
  {
    ScopedOp op(pr, "attn.out.wgrad", bw, layer_, GemmFlops(n, m, hd));
    d.Gemm(true, false, hd, m, n, T(1), context_.data(), hd, dout, m, T(1), params_->grad(wo_), m);
  }
  {
    ScopedOp op(pr, "attn.layout.bwd", bw, layer_);
    d.Permute0213(dctx, dctxh, b, sq, h, hdim);
  }
  const double core_flops = 2.0 * static_cast<double>(b * h * sq * sq * hdim);
  // dP = dC V^T per (batch, kv head) group of r heads; dV = P^T dC sums over the group.
  {
    ScopedOp op(pr, "attn.context.grad_a", bw, layer_, core_flops);
    d.GemmStridedBatched(false, true, r * sq, sq, hdim, T(1), dctxh, hdim, r * sq * hdim, v_.data(),
                         hdim, sq * hdim, T(0), dp, sq, r * sq * sq, b * kv);
  }
  {
    ScopedOp op(pr, "attn.context.grad_b", bw, layer_, core_flops);
    d.GemmStridedBatched(true, false, sq, hdim, r * sq, T(1), probs_.data(), sq, r * sq * sq, dctxh,
                         hdim, r * sq * hdim, T(0), dvh, hdim, sq * hdim, b * kv);
  }
  {
    ScopedOp op(pr, "attn.softmax.bwd", bw, layer_);
    d.SoftmaxBackward(probs_.data(), dp, dp, b * h * sq, sq);
  }
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hdim)));
  {
    ScopedOp op(pr, "attn.scores.grad_a", bw, layer_, core_flops);
    d.GemmStridedBatched(false, false, r * sq, hdim, sq, scale, dp, sq, r * sq * sq, k_.data(),
                         hdim, sq * hdim, T(0), dqh, hdim, r * sq * hdim, b * kv);
  }
  {
    ScopedOp op(pr, "attn.scores.grad_b", bw, layer_, core_flops);
    d.GemmStridedBatched(true, false, sq, hdim, r * sq, scale, dp, sq, r * sq * sq, q_.data(), hdim,
                         r * sq * hdim, T(0), dkh, hdim, sq * hdim, b * kv);
  }
  {
    ScopedOp op(pr, "attn.layout.bwd", bw, layer_);
    d.Permute0213(dqh, dq, b, h, sq, hdim);
    d.Permute0213(dkh, dk, b, kv, sq, hdim);
    d.Permute0213(dvh, dv, b, kv, sq, hdim);
  }
  {
    ScopedOp op(pr, "attn.rope.bwd", bw, layer_);
    d.Rope(dq, n, h, hdim, sq, s_.rope_theta, /*inverse=*/true);
    d.Rope(dk, n, kv, hdim, sq, s_.rope_theta, /*inverse=*/true);
  }
  struct Proj {
    const char* wgrad;
    const char* dgrad;
    int w;
    const T* dy;
    int64_t cols;
  };
  bool first = !accumulate;
  for (const Proj& p : {Proj{"attn.q.wgrad", "attn.q.dgrad", wq_, dq, hd},
                        Proj{"attn.k.wgrad", "attn.k.dgrad", wk_, dk, kvd},
                        Proj{"attn.v.wgrad", "attn.v.dgrad", wv_, dv, kvd}}) {
    {
      ScopedOp op(pr, p.wgrad, bw, layer_, GemmFlops(n, p.cols, m));
      d.Gemm(true, false, m, p.cols, n, T(1), input_, m, p.dy, p.cols, T(1), params_->grad(p.w),
             p.cols);
    }
    ScopedOp op(pr, p.dgrad, bw, layer_, GemmFlops(n, p.cols, m));
    d.Gemm(false, true, n, m, p.cols, T(1), p.dy, p.cols, params_->param(p.w), p.cols,
           first ? T(0) : T(1), da, m);
    first = false;
  }
  ctx.ws->Release(mark);
}

template class Attention<float>;
template class Attention<double>;

}  // namespace moesim::real
