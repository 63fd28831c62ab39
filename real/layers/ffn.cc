#include "real/layers/ffn.h"

namespace moesim::real {

template <typename T>
SwiGluFfn<T>::SwiGluFfn(const FfnShape& s, const std::string& param_prefix, const char* op_names[4],
                        int64_t layer, double std, double out_std, ParamSet<T>* params)
    : s_(s), names_(op_names), layer_(layer), params_(params) {
  auto add = [&](const char* name, double sd) {
    ParamEntry e;
    e.name = param_prefix + "." + name;
    e.count = s.d_model * s.hidden;
    e.std = sd;
    return params->Add(e);
  };
  const std::string w1 = op_names[0], w3 = op_names[1], act = op_names[2], w2 = op_names[3];
  bwd_names_[0] = w2 + ".dgrad";
  bwd_names_[1] = w2 + ".wgrad";
  bwd_names_[2] = act + ".bwd";
  bwd_names_[3] = w1 + ".wgrad";
  bwd_names_[4] = w1 + ".dgrad";
  bwd_names_[5] = w3 + ".wgrad";
  bwd_names_[6] = w3 + ".dgrad";
  w1_ = add("w1", std);
  w3_ = add("w3", std);
  w2_ = add("w2", out_std);
}

template <typename T>
Status SwiGluFfn<T>::AllocateActivations(DeviceBase* dev) {
  const int64_t n = s_.tokens * s_.hidden;
  const std::string p = "layer " + std::to_string(layer_) + " " + names_[0];
  for (auto [t, suffix] :
       {std::pair{&h1_, ".h1"}, std::pair{&h3_, ".h3"}, std::pair{&act_, ".act"}}) {
    Expected<Tensor<T>> buf = Tensor<T>::Make(dev, p + suffix, n);
    if (!buf.ok()) return buf.status();
    *t = std::move(*buf);
  }
  return Status::Ok();
}

template <typename T>
int64_t SwiGluFfn<T>::ScratchElems() const {
  return 3 * Workspace<T>::Footprint(s_.tokens * s_.hidden);
}

template <typename T>
void SwiGluFfn<T>::Forward(Context<T>& ctx, const T* x, T* out) {
  Device<T>& d = *ctx.dev;
  const int64_t n = s_.tokens, m = s_.d_model, f = s_.hidden;
  const Phase p = Phase::kForward;
  input_ = x;
  {
    ScopedOp op(ctx.prof, names_[0], p, layer_, GemmFlops(n, f, m));
    d.Gemm(false, false, n, f, m, T(1), x, m, params_->param(w1_), f, T(0), h1_.data(), f);
  }
  {
    ScopedOp op(ctx.prof, names_[1], p, layer_, GemmFlops(n, f, m));
    d.Gemm(false, false, n, f, m, T(1), x, m, params_->param(w3_), f, T(0), h3_.data(), f);
  }
  {
    ScopedOp op(ctx.prof, names_[2], p, layer_);
    d.SwiGluForward(h1_.data(), h3_.data(), act_.data(), n * f);
  }
  {
    ScopedOp op(ctx.prof, names_[3], p, layer_, GemmFlops(n, m, f));
    d.Gemm(false, false, n, m, f, T(1), act_.data(), f, params_->param(w2_), m, T(0), out, m);
  }
}

template <typename T>
void SwiGluFfn<T>::Backward(Context<T>& ctx, const T* dout, T* dx, bool accumulate) {
  Device<T>& d = *ctx.dev;
  const int64_t n = s_.tokens, m = s_.d_model, f = s_.hidden;
  const Phase p = Phase::kBackward;
  const int64_t mark = ctx.ws->Mark();
  T* dact = ctx.ws->Take(n * f);
  T* dh1 = ctx.ws->Take(n * f);
  T* dh3 = ctx.ws->Take(n * f);
  const double flops = GemmFlops(n, m, f);
  {
    ScopedOp op(ctx.prof, bwd_names_[0].c_str(), p, layer_, flops);
    d.Gemm(false, true, n, f, m, T(1), dout, m, params_->param(w2_), m, T(0), dact, f);
  }
  {
    ScopedOp op(ctx.prof, bwd_names_[1].c_str(), p, layer_, flops);
    d.Gemm(true, false, f, m, n, T(1), act_.data(), f, dout, m, T(1), params_->grad(w2_), m);
  }
  {
    ScopedOp op(ctx.prof, bwd_names_[2].c_str(), p, layer_);
    d.SwiGluBackward(h1_.data(), h3_.data(), dact, dh1, dh3, n * f);
  }
  {
    ScopedOp op(ctx.prof, bwd_names_[3].c_str(), p, layer_, flops);
    d.Gemm(true, false, m, f, n, T(1), input_, m, dh1, f, T(1), params_->grad(w1_), f);
  }
  {
    ScopedOp op(ctx.prof, bwd_names_[4].c_str(), p, layer_, flops);
    d.Gemm(false, true, n, m, f, T(1), dh1, f, params_->param(w1_), f, accumulate ? T(1) : T(0), dx,
           m);
  }
  {
    ScopedOp op(ctx.prof, bwd_names_[5].c_str(), p, layer_, flops);
    d.Gemm(true, false, m, f, n, T(1), input_, m, dh3, f, T(1), params_->grad(w3_), f);
  }
  {
    ScopedOp op(ctx.prof, bwd_names_[6].c_str(), p, layer_, flops);
    d.Gemm(false, true, n, m, f, T(1), dh3, f, params_->param(w3_), f, T(1), dx, m);
  }
  ctx.ws->Release(mark);
}

template class SwiGluFfn<float>;
template class SwiGluFfn<double>;

}  // namespace moesim::real
