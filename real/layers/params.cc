#include "real/layers/params.h"

#include "real/rng.h"

namespace moesim::real {

template <typename T>
int ParamSet<T>::Add(ParamEntry e) {
  entries_.push_back(std::move(e));
  return static_cast<int>(entries_.size()) - 1;
}

template <typename T>
Status ParamSet<T>::Allocate(DeviceBase* dev) {
  int64_t offset = 0;
  for (ParamKind kind : {ParamKind::kDense, ParamKind::kExpert}) {
    for (ParamEntry& e : entries_) {
      if (e.kind != kind) continue;
      e.offset = offset;
      offset += (e.count + 15) / 16 * 16;  // keep every tensor 64-byte aligned
    }
    (kind == ParamKind::kDense ? dense_count_ : expert_count_) =
        offset - (kind == ParamKind::kDense ? 0 : dense_count_);
  }
  const int64_t total = offset;
  for (auto [t, name] : {std::pair{&params_, "parameters"}, std::pair{&grads_, "gradients"},
                         std::pair{&m_, "adam.m"}, std::pair{&v_, "adam.v"}}) {
    Expected<Tensor<T>> buf = Tensor<T>::Make(dev, name, total);
    if (!buf.ok()) return buf.status();
    *t = std::move(*buf);
  }
  return Status::Ok();
}

template <typename T>
void ParamSet<T>::Initialize(Device<T>* dev, uint64_t seed) {
  std::vector<T> host(static_cast<size_t>(total_count()), T(0));
  for (const ParamEntry& e : entries_) {
    const int64_t per_expert = e.count / e.num_local_experts;
    for (int64_t le = 0; le < e.num_local_experts; ++le) {
      T* dst = host.data() + e.offset + le * per_expert;
      if (e.init == ParamInit::kOnes) {
        for (int64_t i = 0; i < per_expert; ++i) dst[i] = T(1);
        continue;
      }
      const auto global = static_cast<uint64_t>(e.first_expert + le);
      Rng rng(DeriveSeed(seed, e.name, global));
      for (int64_t i = 0; i < per_expert; ++i) dst[i] = static_cast<T>(e.std * rng.Normal());
    }
  }
  params_.Upload(host);
  dev->Fill(grads_.data(), grads_.size(), T(0));
  dev->Fill(m_.data(), m_.size(), T(0));
  dev->Fill(v_.data(), v_.size(), T(0));
}

template class ParamSet<float>;
template class ParamSet<double>;

}  // namespace moesim::real
