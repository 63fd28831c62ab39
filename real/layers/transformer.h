// transformer.h
//
// Transformer<T>: the whole decoder-only language model of a ModelConfig, on one rank.
//   x0 = embed[tokens]                                  "embed.lookup"
//   per layer: x1 = x + Attention(RMSNorm(x))           "attn.norm", attention ops, "attn.residual"
//              x2 = x1 + FFN_or_MoE(RMSNorm(x1))        "ffn.norm" / "moe.norm", FFN or MoE ops,
//                                                       "ffn.residual" / "moe.residual"
//   logits = RMSNorm(xL) Whead (Whead = embed^T if tied)  "final.norm", "head.logits"
//   loss = mean cross-entropy over the tokens + sum over MoE layers of the auxiliary losses
//                                                       "head.loss" (also the logits gradient)
// Forward() computes the loss and (fused) the logits gradient; Backward() adds every
// parameter's gradient into params().grads(), scaled by the loss_scale given to Forward (the
// trainer passes 1 / micro-batches). Gradients accumulate until the caller zeroes them.
//
// Activations for one micro-batch of `batch` sequences are allocated once by Create(); a
// device out-of-memory error names the tensor. With expert parallelism (ep_size > 1) Forward
// and Backward are collective over Group::kExpert of the communicator.
// Thread safety: one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "real/layers/attention.h"
#include "real/layers/context.h"
#include "real/layers/ffn.h"
#include "real/layers/model_config.h"
#include "real/layers/moe.h"
#include "real/layers/params.h"

namespace moesim::real {

struct LossParts {
  double cross_entropy = 0;  // mean over the micro-batch's tokens
  double aux = 0;            // sum over MoE layers of aux_coef * lb + z_coef * z
  double load_balance = 0;   // mean over MoE layers of lb (unscaled; 1 = uniform)
  int64_t dropped = 0;       // expert assignments dropped by capacity, all MoE layers
  int64_t assignments = 0;   // expert assignments made, all MoE layers
  double total() const { return cross_entropy + aux; }
};

template <typename T>
class Block;

template <typename T>
class Transformer {
 public:
  // batch: sequences per micro-batch on this rank. ep_size/ep_rank: this rank's place on the
  // Expert axis (experts are sharded over it).
  static Expected<std::unique_ptr<Transformer>> Create(const ModelConfig& cfg, int64_t batch,
                                                       int64_t ep_size, int64_t ep_rank,
                                                       Device<T>* dev);
  ~Transformer();

  // Fills the parameters from `seed` (params.h); zeroes gradients and moments.
  void Initialize(uint64_t seed) { params_.Initialize(dev_, seed); }

  // tokens, targets: [batch x seq] token ids on the host, sequence-major.
  Expected<LossParts> Forward(Comm* comm, Profiler* prof, const std::vector<int32_t>& tokens,
                              const std::vector<int32_t>& targets, double loss_scale = 1.0);
  Status Backward(Comm* comm, Profiler* prof);

  ParamSet<T>& params() { return params_; }
  const ModelConfig& config() const { return cfg_; }
  int64_t batch() const { return batch_; }
  int64_t tokens() const { return batch_ * cfg_.seq_len; }
  Device<T>* device() { return dev_; }
  // MoE layers in order (for routing statistics and tests).
  std::vector<const MoeLayer<T>*> moe_layers() const;
  // Bytes of activations and workspace allocated by Create (parameters excluded).
  int64_t activation_bytes() const { return activation_bytes_; }

 private:
  Transformer(const ModelConfig& cfg, int64_t batch, int64_t ep_size, int64_t ep_rank,
              Device<T>* dev);
  Status Allocate();
  Context<T> MakeContext(Comm* comm, Profiler* prof);

  ModelConfig cfg_;
  int64_t batch_;
  int64_t ep_size_, ep_rank_;
  Device<T>* dev_;
  ParamSet<T> params_;
  std::vector<std::unique_ptr<Block<T>>> blocks_;
  int embed_ = -1, final_norm_ = -1, head_ = -1;
  Workspace<T> ws_;
  std::vector<Tensor<T>> xs_;  // residual stream, [num_layers + 1] x [tokens, d_model]
  Tensor<T> hf_, rstdf_, logits_, loss_rows_, dx_a_, dx_b_;
  Tensor<int32_t> tokens_, targets_, csr_ids_, csr_offsets_, csr_pos_;
  int64_t num_unique_ = 0;
  double loss_scale_ = 1.0;
  int64_t activation_bytes_ = 0;
};

extern template class Transformer<float>;
extern template class Transformer<double>;

}  // namespace moesim::real
