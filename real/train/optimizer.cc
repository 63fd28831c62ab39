#include "real/train/optimizer.h"

#include <algorithm>
#include <cmath>

namespace moesim::real {

double LearningRate(const OptimizerConfig& c, int64_t step) {
  if (step < c.warmup_steps) {
    return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  }
  const double min_lr = c.lr * c.min_lr_ratio;
  const int64_t decay_steps = std::max<int64_t>(1, c.total_steps - c.warmup_steps);
  const double t =
      std::min(1.0, static_cast<double>(step - c.warmup_steps) / static_cast<double>(decay_steps));
  return min_lr + (c.lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * t));
}

template <typename T>
Status AllReduceGradients(ParamSet<T>& params, Comm* comm, Profiler* prof) {
  if (comm == nullptr || comm->size() == 1) return Status::Ok();
  const double bytes = static_cast<double>(params.total_count() * static_cast<int64_t>(sizeof(T)));
  MOESIM_RETURN_IF_ERROR(WaitForGroup(prof, comm, Group::kWorld, "grads.all_reduce",
                                      Phase::kBackward, -1, kGradStream));
  ScopedOp op(prof, "grads.all_reduce", Phase::kBackward, -1, 0, bytes, kGradStream);
  T* g = params.grads().data();
  MOESIM_RETURN_IF_ERROR(comm->AllReduceSum(g, params.dense_count(), Group::kWorld));
  if (params.expert_count() > 0 && comm->data_size() > 1) {
    MOESIM_RETURN_IF_ERROR(
        comm->AllReduceSum(g + params.dense_count(), params.expert_count(), Group::kData));
  }
  return Status::Ok();
}

template <typename T>
Expected<OptimizerStats> OptimizerStep(ParamSet<T>& params, Device<T>* dev, Comm* comm,
                                       const OptimizerConfig& c, int64_t step, Profiler* prof) {
  OptimizerStats st;
  const double world = comm != nullptr ? static_cast<double>(comm->size()) : 1.0;
  ScopedOp op(prof, "optimizer.step", Phase::kOptimizer);
  {
    T* g = params.grads().data();
    const double dense = dev->SumSquares(g, params.dense_count());
    double expert = params.expert_count() > 0
                        ? dev->SumSquares(g + params.dense_count(), params.expert_count())
                        : 0.0;
    if (comm != nullptr && comm->expert_size() > 1) {
      MOESIM_RETURN_IF_ERROR(comm->AllReduceHost(&expert, 1, Group::kExpert));
    }
    st.grad_norm = std::sqrt(dense + expert) / world;
    if (c.clip_norm > 0 && st.grad_norm > c.clip_norm) st.clip_coef = c.clip_norm / st.grad_norm;
  }
  st.lr = LearningRate(c, step);
  {
    const double t = static_cast<double>(step + 1);
    const double bc1 = 1.0 - std::pow(c.beta1, t), bc2 = 1.0 - std::pow(c.beta2, t);
    for (const ParamEntry& e : params.entries()) {
      dev->AdamW(params.params().data() + e.offset, params.grads().data() + e.offset,
                 params.moment1().data() + e.offset, params.moment2().data() + e.offset, e.count,
                 st.lr, c.beta1, c.beta2, c.eps, e.decay ? c.weight_decay : 0.0, bc1, bc2,
                 st.clip_coef / world);
    }
    dev->Fill(params.grads().data(), params.grads().size(), T(0));
  }
  return st;
}

template Status AllReduceGradients<float>(ParamSet<float>&, Comm*, Profiler*);
template Status AllReduceGradients<double>(ParamSet<double>&, Comm*, Profiler*);
template Expected<OptimizerStats> OptimizerStep<float>(ParamSet<float>&, Device<float>*, Comm*,
                                                       const OptimizerConfig&, int64_t, Profiler*);
template Expected<OptimizerStats> OptimizerStep<double>(ParamSet<double>&, Device<double>*, Comm*,
                                                        const OptimizerConfig&, int64_t, Profiler*);

}  // namespace moesim::real
