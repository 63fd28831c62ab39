// dispatch.h
//
// MoE token dispatch and combine as collective algorithms: the expected traffic of routing every
// token of an expert-parallel (EP) group to its top-k experts, and CollectivePlans (plan.h) for
// the dispatchers the training stacks use, timed by the existing runners (runner.h).
//
// The group. `group` lists the EP ranks in rank order; ranks r*m .. r*m+m-1 share node r (an
// NVLink domain of m = ranks_per_node GPUs); a group of at most m ranks is one node. Experts are
// placed contiguously: rank r holds experts [r*e, (r+1)*e), e = num_experts / n, so node b holds
// E/N consecutive experts (N nodes).
//
// Routing assumption (stated once; every formula below follows from it). Without a node limit
// (M = 0 or M >= N), top_k distinct experts uniformly among all E: exactly how DeepEP's tests
// draw their routing (i.i.d. random scores) wherever every node may be reached. With a limit
// (M' = min(M, N) < N), the token's M' nodes are uniform among the N (its own node included),
// chosen for their best experts (DeepSeek-V3: the sum of each node's top k/M scores; DeepEP's
// tests/legacy/test_internode.py: each node's best score), so that when k/M' >= 2 every chosen
// node gets one of the token's experts, uniform in the node, and the other k - M' are uniform
// among the remaining experts of the chosen nodes ("forced"); when k/M' < 2 the k experts are
// uniform among the chosen nodes' experts. A Monte Carlo of both selection rules with i.i.d.
// scores (|N(0,1)| + 1, DeepEP's; 4,000 to 20,000 tokens; 256 experts, top-8, 8 ranks per node;
// DeepEP's rule is in tests/sim/dispatch_test.cc, DeepSeek-V3's was run once) gives, for M = 4 of 8
// nodes, 3.97-3.98 nodes and 7.47 ranks per token (this model: 4 and 7.48; a uniform draw inside
// the chosen nodes would say 3.63 and 7.36); M = 4 of 16 and 32 nodes: 4.00 (4); M = 2 of 8: 2.00
// (2); M = 6 and 7 of 8: 5.2 and 5.3 (uniform: 4.65 and 5.00, -11% and -6%). Trained routers are
// not uniform; imbalance is the step simulation's business, not this file's.
//
// Traffic (expected values; R(a, b, k) = C(a - b, k) / C(a, k), the chance that k draws without
// replacement from a items all miss b given ones; C = binomial coefficient; E_N = E / N experts
// per node, e = E / n per rank; P_rank: a given rank receives a given token, any rank, the
// sender's own included, by symmetry; P_node: a given node does):
//   uniform (no limit, or k/M' < 2):
//     P_rank = (M'/N) (1 - R(M' E_N, e, k)),   P_node = (M'/N) (1 - R(M' E_N, E_N, k))
//   forced (M' < N, k/M' >= 2):
//     P_rank = (M'/N) (1 - (1 - e/E_N) R(M' E_N - M', e, k - M')),   P_node = M'/N
//   distinct destination ranks per token  = n P_rank   (excluding the sender: (n - 1) P_rank)
//   distinct destination nodes per token  = N P_node   (excluding its own: (N - 1) P_node)
//
// Bytes per token: dispatch = hidden x dispatch_bytes_per_element + ceil(hidden / block) x
// scale bytes (FP8 as DeepEP sends it: 1 byte per element + one fp32 scale per 128 elements);
// combine = hidden x combine_bytes_per_element (BF16: 2). Routing metadata (indices, weights) is
// not counted: DeepEP's benchmark times a cached dispatch without it.
//
// Dispatchers (T = tokens per rank, B = bytes per token; combine = the same transfers reversed,
// with combine bytes):
//   flat          all-to-all(v), one direct step: rank s sends T P_rank B to every other rank,
//                 one copy per destination rank; no deduplication across a node.
//   hierarchical  DeepEP's normal kernels: one stage of two concurrent streams (DeepEP pipelines
//                 them in chunks; the pipeline's fill, one chunk, is neglected):
//                   RDMA   rank (A, l) sends T P_node B to rank (B, l) of every other node B: a
//                          token crosses the scale-out network once per destination node, to the
//                          GPU of the same local rank, deduplicated;
//                   NVLink rank (B, l) forwards to every other rank (B, l') of its node what the
//                          N ranks (*, l) sent for it: N T P_rank B (tokens of its own node come
//                          straight from the sender, which is the forwarder for them).
//                 Combine is the reverse (NVLink to the forwarder, which reduces, then one RDMA
//                 copy per (token, node)). A group in one node is NVLink-direct.
//   allgather     Megatron-Core's all-gather dispatcher: every rank all-gathers all n T tokens
//                 (all_gather of S = n T B per device, the default algorithm for the group's
//                 shape); combine is the reduce-scatter of S = n T B_combine.
// Layout exchange (DeepEP's "notify" before a dispatch): each rank tells every other how many
// tokens it sends it and to each of its experts, (1 + e) int32 per pair, as one direct
// all-to-all; latency-bound. DeepEP reports it apart from the kernel time (tests/
// test_internode.py prints "notify + kernel us"), so it is not in the bottleneck bandwidth.
//
// Bottleneck bandwidth, as DeepEP defines it (tests/legacy/test_intranode.py and
// test_internode.py in deepseek-ai/DeepEP): bytes per rank over the kernel time, where the bytes
// are "logical": the test code counts the rank's own node (own tokens), and DeepEP's current
// README says its figures contain "local rank traffic":
//   internode (N > 1): RDMA bytes = T x (distinct nodes per token, its own included) x B
//   intranode (N = 1): NVLink bytes = received tokens, its own included = T n P_rank B.
//
// Units: bytes, seconds. Thread safety: values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "sim/collectives/algorithms.h"
#include "sim/collectives/plan.h"

namespace moesim::sim {

// Routing of one EP group, the input of the traffic formulas (no devices, no sizes).
struct ExpertRouting {
  int64_t ranks = 1;                // n
  int64_t ranks_per_node = 8;       // m; n <= m is one node
  int64_t num_experts = 1;          // E, a multiple of n
  int64_t top_k = 1;                // k <= the experts a token may choose from
  int64_t max_nodes_per_token = 0;  // M; 0 = unlimited

  int64_t Nodes() const;              // N = 1 if n <= m, else n / m
  int64_t EffectiveMaxNodes() const;  // M' = min(M, N), N when M = 0
};

// Errors (kInvalidInput), each naming the field: n < 1; m < 1; n > m and not a multiple of m;
// E not a multiple of n; k < 1 or more than M' E / N; M < 0.
Status ValidateRouting(const ExpertRouting& r);

// Expected fan-out of one token (formulas above). REQUIRES ValidateRouting(r).ok().
struct DispatchFanout {
  double rank_probability = 0;  // P_rank
  double node_probability = 0;  // P_node
  double ranks = 0;             // distinct destination ranks, the sender included: n P_rank
  double other_ranks = 0;       // excluding the sender: (n - 1) P_rank
  double nodes = 0;             // distinct destination nodes, its own included: N P_node
  double other_nodes = 0;       // excluding its own: (N - 1) P_node
  double remote_ranks = 0;      // destination ranks in other nodes: (n - m) P_rank (0 if N = 1)
};
DispatchFanout ExpectedFanout(const ExpertRouting& r);

// R(a, b, k) = C(a - b, k) / C(a, k); 0 when a - b < k. REQUIRES 0 <= b <= a, k >= 0.
double MissAllProbability(int64_t a, int64_t b, int64_t k);

enum class Dispatcher { kHierarchical, kFlat, kAllGather };
// "hierarchical", "flat", "allgather".
const char* DispatcherName(Dispatcher d);
Expected<Dispatcher> ParseDispatcher(const std::string& name);

enum class DispatchDirection { kDispatch, kCombine };
const char* DispatchDirectionName(DispatchDirection d);  // "dispatch", "combine"

struct DispatchSpec {
  std::vector<DeviceId> group;  // EP ranks in rank order, distinct
  int64_t ranks_per_node = 8;
  int64_t tokens_per_rank = 4096;
  int64_t hidden = 7168;
  double dispatch_bytes_per_element = 1;      // FP8 (2 = BF16)
  double dispatch_scale_bytes_per_block = 4;  // fp32 scale per block (0 = none, BF16)
  int64_t scale_block_elements = 128;
  double combine_bytes_per_element = 2;  // BF16
  int64_t num_experts = 256;
  int64_t top_k = 8;
  int64_t max_nodes_per_token = 0;  // 0 = unlimited

  ExpertRouting Routing() const;
  // Bytes of one token in `d` (header: bytes per token).
  double TokenBytes(DispatchDirection d) const;
};

// ValidateRouting plus: an empty group, more than 2048 ranks (a flat plan's n^2 transfers,
// docs/limits.md), or repeated devices; tokens < 1 or > 2^31; hidden < 1 or
// > 2^20; bytes per element not in (0, 8]; scale bytes < 0 or > 64; block < 1.
Status ValidateDispatchSpec(const DispatchSpec& spec);

// Expected bytes per rank (every rank alike), by kind of link (header: dispatchers).
struct DispatchTraffic {
  double rdma_bytes = 0;         // hierarchical: sent to other nodes, deduplicated per node
  double nvlink_bytes = 0;       // hierarchical: sent inside the node (direct or forwarded)
  double flat_remote_bytes = 0;  // flat: sent to ranks of other nodes, one copy per rank
  double flat_local_bytes = 0;   // flat: sent to other ranks of its own node
  // DeepEP's logical bytes of the bottleneck (header): RDMA when N > 1, else NVLink.
  double bottleneck_bytes = 0;
  bool bottleneck_is_rdma = false;
};
// REQUIRES ValidateDispatchSpec(spec).ok().
DispatchTraffic ExpectedTraffic(const DispatchSpec& spec, DispatchDirection d);

// The plan of `d` by `dispatcher` (header). `shape` is the group's shape (algorithms.h), read
// only by allgather to pick its all-gather / reduce-scatter algorithm. Errors: those of
// ValidateDispatchSpec.
Expected<CollectivePlan> BuildDispatchPlan(const DispatchSpec& spec, Dispatcher dispatcher,
                                           DispatchDirection d, const GroupShape& shape = {});

// The layout exchange before a dispatch (header); an empty plan for a group of one.
Expected<CollectivePlan> BuildLayoutExchangePlan(const DispatchSpec& spec);

// DeepEP's published bottleneck bandwidth of its normal kernels, bytes/s (docs/legacy.md of
// deepseek-ai/DeepEP, "Normal kernels with NVLink and RDMA forwarding": H800, ~160 GB/s NVLink,
// CX7 400 Gb/s; 4096 tokens, hidden 7168, top-4 groups, top-8 of 256 experts, FP8 dispatch, BF16
// combine), when `spec` is that workload: n in {8, 16, 32, 64}, 8 ranks per node, M' =
// min(4, N). The hardware is the caller's to check.
std::optional<double> DeepEpPublishedBandwidth(const DispatchSpec& spec, DispatchDirection d);

}  // namespace moesim::sim
