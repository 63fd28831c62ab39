// limits.h
//
// What a scenario, a topology or a command may ask for: the sizes the simulator handles in
// reasonable memory and time on one machine. Every limit is checked where the input is read,
// before anything is allocated from it, and a value past one is refused as bad input (exit 2)
// naming the file, line, field and the limit. docs/limits.md lists them for users, with the
// reasoning; this header is the one place the numbers live.
//
// Each bound is generous next to the largest published configuration it covers (noted beside
// it), and small enough that products of two bounded sizes fit in int64 (2^63), which is what
// lets the cost model multiply sizes without overflow. Sums and products beyond that go through
// common/checked_math.h.
// Units: counts unless the name says otherwise (_s seconds, _bytes, _per_s).
#pragma once

#include <cstdint>

namespace moesim::limits {

// --- Model (proto/ validation) -----------------------------------------------------------------
// Transformer blocks. Largest published: 160+ (DeepNet trained 1,000 layers, a research run).
inline constexpr int64_t kMaxLayers = 4096;
// d_model, d_ff, model.moe.expert_d_ff, model.head_dim. Largest published d_ff: ~2^17.6 (PaLM).
inline constexpr int64_t kMaxWidth = int64_t{1} << 20;
// model.num_heads and model.num_kv_heads.
inline constexpr int64_t kMaxHeads = int64_t{1} << 16;
// model.vocab_size. Largest published: 256K (Gemma); byte-level to a few million in research.
inline constexpr int64_t kMaxVocab = int64_t{1} << 24;
// model.seq_len: 16M tokens per sequence.
inline constexpr int64_t kMaxSeqLen = int64_t{1} << 24;
// model.moe.num_experts (and top_k). "Mixture of A Million Experts" (He, 2024) used 2^20.
inline constexpr int64_t kMaxExperts = int64_t{1} << 20;
// model.moe.num_shared_experts. DeepSeek-V2/V3: 1-2.
inline constexpr int64_t kMaxSharedExperts = 1024;
// model.moe.capacity_factor: past num_experts / top_k every expert already holds every token.
inline constexpr double kMaxCapacityFactor = double(int64_t{1} << 20);
// model.moe.routing_lognormal_sigma: sigma 3 already puts the busiest of 1,024 ranks at about
// 420 times the mean (costmodel/routing.h), far past any measured router.
inline constexpr double kMaxLogNormalSigma = 3.0;
// Elements of one weight tensor (all experts of one layer together): 2^44 = 17.6e12.
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 44;

// --- Cluster and mesh ----------------------------------------------------------------------------
// Devices of a cluster (any topology). Largest published training clusters: ~100K GPUs.
inline constexpr int64_t kMaxDevices = int64_t{1} << 17;
// Devices per host in a hardware profile.
inline constexpr int64_t kMaxDevicesPerHost = 1024;

// --- Training --------------------------------------------------------------------------------
// training.global_batch_tokens: 2^40 = 1.1e12 tokens in one step (published: ~1.6e7).
inline constexpr int64_t kMaxGlobalBatchTokens = int64_t{1} << 40;
// Micro-batches of one step on one pipeline stage.
inline constexpr int64_t kMaxMicroBatches = int64_t{1} << 20;
// Layers x micro-batches of one step: what the size of a step's program grows with (~20-60
// ops each), checked where the scenario is read; kMaxStepOps bounds the program itself.
inline constexpr int64_t kMaxLayerMicroBatches = int64_t{1} << 17;
// training.pipeline_layout (proto/pipeline_layout.h): characters of the string (a 4,096-layer
// model written out with a boundary after every layer is 8K), each repeat count `*n`, nesting of
// groups `( )`, and the symbols (layers, boundaries, E, L) the string expands to, checked before
// it is expanded. Published layouts: ~20 characters expanding to ~100 symbols.
inline constexpr int64_t kMaxPipelineLayoutChars = int64_t{1} << 16;
inline constexpr int64_t kMaxPipelineLayoutRepeat = int64_t{1} << 18;
inline constexpr int64_t kMaxPipelineLayoutDepth = 16;
inline constexpr int64_t kMaxPipelineLayoutSymbols = int64_t{1} << 18;
// training.num_steps (used by the budget planner).
inline constexpr int64_t kMaxSteps = int64_t{1} << 40;

// --- Hardware figures (per chip; proto/hardware_profiles.cc) ----------------------------------
// 1 EFLOP/s per chip (B200 dense FP4: 9e15).
inline constexpr double kMaxFlopsPerS = 1e18;
// Bytes per second of HBM, a link or a NIC: 1 PB/s (B200 HBM: 8e12).
inline constexpr double kMaxBytesPerS = 1e15;
// Any rate below one unit per second is a typo, not a chip.
inline constexpr double kMinRatePerS = 1;
// Latencies and per-op overheads.
inline constexpr double kMaxLatencyS = 1;
// HBM per chip: 16 TiB.
inline constexpr int64_t kMaxHbmBytes = int64_t{1} << 44;
// GEMM-model half points (rows, columns, depth).
inline constexpr double kMaxGemmHalf = double(int64_t{1} << 24);

// --- Simulation (sim/) ----------------------------------------------------------------------
// Operations of one step's program (all pipeline stages). Measured at 3.9M ops (GPT-3 175B's
// scenario with 128 layers x 512 micro-batches): 1.0 GiB and 4.7 s on the analytical level,
// 1.2 GiB and 47 s on the flow level. GPT-3 175B on 1,024 GPUs as shipped is ~0.5M ops; a
// DeepSeek-V3-sized run with pipeline 16 and micro-batches of one sequence ~2.3M.
inline constexpr int64_t kMaxStepOps = int64_t{1} << 22;
// Simulated time of one step: SimTime counts int64 picoseconds, which end at 106 days.
inline constexpr double kMaxSimulatedS = 1e6;

// --- Sharding -----------------------------------------------------------------------------------
// Named axes of sharding.mesh. Megatron-Core uses five (tp, cp, ep, dp, pp), MaxText up to
// eight ICI plus DCN axes (data, fsdp, fsdp_transpose, sequence, tensor, expert, autoregressive,
// stage).
inline constexpr int kMaxMeshAxes = 8;

// --- Commands ---------------------------------------------------------------------------------
// sweep / plan --jobs: worker threads (more than the points are never started).
inline constexpr int64_t kMaxJobs = 1024;
// moesim collective: point-to-point transfers of one collective (all-to-all: group^2).
inline constexpr int64_t kMaxCollectiveTransfers = int64_t{1} << 22;
// moesim topo: breadth-first search steps spent on a topology's diameter (sources x (vertices +
// links)); a 16,384-device ring file takes 5.4e8 in 3.5 s. Past it the diameter is not computed.
inline constexpr int64_t kMaxDiameterSearchSteps = int64_t{1} << 31;
// A path or topology name.
inline constexpr int64_t kMaxPathLength = 4096;
// A scenario, topology, profile or validation file read whole: 64 MiB (the largest shipped is
// a few KiB).
inline constexpr int64_t kMaxInputFileBytes = int64_t{64} << 20;

}  // namespace moesim::limits
