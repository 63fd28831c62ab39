// Validation of the sharding and training sections: both depend on model sizes and the device
// count, so they run after the model and cluster sections are known to be sound.
#include <algorithm>
#include <optional>
#include <set>
#include <tuple>

#include "common/checked_math.h"
#include "common/limits.h"

#include "proto/checker.h"
#include "proto/maxtext_preset.h"
#include "proto/megatron_preset.h"
#include "proto/moesim.pb.h"
#include "proto/named_mesh.h"
#include "proto/pipeline_layout.h"
#include "proto/scenario.h"
#include "proto/sharding_presets.h"

namespace moesim {
namespace {

ShardingStrategy ToStrategy(pb::Sharding::Strategy s) {
  switch (s) {
    case pb::Sharding::NAIVE_2D:
      return ShardingStrategy::kNaive2d;
    case pb::Sharding::PADDED_2D:
      return ShardingStrategy::kPadded2d;
    case pb::Sharding::MEGATRON:
      return ShardingStrategy::kMegatron;
    case pb::Sharding::FSDP:
      return ShardingStrategy::kFsdp;
    case pb::Sharding::ZERO1:
      return ShardingStrategy::kZero1;
    case pb::Sharding::DATA_PARALLEL:
      return ShardingStrategy::kDataParallel;
    case pb::Sharding::CUSTOM:
      return ShardingStrategy::kCustom;
    default:
      return ShardingStrategy::kApple3d;
  }
}

// Field path and size of a logical dim of a tensor class, for divisibility checks; "" when the
// dim has no fixed size here (activation dims checked separately).
std::pair<std::string, int64_t> DimSize(const Scenario& s, const std::string& d) {
  const ModelSpec& m = s.model;
  if (d == "embed") return {"model.d_model", m.d_model};
  if (d == "heads") return {"model.num_heads", m.num_heads};
  if (d == "kv_heads") return {"model.num_kv_heads", m.num_kv_heads};
  if (d == "head_dim") return {"model.head_dim", m.head_dim};
  if (d == "vocab") return {"model.vocab_size", m.vocab_size};
  if (d == "seq") return {"model.seq_len", m.seq_len};
  if (d == "mlp") return {"model.d_ff", m.d_ff};
  if (!m.is_moe()) return {"", 0};
  if (d == "experts" || d == "router_experts") {
    if (s.sharding.padded_num_experts > 0 && d == "experts") {
      return {"padded experts", s.sharding.padded_num_experts};
    }
    return {"model.moe.num_experts", m.moe.num_experts};
  }
  if (d == "expert_mlp") return {"model.moe.expert_d_ff", m.moe.expert_d_ff};
  return {"", 0};
}

std::string AxesText(const Mesh& mesh, const std::vector<MeshAxis>& axes, std::string* path) {
  // One axis: "sharding.mesh.expert=12". Several: "sharding.mesh data x expert = 4 x 64 = 256".
  // Named axes: "sharding.mesh.axes[2] \"tp\"=2", "sharding.mesh dp_in x tp = 4 x 2 = 8".
  const bool legacy = IsLegacyMesh(mesh);
  const std::string first_path =
      legacy ? std::string("sharding.mesh.") + mesh.Name(axes[0]) : NamedAxisPath(mesh, axes[0]);
  if (axes.size() == 1) {
    *path = first_path;
    return (legacy ? *path : *path + " \"" + mesh.Name(axes[0]) + "\"") + "=" + Num(mesh[axes[0]]);
  }
  std::string names, sizes;
  int64_t total = 1;
  for (MeshAxis a : axes) {
    names += (names.empty() ? "" : " x ") + mesh.Name(a);
    sizes += (sizes.empty() ? "" : " x ") + Num(mesh[a]);
    total *= mesh[a];
  }
  *path = first_path;
  return "sharding.mesh " + names + " = " + sizes + " = " + Num(total);
}

void ValidateMesh(const pb::Sharding& in, int64_t num_devices, Checker& c, Mesh* mesh) {
  const pb::Mesh& m = in.mesh();
  const std::pair<const char*, int64_t> axes[] = {
      {"data", m.data()}, {"expert", m.expert()}, {"model", m.model()}, {"pipeline", m.pipeline()}};
  bool any = false;
  for (int i = 0; i < kNumLegacyMeshAxes; ++i) {
    c.NonNegative(std::string("sharding.mesh.") + axes[i].first, axes[i].second);
    if (!c.AtMost(std::string("sharding.mesh.") + axes[i].first, axes[i].second,
                  limits::kMaxDevices)) {
      return;
    }
    mesh->size[i] = axes[i].second > 0 ? axes[i].second : 1;
    any = any || axes[i].second != 0;
  }
  if (!any) {
    (*mesh)[MeshAxis::kData] = num_devices;  // no mesh given: every device data-parallel
    return;
  }
  // Each axis is within kMaxDevices = 2^17, so the product of four fits in int64.
  if (num_devices > 0 && mesh->NumDevices() != num_devices) {
    c.Fail("sharding.mesh",
           "sharding.mesh data x expert x model x pipeline = " + Num(mesh->size[0]) + " x " +
               Num(mesh->size[1]) + " x " + Num(mesh->size[2]) + " x " + Num(mesh->size[3]) +
               " = " + Num(mesh->NumDevices()) + " does not equal the " + Num(num_devices) +
               " devices of the cluster");
  }
}

void ValidateRules(const pb::Sharding& in, Checker& c, ShardingSpec* spec) {
  const auto& names = LogicalDimNames();
  for (int i = 0; i < in.rules_size(); ++i) {
    const pb::ShardingRule& r = in.rules(i);
    const std::string p = "sharding.rules[" + std::to_string(i) + "]";
    bool ok = true;
    if (r.tensor_class() == pb::TENSOR_CLASS_UNSPECIFIED) {
      c.Fail(p + ".tensor_class", p + ".tensor_class is missing (DENSE_WEIGHTS, "
                                      "DENSE_ACTIVATIONS, MOE_WEIGHTS or MOE_ACTIVATIONS)");
      ok = false;
    }
    if (std::find(names.begin(), names.end(), r.dim()) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      c.Fail(p + ".dim", p + ".dim=\"" + r.dim() + "\" is not a logical dimension (" + list + ")");
      ok = false;
    }
    std::vector<MeshAxis> axes;
    std::set<int> seen;
    for (int j = 0; j < r.axes_size(); ++j) {
      if (r.axes(j) == pb::AXIS_UNSPECIFIED) {
        c.Fail(p + ".axes", p + ".axes[" + std::to_string(j) + "] is AXIS_UNSPECIFIED");
        ok = false;
        continue;
      }
      if (!seen.insert(r.axes(j)).second) {
        c.Fail(p + ".axes", p + ".axes names " + pb::Axis_Name(r.axes(j)) + " twice");
        ok = false;
      }
      axes.push_back(static_cast<MeshAxis>(r.axes(j) - 1));
    }
    if (ok) {
      spec->rules[{static_cast<TensorClass>(r.tensor_class() - 1), r.dim()}] = std::move(axes);
    }
  }
}

void ValidateDivisibility(Checker& c, const Scenario& s) {
  std::set<std::string> reported;
  for (const auto& [key, axes] : s.sharding.rules) {
    if (axes.empty()) continue;
    const auto [dim_path, size] = DimSize(s, key.second);
    if (dim_path.empty()) continue;
    int64_t shards = 1;
    for (MeshAxis a : axes) shards *= s.sharding.mesh[a];
    if (size % shards == 0) continue;
    std::string axis_path;
    const std::string axes_text = AxesText(s.sharding.mesh, axes, &axis_path);
    const std::string msg = axes_text + " does not divide " + dim_path + "=" + Num(size) + " (" +
                            TensorClassName(key.first) + " " + key.second + " is sharded over it)";
    if (reported.insert(axes_text + dim_path).second) c.Fail(axis_path, msg);
  }
}

// Which layers each pipeline stage runs: the even split, training.pipeline_layout, or
// training.first_stage_layers / last_stage_layers (proto/pipeline_layout.h).
void ValidatePipelineLayout(const pb::Training& t, Checker& c, Scenario* s) {
  const ModelSpec& m = s->model;
  const int64_t ranks = s->sharding.mesh[MeshAxis::kPipeline];
  const int64_t v = s->training.virtual_stages;
  const int64_t chunks = PipelineChunksPerRank(*s);
  const bool layout = !t.pipeline_layout().empty();
  const bool first_last = t.has_first_stage_layers() || t.has_last_stage_layers();
  const std::string fl_path =
      t.has_first_stage_layers() ? "training.first_stage_layers" : "training.last_stage_layers";
  if (layout && first_last) {
    c.Fail(fl_path, fl_path + " and training.pipeline_layout both place the layers: give one");
    return;
  }
  if (!layout && !first_last) {
    const int64_t stages = ranks * v;
    if (m.num_layers % stages != 0) {
      c.Fail(ranks > 1 ? "sharding.mesh.pipeline" : "training.virtual_stages",
             "model.num_layers=" + Num(m.num_layers) + " does not divide into " + Num(stages) +
                 " pipeline stages (sharding.mesh.pipeline x training.virtual_stages)");
    }
    return;
  }
  const size_t before = c.count();
  if (layout) {
    const std::string& text = t.pipeline_layout();
    const std::string p = "training.pipeline_layout";
    const std::string shown = text.size() <= 80 ? p + "=\"" + text + "\"" : p;
    auto parsed = ParsePipelineLayout(text);
    if (!parsed.ok()) {
      c.Fail(p, shown + " " + parsed.status().message());
      return;
    }
    const int64_t segments = static_cast<int64_t>(parsed->segments.size());
    if (segments != ranks * v) {
      c.Fail(p, shown + " has " + Num(segments) +
                    " virtual stages ('|' separates them); sharding.mesh.pipeline=" + Num(ranks) +
                    " x training.virtual_stages=" + Num(v) + " needs " + Num(ranks * v));
    } else if (v > 1 && chunks != v) {
      c.Fail(p, shown + " gives each pipeline rank " + Num(v) +
                    " model chunks, which only training.pipeline_schedule=INTERLEAVED runs, on "
                    "sharding.mesh.pipeline > 1");
    }
    if (parsed->num_layers != m.num_layers) {
      c.Fail(p, shown + " has " + Num(parsed->num_layers) +
                    " transformer layers ('t'), model.num_layers=" + Num(m.num_layers));
    }
    if (parsed->mtp_layers != m.mtp_depth) {
      c.Fail(p, shown + " has " + Num(parsed->mtp_layers) +
                    " MTP layers ('m'), model.mtp_depth=" + Num(m.mtp_depth));
    } else if (parsed->mtp_layers > parsed->segments.back().mtp_layers) {
      // The step program runs the MTP modules after the head's loss (step_plan.cc).
      c.Fail(p, shown + " column " + Num(parsed->first_mtp_column) +
                    ": MTP layers run with the loss here: every 'm' belongs in the last virtual "
                    "stage, before 'L'");
    }
    if (c.count() == before) s->training.pipeline_layout = LayoutFromSegments(*parsed, ranks);
    return;
  }
  std::optional<int64_t> first, last;
  for (const auto& [path, given, value, out] :
       {std::tuple{"training.first_stage_layers", t.has_first_stage_layers(),
                   t.first_stage_layers(), &first},
        std::tuple{"training.last_stage_layers", t.has_last_stage_layers(), t.last_stage_layers(),
                   &last}}) {
    if (!given) continue;
    c.NonNegative(path, value);
    if (value < 0 || !c.AtMost(path, value, limits::kMaxLayers)) continue;
    if (ranks < 2) {
      c.Fail(path, std::string(path) + "=" + Num(value) +
                       " needs sharding.mesh.pipeline > 1 (one stage holds every layer)");
    } else if (value % chunks != 0) {
      c.Fail(path, std::string(path) + "=" + Num(value) + " does not split evenly over the " +
                       Num(chunks) + " model chunks of a rank (training.virtual_stages)");
    }
    *out = value;
  }
  if (c.count() > before) return;
  auto placed = FirstLastPipelineLayout(m.num_layers, ranks, chunks, first, last);
  if (!placed.ok()) {
    c.Fail(fl_path, fl_path + ": " + placed.status().message());
    return;
  }
  s->training.pipeline_layout = std::move(*placed);
}

// training.pipeline_schedule=DUALPIPE, refused where DeepSeek's DualPipe.step asserts
// (github.com/deepseek-ai/DualPipe, dualpipe/dualpipe.py: num_ranks % 2 == 0, num_chunks % 2 == 0,
// num_chunks >= num_ranks * 2) and with FULL recomputation, which the paired forward/backward
// emission does not run.
void ValidateDualPipe(const TrainingSpec& out, const ShardingSpec& sh, Checker& c) {
  if (out.pipeline_schedule != PipelineSchedule::kDualPipe) return;
  const int64_t pp = sh.mesh[MeshAxis::kPipeline];
  const std::string path = "training.pipeline_schedule";
  const std::string what = "training.pipeline_schedule=DUALPIPE ";
  if (pp < 2 || pp % 2 != 0) {
    c.Fail(path, what +
                     "feeds micro-batches from both ends of the pipeline and needs an even "
                     "sharding.mesh.pipeline > 1, not " +
                     Num(pp));
  }
  const int64_t n = out.num_micro_batches;
  if (n % 2 != 0) {
    c.Fail(path, what +
                     "splits the micro-batches into two directions and needs an even number of "
                     "them, not " +
                     Num(n));
  }
  if (pp >= 2 && pp % 2 == 0 && n < 2 * pp) {
    c.Fail(path, what + "needs at least 2 x sharding.mesh.pipeline=" + Num(2 * pp) +
                     " micro-batches, not " + Num(n));
  }
  if (out.recompute == Recompute::kFull) {
    c.Fail(path, what +
                     "runs the forward and backward of two micro-batches together, which is "
                     "not modelled with full recomputation (training.recompute=FULL)");
  }
}

// training.fp8_recipe: FP8 GEMMs need a chip with an FP8 peak (Hopper and later); MXFP8 is
// Transformer Engine's Blackwell recipe (MXFP8BlockScaling asserts compute capability >= 10.0).
void ValidateFp8(const pb::Training& t, Checker& c, Scenario* s) {
  if (t.fp8_recipe() == pb::Training::FP8_RECIPE_UNSPECIFIED ||
      t.fp8_recipe() == pb::Training::BF16) {
    return;
  }
  const char* path = "training.fp8_recipe";
  const std::string recipe = pb::Training::Fp8Recipe_Name(t.fp8_recipe());
  const HardwareProfile& hw = s->hardware;
  if (!(hw.fp8_peak_flops_per_s > 0)) {
    c.Fail(path, "training.fp8_recipe=" + recipe + " runs GEMMs in FP8, and hardware.chip=\"" +
                     hw.chip + "\" has no FP8 peak (set hardware.fp8_peak_flops_per_s)");
    return;
  }
  if (t.fp8_recipe() == pb::Training::MXFP8 && hw.chip != "b200" && hw.chip != "gb200") {
    c.Fail(path,
           "training.fp8_recipe=MXFP8 is Transformer Engine's Blackwell recipe (B200, GB200), "
           "and hardware.chip=\"" +
               hw.chip +
               "\" is not Blackwell: use BLOCKWISE, "
               "TENSORWISE or DELAYED");
    return;
  }
  if (s->training.precision == Precision::kFp32) {
    c.Fail(path, "training.fp8_recipe=" + recipe +
                     " quantizes BF16 activations, and "
                     "training.precision=FP32");
    return;
  }
  switch (t.fp8_recipe()) {
    case pb::Training::DELAYED:
      s->training.fp8_recipe = Fp8Recipe::kDelayed;
      break;
    case pb::Training::TENSORWISE:
      s->training.fp8_recipe = Fp8Recipe::kTensorwise;
      break;
    case pb::Training::BLOCKWISE:
      s->training.fp8_recipe = Fp8Recipe::kBlockwise;
      break;
    default:
      s->training.fp8_recipe = Fp8Recipe::kMxfp8;
      break;
  }
}

// training.overlap_moe_expert_parallel_comm and delay_wgrad_compute, refused where Megatron-Core
// refuses them (TransformerConfig.__post_init__): without expert parallelism, pipelined without
// the interleaved schedule, with full recomputation, in fp32, beside --moe-shared-expert-overlap,
// with more than one MTP layer; delay_wgrad_compute without the overlap.
void ValidateEpOverlap(const pb::Training& t, Checker& c, Scenario* s) {
  TrainingSpec& out = s->training;
  out.overlap_moe_expert_parallel_comm = t.overlap_moe_expert_parallel_comm();
  out.delay_wgrad_compute = t.delay_wgrad_compute();
  const char* path = "training.overlap_moe_expert_parallel_comm";
  const std::string what =
      "training.overlap_moe_expert_parallel_comm overlaps the expert-parallel all-to-alls of one "
      "micro-batch with another's compute, ";
  if (t.delay_wgrad_compute() && !t.overlap_moe_expert_parallel_comm()) {
    c.Fail("training.delay_wgrad_compute",
           "training.delay_wgrad_compute delays weight gradients to run beside the all-to-alls of "
           "training.overlap_moe_expert_parallel_comm, which is off");
  }
  if (!t.overlap_moe_expert_parallel_comm()) return;
  const ModelSpec& m = s->model;
  const ShardingSpec& sh = s->sharding;
  if (!m.is_moe() || sh.ShardsFor(TensorClass::kMoeWeights, "experts") == 1) {
    c.Fail(path, what + "and this scenario has no expert parallelism (no all-to-all)");
  }
  if (sh.mesh[MeshAxis::kPipeline] > 1 && out.pipeline_schedule != PipelineSchedule::kInterleaved) {
    c.Fail(path, what +
                     "and with pipeline parallelism Megatron-Core runs it only in the "
                     "interleaved schedule (training.pipeline_schedule=INTERLEAVED, "
                     "--num-layers-per-virtual-pipeline-stage)");
  }
  if (out.recompute == Recompute::kFull) {
    c.Fail(path, what +
                     "and Megatron-Core refuses it with full recomputation "
                     "(training.recompute=FULL)");
  }
  if (m.is_moe() && m.moe.token_dispatcher == TokenDispatcherKind::kAllGather) {
    c.Fail(path, what +
                     "and Megatron-Core refuses it with the allgather dispatcher "
                     "(model.moe.token_dispatcher=ALLGATHER)");
  }
  if (out.precision == Precision::kFp32) {
    c.Fail(path, what + "and Megatron-Core runs it only in bf16 or fp16 (training.precision=FP32)");
  }
  if (m.moe.shared_expert_overlap) {
    c.Fail(path, what + "and Megatron-Core refuses it beside model.moe.shared_expert_overlap");
  }
  if (m.mtp_depth > 1) {
    c.Fail(path, what + "and Megatron-Core runs it with at most one MTP layer (model.mtp_depth=" +
                     Num(m.mtp_depth) + ")");
  }
}

// training.batch_split_factor (MaxText's batch-split schedule): 0/1 off, 2..16 sub-batches of
// each micro-batch's sequences on one device, in MoE layers; not with the paired emission of a
// forward and a backward micro-batch (overlap_moe_expert_parallel_comm, DUALPIPE), which splits
// the same MoE layers into parts of another schedule. REQUIRES micro_batch_size resolved.
void ValidateBatchSplit(const pb::Training& t, Checker& c, Scenario* s) {
  const char* path = "training.batch_split_factor";
  const int64_t f = t.batch_split_factor();
  s->training.batch_split_factor = 1;
  if (f == 0 || f == 1) return;
  const std::string what = "training.batch_split_factor=" + Num(f) + " ";
  if (f < 0 || f > 16) {
    c.Fail(path, what + "must be 0 or 1 (off) or 2..16");
    return;
  }
  const TrainingSpec& out = s->training;
  const size_t before = c.count();
  if (s->model.NumMoeLayers() == 0) {
    c.Fail(path, what + "splits the tokens of MoE layers, and the model has none");
  }
  if (out.micro_batch_size % f != 0) {
    c.Fail(path, what + "does not divide the " + Num(out.micro_batch_size) +
                     (out.micro_batch_size == 1 ? " sequence" : " sequences") +
                     " of one micro-batch on one device (training.micro_batch_size)");
  }
  if (out.overlap_moe_expert_parallel_comm) {
    c.Fail(path, what +
                     "and training.overlap_moe_expert_parallel_comm are two schedules of the "
                     "same all-to-alls: give one");
  }
  if (out.pipeline_schedule == PipelineSchedule::kDualPipe) {
    c.Fail(path, what +
                     "is not modelled with training.pipeline_schedule=DUALPIPE (its paired "
                     "forward and backward chunks)");
  }
  if (c.count() == before) s->training.batch_split_factor = f;
}

void ValidateTraining(const pb::Training& t, Checker& c, Scenario* s) {
  TrainingSpec& out = s->training;
  const ModelSpec& m = s->model;
  const ShardingSpec& sh = s->sharding;
  c.Positive("training.global_batch_tokens", t.global_batch_tokens());
  c.NonNegative("training.micro_batch_size", t.micro_batch_size());
  c.NonNegative("training.virtual_stages", t.virtual_stages());
  c.NonNegative("training.num_steps", t.num_steps());
  const size_t errors_before_limits = c.count();
  c.AtMost("training.global_batch_tokens", t.global_batch_tokens(), limits::kMaxGlobalBatchTokens);
  c.AtMost("training.micro_batch_size", t.micro_batch_size(), limits::kMaxGlobalBatchTokens);
  c.AtMost("training.virtual_stages", t.virtual_stages(), limits::kMaxLayers);
  c.AtMost("training.num_steps", t.num_steps(), limits::kMaxSteps);
  if (c.count() > errors_before_limits) return;
  out.global_batch_tokens = t.global_batch_tokens();
  out.recompute = t.recompute() == pb::Training::FULL        ? Recompute::kFull
                  : t.recompute() == pb::Training::SELECTIVE ? Recompute::kSelective
                                                             : Recompute::kNone;
  out.precision = t.precision() == pb::Training::FP32 ? Precision::kFp32 : Precision::kBf16Mixed;
  out.optimizer = t.optimizer() == pb::Training::SGD ? Optimizer::kSgd : Optimizer::kAdamW;
  out.pipeline_schedule =
      t.pipeline_schedule() == pb::Training::GPIPE         ? PipelineSchedule::kGpipe
      : t.pipeline_schedule() == pb::Training::INTERLEAVED ? PipelineSchedule::kInterleaved
      : t.pipeline_schedule() == pb::Training::DUALPIPE    ? PipelineSchedule::kDualPipe
                                                           : PipelineSchedule::kOneFOneB;
  out.virtual_stages = t.virtual_stages() > 0 ? t.virtual_stages() : 1;
  out.flash_attention = t.has_flash_attention() ? t.flash_attention() : true;
  out.num_steps = t.num_steps();
  out.prefetch_weights = t.has_prefetch_weights() ? t.prefetch_weights() : true;
  out.overlap_grad_reduce = t.has_overlap_grad_reduce() ? t.overlap_grad_reduce() : true;
  out.tp_comm_overlap = t.tp_comm_overlap();
  if (t.tp_comm_overlap()) {
    // Tensor parallel with sequence parallelism: an axis splitting the heads that also splits
    // the activations' sequence or embedding between the tensor-parallel regions.
    const ShardingSpec& sp = s->sharding;
    bool sequence_parallel = false;
    for (MeshAxis a : sp.AxesFor(TensorClass::kDenseWeights, "heads")) {
      for (const char* dim : {"seq", "embed"}) {
        const auto& act = sp.AxesFor(TensorClass::kDenseActivations, dim);
        sequence_parallel = sequence_parallel ||
                            (sp.mesh[a] > 1 && std::find(act.begin(), act.end(), a) != act.end());
      }
    }
    if (!sequence_parallel) {
      c.Fail("training.tp_comm_overlap",
             "training.tp_comm_overlap overlaps the all-gathers and reduce-scatters of tensor "
             "parallelism with sequence parallelism, and this sharding has none (a TENSOR axis "
             "of size > 1, or MEGATRON with model > 1)");
    }
  }
  ValidateEpOverlap(t, c, s);
  ValidateFp8(t, c, s);
  if (t.global_batch_tokens() <= 0) return;

  if (t.global_batch_tokens() % m.seq_len != 0) {
    c.Fail("training.global_batch_tokens",
           "training.global_batch_tokens=" + Num(t.global_batch_tokens()) +
               " is not a multiple of model.seq_len=" + Num(m.seq_len));
    return;
  }
  const int64_t seqs = t.global_batch_tokens() / m.seq_len;
  const int64_t batch_shards = sh.ShardsFor(TensorClass::kDenseActivations, "batch");
  if (seqs % batch_shards != 0) {
    c.Fail("training.global_batch_tokens",
           "training.global_batch_tokens=" + Num(t.global_batch_tokens()) + " holds " + Num(seqs) +
               " sequences, which do not divide over the " + Num(batch_shards) +
               " batch shards of the mesh");
    return;
  }
  const int64_t local = seqs / batch_shards;
  if (t.micro_batch_size() > 0 && local % t.micro_batch_size() != 0) {
    c.Fail("training.micro_batch_size", "training.micro_batch_size=" + Num(t.micro_batch_size()) +
                                            " does not divide the " + Num(local) +
                                            " sequences of each batch shard");
    return;
  }
  out.micro_batch_size = t.micro_batch_size() > 0 ? t.micro_batch_size() : local;
  out.num_micro_batches = local / out.micro_batch_size;
  if (out.num_micro_batches > limits::kMaxMicroBatches) {
    c.Fail(t.micro_batch_size() > 0 ? "training.micro_batch_size" : "training.global_batch_tokens",
           "the " + Num(local) + " sequences of each batch shard make " +
               Num(out.num_micro_batches) +
               " micro-batches of training.micro_batch_size=" + Num(out.micro_batch_size) +
               ", past the limit of " + Num(limits::kMaxMicroBatches) + " (docs/limits.md)");
    return;
  }
  if (!ProductWithin({out.num_micro_batches, m.num_layers}, limits::kMaxLayerMicroBatches)) {
    c.Fail(t.micro_batch_size() > 0 ? "training.micro_batch_size" : "training.global_batch_tokens",
           "model.num_layers=" + Num(m.num_layers) + " x " + Num(out.num_micro_batches) +
               " micro-batches of training.micro_batch_size=" + Num(out.micro_batch_size) +
               " per step exceed the limit of " + Num(limits::kMaxLayerMicroBatches) +
               " layer micro-batches (docs/limits.md): use larger micro-batches");
    return;
  }
  // A micro-batch's widest activation (logits, FFN hidden) within the per-tensor limit, so
  // that the cost model's int64 products of its sizes cannot overflow.
  const int64_t widest = std::max({m.d_model, m.d_ff, m.vocab_size, m.num_heads * m.head_dim,
                                   m.moe.expert_d_ff * std::max<int64_t>(m.moe.top_k, 1)});
  if (!ProductWithin({out.micro_batch_size, m.seq_len, widest}, limits::kMaxTensorElements)) {
    c.Fail(t.micro_batch_size() > 0 ? "training.micro_batch_size" : "training.global_batch_tokens",
           "a micro-batch of " + Num(out.micro_batch_size) +
               " sequences of model.seq_len=" + Num(m.seq_len) + " tokens with activations " +
               Num(widest) + " wide exceeds the limit of " + Num(limits::kMaxTensorElements) +
               " elements per tensor (docs/limits.md)");
    return;
  }

  if (out.pipeline_schedule == PipelineSchedule::kInterleaved && sh.mesh[MeshAxis::kPipeline] > 1 &&
      out.num_micro_batches % sh.mesh[MeshAxis::kPipeline] != 0) {
    c.Fail("training.pipeline_schedule",
           "training.pipeline_schedule=INTERLEAVED needs the " + Num(out.num_micro_batches) +
               " micro-batches to be a multiple of sharding.mesh.pipeline=" +
               Num(sh.mesh[MeshAxis::kPipeline]));
  }
  ValidateDualPipe(out, sh, c);
  ValidateBatchSplit(t, c, s);
  ValidatePipelineLayout(t, c, s);

  if (!m.is_moe()) return;
  // MoE tokens [O, G, S, M]: O outer batches of G groups of S tokens.
  MoeSpec& moe = s->model.moe;
  const int64_t outer = moe.outer_batch;
  if (s->model.moe.num_groups_given > 0) {
    const int64_t per_outer = t.global_batch_tokens() / outer;
    if (t.global_batch_tokens() % outer != 0 || per_outer % moe.num_groups_given != 0) {
      c.Fail("model.moe.num_groups",
             "model.moe.num_groups=" + Num(moe.num_groups_given) + " does not divide the " +
                 Num(per_outer) + " tokens of each of the " + Num(outer) +
                 " outer batches (training.global_batch_tokens / model.moe.outer_batch)");
      return;
    }
    moe.group_size_tokens = per_outer / moe.num_groups_given;
  }
  if (t.global_batch_tokens() % (outer * moe.group_size_tokens) != 0) {
    c.Fail("model.moe.group_size_tokens",
           "training.global_batch_tokens=" + Num(t.global_batch_tokens()) +
               " does not split into model.moe.outer_batch=" + Num(outer) +
               " outer batches of groups of model.moe.group_size_tokens=" +
               Num(moe.group_size_tokens) + " tokens");
    return;
  }
  const int64_t groups = t.global_batch_tokens() / (outer * moe.group_size_tokens);
  const int64_t outer_shards = sh.ShardsFor(TensorClass::kMoeActivations, "outer");
  const int64_t group_shards = sh.ShardsFor(TensorClass::kMoeActivations, "groups");
  if (outer % outer_shards != 0) {
    c.Fail("model.moe.outer_batch", "model.moe.outer_batch=" + Num(outer) +
                                        " does not divide over its " + Num(outer_shards) +
                                        " shards (MOE_ACTIVATIONS outer)");
  }
  if (groups % group_shards != 0) {
    c.Fail("model.moe.group_size_tokens",
           "the " + Num(groups) + " token groups per outer batch (model.moe.group_size_tokens=" +
               Num(moe.group_size_tokens) + ") do not divide over their " + Num(group_shards) +
               " shards (MOE_ACTIVATIONS groups)");
  }
  // training.batch_split_factor: each sub-batch holds 1/F of a micro-batch's token groups on
  // every device (costmodel/memory.h MoeGroupsOf counts them per micro-batch).
  const int64_t f = s->training.batch_split_factor;
  const int64_t mb_tokens = s->training.micro_batch_size *
                            sh.ShardsFor(TensorClass::kDenseActivations, "batch") *
                            s->model.seq_len;
  const int64_t per_mb = mb_tokens / (outer * moe.group_size_tokens);
  if (f > 1 && mb_tokens % (outer * moe.group_size_tokens * f * group_shards) != 0) {
    c.Fail("training.batch_split_factor",
           "training.batch_split_factor=" + Num(f) + " splits the " + Num(per_mb) +
               " MoE token groups of a micro-batch (model.moe.group_size_tokens=" +
               Num(moe.group_size_tokens) + ") into sub-batches whose groups do not divide over " +
               "their " + Num(group_shards) + " shards (MOE_ACTIVATIONS groups)");
  }
}

}  // namespace

namespace {
// Divisibility, MoE outer batch and the training section: shared by both mesh forms.
void FinishSharding(const pb::Scenario& in, Checker& c, Scenario* out);

// Every legacy axis of size > 1 other than pipeline must be sharded over by some rule of every
// layer kind (dense layers: DENSE_* rules; MoE layers: MOE_* rules as well). An axis no rule
// names replicates the layer's weights and tokens alike: its devices repeat the same work (FSDP
// with model: 4 computes everything 4 times). The named form cannot get here: every role shards.
void CheckEveryAxisUsed(Checker& c, const Scenario& s) {
  const ShardingSpec& spec = s.sharding;
  const Mesh& mesh = spec.mesh;
  for (int i = 0; i < mesh.num_axes; ++i) {
    const MeshAxis a = static_cast<MeshAxis>(i);
    if (a == mesh.pipeline_axis || mesh[a] <= 1) continue;
    bool dense = false, moe = false;
    for (const auto& [key, axes] : spec.rules) {
      if (std::find(axes.begin(), axes.end(), a) == axes.end()) continue;
      const bool is_moe =
          key.first == TensorClass::kMoeWeights || key.first == TensorClass::kMoeActivations;
      (is_moe ? moe : dense) = true;
    }
    const bool moe_needed = s.model.is_moe();
    if (dense && (moe || !moe_needed)) continue;
    const std::string kind = !dense ? "dense layers (attention, FFN, embedding)" : "MoE layers";
    const std::string path = std::string("sharding.mesh.") + mesh.Name(a);
    c.Fail(path, path + "=" + Num(mesh[a]) + ": " + kind +
                     " of sharding.strategy=" + ShardingStrategyName(spec.strategy) +
                     " shard nothing over the " + mesh.Name(a) +
                     " axis, so its devices would repeat the same work; give those devices to "
                     "an axis the strategy shards over (e.g. data), pick a strategy that uses " +
                     mesh.Name(a) +
                     ", or write the named form sharding.mesh { axes { ... } } "
                     "with a role for every axis");
  }
}
}  // namespace

void ValidateShardingAndTraining(const pb::Scenario& in, Checker& c, Scenario* out) {
  ShardingSpec& spec = out->sharding;
  // sharding.maxtext becomes the named mesh form (proto/maxtext_preset.h).
  pb::Sharding from_maxtext;
  if (in.sharding().has_maxtext() &&
      !ExpandMaxTextMesh(in.sharding(), out->cluster.topology, out->cluster.num_devices, c,
                         &from_maxtext)) {
    return;
  }
  // sharding.megatron likewise (proto/megatron_preset.h).
  pb::Sharding from_megatron;
  if (in.sharding().has_megatron() &&
      !ExpandMegatronSharding(in.sharding(), out->cluster.num_devices, out->model.moe.num_experts,
                              c, &from_megatron)) {
    return;
  }
  const pb::Sharding& sh = in.sharding().has_maxtext()    ? from_maxtext
                           : in.sharding().has_megatron() ? from_megatron
                                                          : in.sharding();
  spec.strategy = ToStrategy(sh.strategy());
  const bool named = sh.mesh().axes_size() > 0;
  if (named) {
    ValidateNamedMesh(sh, out->cluster.num_devices, c, &spec.mesh);
    if (c.count() > 0) return;
    spec.strategy = ShardingStrategy::kCustom;
    ExpandShardingPreset(out->model, &spec);
    ApplyNamedMeshRules(sh, c, &spec);
    if (sh.has_shard_optimizer_over_data()) {
      spec.shard_optimizer_over_data = sh.shard_optimizer_over_data();
    }
    if (c.count() > 0) return;
    FinishSharding(in, c, out);
    return;
  }
  if (sh.has_moe_layers()) {
    c.Fail("sharding.moe_layers",
           "sharding.moe_layers names mesh axes: it needs the named form "
           "sharding.mesh { axes { name: ... size: ... role: ... } ... }");
  }
  ValidateMesh(sh, out->cluster.num_devices, c, &spec.mesh);
  if ((spec.strategy == ShardingStrategy::kNaive2d ||
       spec.strategy == ShardingStrategy::kPadded2d) &&
      spec.mesh[MeshAxis::kExpert] != 1) {
    c.Fail("sharding.mesh.expert", "sharding.mesh.expert=" + Num(spec.mesh[MeshAxis::kExpert]) +
                                       " must be 1 with " +
                                       "sharding.strategy=" + ShardingStrategyName(spec.strategy) +
                                       " (a 2D Data x Model mesh; experts shard over data)");
  }
  ExpandShardingPreset(out->model, &spec);
  if (sh.has_shard_optimizer_over_data()) {
    spec.shard_optimizer_over_data = sh.shard_optimizer_over_data();
  }
  ValidateRules(sh, c, &spec);
  if (c.count() > 0) return;
  CheckEveryAxisUsed(c, *out);
  if (c.count() > 0) return;
  FinishSharding(in, c, out);
}

namespace {

void FinishSharding(const pb::Scenario& in, Checker& c, Scenario* out) {
  const ShardingSpec& spec = out->sharding;
  ValidateDivisibility(c, *out);
  if (out->model.is_moe()) {
    out->model.moe.outer_batch = in.model().moe().outer_batch() > 0
                                     ? in.model().moe().outer_batch()
                                     : spec.ShardsFor(TensorClass::kMoeActivations, "outer");
  }
  if (out->model.is_moe() && out->model.moe.shared_expert_overlap &&
      spec.ShardsFor(TensorClass::kMoeWeights, "experts") == 1) {
    c.Fail("model.moe.shared_expert_overlap",
           "model.moe.shared_expert_overlap hides the shared experts behind the dispatch "
           "all-to-all, and this sharding has no expert parallelism (no all-to-all)");
  }
  // Context parallelism: Megatron splits each sequence into 2 x C chunks, rank r holding chunks
  // r and 2C-1-r, so that causal attention costs every rank the same.
  const int64_t cp = spec.ContextShards();
  if (cp > 1 && out->model.seq_len % (2 * cp) != 0) {
    std::string axis_path;
    const std::string axes = AxesText(spec.mesh, spec.ContextAxes(), &axis_path);
    c.Fail("model.seq_len", "model.seq_len=" + Num(out->model.seq_len) +
                                " does not split into 2 x " + Num(cp) +
                                " chunks for context parallelism over " + axes +
                                " (the load-balanced causal split)");
  }
  // A MoE layer's tokens of one sequence are split over the context axes too: by default a
  // routing group is one device's share of a sequence.
  if (cp > 1 && out->model.is_moe() && in.model().moe().group_size_tokens() == 0 &&
      in.model().moe().num_groups() == 0) {
    out->model.moe.group_size_tokens = out->model.seq_len / cp;
  }
  ValidateTraining(in.training(), c, out);
}

}  // namespace

}  // namespace moesim
