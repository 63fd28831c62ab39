// scenario.h
//
// The validated scenario as plain C++ structs: what every other library reads. Produced only by
// LoadScenario() (scenario_loader.h), so every invariant stated here holds: sizes are positive,
// defaults are resolved, divisibility checked. Libraries below proto/ never see protobuf types.
//
// Units are in names: _bytes, _bytes_per_s, _flops_per_s, _s.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/limits.h"
#include "proto/pipeline_layout.h"

namespace moesim {

enum class FfnKind { kGelu, kSwiglu };
enum class NormKind { kLayerNorm, kRmsNorm };
enum class PositionKind { kLearned, kRope };
enum class MoePlacement { kEveryK, kLastK, kFirstKDense };
enum class MoeDispatch { kEinsum, kPermute };
// moesim.proto Moe.token_dispatcher; kDeepEp and kHybridEp are one model (dispatch.h).
enum class TokenDispatcherKind { kAllToAll, kAllGather, kDeepEp, kHybridEp, kRaggedAllToAll };
// moesim.proto Moe.CapacityConvention: whose capacity formula (costmodel/memory.h MoeGroupsOf).
enum class CapacityConvention { kPerRoutedToken, kPerToken, kMegatron, kMaxText, kAxLearn };

struct MoeSpec {
  int64_t num_experts = 0;  // 0 = dense
  int64_t top_k = 0;
  double capacity_factor = 0;
  MoePlacement placement = MoePlacement::kEveryK;
  int64_t placement_k = 1;
  int64_t expert_d_ff = 0;  // resolved: never 0 when num_experts > 0
  int64_t num_shared_experts = 0;
  bool omit_router_flops = false;
  MoeDispatch dispatch = MoeDispatch::kEinsum;
  int64_t group_size_tokens = 0;          // resolved (from num_groups when given)
  bool capacity_per_routed_token = true;  // C counts top_k (see moesim.proto)
  CapacityConvention capacity_convention = CapacityConvention::kPerRoutedToken;
  int64_t num_groups_given = 0;  // model.moe.num_groups as written (0 = not given)
  int64_t outer_batch = 1;       // resolved
  // Share of routed tokens each expert receives: num_experts entries summing to 1 (uniform,
  // Zipf or a measured histogram, resolved by the loader). Experts are placed on expert-parallel
  // ranks round-robin (expert e on rank e % ranks), so hot experts spread over ranks.
  std::vector<double> expert_load;
  // routing HISTOGRAM with one row per MoE layer: the i-th MoE layer's shares (layer order);
  // expert_load is then the first row's. Empty: expert_load for every MoE layer.
  std::vector<std::vector<double>> layer_expert_load;
  bool dropless = false;  // no capacity: nothing dropped (moesim.proto Moe.dropless)
  // routing LOGNORMAL: sigma of the per-rank load factor; < 0 = not given (expert_load decides).
  double rank_load_sigma = -1;
  bool shared_expert_overlap = false;  // moesim.proto Moe.shared_expert_overlap
  bool fp8_dispatch = false;  // dispatch_precision FP8: forward dispatch rows in FP8 + scales
  TokenDispatcherKind token_dispatcher = TokenDispatcherKind::kAllToAll;
  int64_t router_num_groups = 0;  // group-limited routing; 0 = not limited
  int64_t router_group_topk = 0;
  // RAGGED_ALL_TO_ALL: MaxText's ragged_buffer_factor; 0 = its worst-case default.
  double ragged_buffer_factor = 0;
  bool pad_to_capacity = false;  // Moe.pad_expert_input_to_capacity (MEGATRON)
};

// Multi-head Latent Attention (moesim.proto Mla). enabled = false: standard attention.
struct MlaSpec {
  bool enabled = false;
  int64_t q_lora_rank = 0;  // 0 = queries projected from the input directly
  int64_t kv_lora_rank = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
};

struct ModelSpec {
  std::string name;
  int64_t num_layers = 0;
  int64_t d_model = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // resolved
  int64_t head_dim = 0;      // resolved
  int64_t d_ff = 0;
  int64_t vocab_size = 0;
  int64_t seq_len = 0;
  FfnKind ffn_kind = FfnKind::kSwiglu;
  NormKind norm_kind = NormKind::kRmsNorm;
  PositionKind position_kind = PositionKind::kRope;
  bool tie_embeddings = false;
  bool linear_bias = false;
  MoeSpec moe;
  MlaSpec mla;            // with MLA: num_kv_heads = num_heads, head_dim = mla.qk_head_dim()
  int64_t mtp_depth = 0;  // multi-token prediction modules (moesim.proto Model.mtp_depth)

  bool is_moe() const { return moe.num_experts > 0; }
  // True when layer `layer` (0-based) has an MoE FFN.
  bool IsMoeLayer(int64_t layer) const;
  int64_t NumMoeLayers() const;
  // How many MoE layers come before `layer`. REQUIRES: IsMoeLayer(layer).
  int64_t MoeLayerIndex(int64_t layer) const;
  // Multi-token prediction modules' transformer layers are of the last layer's kind.
  bool MtpLayerIsMoe() const { return IsMoeLayer(num_layers - 1); }
};

// The streaming kernel an elementwise op is made of, as `moesim-real bench` names it: on CPUs
// their speeds differ 100x (a copy against a softmax bound by exp()), on accelerators they are
// all bound by memory bandwidth.
// kFp8Cast: Transformer Engine's quantize / cast-transpose kernels (training.fp8_recipe).
enum class MemoryKernel { kCopy = 0, kAxpy, kSwiglu, kRmsnorm, kSoftmax, kAdamw, kFp8Cast };
inline constexpr int kNumMemoryKernels = 7;
const char* MemoryKernelName(MemoryKernel k);  // "copy", "axpy", "swiglu", ...
// false when `name` is none of them.
bool ParseMemoryKernel(const std::string& name, MemoryKernel* out);
// "copy, axpy, swiglu, rmsnorm, softmax, adamw": the choices, for error messages.
std::string MemoryKernelChoices();

// Blockwise attention's kernel model (costmodel/attention_model.h; moesim.proto Hardware fields
// 30-37), fitted per chip to published FlashAttention figures. fwd_max_efficiency > 0 enables
// it; 0 = attention's core timed as GEMMs. Efficiencies in (0, 1]; halves and block in elements.
struct AttentionKernelProfile {
  double fwd_max_efficiency = 0, bwd_max_efficiency = 0;
  double fwd_head_dim_half = 0, bwd_head_dim_half = 0;
  double fwd_seq_half = 0, bwd_seq_half = 0;
  double causal_block = 0;
  double parallel_tiles = 0;  // tiles in flight at once (SMs); 0 = no wave term
};

// A chip's figures. Starts from a built-in profile (hardware_profiles.h); fields may be overridden.
struct HardwareProfile {
  std::string chip;
  double peak_flops_per_s = 0;
  int64_t hbm_bytes = 0;
  double hbm_bytes_per_s = 0;
  double matmul_efficiency = 1;
  double memory_efficiency = 1;
  double op_overhead_s = 0;
  double link_bytes_per_s = 0;
  double link_latency_s = 0;
  double link_efficiency = 1;
  double scaleout_bytes_per_s = 0;
  double scaleout_latency_s = 0;
  int64_t devices_per_host = 1;
  // Calibrated GEMM model (moesim.proto Hardware.gemm_*); 0 = the tile model.
  double gemm_max_efficiency = 0;
  double gemm_m_half = 0, gemm_n_half = 0, gemm_k_half = 0;
  // GEMM kernel model (costmodel/gemm_model.h; moesim.proto Hardware fields 21-28). Enabled
  // when gemm_compute_units (GPU SMs: waves of tiles) or gemm_mxu_size (TPU systolic array:
  // padding) is > 0; otherwise the tile-fill model. Fractions in (0, 1], k halves in elements.
  int64_t gemm_compute_units = 0;
  int64_t gemm_mxu_size = 0;
  double gemm_peak_fraction = 1;
  double gemm_tile_k_half = 0;
  double gemm_overhead_s = -1;      // < 0: op_overhead_s
  double fp8_peak_flops_per_s = 0;  // dense FP8; 0 = no FP8 (FP8 GEMMs run at the BF16 peak)
  double fp8_gemm_peak_fraction = 1;
  double fp8_gemm_tile_k_half = 0;
  // moesim.proto Hardware.fp8_block_scaled_gemm_rate: a block-scaled FP8 GEMM's speed relative
  // to a per-tensor one, (0, 1].
  double fp8_block_scaled_gemm_rate = 1;
  // moesim.proto Hardware.elementwise_efficiency: multiplies the streaming efficiency of a
  // step's elementwise layer ops (IsLayerElementwise in costmodel/compute_time.cc), (0, 1].
  double elementwise_efficiency = 1;
  // Calibrated per kernel (moesim.proto Hardware.kernel_memory_efficiency); 0 = memory_efficiency.
  std::array<double, kNumMemoryKernels> kernel_memory_efficiency{};
  // Compute's share a communication kernel takes while it runs beside compute
  // (moesim.proto Hardware.comm_sm_fraction); 0 = none.
  double comm_sm_fraction = 0;
  AttentionKernelProfile attention;  // moesim.proto Hardware.attention_*
  double MemoryEfficiency(MemoryKernel k) const {
    const double e = kernel_memory_efficiency[static_cast<size_t>(k)];
    return e > 0 ? e : memory_efficiency;
  }
};

struct ClusterSpec {
  std::string topology;  // a parameterized name, or an absolute path to a topology file
  int64_t num_devices = 0;
};

// A mesh axis: an index into Mesh's ordered list of named axes (0 .. Mesh::num_axes - 1). The
// legacy form `mesh { data expert model pipeline }` gives four axes at the indices named here,
// so kData .. kPipeline are meaningful only in a mesh of that form; code that must work on any
// mesh asks the mesh (Mesh::name, Mesh::pipeline_axis).
enum class MeshAxis : int { kData = 0, kExpert = 1, kModel = 2, kPipeline = 3 };
inline constexpr int kNumLegacyMeshAxes = 4;
// The legacy form's axis names: "data", "expert", "model", "pipeline"; "axis4" .. "axis7" for
// the other indices (a named mesh's own names are Mesh::Name()).
const char* MeshAxisName(MeshAxis axis);

// The device mesh: up to limits::kMaxMeshAxes named axes whose sizes multiply to the device
// count. Invariants (LoadScenario): 1 <= num_axes <= kMaxMeshAxes, names unique and non-empty,
// sizes >= 1 (entries past num_axes are 1), placement_order a permutation of 0 .. num_axes - 1,
// pipeline_axis == MeshAxis::kPipeline in both forms (size 1 = no pipelining), so that
// mesh[MeshAxis::kPipeline] is the stage count of every mesh. The named form
// (sharding.mesh.axes, proto/named_mesh.h) stores its PIPELINE axis there, a size-1 placeholder
// "_pipeline" when it has none, and its other axes at 0, 1, 2, 4, ... in the order written, with
// size-1 placeholders "_0" .. "_2" filling indices below 3; placeholder names start with '_'
// (written names cannot) and reports leave them out.
struct Mesh {
  int num_axes = kNumLegacyMeshAxes;
  std::array<std::string, limits::kMaxMeshAxes> name = {"data", "expert", "model", "pipeline"};
  std::array<int64_t, limits::kMaxMeshAxes> size = {1, 1, 1, 1, 1, 1, 1, 1};
  // Per axis: true = the axis lies across the fast domain (DCN between TPU slices, scale-out
  // network between GPU nodes) and is placed on the slowest physical dimensions; false = no
  // constraint (PlaceMesh's innermost-fastest rule decides).
  std::array<bool, limits::kMaxMeshAxes> dcn = {};
  // Placement order, outermost (slowest links) first, innermost (fastest) last: PlaceMesh's
  // order. The legacy form: pipeline, data, expert, model.
  std::vector<MeshAxis> placement_order = {MeshAxis::kPipeline, MeshAxis::kData, MeshAxis::kExpert,
                                           MeshAxis::kModel};
  MeshAxis pipeline_axis = MeshAxis::kPipeline;

  int64_t operator[](MeshAxis a) const { return size[static_cast<size_t>(a)]; }
  int64_t& operator[](MeshAxis a) { return size[static_cast<size_t>(a)]; }
  const std::string& Name(MeshAxis a) const { return name[static_cast<size_t>(a)]; }
  int64_t PipelineSize() const { return (*this)[pipeline_axis]; }
  int64_t NumDevices() const {
    int64_t n = 1;
    for (int i = 0; i < num_axes; ++i) n *= size[static_cast<size_t>(i)];
    return n;
  }
  // "name=size,..." in placement order: a key for caches, and what `moesim` prints.
  std::string Key() const;
};

enum class TensorClass { kDenseWeights, kDenseActivations, kMoeWeights, kMoeActivations };
const char* TensorClassName(TensorClass c);  // "DENSE_WEIGHTS", ...

enum class ShardingStrategy {
  kApple3d,
  kNaive2d,
  kPadded2d,
  kMegatron,
  kFsdp,
  kZero1,
  kDataParallel,
  kCustom
};
const char* ShardingStrategyName(ShardingStrategy s);  // "APPLE_3D", ...

// Logical dimension names a ShardingRule may use (see moesim.proto).
const std::vector<std::string>& LogicalDimNames();

struct ShardingSpec {
  ShardingStrategy strategy = ShardingStrategy::kApple3d;
  Mesh mesh;
  // (tensor class, logical dim) -> mesh axes, first axis major. The preset's rules with the
  // scenario's written-out rules applied on top. A missing entry = replicated.
  std::map<std::pair<TensorClass, std::string>, std::vector<MeshAxis>> rules;
  bool shard_optimizer_over_data = false;
  // PADDED_2D: experts padded up to a multiple of the axis they shard over; padded experts hold
  // weights but never get tokens. 0 = no padding.
  int64_t padded_num_experts = 0;

  // Mesh axes sharding `dim` of tensors of class `c` (empty = replicated).
  const std::vector<MeshAxis>& AxesFor(TensorClass c, const std::string& dim) const;
  // Product of the sizes of those axes.
  int64_t ShardsFor(TensorClass c, const std::string& dim) const;
  // Context-parallel axes (size > 1 only): the axes that shard the dense activations' sequence
  // but neither their batch nor the heads / FFN hidden of the dense weights. (An axis that shards
  // both the sequence and the heads is tensor parallel with sequence parallelism: it splits the
  // sequence only between the tensor-parallel regions.) Attention over a sequence split this way
  // needs the other ranks' keys and values: the ring exchange of costmodel/step_plan.cc.
  std::vector<MeshAxis> ContextAxes() const;
  // Product of their sizes (1 without context parallelism).
  int64_t ContextShards() const;
};

enum class Recompute { kNone, kSelective, kFull };
enum class Precision { kBf16Mixed, kFp32 };
enum class Optimizer { kAdamW, kSgd };
enum class PipelineSchedule { kGpipe, kOneFOneB, kInterleaved, kDualPipe };
// moesim.proto Training.fp8_recipe: which FP8 recipe the linear layers' GEMMs use (kNone: BF16).
enum class Fp8Recipe { kNone, kDelayed, kTensorwise, kBlockwise, kMxfp8 };

struct TrainingSpec {
  int64_t global_batch_tokens = 0;
  int64_t micro_batch_size = 0;  // resolved: sequences per micro-batch per batch shard
  int64_t num_micro_batches = 1;
  Recompute recompute = Recompute::kNone;
  Precision precision = Precision::kBf16Mixed;
  Optimizer optimizer = Optimizer::kAdamW;
  PipelineSchedule pipeline_schedule = PipelineSchedule::kOneFOneB;
  int64_t virtual_stages = 1;
  bool flash_attention = true;
  int64_t num_steps = 0;
  bool prefetch_weights = true;
  bool overlap_grad_reduce = true;
  bool tp_comm_overlap = false;  // moesim.proto Training.tp_comm_overlap
  // moesim.proto Training.overlap_moe_expert_parallel_comm / delay_wgrad_compute
  bool overlap_moe_expert_parallel_comm = false;
  bool delay_wgrad_compute = false;
  Fp8Recipe fp8_recipe = Fp8Recipe::kNone;  // moesim.proto Training.fp8_recipe
  // moesim.proto Training.batch_split_factor: sub-batches per micro-batch in MoE layers (MaxText's
  // batch-split schedule, costmodel/batch_split.h); 1 = off.
  int64_t batch_split_factor = 1;
  // Which layers each pipeline rank runs, from training.pipeline_layout or first/last_stage_layers;
  // no stages = the even split. Read it through ScenarioPipelineLayout().
  PipelineLayout pipeline_layout;
};

struct Scenario {
  std::string name;
  std::string description;
  std::string source;  // file it came from, or "<default>"
  ModelSpec model;
  ClusterSpec cluster;
  HardwareProfile hardware;
  ShardingSpec sharding;
  TrainingSpec training;
  std::string resolved_text;  // the scenario after overrides, in protobuf text format
};

// Model chunks per pipeline rank that the schedule runs: training.virtual_stages with the
// INTERLEAVED schedule on more than one rank, else 1.
int64_t PipelineChunksPerRank(const Scenario& scenario);
// The layers of every (pipeline rank, chunk): training.pipeline_layout when it has stages, else
// the even split of model.num_layers over ranks x PipelineChunksPerRank(); the model's MTP
// modules on the last virtual stage.
PipelineLayout ScenarioPipelineLayout(const Scenario& scenario);

}  // namespace moesim
