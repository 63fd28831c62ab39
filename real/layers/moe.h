// moe.h
//
// Mixture-of-Experts FFN layer with expert parallelism. Forward, for the normed input x
// [tokens, d_model]:
//   logits = x Wr                                  "moe.router"  (Wr [d_model, E], replicated)
//   routing (routing.h: softmax, top-k, capacity)  "moe.gate"    (host)
//   dispatched rows = x[slot_token]                "moe.permute" (expert-major)
//   all-to-all to the ranks owning the experts     "moe.dispatch_a2a" (expert parallel only;
//                                                  received rows reordered: "moe.permute")
//   per local expert e: y = (silu(X W1_e) * X W3_e) W2_e  "moe.w1", "moe.w3", "moe.act", "moe.w2"
//   all-to-all back                                "moe.combine_a2a"
//   out[n] = sum_j gate(n, j) y[pos(n, j)]         "moe.unpermute"
//   (+ shared experts, a dense SwiGLU of num_shared x expert_hidden on every token)
// Experts are sharded over the Expert axis: rank with expert index i holds experts
// [i E/ep, (i+1) E/ep). Per-rank token counts travel first (all-to-all of int64 counts), then
// the rows (all-to-all-v); received rows are reordered expert-major so each expert runs one
// GEMM. Capacity bounds every buffer, so all of them are allocated once, up front.
// Routing runs on the host: on a GPU the router logits ([tokens, E]) come to the host once per
// MoE layer and pass (one synchronization each), which also gives the all-to-all its counts.
// Backward runs the same path in reverse; the router gets the gate gradients plus the
// load-balancing and z-loss gradients (scaled by aux_coef, z_coef and ctx loss scale).
// Thread safety: one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "real/layers/context.h"
#include "real/layers/ffn.h"
#include "real/layers/params.h"
#include "real/layers/routing.h"

namespace moesim::real {

struct MoeShape {
  int64_t tokens = 0;  // on this rank
  int64_t d_model = 0;
  int64_t num_experts = 0;  // all ranks together
  int64_t top_k = 0;
  int64_t expert_hidden = 0;
  int64_t group_size = 0;  // tokens per routing group; divides `tokens`
  int64_t capacity = 0;    // per expert per group
  int64_t num_shared_experts = 0;
  int64_t ep_size = 1;  // expert-parallel ranks
  int64_t ep_rank = 0;
  double aux_coef = 0.01;  // load-balancing loss coefficient
  double z_coef = 0.001;   // router z-loss coefficient
  int64_t local_experts() const { return num_experts / ep_size; }
};

template <typename T>
class MoeLayer {
 public:
  MoeLayer(const MoeShape& s, const std::string& prefix, int64_t layer, double std, double out_std,
           ParamSet<T>* params);
  Status AllocateActivations(DeviceBase* dev);
  int64_t ScratchElems() const;

  // out = moe(x). REQUIRES: x unchanged until Backward. Collective over Group::kExpert.
  Status Forward(Context<T>& ctx, const T* x, T* out);
  // dx (+)= d/dx (overwrites unless `accumulate`). Collective over Group::kExpert.
  Status Backward(Context<T>& ctx, const T* dout, T* dx, bool accumulate);

  // The last forward's routing and its auxiliary loss aux_coef * lb + z_coef * z.
  const Routing& routing() const { return routing_; }
  double aux_loss() const {
    return s_.aux_coef * routing_.load_balance_loss + s_.z_coef * routing_.z_loss;
  }
  const MoeShape& shape() const { return s_; }
  int64_t max_rows() const { return max_rows_; }
  int64_t max_recv_rows() const { return max_recv_; }

 private:
  Status Exchange(Context<T>& ctx, const char* name, const T* send,
                  const std::vector<int64_t>& send_counts, T* recv,
                  const std::vector<int64_t>& recv_counts, Phase phase);
  void ExpertsForward(Context<T>& ctx, const T* xin);
  void ExpertsBackward(Context<T>& ctx, const T* dy, T* dxin);

  MoeShape s_;
  RouterConfig cfg_;
  int64_t layer_;
  ParamSet<T>* params_;
  int router_, w1_, w3_, w2_;
  std::unique_ptr<SwiGluFfn<T>> shared_;
  int64_t max_rows_ = 0, max_recv_ = 0;

  const T* input_ = nullptr;
  Routing routing_;
  // Expert-parallel bookkeeping of the last forward.
  std::vector<int64_t> send_elems_, recv_elems_;   // per EP peer, elements
  std::vector<int64_t> expert_rows_, expert_off_;  // per local expert, on the expert side
  int64_t recv_rows_ = 0;

  Tensor<T> logits_, disp_, recv_, xin_, h1_, h3_, act_, yexp_, ydisp_, gate_w_, slot_gate_;
  Tensor<int32_t> idx_, pos_, perm_fwd_, perm_back_;
};

extern template class MoeLayer<float>;
extern template class MoeLayer<double>;

}  // namespace moesim::real
