#include "real/layers/moe.h"

#include <algorithm>
#include <tuple>

namespace moesim::real {
namespace {

template <typename T>
Status Make(DeviceBase* dev, Tensor<T>* t, const std::string& name, int64_t count) {
  Expected<Tensor<T>> buf = Tensor<T>::Make(dev, name, count);
  if (!buf.ok()) return buf.status();
  *t = std::move(*buf);
  return Status::Ok();
}

}  // namespace

template <typename T>
MoeLayer<T>::MoeLayer(const MoeShape& s, const std::string& prefix, int64_t layer, double std,
                      double out_std, ParamSet<T>* params)
    : s_(s), layer_(layer), params_(params) {
  cfg_.num_experts = s.num_experts;
  cfg_.top_k = s.top_k;
  cfg_.capacity = s.capacity;
  cfg_.group_size = s.group_size;
  const int64_t el = s.local_experts(), m = s.d_model, f = s.expert_hidden;
  ParamEntry r;
  r.name = prefix + ".router";
  r.count = m * s.num_experts;
  r.std = std;
  router_ = params->Add(r);
  auto add = [&](const char* name, double sd) {
    ParamEntry e;
    e.name = prefix + "." + name;
    e.kind = ParamKind::kExpert;
    e.count = el * m * f;
    e.num_local_experts = el;
    e.first_expert = s.ep_rank * el;
    e.std = sd;
    return params->Add(e);
  };
  w1_ = add("w1", std);
  w3_ = add("w3", std);
  w2_ = add("w2", out_std);
  if (s.num_shared_experts > 0) {
    FfnShape fs{s.tokens, m, s.num_shared_experts * f};
    shared_ = std::make_unique<SwiGluFfn<T>>(fs, prefix + ".shared", kSharedExpertOps, layer, std,
                                             out_std, params);
  }
  const int64_t groups = s.tokens / s.group_size;
  max_rows_ = std::min(s.tokens * s.top_k, groups * s.num_experts * s.capacity);
  max_recv_ = s.ep_size == 1
                  ? max_rows_
                  : std::min(s.ep_size * s.tokens * s.top_k, s.ep_size * groups * el * s.capacity);
}

template <typename T>
Status MoeLayer<T>::AllocateActivations(DeviceBase* dev) {
  const std::string p = "layer " + std::to_string(layer_) + " moe.";
  const int64_t n = s_.tokens, m = s_.d_model, f = s_.expert_hidden, k = s_.top_k;
  MOESIM_RETURN_IF_ERROR(Make(dev, &logits_, p + "router_logits", n * s_.num_experts));
  MOESIM_RETURN_IF_ERROR(Make(dev, &disp_, p + "dispatched", max_rows_ * m));
  MOESIM_RETURN_IF_ERROR(Make(dev, &h1_, p + "h1", max_recv_ * f));
  MOESIM_RETURN_IF_ERROR(Make(dev, &h3_, p + "h3", max_recv_ * f));
  MOESIM_RETURN_IF_ERROR(Make(dev, &act_, p + "act", max_recv_ * f));
  MOESIM_RETURN_IF_ERROR(Make(dev, &yexp_, p + "expert_out", max_recv_ * m));
  MOESIM_RETURN_IF_ERROR(Make(dev, &gate_w_, p + "gates", n * k));
  MOESIM_RETURN_IF_ERROR(Make(dev, &slot_gate_, p + "slot_gates", max_rows_));
  MOESIM_RETURN_IF_ERROR(Make(dev, &idx_, p + "slot_token", max_rows_));
  MOESIM_RETURN_IF_ERROR(Make(dev, &pos_, p + "slot_of_choice", n * k));
  if (s_.ep_size > 1) {
    MOESIM_RETURN_IF_ERROR(Make(dev, &recv_, p + "received", max_recv_ * m));
    MOESIM_RETURN_IF_ERROR(Make(dev, &xin_, p + "expert_in", max_recv_ * m));
    MOESIM_RETURN_IF_ERROR(Make(dev, &ydisp_, p + "returned", max_rows_ * m));
    MOESIM_RETURN_IF_ERROR(Make(dev, &perm_fwd_, p + "perm_fwd", max_recv_));
    MOESIM_RETURN_IF_ERROR(Make(dev, &perm_back_, p + "perm_back", max_recv_));
  }
  if (shared_) MOESIM_RETURN_IF_ERROR(shared_->AllocateActivations(dev));
  return Status::Ok();
}

template <typename T>
int64_t MoeLayer<T>::ScratchElems() const {
  using W = Workspace<T>;
  const int64_t m = s_.d_model, f = s_.expert_hidden;
  int64_t bwd = W::Footprint(max_rows_) + W::Footprint(max_rows_ * m) +
                3 * W::Footprint(max_recv_ * f) + W::Footprint(max_recv_ * m) +
                W::Footprint(s_.tokens * s_.num_experts);
  if (s_.ep_size > 1) bwd += 2 * W::Footprint(max_recv_ * m) + W::Footprint(max_rows_ * m);
  int64_t fwd = 0;
  if (shared_) {
    fwd = W::Footprint(s_.tokens * m) + shared_->ScratchElems();
    bwd += shared_->ScratchElems();
  }
  return std::max(fwd, bwd);
}

template <typename T>
Status MoeLayer<T>::Exchange(Context<T>& ctx, const char* name, const T* send,
                             const std::vector<int64_t>& send_counts, T* recv,
                             const std::vector<int64_t>& recv_counts, Phase phase) {
  double bytes = 0;
  for (int64_t c : send_counts) bytes += static_cast<double>(c) * sizeof(T);
  MOESIM_RETURN_IF_ERROR(
      WaitForGroup(ctx.prof, ctx.comm, Group::kExpert, name, phase, layer_, kCommStream));
  ScopedOp op(ctx.prof, name, phase, layer_, 0, bytes, kCommStream);
  return ctx.comm->AllToAllV(send, send_counts, recv, recv_counts, Group::kExpert);
}

template <typename T>
Status MoeLayer<T>::Forward(Context<T>& ctx, const T* x, T* out) {
  Device<T>& d = *ctx.dev;
  const int64_t n = s_.tokens, m = s_.d_model, e_n = s_.num_experts, k = s_.top_k;
  const int64_t el = s_.local_experts();
  const Phase fw = Phase::kForward;
  input_ = x;
  {
    ScopedOp op(ctx.prof, "moe.router", fw, layer_, GemmFlops(n, e_n, m));
    d.Gemm(false, false, n, e_n, m, T(1), x, m, params_->param(router_), e_n, T(0), logits_.data(),
           e_n);
  }
  {
    ScopedOp op(ctx.prof, "moe.gate", fw, layer_);
    const std::vector<T> logits = logits_.Download(n * e_n);
    routing_ = Route(logits.data(), n, cfg_);
    const int64_t rows = routing_.rows();
    std::vector<T> gates(static_cast<size_t>(n * k)), slot_gates(static_cast<size_t>(rows));
    for (int64_t i = 0; i < n * k; ++i) {
      const auto u = static_cast<size_t>(i);
      gates[u] = routing_.pos[u] < 0
                     ? T(0)
                     : static_cast<T>(
                           routing_.probs[static_cast<size_t>((i / k) * e_n + routing_.choice[u])]);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const auto u = static_cast<size_t>(r);
      slot_gates[u] = static_cast<T>(
          routing_
              .probs[static_cast<size_t>(routing_.slot_token[u] * e_n + routing_.slot_expert[u])]);
    }
    idx_.Upload(routing_.slot_token);
    pos_.Upload(routing_.pos);
    gate_w_.Upload(gates);
    slot_gate_.Upload(slot_gates);
  }
  const int64_t rows = routing_.rows();
  {
    ScopedOp op(ctx.prof, "moe.permute", fw, layer_);
    d.GatherRows(x, idx_.data(), nullptr, disp_.data(), rows, m);
  }
  const T* xin = disp_.data();
  expert_rows_.assign(static_cast<size_t>(el), 0);
  expert_off_.assign(static_cast<size_t>(el + 1), 0);
  if (s_.ep_size == 1) {
    for (int64_t e = 0; e < el; ++e) {
      expert_rows_[static_cast<size_t>(e)] = routing_.expert_rows[static_cast<size_t>(e)];
      expert_off_[static_cast<size_t>(e)] = routing_.expert_offset[static_cast<size_t>(e)];
    }
    expert_off_[static_cast<size_t>(el)] = rows;
    recv_rows_ = rows;
  } else {
    const int64_t peers = s_.ep_size;
    std::vector<int64_t> recv_counts;  // [peer][local expert]
    {
      MOESIM_RETURN_IF_ERROR(WaitForGroup(ctx.prof, ctx.comm, Group::kExpert, "moe.dispatch_a2a",
                                          fw, layer_, kCommStream));
      ScopedOp op(ctx.prof, "moe.dispatch_a2a", fw, layer_, 0,
                  static_cast<double>(e_n * sizeof(int64_t)), kCommStream);
      MOESIM_RETURN_IF_ERROR(
          ctx.comm->AllToAllHost(routing_.expert_rows, &recv_counts, el, Group::kExpert));
    }
    send_elems_.assign(static_cast<size_t>(peers), 0);
    recv_elems_.assign(static_cast<size_t>(peers), 0);
    std::vector<int64_t> src_off(static_cast<size_t>(peers + 1), 0);
    for (int64_t p = 0; p < peers; ++p) {
      int64_t sent = 0, got = 0;
      for (int64_t e = 0; e < el; ++e) {
        sent += routing_.expert_rows[static_cast<size_t>(p * el + e)];
        got += recv_counts[static_cast<size_t>(p * el + e)];
        expert_rows_[static_cast<size_t>(e)] += recv_counts[static_cast<size_t>(p * el + e)];
      }
      send_elems_[static_cast<size_t>(p)] = sent * m;
      recv_elems_[static_cast<size_t>(p)] = got * m;
      src_off[static_cast<size_t>(p + 1)] = src_off[static_cast<size_t>(p)] + got;
    }
    recv_rows_ = src_off[static_cast<size_t>(peers)];
    if (recv_rows_ > max_recv_) {
      return Status::Internal("moe layer " + std::to_string(layer_) + ": received " +
                              std::to_string(recv_rows_) + " rows, more than the capacity bound " +
                              std::to_string(max_recv_));
    }
    // Expert-major order: for each local expert, the rows of peer 0, then peer 1, ...
    std::vector<int32_t> fwd(static_cast<size_t>(recv_rows_)),
        back(static_cast<size_t>(recv_rows_));
    int64_t i = 0;
    for (int64_t e = 0; e < el; ++e) {
      expert_off_[static_cast<size_t>(e)] = i;
      for (int64_t p = 0; p < peers; ++p) {
        int64_t start = src_off[static_cast<size_t>(p)];
        for (int64_t e2 = 0; e2 < e; ++e2) start += recv_counts[static_cast<size_t>(p * el + e2)];
        for (int64_t t = 0; t < recv_counts[static_cast<size_t>(p * el + e)]; ++t, ++i) {
          fwd[static_cast<size_t>(i)] = static_cast<int32_t>(start + t);
          back[static_cast<size_t>(start + t)] = static_cast<int32_t>(i);
        }
      }
    }
    expert_off_[static_cast<size_t>(el)] = i;
    perm_fwd_.Upload(fwd);
    perm_back_.Upload(back);
    MOESIM_RETURN_IF_ERROR(Exchange(ctx, "moe.dispatch_a2a", disp_.data(), send_elems_,
                                    recv_.data(), recv_elems_, fw));
    {
      ScopedOp op(ctx.prof, "moe.permute", fw, layer_);
      d.GatherRows(recv_.data(), perm_fwd_.data(), nullptr, xin_.data(), recv_rows_, m);
    }
    xin = xin_.data();
  }
  ExpertsForward(ctx, xin);
  const T* ydisp = yexp_.data();
  if (s_.ep_size > 1) {
    {
      ScopedOp op(ctx.prof, "moe.permute", fw, layer_);
      d.GatherRows(yexp_.data(), perm_back_.data(), nullptr, recv_.data(), recv_rows_, m);
    }
    MOESIM_RETURN_IF_ERROR(Exchange(ctx, "moe.combine_a2a", recv_.data(), recv_elems_,
                                    ydisp_.data(), send_elems_, fw));
    ydisp = ydisp_.data();
  }
  {
    ScopedOp op(ctx.prof, "moe.unpermute", fw, layer_);
    d.CombineRows(ydisp, pos_.data(), gate_w_.data(), out, n, k, m, /*accumulate=*/false);
  }
  if (shared_) {
    const int64_t mark = ctx.ws->Mark();
    T* tmp = ctx.ws->Take(n * m);
    shared_->Forward(ctx, x, tmp);
    d.Axpy(tmp, out, n * m, T(1));
    ctx.ws->Release(mark);
  }
  return Status::Ok();
}

template <typename T>
void MoeLayer<T>::ExpertsForward(Context<T>& ctx, const T* xin) {
  Device<T>& d = *ctx.dev;
  const int64_t m = s_.d_model, f = s_.expert_hidden, el = s_.local_experts();
  const Phase fw = Phase::kForward;
  const double rows = static_cast<double>(recv_rows_);
  const double flops = 2.0 * rows * static_cast<double>(m * f);
  for (auto [name, w, h] : {std::tuple{"moe.w1", w1_, &h1_}, std::tuple{"moe.w3", w3_, &h3_}}) {
    ScopedOp op(ctx.prof, name, fw, layer_, flops);
    for (int64_t e = 0; e < el; ++e) {
      const int64_t off = expert_off_[static_cast<size_t>(e)];
      d.Gemm(false, false, expert_rows_[static_cast<size_t>(e)], f, m, T(1), xin + off * m, m,
             params_->param(w) + e * m * f, f, T(0), h->data() + off * f, f);
    }
  }
  {
    ScopedOp op(ctx.prof, "moe.act", fw, layer_);
    d.SwiGluForward(h1_.data(), h3_.data(), act_.data(), recv_rows_ * f);
  }
  ScopedOp op(ctx.prof, "moe.w2", fw, layer_, flops);
  for (int64_t e = 0; e < el; ++e) {
    const int64_t off = expert_off_[static_cast<size_t>(e)];
    d.Gemm(false, false, expert_rows_[static_cast<size_t>(e)], m, f, T(1), act_.data() + off * f, f,
           params_->param(w2_) + e * f * m, m, T(0), yexp_.data() + off * m, m);
  }
}

template <typename T>
void MoeLayer<T>::ExpertsBackward(Context<T>& ctx, const T* dy, T* dxin) {
  Device<T>& d = *ctx.dev;
  const int64_t m = s_.d_model, f = s_.expert_hidden, el = s_.local_experts();
  const Phase bw = Phase::kBackward;
  const double flops = 2.0 * static_cast<double>(recv_rows_) * static_cast<double>(m * f);
  T* dact = ctx.ws->Take(max_recv_ * f);
  T* dh1 = ctx.ws->Take(max_recv_ * f);
  T* dh3 = ctx.ws->Take(max_recv_ * f);
  auto off = [&](int64_t e) { return expert_off_[static_cast<size_t>(e)]; };
  auto rows = [&](int64_t e) { return expert_rows_[static_cast<size_t>(e)]; };
  {
    ScopedOp op(ctx.prof, "moe.w2.dgrad", bw, layer_, flops);
    for (int64_t e = 0; e < el; ++e) {
      d.Gemm(false, true, rows(e), f, m, T(1), dy + off(e) * m, m, params_->param(w2_) + e * f * m,
             m, T(0), dact + off(e) * f, f);
    }
  }
  {
    ScopedOp op(ctx.prof, "moe.w2.wgrad", bw, layer_, flops);
    for (int64_t e = 0; e < el; ++e) {
      d.Gemm(true, false, f, m, rows(e), T(1), act_.data() + off(e) * f, f, dy + off(e) * m, m,
             T(1), params_->grad(w2_) + e * f * m, m);
    }
  }
  {
    ScopedOp op(ctx.prof, "moe.act.bwd", bw, layer_);
    d.SwiGluBackward(h1_.data(), h3_.data(), dact, dh1, dh3, recv_rows_ * f);
  }
  const T* xin = s_.ep_size > 1 ? xin_.data() : disp_.data();
  struct Proj {
    const char* wgrad;
    const char* dgrad;
    int w;
    const T* dh;
  };
  bool first = true;
  for (const Proj& p : {Proj{"moe.w1.wgrad", "moe.w1.dgrad", w1_, dh1},
                        Proj{"moe.w3.wgrad", "moe.w3.dgrad", w3_, dh3}}) {
    {
      ScopedOp op(ctx.prof, p.wgrad, bw, layer_, flops);
      for (int64_t e = 0; e < el; ++e) {
        d.Gemm(true, false, m, f, rows(e), T(1), xin + off(e) * m, m, p.dh + off(e) * f, f, T(1),
               params_->grad(p.w) + e * m * f, f);
      }
    }
    ScopedOp op(ctx.prof, p.dgrad, bw, layer_, flops);
    for (int64_t e = 0; e < el; ++e) {
      d.Gemm(false, true, rows(e), m, f, T(1), p.dh + off(e) * f, f,
             params_->param(p.w) + e * m * f, f, first ? T(0) : T(1), dxin + off(e) * m, m);
    }
    first = false;
  }
}

template <typename T>
Status MoeLayer<T>::Backward(Context<T>& ctx, const T* dout, T* dx, bool accumulate) {
  Device<T>& d = *ctx.dev;
  const int64_t n = s_.tokens, m = s_.d_model, e_n = s_.num_experts, k = s_.top_k;
  const int64_t rows = routing_.rows();
  const Phase bw = Phase::kBackward;
  const int64_t mark = ctx.ws->Mark();
  T* dgate = ctx.ws->Take(max_rows_);
  T* dyd = ctx.ws->Take(max_rows_ * m);
  const T* ydisp = s_.ep_size > 1 ? ydisp_.data() : yexp_.data();
  {
    ScopedOp op(ctx.prof, "moe.unpermute.bwd", bw, layer_);
    d.GatherDot(dout, idx_.data(), ydisp, dgate, rows, m);
    d.GatherRows(dout, idx_.data(), slot_gate_.data(), dyd, rows, m);
  }
  T* dxin = nullptr;
  T* dxd = nullptr;
  if (s_.ep_size == 1) {
    dxin = ctx.ws->Take(max_recv_ * m);
    ExpertsBackward(ctx, dyd, dxin);
    dxd = dxin;
  } else {
    T* dyrecv = ctx.ws->Take(max_recv_ * m);
    T* dyexp = ctx.ws->Take(max_recv_ * m);
    dxin = ctx.ws->Take(max_recv_ * m);
    dxd = ctx.ws->Take(max_rows_ * m);
    MOESIM_RETURN_IF_ERROR(
        Exchange(ctx, "moe.combine_a2a.bwd", dyd, send_elems_, dyrecv, recv_elems_, bw));
    {
      ScopedOp op(ctx.prof, "moe.permute.bwd", bw, layer_);
      d.GatherRows(dyrecv, perm_fwd_.data(), nullptr, dyexp, recv_rows_, m);
    }
    ExpertsBackward(ctx, dyexp, dxin);
    {
      ScopedOp op(ctx.prof, "moe.permute.bwd", bw, layer_);
      d.GatherRows(dxin, perm_back_.data(), nullptr, dyrecv, recv_rows_, m);
    }
    MOESIM_RETURN_IF_ERROR(
        Exchange(ctx, "moe.dispatch_a2a.bwd", dyrecv, recv_elems_, dxd, send_elems_, bw));
  }
  {
    ScopedOp op(ctx.prof, "moe.permute.bwd", bw, layer_);
    d.CombineRows(dxd, pos_.data(), nullptr, dx, n, k, m, accumulate);
  }
  T* dz = ctx.ws->Take(n * e_n);
  {
    ScopedOp op(ctx.prof, "moe.gate.bwd", bw, layer_);
    std::vector<T> dg(static_cast<size_t>(rows));
    if (rows > 0) ctx.dev->DownloadBytes(dgate, dg.data(), rows * static_cast<int64_t>(sizeof(T)));
    const std::vector<double> dgd(dg.begin(), dg.end());
    const std::vector<double> dl = RouterBackward(routing_, cfg_, dgd, s_.aux_coef * ctx.loss_scale,
                                                  s_.z_coef * ctx.loss_scale);
    const std::vector<T> dlt(dl.begin(), dl.end());
    ctx.dev->UploadBytes(dlt.data(), dz, n * e_n * static_cast<int64_t>(sizeof(T)));
  }
  {
    ScopedOp op(ctx.prof, "moe.router.wgrad", bw, layer_, GemmFlops(n, e_n, m));
    d.Gemm(true, false, m, e_n, n, T(1), input_, m, dz, e_n, T(1), params_->grad(router_), e_n);
  }
  {
    ScopedOp op(ctx.prof, "moe.router.dgrad", bw, layer_, GemmFlops(n, e_n, m));
    d.Gemm(false, true, n, m, e_n, T(1), dz, e_n, params_->param(router_), e_n, T(1), dx, m);
  }
  if (shared_) shared_->Backward(ctx, dout, dx, /*accumulate=*/true);
  ctx.ws->Release(mark);
  return Status::Ok();
}

template class MoeLayer<float>;
template class MoeLayer<double>;

}  // namespace moesim::real
