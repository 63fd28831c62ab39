#include "costmodel/memory.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "costmodel/fp8.h"

#include "costmodel/einsum.h"
#include "costmodel/layers.h"

namespace moesim {
namespace {

// Devices along which a weight of class `c` is replicated for data parallelism.
double ReplicaShards(const TensorDesc& t, const ShardingSpec& s) {
  std::set<MeshAxis> replica;
  if (t.tensor_class == TensorClass::kMoeWeights) {
    for (MeshAxis a : s.AxesFor(TensorClass::kMoeActivations, "outer")) replica.insert(a);
    for (MeshAxis a : s.AxesFor(TensorClass::kMoeActivations, "groups")) replica.insert(a);
  } else {
    // Dense weights are replicated over the batch and the context-parallel axes alike.
    for (MeshAxis a : s.AxesFor(TensorClass::kDenseActivations, "batch")) replica.insert(a);
    for (MeshAxis a : s.ContextAxes()) replica.insert(a);
  }
  for (MeshAxis a : AxesUsed(t, s)) replica.erase(a);
  double n = 1;
  for (MeshAxis a : replica) n *= static_cast<double>(s.mesh[a]);
  return n;
}

std::vector<int64_t> GlobalShape(const TensorDesc& t) {
  std::vector<int64_t> v;
  for (const auto& d : t.dims) v.push_back(d.size);
  return v;
}

TensorReport Report(const std::string& group, const TensorDesc& t, const ShardingSpec& s) {
  TensorReport r;
  r.group = group;
  r.name = t.name;
  r.tensor_class = t.tensor_class;
  r.global_shape = GlobalShape(t);
  r.local_shape = LocalShape(t, s);
  for (const auto& d : t.dims) r.dims.push_back(d.logical);
  r.local_bytes = LocalElements(t, s) * static_cast<double>(t.bytes_per_element);
  return r;
}

struct WeightTotals {
  double weights = 0, optimizer = 0;  // elements (optimizer: after ZeRO-1 sharding)
};

void AddWeights(const std::vector<TensorDesc>& ts, double count, const ShardingSpec& s,
                WeightTotals* w) {
  for (const auto& t : ts) {
    const double local = LocalElements(t, s);
    w->weights += count * local;
    w->optimizer += count * (s.shard_optimizer_over_data ? local / ReplicaShards(t, s) : local);
  }
}

double SavedBytes(const std::vector<SavedTensor>& saved, Recompute r, const ShardingSpec& s,
                  bool full_set) {
  double b = 0;
  for (const auto& st : saved) {
    const bool keep = full_set || st.kind == SavedKind::kLayerInput || (r == Recompute::kNone) ||
                      (r == Recompute::kSelective && st.kind != SavedKind::kAttentionCore);
    if (keep) b += LocalElements(st.tensor, s) * static_cast<double>(st.tensor.bytes_per_element);
  }
  return b;
}

ActivationShape MicroBatchShape(const Scenario& sc) {
  const ModelSpec& m = sc.model;
  ActivationShape a;
  a.seq = m.seq_len;
  a.batch =
      sc.training.micro_batch_size * sc.sharding.ShardsFor(TensorClass::kDenseActivations, "batch");
  if (m.is_moe()) {
    const MoeGroups g = MoeGroupsOf(sc);
    a.outer = g.outer;
    a.group_size = g.group_size;
    a.groups = g.groups;
    a.capacity = g.held;
  }
  return a;
}

// Micro-batches whose activations a pipeline stage holds at its peak.
double InFlight(const TrainingSpec& t, int64_t stages, int64_t stage) {
  const double n = static_cast<double>(t.num_micro_batches);
  if (stages == 1) return 1;
  const double p = static_cast<double>(stages);
  switch (t.pipeline_schedule) {
    case PipelineSchedule::kGpipe:
      return n;
    case PipelineSchedule::kOneFOneB:
      return std::min(n, p - static_cast<double>(stage));
    case PipelineSchedule::kInterleaved: {
      // Korthikanti et al. 2022: the first stage holds p x (1 + (p-1)/(p v)) micro-batches'
      // worth of its layers' activations.
      const double v = static_cast<double>(t.virtual_stages);
      const double first = p * (1 + (p - 1) / (p * v));
      return std::min(n * 1.0, first - static_cast<double>(stage));
    }
    case PipelineSchedule::kDualPipe:
      // The DualPipe README's table (github.com/deepseek-ai/DualPipe): PP + 1 micro-batches of
      // one model stage's activations per device, at the steady state's F0 of every rank
      // (pipeline_schedule.h: P forwards in flight after steps 1-2, one more before the first
      // backward of step 4). In units of the rank's two stages together: (PP + 1) / 2.
      return (p + 1) / 2;
  }
  return 1;
}

}  // namespace

MoeGroups MoeGroupsOf(const Scenario& sc) {
  const ModelSpec& m = sc.model;
  const MoeSpec& moe = m.moe;
  const ShardingSpec& sh = sc.sharding;
  MoeGroups g;
  g.outer = moe.outer_batch;
  g.group_size = moe.group_size_tokens;
  const int64_t tokens = sc.training.micro_batch_size *
                         sh.ShardsFor(TensorClass::kDenseActivations, "batch") * m.seq_len;
  const int64_t per_outer = g.outer * g.group_size;
  g.groups = std::max<int64_t>(1, (tokens + per_outer - 1) / per_outer);
  auto ceil_div = [](int64_t a, int64_t b) { return std::max<int64_t>(1, (a + b - 1) / b); };
  g.outer_local = ceil_div(g.outer, sh.ShardsFor(TensorClass::kMoeActivations, "outer"));
  g.groups_local = ceil_div(g.groups, sh.ShardsFor(TensorClass::kMoeActivations, "groups"));
  g.tokens_local = g.outer_local * g.groups_local * g.group_size;

  // Padded experts (PADDED_2D) are real experts to the layer: capacity is per padded expert.
  const double e = static_cast<double>(std::max(moe.num_experts, sh.padded_num_experts));
  const double k = static_cast<double>(moe.top_k), cf = moe.capacity_factor;
  // The rounding of each stack, 1e-9 guarding against a product that lands a hair off an integer.
  auto up = [](double x) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(x - 1e-9)));
  };
  auto down = [](double x) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::floor(x + 1e-9)));
  };
  const double local_groups = static_cast<double>(g.outer_local * g.groups_local);
  double groups_per_rank = local_groups;  // capacity groups in one device's tokens
  g.capacity_group = g.group_size;
  switch (moe.capacity_convention) {
    case CapacityConvention::kPerRoutedToken:
      g.group_capacity = up(cf * k * static_cast<double>(g.group_size) / e);
      break;
    case CapacityConvention::kPerToken:
      g.group_capacity = up(cf * static_cast<double>(g.group_size) / e);
      break;
    case CapacityConvention::kMegatron: {
      // get_capacity(num_tokens = tokens x topk, num_experts, capacity_factor) on the tokens the
      // rank's router sees: its micro-batch split over the sequence shards (context, and the
      // tensor-parallel ranks' sequence parallelism). This device's MoE tokens hold
      // tokens_local / T such groups (the tensor-parallel ranks' share of them).
      const int64_t t =
          std::max<int64_t>(1, sc.training.micro_batch_size * m.seq_len /
                                   sh.ShardsFor(TensorClass::kDenseActivations, "seq"));
      g.capacity_group = t;
      g.group_capacity = up(static_cast<double>(t) * k / e * cf);
      groups_per_rank = static_cast<double>(g.tokens_local) / static_cast<double>(t);
      break;
    }
    case CapacityConvention::kMaxText: {
      // generate_masks: tokens_per_batch = seq_len x top_k, per sequence of the batch.
      g.capacity_group = m.seq_len;
      const double slots = static_cast<double>(up(static_cast<double>(m.seq_len) * k / e));
      g.group_capacity = down(std::max(slots * cf, cf));
      groups_per_rank = static_cast<double>(g.tokens_local) / static_cast<double>(m.seq_len);
      break;
    }
    case CapacityConvention::kAxLearn:
      g.group_capacity = down(static_cast<double>(g.group_size) * cf / e);
      break;
  }
  g.rank_capacity = static_cast<double>(g.group_capacity) * groups_per_rank;
  // Einsum's padding per layout group: the capacity groups' slots over the layout's groups.
  g.capacity =
      g.capacity_group == g.group_size ? g.group_capacity : up(g.rank_capacity / local_groups);
  if (moe.dispatch == MoeDispatch::kPermute && moe.pad_to_capacity) {
    g.held = g.capacity;  // every expert's capacity, padded
  } else if (moe.dispatch == MoeDispatch::kPermute) {
    // The routed tokens, top_k x S / E per expert and group on average.
    double held = k * static_cast<double>(g.group_size) / e;
    const int64_t ep = sh.ShardsFor(TensorClass::kMoeWeights, "experts");
    if (moe.token_dispatcher == TokenDispatcherKind::kRaggedAllToAll && ep > 1) {
      // MaxText get_ragged_buffer_size: balanced size x ragged_buffer_factor, or the worst case
      // min(EP degree, experts / top_k) when the factor is not > 0.
      g.receive_buffer_factor = moe.ragged_buffer_factor > 0
                                    ? moe.ragged_buffer_factor
                                    : std::min(static_cast<double>(ep), e / k);
      held *= g.receive_buffer_factor;
    }
    g.held = up(held);
  } else {
    g.held = g.capacity;
  }
  return g;
}

double WeightBytesPerParam(const TrainingSpec& t) {
  return t.precision == Precision::kFp32 ? 4 : 2;
}

double OptimizerBytesPerParam(const TrainingSpec& t) {
  const bool fp32 = t.precision == Precision::kFp32;
  const double master = fp32 ? 0 : 4;  // fp32 copy behind the bf16 working weights
  const double moments = t.optimizer == Optimizer::kAdamW ? 8 : 4;
  return master + moments;
}

MemoryReport ComputeMemory(const Scenario& sc) {
  const ModelSpec& m = sc.model;
  const ShardingSpec& s = sc.sharding;
  const TrainingSpec& t = sc.training;
  MemoryReport best;
  best.capacity_bytes = sc.hardware.hbm_bytes;

  const int64_t experts = std::max(m.moe.num_experts, s.padded_num_experts);
  const auto dense_w = LayerWeights(m, LayerKind::kDense, 0, 1);
  const auto moe_w =
      m.is_moe() ? LayerWeights(m, LayerKind::kMoe, experts, 1) : std::vector<TensorDesc>{};
  const auto emb_w = EmbeddingWeights(m, 1);
  const ActivationShape shape = MicroBatchShape(sc);
  const auto dense_act = LayerSavedActivations(m, LayerKind::kDense, shape, t);
  const auto moe_act =
      m.is_moe() ? LayerSavedActivations(m, LayerKind::kMoe, shape, t) : std::vector<SavedTensor>{};
  const TensorDesc logits = LogitsActivation(m, shape);
  // Multi-token prediction modules: one module's weights and saved activations, on the last
  // stage with the head; never recomputed, and live for one micro-batch at a time like the
  // logits (each module adds its own).
  std::vector<TensorDesc> mtp_w;
  std::vector<SavedTensor> mtp_act;
  if (m.mtp_depth > 0) {
    mtp_w = MtpWeights(m, 1);
    for (const auto& x : m.MtpLayerIsMoe() ? moe_w : dense_w) mtp_w.push_back(x);
    mtp_act = MtpSavedActivations(m, shape, t);
  }
  const double mtp = static_cast<double>(m.mtp_depth);

  const int64_t stages = s.mesh[MeshAxis::kPipeline];
  const PipelineLayout layout = ScenarioPipelineLayout(sc);
  const double wb = WeightBytesPerParam(t), ob = OptimizerBytesPerParam(t);
  std::vector<double> stage_peaks;
  for (int64_t stage = 0; stage < stages; ++stage) {
    // The stage's own layers, all its model chunks together. DualPipe: rank r also holds a copy
    // of model stage P-1-r (the README's "Parameter Per Device 2x"), with its own gradients and
    // optimizer state.
    const bool dualpipe = t.pipeline_schedule == PipelineSchedule::kDualPipe && stages > 1;
    std::vector<const PipelineChunk*> held;
    for (int64_t c = 0; c < layout.chunks; ++c) held.push_back(&layout.At(stage, c));
    if (dualpipe) held.push_back(&layout.At(stages - 1 - stage, 0));
    int64_t n_moe = 0, on_stage = 0;
    for (const PipelineChunk* held_chunk : held) {
      const PipelineChunk& chunk = *held_chunk;
      for (int64_t l = chunk.first_layer; l < chunk.first_layer + chunk.num_layers; ++l) {
        n_moe += m.IsMoeLayer(l) ? 1 : 0;
      }
      on_stage += chunk.num_layers;
    }
    const int64_t n_dense = on_stage - n_moe;
    WeightTotals w;
    AddWeights(dense_w, static_cast<double>(n_dense), s, &w);
    AddWeights(moe_w, static_cast<double>(n_moe), s, &w);
    // The layers' FP8 weight copies (fp8.h; the router's and the norms' few parameters counted
    // with them).
    const double fp8_cache = w.weights * Fp8WeightCacheBytesPerParam(t.fp8_recipe);
    // DualPipe: the first and the last rank both hold model stages 0 and P-1, and both compute
    // a loss (one per direction).
    const bool first = stage == 0 || (dualpipe && stage == stages - 1);
    const bool last = stage == stages - 1 || (dualpipe && stage == 0);
    for (const auto& e : emb_w) {
      const bool is_embed = e.name.rfind("embed.", 0) == 0;
      // The token embedding lives on the first stage, and on the last too when tied or when the
      // MTP modules there look tokens up (a copy, as Megatron-Core keeps).
      const bool copy = m.tie_embeddings || m.mtp_depth > 0;
      const bool here = is_embed ? (first || (last && copy && e.name == "embed.tokens")) : last;
      if (here) AddWeights({e}, 1, s, &w);
    }
    if (last) AddWeights(mtp_w, mtp, s, &w);
    MemoryReport r;
    r.capacity_bytes = sc.hardware.hbm_bytes;
    r.stage = stage;
    r.layers_on_stage = on_stage;
    r.weights_bytes = w.weights * wb + fp8_cache;
    r.grads_bytes = w.weights * wb;
    r.optimizer_bytes = w.optimizer * ob;
    r.micro_batches_in_flight = InFlight(t, stages, stage);
    const double dense_kept = SavedBytes(dense_act, t.recompute, s, false);
    const double moe_kept = SavedBytes(moe_act, t.recompute, s, false);
    double acts = r.micro_batches_in_flight * (static_cast<double>(n_dense) * dense_kept +
                                               static_cast<double>(n_moe) * moe_kept);
    if (last) acts += mtp * SavedBytes(mtp_act, t.recompute, s, true);
    double full = 0;
    if (t.recompute == Recompute::kFull) {
      // One layer's full set is live while it is recomputed and back-propagated.
      full = n_dense > 0 ? SavedBytes(dense_act, t.recompute, s, true) : 0;
      if (n_moe > 0) full = std::max(full, SavedBytes(moe_act, t.recompute, s, true));
    }
    r.activations_bytes = acts + full;
    r.logits_bytes = last ? (1 + mtp) * LocalElements(logits, s) * 4 : 0;
    // The logits live from the head's forward to its backward, which ends before the last layer
    // is recomputed: with FULL recomputation they and the recomputed layer's set are never live
    // together. Without it, every layer's saved set is live at the loss, next to the logits.
    r.peak_bytes =
        r.weights_bytes + r.grads_bytes + r.optimizer_bytes + acts +
        (t.recompute == Recompute::kFull ? std::max(full, r.logits_bytes) : r.logits_bytes);
    stage_peaks.push_back(r.peak_bytes);
    if (stage == 0 || r.peak_bytes > best.peak_bytes) best = r;
  }
  best.stage_peak_bytes = std::move(stage_peaks);

  for (const auto& st : moe_act) {
    if (st.tensor.name == "moe.combine" || st.tensor.name == "moe.routing" ||
        st.tensor.name == "moe.expert_in" || st.tensor.name == "moe.expert_out") {
      best.moe_dispatch_bytes +=
          LocalElements(st.tensor, s) * static_cast<double>(st.tensor.bytes_per_element);
    }
  }
  best.fits = best.peak_bytes <= static_cast<double>(best.capacity_bytes);
  auto wbytes = [&](TensorDesc d) {
    d.bytes_per_element = static_cast<int64_t>(wb);
    return d;
  };
  for (const auto& d : dense_w) best.tensors.push_back(Report("dense layer", wbytes(d), s));
  for (const auto& d : moe_w) best.tensors.push_back(Report("moe layer", wbytes(d), s));
  for (const auto& d : emb_w) best.tensors.push_back(Report("embeddings", wbytes(d), s));
  for (const auto& d : mtp_w) best.tensors.push_back(Report("mtp module", wbytes(d), s));
  for (const auto& a : dense_act) {
    best.tensors.push_back(Report("dense layer activations", a.tensor, s));
  }
  for (const auto& a : moe_act)
    best.tensors.push_back(Report("moe layer activations", a.tensor, s));
  best.tensors.push_back(Report("head activations", logits, s));
  return best;
}

}  // namespace moesim
