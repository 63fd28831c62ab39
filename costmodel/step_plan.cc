#include "costmodel/step_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "costmodel/einsum.h"
#include "costmodel/fp8.h"
#include "costmodel/memory.h"
#include "costmodel/mla.h"
#include "costmodel/routing.h"

namespace moesim {
namespace {

using TC = TensorClass;

std::vector<MeshAxis> Union(std::vector<MeshAxis> a, const std::vector<MeshAxis>& b) {
  for (MeshAxis x : b) {
    if (std::find(a.begin(), a.end(), x) == a.end()) a.push_back(x);
  }
  return a;
}

double Size(const DimSizes& s, const std::string& labels) {
  double n = 1;
  for (char c : labels) n *= s.at(c);
  return n;
}

// A matmul einsum "A,B->O" as compute work with local label sizes: FLOPs, HBM bytes of A, B and
// O, and the GEMM shape (batch labels fold into m).
OpDesc Matmul(const std::string& name, const std::string& spec, const DimSizes& s,
              int64_t elem_bytes, bool with_weight) {
  OpDesc d;
  d.name = name;
  d.matmul_with_weight = with_weight;
  const size_t comma = spec.find(','), arrow = spec.find("->");
  const std::string a = spec.substr(0, comma), b = spec.substr(comma + 1, arrow - comma - 1),
                    o = spec.substr(arrow + 2);
  double m = 1, n = 1, k = 1;
  for (char c : a) {
    const bool in_b = b.find(c) != std::string::npos, in_o = o.find(c) != std::string::npos;
    if (in_b && !in_o) k *= s.at(c);
    if (in_o) m *= s.at(c);  // A-only output labels and batch labels
  }
  for (char c : b) {
    if (a.find(c) == std::string::npos) n *= s.at(c);
  }
  d.compute.matmul = true;
  d.compute.flops = EinsumFlops(spec, s).value();
  d.compute.bytes = (Size(s, a) + Size(s, b) + Size(s, o)) * static_cast<double>(elem_bytes);
  d.compute.m = static_cast<int64_t>(std::llround(m));
  d.compute.n = static_cast<int64_t>(std::llround(n));
  d.compute.k = static_cast<int64_t>(std::llround(k));
  return d;
}

// `backward`: the backward's bytes over the forward's (OpDesc::backward_bytes_factor).
OpDesc Elementwise(const std::string& name, double bytes, MemoryKernel kernel, double backward) {
  OpDesc d;
  d.name = name;
  d.compute.bytes = bytes;
  d.compute.kernel = kernel;
  d.backward_bytes_factor = backward;
  return d;
}

// Backward bytes over forward bytes, by what each pass reads and writes (one unit = one
// activation tensor of the op's shape).
constexpr double kNormBwd = 3.0 / 2;     // x, y -> x, dy, dx
constexpr double kResidualBwd = 1.0;     // x + f(x) -> the two gradients merge: dy, df -> dx
constexpr double kRopeBwd = 1.0;         // rotate x -> rotate dy back
constexpr double kSoftmaxBwd = 3.0 / 2;  // s -> p; p, dp -> ds
constexpr double kCopyBwd = 1.0;         // gather <-> scatter
constexpr double kLookupBwd = 3.0 / 2;   // rows -> dy in, gradient rows read and written
constexpr double kLossBwd = 2.0 / 3;     // logits -> max, sum, loss; probabilities -> dlogits
double ActBwd(bool swiglu) { return swiglu ? 5.0 / 3 : 3.0 / 2; }  // a, b -> h; a, b, dh -> da, db

OpDesc Collective(const std::string& name, CollectiveKind kind, std::vector<MeshAxis> axes,
                  double bytes) {
  OpDesc d;
  d.name = name;
  d.is_collective = true;
  d.collective.kind = kind;
  d.collective.axes = std::move(axes);
  d.collective.bytes = bytes;
  return d;
}

double Ceil(double x) { return std::max(1.0, std::ceil(x - 1e-9)); }

// Attention's core under blockwise attention as one FlashAttention call
// (costmodel/attention_model.h): b x heads query heads, this device's queries ('s') against the
// keys in hand ('t': the whole sequence, or one context-parallel chunk), causal (every model
// here is a decoder). Each of the two core ops (scores, context) is half of the call. Under
// context parallelism every ring step is taken as a causal chunk of sl x sl: Megatron's
// load-balanced split gives each step that much work on average (the diagonal step is causal,
// the others half-size unmasked blocks), at the diagonal step's efficiency.
AttentionShape FlashCore(const DimSizes& L, double heads, double head_dim, double head_dim_v) {
  AttentionShape a;
  a.batch_heads = L.at('b') * heads;
  a.q_len = std::llround(L.at('s'));
  a.kv_len = std::llround(L.at('t'));
  a.head_dim = std::llround(head_dim);
  a.head_dim_v = std::llround(head_dim_v);
  a.causal = true;
  a.share = 0.5;
  return a;
}

}  // namespace

std::vector<MeshAxis> AxesMinus(const std::vector<MeshAxis>& a, const std::vector<MeshAxis>& b) {
  std::vector<MeshAxis> out;
  for (MeshAxis x : a) {
    if (std::find(b.begin(), b.end(), x) == b.end()) out.push_back(x);
  }
  return out;
}

std::vector<MeshAxis> AxesIntersect(const std::vector<MeshAxis>& a,
                                    const std::vector<MeshAxis>& b) {
  std::vector<MeshAxis> out;
  for (MeshAxis x : a) {
    if (std::find(b.begin(), b.end(), x) != b.end()) out.push_back(x);
  }
  return out;
}

int64_t AxesSize(const Mesh& mesh, const std::vector<MeshAxis>& axes) {
  int64_t n = 1;
  for (MeshAxis a : axes) n *= mesh[a];
  return n;
}

namespace {

// Tensor-parallel block boundary: input gathered (SP) or, without SP, an all-reduce of the
// input's gradient in backward only; output reduce-scattered (SP) or all-reduced.
// With training.tp_comm_overlap, the attention and FFN blocks' all-gather and reduce-scatter run
// beside their GEMMs (Transformer Engine's userbuffer overlap covers those linear layers).
bool OverlapsGemms(const StepPlan& p, const std::string& name) {
  return p.tp_comm_overlap && (name == "attn" || name == "ffn");
}

void TpInput(const StepPlan& p, const Mesh& mesh, const std::string& name, double bytes,
             const std::vector<MeshAxis>& tp, const std::vector<MeshAxis>& sp,
             std::vector<OpDesc>* ops) {
  if (AxesSize(mesh, tp) <= 1) return;
  if (AxesSize(mesh, sp) > 1) {
    ops->push_back(Collective(name + ".allgather", CollectiveKind::kAllGather, sp, bytes));
    if (OverlapsGemms(p, name)) ops->back().overlap = GemmOverlap::kWithNextGemms;
  } else {
    OpDesc d = Collective(name + ".input_allreduce", CollectiveKind::kAllReduce, tp, bytes);
    d.passes = Passes::kBackwardOnly;
    ops->push_back(d);
  }
}

void TpOutput(const StepPlan& p, const Mesh& mesh, const std::string& name, double bytes,
              const std::vector<MeshAxis>& tp, const std::vector<MeshAxis>& sp,
              std::vector<OpDesc>* ops) {
  if (AxesSize(mesh, tp) <= 1) return;
  if (AxesSize(mesh, sp) > 1) {
    ops->push_back(Collective(name + ".reducescatter", CollectiveKind::kReduceScatter, sp, bytes));
    if (OverlapsGemms(p, name)) ops->back().overlap = GemmOverlap::kWithPreviousGemms;
  } else {
    OpDesc d = Collective(name + ".allreduce", CollectiveKind::kAllReduce, tp, bytes);
    d.passes = Passes::kForwardOnly;
    ops->push_back(d);
  }
}

// Axes of size 1 make no group: leave them out of collectives.
std::vector<MeshAxis> NonTrivial(const Mesh& mesh, const std::vector<MeshAxis>& axes) {
  std::vector<MeshAxis> out;
  for (MeshAxis a : axes) {
    if (mesh[a] > 1) out.push_back(a);
  }
  return out;
}

// For the tensors of one layer kind: the FSDP gathers, the gradient reductions (reduce-scatter
// over the gathered axes, then all-reduce, or reduce-scatter with a sharded optimizer, over the
// replica axes) and the parameter counts. Collectives over the same axes are merged.
WeightSync MakeWeightSync(const std::vector<TensorDesc>& tensors, const StepPlan& p,
                          const ShardingSpec& sh) {
  WeightSync w;
  std::map<std::vector<MeshAxis>, double> gather, replica;
  std::vector<std::vector<MeshAxis>> gather_order, replica_order;
  for (const TensorDesc& t : tensors) {
    const bool dense = t.tensor_class == TC::kDenseWeights;
    const auto used = AxesUsed(t, sh);
    const auto g = NonTrivial(sh.mesh, AxesIntersect(used, dense ? p.fsdp_axes : p.moe_fsdp_axes));
    const auto r = NonTrivial(
        sh.mesh, AxesMinus(dense ? Union(p.batch_axes, p.cp_axes) : p.moe_batch_axes, used));
    const double local = LocalElements(t, sh);
    w.params_local += local;
    const double r_size = static_cast<double>(AxesSize(sh.mesh, r));
    w.optimizer_params += sh.shard_optimizer_over_data ? local / r_size : local;
    const double bytes = local * static_cast<double>(t.bytes_per_element);
    if (!g.empty()) {
      if (gather.count(g) == 0) gather_order.push_back(g);
      gather[g] += bytes * static_cast<double>(AxesSize(sh.mesh, g));
    }
    if (!r.empty() && r_size > 1) {
      if (replica.count(r) == 0) replica_order.push_back(r);
      replica[r] += bytes;
    }
  }
  for (const auto& g : gather_order) {
    CollectiveWork c;
    c.kind = CollectiveKind::kAllGather;
    c.axes = g;
    c.bytes = gather[g];
    w.gathers.push_back(c);
    c.kind = CollectiveKind::kReduceScatter;
    w.grad_syncs.push_back(c);
  }
  for (const auto& r : replica_order) {
    CollectiveWork c;
    c.axes = r;
    c.bytes = replica[r];
    c.kind =
        sh.shard_optimizer_over_data ? CollectiveKind::kReduceScatter : CollectiveKind::kAllReduce;
    w.grad_syncs.push_back(c);
    if (sh.shard_optimizer_over_data) {
      c.kind = CollectiveKind::kAllGather;
      w.param_gathers.push_back(c);
    }
  }
  return w;
}

// The attention block of an MLA layer (costmodel/mla.h): its einsums with heads sharded over the
// tensor-parallel axes (`L` holds the local sizes). The down projections W_DQ, W_DKV and W_KR
// have no heads dim, so every tensor-parallel rank holds them whole (Megatron-Core's MLA builds
// them as duplicated linears). What we assume for their work: with the [b, s, m] activations
// sharded over sp axes (sequence parallelism), each rank runs the down projections on its own
// 1/sp of the tokens and all-gathers the latents [b, s, q_lora + kv_lora + qk_rope] (backward:
// reduce-scatters their gradients), as Megatron-Core's MLA does under sequence parallelism;
// without it every rank runs them on all tokens (repeated work: hardware FLOPs exceed the
// model's) and the latents' gradients, partial after the column-parallel up projections, are
// all-reduced in backward instead of the block input's. Without query compression (q_lora_rank
// 0) the query projection is column-parallel on the block input, which is then gathered (or its
// gradient all-reduced) as in multi-head attention.
std::vector<OpDesc> MlaAttentionOps(const StepPlan& p, const ModelSpec& md, const Mesh& mesh,
                                    bool flash) {
  const DimSizes& L = p.local;
  const MlaSpec& a = md.mla;
  const double ab = static_cast<double>(p.act_bytes);
  const double b = L.at('b'), s = L.at('s'), heads = L.at('a');
  const double bsm = b * s * L.at('m') * ab;
  const double sp = static_cast<double>(AxesSize(mesh, p.sp_axes));
  const bool tp = AxesSize(mesh, p.tp_axes) > 1;
  const bool compressed_q = a.q_lora_rank > 0;
  const bool split = tp && sp > 1 && compressed_q;  // down projections on this rank's tokens
  DimSizes down = L;
  if (split) down['s'] = s / sp;
  std::vector<OpDesc> o;
  o.push_back(Elementwise("attn.norm", 2 * bsm / sp, MemoryKernel::kRmsnorm, kNormBwd));
  if (!compressed_q) TpInput(p, mesh, "attn", bsm, p.tp_axes, p.sp_axes, &o);
  std::map<std::string, std::string> spec;
  for (const Einsum& e : MlaForwardEinsums(md)) spec[e.name] = e.spec;
  auto matmul = [&](const std::string& name, const DimSizes& sizes) {
    const bool core = name == "attn.scores" || name == "attn.context";
    OpDesc d = Matmul(name, spec.at(name), sizes, p.act_bytes, !core);
    if (core && flash) {
      // Blockwise attention: scores read q and k, context reads v and writes the output.
      d.compute.bytes = b * s * heads * 2 * L.at(name == "attn.scores" ? 'j' : 'w') * ab;
      d.compute.attention = FlashCore(L, heads, L.at('j'), L.at('w'));
    }
    d.recompute_selective = core;
    o.push_back(d);
  };
  if (compressed_q) {
    matmul("attn.q_down", down);
  } else {
    matmul("attn.q", L);
  }
  matmul("attn.kv_down", down);
  matmul("attn.k_rope", down);
  if (compressed_q && tp) {
    const double bytes =
        b * s * static_cast<double>(a.q_lora_rank + a.kv_lora_rank + a.qk_rope_head_dim) * ab;
    if (split) {
      o.push_back(
          Collective("attn.latents.allgather", CollectiveKind::kAllGather, p.sp_axes, bytes));
    } else {
      OpDesc d =
          Collective("attn.latents.input_allreduce", CollectiveKind::kAllReduce, p.tp_axes, bytes);
      d.passes = Passes::kBackwardOnly;
      o.push_back(d);
    }
  }
  if (compressed_q) {
    o.push_back(
        Elementwise("attn.q_norm", 2 * b * s * L.at('q') * ab, MemoryKernel::kRmsnorm, kNormBwd));
  }
  o.push_back(
      Elementwise("attn.kv_norm", 2 * b * s * L.at('c') * ab, MemoryKernel::kRmsnorm, kNormBwd));
  if (compressed_q) matmul("attn.q_up", L);
  matmul("attn.k_up", L);
  matmul("attn.v_up", L);
  // RoPE on the queries' rope part and on the shared rope key.
  o.push_back(Elementwise("attn.rope", 2 * b * s * (heads + 1) * L.at('p') * ab,
                          MemoryKernel::kAxpy, kRopeBwd));
  matmul("attn.scores", L);
  if (!flash) {
    OpDesc sm = Elementwise("attn.softmax", 2 * b * heads * s * L.at('t') * ab,
                            MemoryKernel::kSoftmax, kSoftmaxBwd);
    sm.backward_kernel = MemoryKernel::kAxpy;
    sm.recompute_selective = true;
    o.push_back(sm);
  }
  matmul("attn.context", L);
  matmul("attn.out", L);
  TpOutput(p, mesh, "attn", bsm, p.tp_axes, p.sp_axes, &o);
  o.push_back(Elementwise("attn.residual", 3 * bsm / sp, MemoryKernel::kAxpy, kResidualBwd));
  return o;
}

// Context parallelism: replaces the attention core (scores, softmax, context: one ring step's
// worth, as built) by one RingAttention block of `steps` such chunks (step_plan.h).
void WrapRingAttention(int64_t steps, const std::vector<MeshAxis>& cp_axes, double kv_bytes,
                       std::vector<OpDesc>* attn) {
  auto core = [](const OpDesc& d) {
    return d.name == "attn.scores" || d.name == "attn.softmax" || d.name == "attn.context";
  };
  const auto first = std::find_if(attn->begin(), attn->end(), core);
  const auto last = std::find_if_not(first, attn->end(), core);
  auto ring = std::make_shared<RingAttention>();
  ring->steps = steps;
  ring->chunk.assign(first, last);
  ring->shift.kind = CollectiveKind::kRingShift;
  ring->shift.axes = cp_axes;
  ring->shift.bytes = kv_bytes;
  OpDesc block;
  block.name = "attn.cp_ring";
  block.recompute_selective = true;
  block.ring = std::move(ring);
  const auto at = attn->erase(first, last);
  attn->insert(at, std::move(block));
}

}  // namespace

namespace {

// What every layer kind's op list reads: the scenario and one micro-batch's sizes on one device.
struct Sizes {
  double ab = 2;      // activation bytes per element
  double b = 1;       // sequences per micro-batch on this device's batch shard
  double s = 1;       // tokens per sequence
  double sl = 1;      // this device's tokens of each sequence (s / context shards)
  double m = 1;       // d_model
  double kv = 1;      // this device's KV heads
  double heads = 1;   // this device's query heads
  double sp = 1;      // shards of [b, s, m] activations between tensor-parallel regions
  double bsm = 0;     // one [b, s, d_model] activation of this device's tokens, bytes
  bool flash = true;  // blockwise attention
  bool swiglu = false;
};

// Which mesh axes play which part (StepPlan's axis vectors) and each layer kind's weight
// collectives.
void PlanAxes(const Scenario& sc, int64_t experts, StepPlan* out) {
  StepPlan& p = *out;
  const ModelSpec& md = sc.model;
  const ShardingSpec& sh = sc.sharding;
  p.batch_axes = sh.AxesFor(TC::kDenseActivations, "batch");
  p.tp_axes = Union(sh.AxesFor(TC::kDenseWeights, "heads"), sh.AxesFor(TC::kDenseWeights, "mlp"));
  p.cp_axes = sh.ContextAxes();
  p.sp_axes = AxesMinus(AxesMinus(Union(sh.AxesFor(TC::kDenseActivations, "embed"),
                                        sh.AxesFor(TC::kDenseActivations, "seq")),
                                  p.batch_axes),
                        p.cp_axes);
  const auto dense_w = LayerWeights(md, LayerKind::kDense, 0, p.weight_bytes);
  const auto moe_w = md.is_moe() ? LayerWeights(md, LayerKind::kMoe, experts, p.weight_bytes)
                                 : std::vector<TensorDesc>{};
  std::vector<MeshAxis> dense_used;
  for (const auto& t : dense_w) dense_used = Union(dense_used, AxesUsed(t, sh));
  p.fsdp_axes = AxesIntersect(dense_used, p.batch_axes);
  p.grad_axes = AxesMinus(Union(p.batch_axes, p.cp_axes), dense_used);
  p.moe_batch_axes =
      Union(sh.AxesFor(TC::kMoeActivations, "outer"), sh.AxesFor(TC::kMoeActivations, "groups"));
  p.ep_axes = sh.AxesFor(TC::kMoeWeights, "experts");
  p.moe_tp_axes = AxesMinus(sh.AxesFor(TC::kMoeWeights, "expert_mlp"), p.ep_axes);
  std::vector<MeshAxis> expert_used;
  for (const auto& t : moe_w) {
    if (t.name == "moe.w1") expert_used = AxesUsed(t, sh);
  }
  p.moe_fsdp_axes = AxesIntersect(AxesMinus(expert_used, p.ep_axes), p.moe_batch_axes);
  p.moe_grad_axes = AxesMinus(p.moe_batch_axes, expert_used);
  for (auto* axes :
       {&p.batch_axes, &p.tp_axes, &p.sp_axes, &p.fsdp_axes, &p.grad_axes, &p.moe_batch_axes,
        &p.ep_axes, &p.moe_tp_axes, &p.moe_fsdp_axes, &p.moe_grad_axes}) {
    *axes = NonTrivial(sh.mesh, *axes);
  }
  p.dense_sync = MakeWeightSync(dense_w, p, sh);
  p.moe_sync = MakeWeightSync(moe_w, p, sh);
  std::vector<TensorDesc> embed_w, head_w;
  for (auto& t : EmbeddingWeights(md, p.weight_bytes)) {
    (t.name.rfind("embed.", 0) == 0 ? embed_w : head_w).push_back(t);
  }
  // The multi-token prediction modules run with the head (MtpOps): their weights sync with it.
  for (int64_t k = 0; k < md.mtp_depth; ++k) {
    for (auto& t : MtpWeights(md, p.weight_bytes)) head_w.push_back(t);
    for (const auto& t : md.MtpLayerIsMoe() ? moe_w : dense_w) head_w.push_back(t);
  }
  p.embed_sync = MakeWeightSync(embed_w, p, sh);
  p.head_sync = MakeWeightSync(head_w, p, sh);
}

// Local label sizes for one micro-batch (p.local) and the sizes the op lists read.
Sizes PlanLocalSizes(const Scenario& sc, StepPlan* p) {
  const ModelSpec& md = sc.model;
  const ShardingSpec& sh = sc.sharding;
  auto shards = [&](TC c, const char* dim) { return static_cast<double>(sh.ShardsFor(c, dim)); };
  Sizes z;
  z.ab = static_cast<double>(p->act_bytes);
  z.b = static_cast<double>(sc.training.micro_batch_size);
  z.s = static_cast<double>(md.seq_len);
  z.sl = z.s / static_cast<double>(AxesSize(sh.mesh, p->cp_axes));
  z.m = static_cast<double>(md.d_model);
  z.kv = Ceil(static_cast<double>(md.num_kv_heads) / shards(TC::kDenseWeights, "kv_heads"));
  z.heads = Ceil(static_cast<double>(md.num_heads) / shards(TC::kDenseWeights, "heads"));
  z.sp = static_cast<double>(AxesSize(sh.mesh, p->sp_axes));
  z.bsm = z.b * z.sl * z.m * z.ab;
  z.flash = sc.training.flash_attention;
  z.swiglu = md.ffn_kind == FfnKind::kSwiglu;
  p->local = {{'b', z.b},
              {'s', z.sl},
              {'t', z.s},
              {'m', z.m},
              {'k', z.kv},
              {'r', std::max(1.0, z.heads / z.kv)},
              {'d', static_cast<double>(md.head_dim)},
              {'f', Ceil(static_cast<double>(md.d_ff) / shards(TC::kDenseWeights, "mlp"))},
              {'v', Ceil(static_cast<double>(md.vocab_size) / shards(TC::kDenseWeights, "vocab"))}};
  if (md.mla.enabled) {
    AddMlaLabelSizes(md, &p->local);
    p->local['a'] = z.heads;
  }
  if (md.mtp_depth > 0) p->local['i'] = 2 * z.m;
  p->tokens = z.b * z.sl;
  return z;
}

// Multi-head (or grouped-query) attention: norm, QKV projections, RoPE, scores, softmax (unless
// blockwise), context, output projection, residual; tensor-parallel boundaries around it.
std::vector<OpDesc> MhaOps(const ModelSpec& md, const Mesh& mesh, const Sizes& z,
                           const StepPlan& p) {
  const DimSizes& L = p.local;
  std::vector<OpDesc> attn;
  attn.push_back(Elementwise("attn.norm", 2 * z.bsm / z.sp, MemoryKernel::kRmsnorm, kNormBwd));
  TpInput(p, mesh, "attn", z.bsm, p.tp_axes, p.sp_axes, &attn);
  for (const Einsum& e : LayerForwardEinsums(md, LayerKind::kDense)) {
    if (e.name.rfind("attn.", 0) != 0) continue;
    const bool core = IsAttentionCore(e);
    OpDesc d = Matmul(e.name, e.spec, L, p.act_bytes, !core);
    if (core && z.flash) {
      // Blockwise attention never writes the [s, t] scores to HBM: reads q, k, v, writes out.
      d.compute.bytes = z.b * z.sl * (z.heads + z.kv) * L.at('d') * z.ab;
      d.compute.attention = FlashCore(L, z.heads, L.at('d'), L.at('d'));
    }
    d.recompute_selective = core;
    attn.push_back(d);
    if (e.name == "attn.v" && md.position_kind == PositionKind::kRope) {
      attn.push_back(Elementwise("attn.rope", 2 * z.b * z.sl * (z.heads + z.kv) * L.at('d') * z.ab,
                                 MemoryKernel::kAxpy, kRopeBwd));
    }
    if (e.name == "attn.scores" && !z.flash) {
      OpDesc sm = Elementwise("attn.softmax", 2 * z.b * z.heads * z.sl * L.at('t') * z.ab,
                              MemoryKernel::kSoftmax, kSoftmaxBwd);
      sm.backward_kernel = MemoryKernel::kAxpy;
      sm.recompute_selective = true;
      attn.push_back(sm);
    }
  }
  TpOutput(p, mesh, "attn", z.bsm, p.tp_axes, p.sp_axes, &attn);
  attn.push_back(Elementwise("attn.residual", 3 * z.bsm / z.sp, MemoryKernel::kAxpy, kResidualBwd));
  return attn;
}

// The attention block (shared by both layer kinds). Under context parallelism its core is built
// for one ring step (keys of one chunk: 't' = this device's share) and wrapped in a ring.
std::vector<OpDesc> AttentionOps(const ModelSpec& md, const Mesh& mesh, const Sizes& z,
                                 StepPlan* p) {
  DimSizes& L = p->local;
  L['t'] = z.sl;
  std::vector<OpDesc> attn =
      md.mla.enabled ? MlaAttentionOps(*p, md, mesh, z.flash) : MhaOps(md, mesh, z, *p);
  L['t'] = z.s;
  const int64_t cp = AxesSize(mesh, p->cp_axes);
  if (cp > 1) {
    // K and V of one chunk: per head, MLA's up-projected keys (nope + rope) and values.
    const double kv_bytes = md.mla.enabled ? z.b * z.sl * L.at('a') * (L.at('j') + L.at('w')) * z.ab
                                           : 2 * z.b * z.sl * z.kv * L.at('d') * z.ab;
    WrapRingAttention(cp, p->cp_axes, kv_bytes, &attn);
  }
  return attn;
}

// A dense layer: attention, then the FFN between tensor-parallel boundaries.
std::vector<OpDesc> DenseLayerOps(const ModelSpec& md, const Mesh& mesh, const Sizes& z,
                                  const std::vector<OpDesc>& attn, const StepPlan& p) {
  const DimSizes& L = p.local;
  std::vector<OpDesc> o = attn;
  o.push_back(Elementwise("ffn.norm", 2 * z.bsm / z.sp, MemoryKernel::kRmsnorm, kNormBwd));
  TpInput(p, mesh, "ffn", z.bsm, p.tp_axes, p.sp_axes, &o);
  for (const Einsum& e : LayerForwardEinsums(md, LayerKind::kDense)) {
    if (e.name.rfind("ffn.", 0) != 0) continue;
    if (e.name == "ffn.w2") {
      o.push_back(Elementwise("ffn.act", (z.swiglu ? 3 : 2) * z.b * z.sl * L.at('f') * z.ab,
                              MemoryKernel::kSwiglu, ActBwd(z.swiglu)));
    }
    o.push_back(Matmul(e.name, e.spec, L, p.act_bytes, true));
  }
  TpOutput(p, mesh, "ffn", z.bsm, p.tp_axes, p.sp_axes, &o);
  o.push_back(Elementwise("ffn.residual", 3 * z.bsm / z.sp, MemoryKernel::kAxpy, kResidualBwd));
  return o;
}

// An MoE layer: attention, router and gate, dispatch (one-hot einsum or permutation), the
// all-to-all over the expert-parallel axes, the experts between expert-tensor-parallel
// boundaries, the way back, shared experts. Sets the plan's routing figures.
void MoeLayerOps(const Scenario& sc, int64_t experts, const Sizes& z,
                 const std::vector<OpDesc>& attn, StepPlan* out) {
  StepPlan& p = *out;
  const ModelSpec& md = sc.model;
  const ShardingSpec& sh = sc.sharding;
  const Mesh& mesh = sh.mesh;
  DimSizes& L = p.local;
  auto shards = [&](TC c, const char* dim) { return static_cast<double>(sh.ShardsFor(c, dim)); };
  const MoeSpec& moe = md.moe;
  const double k = static_cast<double>(moe.top_k);
  const int64_t ep_ranks = AxesSize(mesh, p.ep_axes);
  const double ep = static_cast<double>(ep_ranks);
  const double e_all = static_cast<double>(experts);
  const double e_loc = Ceil(e_all / ep);
  // Outer batches, groups and capacity: one owner (memory.h MoeGroupsOf).
  const MoeGroups mg = MoeGroupsOf(sc);
  const double sg = static_cast<double>(mg.group_size);
  const double o_loc = static_cast<double>(mg.outer_local);
  const double g_loc = static_cast<double>(mg.groups_local);
  const double cap = static_cast<double>(mg.capacity);
  const double m_moe = Ceil(z.m / shards(TC::kMoeActivations, "embed"));
  const double h_loc =
      Ceil(static_cast<double>(moe.expert_d_ff) / shards(TC::kMoeWeights, "expert_mlp"));
  const double tokens = o_loc * g_loc * sg;  // this device's tokens in the MoE layer
  // Each expert takes at most its capacity (unless dropless): the capacity of every rank's tokens
  // (MoeGroups::rank_capacity, per the convention's capacity group), for all ranks of the EP
  // group; with RAGGED_ALL_TO_ALL each rank receives at most its buffer of tokens x k x factor.
  const double buffer = mg.receive_buffer_factor > 0 ? tokens * k * mg.receive_buffer_factor
                                                     : std::numeric_limits<double>::infinity();
  const RoutingStats r =
      RouteOverExpertGroup(moe, tokens * ep, mg.rank_capacity * ep, ep_ranks, buffer);
  p.busiest_rank_load = r.mean > 0 ? r.busiest / r.mean : 1;
  p.dropped_fraction = r.dropped_fraction;
  p.routed = r.mean;
  const bool einsum = moe.dispatch == MoeDispatch::kEinsum;
  // --moe-pad-expert-input-to-capacity: every rank sends each expert its whole capacity.
  const bool padded = moe.pad_to_capacity;
  p.slots = einsum   ? o_loc * e_loc * g_loc * ep * cap
            : padded ? e_loc * ep * mg.rank_capacity
                     : r.busiest;
  L['e'] = e_all;
  L['x'] = p.slots;
  L['h'] = h_loc;
  L['y'] = Ceil(static_cast<double>(moe.num_shared_experts * moe.expert_d_ff) /
                shards(TC::kDenseWeights, "mlp"));
  if (einsum) {
    p.a2a_bytes = o_loc * e_all * g_loc * cap * m_moe * z.ab;
    p.a2a_max_over_mean = 1;
  } else if (padded) {
    p.a2a_bytes = e_all * mg.rank_capacity * m_moe * z.ab;
    p.a2a_max_over_mean = 1;
  } else {
    p.a2a_bytes = tokens * k * (1 - p.dropped_fraction) * m_moe * z.ab;
    p.a2a_max_over_mean = p.busiest_rank_load;
  }

  // FP8 dispatch: a d_model row is m bytes plus an fp32 scale per 128 elements instead of m x ab.
  p.dispatch_bytes = moe.fp8_dispatch
                         ? p.a2a_bytes / (m_moe * z.ab) * (m_moe + std::ceil(m_moe / 128) * 4)
                         : p.a2a_bytes;

  std::vector<OpDesc>& o = p.moe_ops;
  o = attn;
  o.push_back(Elementwise("moe.norm", 2 * z.bsm / z.sp, MemoryKernel::kRmsnorm, kNormBwd));
  // Router on this device's tokens; logits to probabilities and top-k in fp32.
  DimSizes rs = L;
  rs['b'] = 1;
  rs['s'] = tokens;
  if (!moe.omit_router_flops) o.push_back(Matmul("moe.router", "bsm,me->bse", rs, 2, true));
  const DimSizes ds = {{'g', o_loc * g_loc}, {'s', sg}, {'e', e_all}, {'c', cap}, {'m', m_moe}};
  // Gating reads and writes [tokens, E] probabilities in fp32; einsum dispatch also writes the
  // [G, S, E, C] combine weights (fp32) and the dispatch mask cast from them (1 byte).
  const double gate_bytes = 2 * tokens * e_all * 4 + (einsum ? Size(ds, "gsec") * 5 : 0);
  o.push_back(Elementwise("moe.gate", gate_bytes, MemoryKernel::kSoftmax, kSoftmaxBwd));
  if (einsum) {
    OpDesc d = Matmul("moe.dispatch", "gsec,gsm->egcm", ds, p.act_bytes, false);
    d.first_operand_constant = true;
    o.push_back(d);
  } else {
    o.push_back(
        Elementwise("moe.permute", 2 * tokens * k * m_moe * z.ab, MemoryKernel::kCopy, kCopyBwd));
  }
  auto shared_experts = [&] {
    for (const Einsum& e : LayerForwardEinsums(md, LayerKind::kMoe)) {
      if (e.name.rfind("moe.shared", 0) == 0)
        o.push_back(Matmul(e.name, e.spec, L, p.act_bytes, true));
    }
  };
  // --moe-shared-expert-overlap: the shared experts run beside the dispatch (validation ensures
  // shared experts and an expert-parallel group).
  const bool overlap_shared = moe.shared_expert_overlap && ep_ranks > 1;
  // Another dispatcher than the flat all-to-all: the routing the network lowers it from.
  TokenExchange exchange;
  // RAGGED_ALL_TO_ALL is the flat all-to-all(v) of the routed tokens, no capacity padding.
  if (moe.token_dispatcher != TokenDispatcherKind::kAllToAll &&
      moe.token_dispatcher != TokenDispatcherKind::kRaggedAllToAll) {
    exchange.dispatcher = moe.token_dispatcher == TokenDispatcherKind::kAllGather
                              ? TokenDispatcher::kAllGather
                              : TokenDispatcher::kHierarchical;
    exchange.tokens = tokens * (1 - p.dropped_fraction);
    exchange.hidden = static_cast<int64_t>(m_moe);
    exchange.bytes_per_element = moe.fp8_dispatch ? 1 : z.ab;
    exchange.scale_bytes_per_block = moe.fp8_dispatch ? 4 : 0;
    exchange.backward_bytes_per_element = z.ab;
    exchange.num_experts = experts;
    exchange.top_k = moe.top_k;
    exchange.router_num_groups = moe.router_num_groups;
    exchange.router_group_topk = moe.router_group_topk;
  }
  if (ep_ranks > 1) {
    OpDesc a =
        Collective("moe.dispatch_a2a", CollectiveKind::kAllToAll, p.ep_axes, p.dispatch_bytes);
    if (p.dispatch_bytes != p.a2a_bytes) a.backward_bytes = p.a2a_bytes;
    a.collective.max_over_mean = p.a2a_max_over_mean;
    a.collective.exchange = exchange;
    if (overlap_shared) a.overlap = GemmOverlap::kWithNextGemms;
    o.push_back(a);
  }
  const size_t routed_start = o.size();
  if (overlap_shared) shared_experts();
  const size_t after_shared = o.size();
  const double xm = p.slots * z.m * z.ab;
  const auto moe_sp = AxesIntersect(sh.AxesFor(TC::kMoeActivations, "embed"), p.moe_tp_axes);
  TpInput(p, mesh, "moe.experts", xm, p.moe_tp_axes, moe_sp, &o);
  for (const Einsum& e : LayerForwardEinsums(md, LayerKind::kMoe)) {
    if (e.name != "moe.w1" && e.name != "moe.w3" && e.name != "moe.w2") continue;
    if (e.name == "moe.w2") {
      o.push_back(Elementwise("moe.act", (z.swiglu ? 3 : 2) * p.slots * h_loc * z.ab,
                              MemoryKernel::kSwiglu, ActBwd(z.swiglu)));
    }
    o.push_back(Matmul(e.name, e.spec, L, p.act_bytes, true));
  }
  TpOutput(p, mesh, "moe.experts", xm, p.moe_tp_axes, moe_sp, &o);
  if (ep_ranks > 1) {
    OpDesc a = Collective("moe.combine_a2a", CollectiveKind::kAllToAll, p.ep_axes, p.a2a_bytes);
    a.collective.max_over_mean = p.a2a_max_over_mean;
    if (exchange.dispatcher != TokenDispatcher::kAllToAll) {
      a.collective.exchange = exchange;
      a.collective.exchange.combine = true;
      a.collective.exchange.bytes_per_element = z.ab;
      a.collective.exchange.scale_bytes_per_block = 0;
    }
    o.push_back(a);
  }
  if (einsum) {
    o.push_back(Matmul("moe.combine", "egcm,gsec->gsm", ds, p.act_bytes, false));
  } else {
    o.push_back(
        Elementwise("moe.unpermute", 2 * tokens * k * m_moe * z.ab, MemoryKernel::kCopy, kCopyBwd));
  }
  if (overlap_shared && after_shared > routed_start && after_shared < o.size()) {
    o[after_shared].waits_beside = true;  // the routed experts need the dispatched tokens
  }
  if (moe.num_shared_experts > 0 && !overlap_shared) shared_experts();
  o.push_back(Elementwise("moe.residual", 3 * z.bsm / z.sp, MemoryKernel::kAxpy, kResidualBwd));
}

// Per-layer routing (MoeSpec::layer_expert_load): each MoE layer's ops as MoeLayerOps builds them
// from that layer's shares alone, so its routing figures (busiest rank, drops, slots) pace its
// all-to-alls and expert GEMMs exactly as one histogram of those shares paces every layer.
// `before`: the plan as MoeLayerOps found it.
void PerLayerMoeOps(const Scenario& sc, int64_t experts, const Sizes& z,
                    const std::vector<OpDesc>& attn, const StepPlan& before, StepPlan* out) {
  const auto& rows = sc.model.moe.layer_expert_load;
  if (rows.empty()) return;
  Scenario layer_sc = sc;
  for (const std::vector<double>& shares : rows) {
    layer_sc.model.moe.expert_load = shares;
    StepPlan layer = before;
    MoeLayerOps(layer_sc, experts, z, attn, &layer);
    out->moe_layer_ops.push_back(std::move(layer.moe_ops));
  }
}

// The embedding lookup (vocab-parallel over the tensor axes) and the head: final norm, logits,
// cross-entropy (vocab-parallel: its per-token statistics all-reduced).
void EmbeddingAndHeadOps(const ShardingSpec& sh, const Sizes& z, StepPlan* out) {
  StepPlan& p = *out;
  const Mesh& mesh = sh.mesh;
  const auto vocab_axes = sh.AxesFor(TC::kDenseWeights, "vocab");
  p.embed_ops.push_back(
      Elementwise("embed.lookup", 2 * z.bsm / z.sp, MemoryKernel::kCopy, kLookupBwd));
  TpOutput(p, mesh, "embed", z.bsm, vocab_axes, p.sp_axes, &p.embed_ops);
  p.head_ops.push_back(
      Elementwise("final.norm", 2 * z.bsm / z.sp, MemoryKernel::kRmsnorm, kNormBwd));
  TpInput(p, mesh, "head", z.bsm, vocab_axes, p.sp_axes, &p.head_ops);
  for (const Einsum& e : HeadForwardEinsums()) {
    p.head_ops.push_back(Matmul(e.name, e.spec, p.local, p.act_bytes, true));
  }
  OpDesc loss = Elementwise("head.loss", 3 * z.b * z.sl * p.local.at('v') * 4,
                            MemoryKernel::kSoftmax, kLossBwd);
  loss.backward_kernel = MemoryKernel::kAxpy;
  p.head_ops.push_back(loss);
  if (AxesSize(mesh, vocab_axes) > 1) {
    // Vocab-parallel cross-entropy: max, sum of exponentials and target logit per token.
    p.head_ops.push_back(Collective("head.loss_allreduce", CollectiveKind::kAllReduce, vocab_axes,
                                    3 * z.b * z.sl * 4));
  }
}

// Multi-token prediction modules (model.mtp_depth), after the main head's loss on the last
// pipeline stage, where Megatron-Core's default layout puts them (it keeps a copy of the
// embedding there; its gradient sync with the first stage is not modelled). Each module: the
// shifted tokens' embedding lookup, the norms of the hidden state and of the embedding, the
// projection [2 x d_model -> d_model] on this device's tokens (weights not tensor-parallel:
// under sequence parallelism each rank projects its own tokens, without it every rank
// repeats the work), one transformer layer and the head again. Not recomputed, like the head.
void MtpOps(const ModelSpec& md, const Sizes& z, StepPlan* out) {
  StepPlan& p = *out;
  std::vector<OpDesc> module = p.embed_ops;
  module.push_back(Elementwise("hnorm", 2 * z.bsm / z.sp, MemoryKernel::kRmsnorm, kNormBwd));
  module.push_back(Elementwise("enorm", 2 * z.bsm / z.sp, MemoryKernel::kRmsnorm, kNormBwd));
  DimSizes own = p.local;
  own['s'] = z.sl / z.sp;
  for (const Einsum& e : MtpForwardEinsums()) {
    module.push_back(Matmul(e.name, e.spec, own, p.act_bytes, true));
  }
  const auto& layer = md.MtpLayerIsMoe() ? p.moe_ops : p.dense_ops;
  module.insert(module.end(), layer.begin(), layer.end());
  module.insert(module.end(), p.head_ops.begin(), p.head_ops.end());
  for (OpDesc& d : module) {
    if (d.name.rfind("mtp.", 0) != 0) d.name = "mtp." + d.name;
  }
  for (int64_t k = 0; k < md.mtp_depth; ++k) {
    p.head_ops.insert(p.head_ops.end(), module.begin(), module.end());
  }
}

}  // namespace

// The catalogue, in order: axes, local sizes, then one op list per layer kind.
StepPlan MakeStepPlan(const Scenario& sc) {
  StepPlan p;
  const ModelSpec& md = sc.model;
  p.act_bytes = ActivationBytes(sc.training);
  p.weight_bytes = static_cast<int64_t>(WeightBytesPerParam(sc.training));
  p.tp_comm_overlap = sc.training.tp_comm_overlap;
  const int64_t experts = std::max(md.moe.num_experts, sc.sharding.padded_num_experts);
  PlanAxes(sc, experts, &p);
  const Sizes z = PlanLocalSizes(sc, &p);
  const std::vector<OpDesc> attn = AttentionOps(md, sc.sharding.mesh, z, &p);
  p.dense_ops = DenseLayerOps(md, sc.sharding.mesh, z, attn, p);
  if (md.is_moe()) {
    const StepPlan before = p;
    MoeLayerOps(sc, experts, z, attn, &p);
    PerLayerMoeOps(sc, experts, z, attn, before, &p);
  }
  // FP8 GEMMs and their casts in every transformer layer (fp8.h), before the MTP modules copy
  // them.
  ApplyFp8(sc.training.fp8_recipe, p.act_bytes, &p.dense_ops);
  ApplyFp8(sc.training.fp8_recipe, p.act_bytes, &p.moe_ops);
  for (auto& layer : p.moe_layer_ops) ApplyFp8(sc.training.fp8_recipe, p.act_bytes, &layer);
  EmbeddingAndHeadOps(sc.sharding, z, &p);
  if (md.mtp_depth > 0) MtpOps(md, z, &p);
  return p;
}

}  // namespace moesim
