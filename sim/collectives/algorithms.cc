#include "sim/collectives/algorithms.h"

#include <algorithm>
#include <cmath>

#include "common/limits.h"

namespace moesim::sim {
namespace {

using Group = std::vector<DeviceId>;
using Groups = std::vector<Group>;

constexpr double kAutoChunkBytes = 512.0 * 1024.0;
constexpr int64_t kMaxAutoChunks = 64;

struct AlgoName {
  Algorithm algo;
  const char* name;
};
constexpr AlgoName kAlgoNames[] = {
    {Algorithm::kRing, "ring"},
    {Algorithm::kBidirectionalRing, "bidir_ring"},
    {Algorithm::kTorus, "torus"},
    {Algorithm::kDoubleBinaryTree, "double_binary_tree"},
    {Algorithm::kHalvingDoubling, "halving_doubling"},
    {Algorithm::kHierarchical, "hierarchical"},
    {Algorithm::kDirect, "direct"},
    {Algorithm::kPairwise, "pairwise"},
};

// Which algorithms implement which operation.
std::vector<Algorithm> Supported(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::kAllReduce:
      return {Algorithm::kRing,
              Algorithm::kBidirectionalRing,
              Algorithm::kTorus,
              Algorithm::kDoubleBinaryTree,
              Algorithm::kHalvingDoubling,
              Algorithm::kHierarchical};
    case CollectiveOp::kAllGather:
    case CollectiveOp::kReduceScatter:
      return {Algorithm::kRing, Algorithm::kBidirectionalRing, Algorithm::kTorus,
              Algorithm::kHalvingDoubling, Algorithm::kHierarchical};
    case CollectiveOp::kAllToAll:
    case CollectiveOp::kAllToAllV:
      return {Algorithm::kDirect, Algorithm::kPairwise};
    case CollectiveOp::kBroadcast:
      return {Algorithm::kRing};
    case CollectiveOp::kSendRecv:
      return {Algorithm::kDirect};
  }
  return {};
}

int64_t Product(const std::vector<GroupDim>& dims) {
  int64_t p = 1;
  for (const GroupDim& d : dims) p *= d.size;
  return p;
}

int CountNontrivial(const std::vector<GroupDim>& dims) {
  int c = 0;
  for (const GroupDim& d : dims) c += d.size > 1 ? 1 : 0;
  return c;
}

// The members of g along dimension j, one line per combination of the other coordinates, each
// in coordinate order (row-major over dims).
void AppendLines(const Group& g, const std::vector<GroupDim>& dims, size_t j, Groups* out) {
  int64_t stride = 1;
  for (size_t k = j + 1; k < dims.size(); ++k) stride *= dims[k].size;
  const int64_t size = dims[j].size;
  for (int64_t i = 0; i < static_cast<int64_t>(g.size()); ++i) {
    if ((i / stride) % size != 0) continue;
    Group line;
    line.reserve(size);
    for (int64_t k = 0; k < size; ++k) line.push_back(g[i + k * stride]);
    out->push_back(std::move(line));
  }
}

// One ring step on every ring of `rings`: each member sends `bytes` to the next member, or with
// `bidir` half to the next and half to the previous one.
Step RingStep(const Groups& rings, double bytes, bool bidir, int64_t repeat) {
  Step step;
  step.repeat = repeat;
  for (const Group& r : rings) {
    const size_t d = r.size();
    if (d < 2) continue;
    for (size_t i = 0; i < d; ++i) {
      if (bidir) {
        step.transfers.push_back({r[i], r[(i + 1) % d], bytes / 2});
        step.transfers.push_back({r[i], r[(i + d - 1) % d], bytes / 2});
      } else {
        step.transfers.push_back({r[i], r[(i + 1) % d], bytes});
      }
    }
  }
  return step;
}

enum class Reduce { kReduceScatter, kAllGather, kAllReduce };
enum class RingKind { kUni, kBi, kTorus };

RingKind AutoKind(const std::vector<GroupDim>& dims, bool bidirectional_rings = false) {
  if (CountNontrivial(dims) >= 2) return RingKind::kTorus;
  for (const GroupDim& d : dims) {
    if (d.size > 1) return d.wraps || bidirectional_rings ? RingKind::kBi : RingKind::kUni;
  }
  return RingKind::kUni;
}

// The ring family on congruent groups (same shape `dims`), all groups at once, as stages. S is
// the per-device size in the nccl-tests convention of `op`. Torus: D parts, each its own stream;
// at round r part p runs on dimension p + r (cyclically), so every round uses every dimension's
// links once, and a round ends when its slowest part does (so parts never share links).
std::vector<Stage> RingFamily(Reduce op, const Groups& groups, const std::vector<GroupDim>& dims,
                              double S, RingKind kind) {
  std::vector<Stage> stages;
  const int64_t n = groups.empty() ? 0 : static_cast<int64_t>(groups[0].size());
  if (n <= 1) return stages;
  std::vector<size_t> nd;  // nontrivial dimensions
  for (size_t j = 0; j < dims.size(); ++j) {
    if (dims[j].size > 1) nd.push_back(j);
  }
  if (kind == RingKind::kTorus && nd.size() <= 1) kind = RingKind::kBi;
  if (kind != RingKind::kTorus) {
    const double chunk = S / static_cast<double>(n);
    const int64_t steps = (op == Reduce::kAllReduce ? 2 : 1) * (n - 1);
    Stage stage;
    stage.streams.push_back({RingStep(groups, chunk, kind == RingKind::kBi, steps)});
    stages.push_back(std::move(stage));
    return stages;
  }
  std::vector<Groups> lines(dims.size());
  for (size_t j : nd) {
    for (const Group& g : groups) AppendLines(g, dims, j, &lines[j]);
  }
  const size_t D = nd.size();
  const double part = S / static_cast<double>(D);
  // Round r of the reduce-scatter: part p on dimension nd[(p + r) % D], holding M / d of the
  // bytes it held before (M = part at round 0). The all-gather runs the rounds in reverse with
  // the same sizes.
  auto round = [&](size_t r) {
    Stage stage;
    for (size_t p = 0; p < D; ++p) {
      double M = part;
      for (size_t k = 0; k < r; ++k) M /= static_cast<double>(dims[nd[(p + k) % D]].size);
      const size_t j = nd[(p + r) % D];
      const double d = static_cast<double>(dims[j].size);
      stage.streams.push_back({RingStep(lines[j], M / d, true, dims[j].size - 1)});
    }
    return stage;
  };
  if (op != Reduce::kAllGather) {
    for (size_t r = 0; r < D; ++r) stages.push_back(round(r));
  }
  if (op != Reduce::kReduceScatter) {
    for (size_t r = D; r-- > 0;) stages.push_back(round(r));
  }
  return stages;
}

void AddStage(Stage stage, CollectivePlan* plan) {
  bool any = false;
  for (const Stream& s : stage.streams) any = any || !s.empty();
  if (any) plan->stages.push_back(std::move(stage));
}

void AddStage(std::vector<Stage> stages, CollectivePlan* plan) {
  for (Stage& stage : stages) AddStage(std::move(stage), plan);
}

Reduce ToReduce(CollectiveOp op) {
  if (op == CollectiveOp::kReduceScatter) return Reduce::kReduceScatter;
  if (op == CollectiveOp::kAllGather) return Reduce::kAllGather;
  return Reduce::kAllReduce;
}

void Hierarchical(const CollectiveSpec& spec, const std::vector<GroupDim>& dims,
                  const AlgorithmOptions& options, CollectivePlan* plan) {
  const Group& g = spec.group;
  const int64_t n = static_cast<int64_t>(g.size());
  const HierarchicalLevels levels = SplitHierarchical(dims);
  if (levels.inner.empty()) return;
  const std::vector<GroupDim>& outer = levels.outer;
  const std::vector<GroupDim>& inner = levels.inner;
  const int64_t m = Product(inner);
  const int64_t N = n / m;
  Groups nodes, ranks;
  for (int64_t b = 0; b < N; ++b) {
    nodes.emplace_back(g.begin() + b * m, g.begin() + (b + 1) * m);
  }
  for (int64_t r = 0; r < m; ++r) {
    Group ring;
    for (int64_t b = 0; b < N; ++b) ring.push_back(g[b * m + r]);
    ranks.push_back(std::move(ring));
  }
  const RingKind ik = AutoKind(inner, options.bidirectional_rings),
                 ok = AutoKind(outer, options.bidirectional_rings);
  const double S = spec.bytes, Sm = spec.bytes / static_cast<double>(m);
  switch (spec.op) {
    case CollectiveOp::kAllReduce:
      AddStage(RingFamily(Reduce::kReduceScatter, nodes, inner, S, ik), plan);
      AddStage(RingFamily(Reduce::kAllReduce, ranks, outer, Sm, ok), plan);
      AddStage(RingFamily(Reduce::kAllGather, nodes, inner, S, ik), plan);
      break;
    case CollectiveOp::kAllGather:
      AddStage(RingFamily(Reduce::kAllGather, ranks, outer, Sm, ok), plan);
      AddStage(RingFamily(Reduce::kAllGather, nodes, inner, S, ik), plan);
      break;
    default:  // reduce-scatter
      AddStage(RingFamily(Reduce::kReduceScatter, nodes, inner, S, ik), plan);
      AddStage(RingFamily(Reduce::kReduceScatter, ranks, outer, Sm, ok), plan);
      break;
  }
}

int64_t Chunks(double bytes, const AlgorithmOptions& options) {
  if (options.pipeline_chunks > 0) return options.pipeline_chunks;
  const double k = std::ceil(bytes / kAutoChunkBytes);
  return std::clamp<int64_t>(static_cast<int64_t>(k), 1, kMaxAutoChunks);
}

void DoubleBinaryTree(const CollectiveSpec& spec, const AlgorithmOptions& options,
                      CollectivePlan* plan) {
  const Group& g = spec.group;
  const size_t n = g.size();
  if (n < 2) return;
  const double half = spec.bytes / 2;
  const int64_t K = Chunks(half, options);
  int64_t depth = 0;
  while ((size_t{2} << depth) <= n) ++depth;  // floor(log2 n): the heap depth of position n-1
  Step up, down;
  up.repeat = down.repeat = K + depth - 1;
  for (size_t p = 1; p < n; ++p) {
    const size_t parent = (p - 1) / 2;
    // Tree 1 over positions in group order, tree 2 over the reversed order: for even n the
    // interior positions 0..n/2-1 of one are leaves of the other.
    up.transfers.push_back({g[p], g[parent], half / static_cast<double>(K)});
    up.transfers.push_back({g[n - 1 - p], g[n - 1 - parent], half / static_cast<double>(K)});
    down.transfers.push_back({g[parent], g[p], half / static_cast<double>(K)});
    down.transfers.push_back({g[n - 1 - parent], g[n - 1 - p], half / static_cast<double>(K)});
  }
  Stage stage;
  stage.streams.push_back({std::move(up), std::move(down)});
  plan->stages.push_back(std::move(stage));
}

void HalvingDoubling(const CollectiveSpec& spec, CollectivePlan* plan) {
  const Group& g = spec.group;
  const size_t n = g.size();
  Stream stream;
  auto exchange = [&](size_t dist, double bytes) {
    Step step;
    for (size_t i = 0; i < n; ++i) step.transfers.push_back({g[i], g[i ^ dist], bytes});
    stream.push_back(std::move(step));
  };
  const double S = spec.bytes, nd = static_cast<double>(n);
  if (spec.op != CollectiveOp::kAllGather) {
    double bytes = S;
    for (size_t dist = n / 2; dist >= 1; dist /= 2) exchange(dist, bytes /= 2);
  }
  if (spec.op != CollectiveOp::kReduceScatter) {
    double bytes = S / nd;
    for (size_t dist = 1; dist < n; dist *= 2, bytes *= 2) exchange(dist, bytes);
  }
  Stage stage;
  stage.streams.push_back(std::move(stream));
  AddStage(std::move(stage), plan);
}

void AllToAll(const CollectiveSpec& spec, bool pairwise, CollectivePlan* plan) {
  const Group& g = spec.group;
  const size_t n = g.size();
  auto bytes = [&](size_t i, size_t j) {
    return spec.op == CollectiveOp::kAllToAllV ? spec.matrix[i * n + j]
                                               : spec.bytes / static_cast<double>(n);
  };
  Stream stream;
  if (!pairwise) {
    Step step;
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        if (i != j && bytes(i, j) > 0) step.transfers.push_back({g[i], g[j], bytes(i, j)});
      }
    }
    if (!step.transfers.empty()) stream.push_back(std::move(step));
  } else {
    for (size_t k = 1; k < n; ++k) {
      Step step;
      for (size_t i = 0; i < n; ++i) {
        const size_t j = (i + k) % n;
        if (bytes(i, j) > 0) step.transfers.push_back({g[i], g[j], bytes(i, j)});
      }
      if (!step.transfers.empty()) stream.push_back(std::move(step));
    }
  }
  Stage stage;
  stage.streams.push_back(std::move(stream));
  AddStage(std::move(stage), plan);
}

void Broadcast(const CollectiveSpec& spec, const AlgorithmOptions& options, CollectivePlan* plan) {
  const Group& g = spec.group;
  const size_t n = g.size();
  if (n < 2) return;
  const int64_t K = Chunks(spec.bytes, options);
  Step step;
  step.repeat = K + static_cast<int64_t>(n) - 2;
  const size_t root = static_cast<size_t>(spec.root);
  for (size_t i = 0; i + 1 < n; ++i) {
    step.transfers.push_back(
        {g[(root + i) % n], g[(root + i + 1) % n], spec.bytes / static_cast<double>(K)});
  }
  Stage stage;
  stage.streams.push_back({std::move(step)});
  plan->stages.push_back(std::move(stage));
}

Status Validate(const CollectiveSpec& spec, const std::vector<GroupDim>& dims) {
  const int64_t n = static_cast<int64_t>(spec.group.size());
  if (n == 0) return Status::InvalidInput("collective group is empty");
  std::vector<DeviceId> sorted = spec.group;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return Status::InvalidInput("collective group lists device " +
                                std::to_string(*std::adjacent_find(sorted.begin(), sorted.end())) +
                                " twice");
  }
  if (!(spec.bytes >= 0) || !std::isfinite(spec.bytes)) {
    return Status::InvalidInput("collective bytes must be a finite number >= 0");
  }
  if (Product(dims) != n) {
    std::string s;
    for (const GroupDim& d : dims) s += (s.empty() ? "" : "x") + std::to_string(d.size);
    return Status::InvalidInput("group shape " + s + " has " + std::to_string(Product(dims)) +
                                " members; the group has " + std::to_string(n));
  }
  if (spec.op == CollectiveOp::kAllToAllV) {
    if (static_cast<int64_t>(spec.matrix.size()) != n * n) {
      return Status::InvalidInput("all_to_all_v matrix has " + std::to_string(spec.matrix.size()) +
                                  " entries; needs n*n = " + std::to_string(n * n));
    }
    for (double b : spec.matrix) {
      if (!(b >= 0) || !std::isfinite(b)) {
        return Status::InvalidInput("all_to_all_v matrix entries must be finite and >= 0");
      }
    }
  }
  if (spec.op == CollectiveOp::kBroadcast && (spec.root < 0 || spec.root >= n)) {
    return Status::InvalidInput("broadcast root " + std::to_string(spec.root) +
                                " is not an index into the group of " + std::to_string(n));
  }
  if (spec.op == CollectiveOp::kSendRecv && n != 2) {
    return Status::InvalidInput("send_recv needs a group of 2 (sender, receiver); got " +
                                std::to_string(n));
  }
  return Status::Ok();
}

}  // namespace

const char* AlgorithmName(Algorithm a) {
  for (const AlgoName& x : kAlgoNames) {
    if (x.algo == a) return x.name;
  }
  return "?";
}

Expected<Algorithm> ParseAlgorithm(const std::string& name) {
  std::string all;
  for (const AlgoName& x : kAlgoNames) {
    if (name == x.name) return x.algo;
    all += (all.empty() ? "" : ", ") + std::string(x.name);
  }
  return Status::InvalidInput("unknown algorithm \"" + name + "\" (one of: " + all + ")");
}

Expected<CollectivePlan> BuildCollectivePlan(const CollectiveSpec& spec, Algorithm algorithm,
                                             const GroupShape& shape,
                                             const AlgorithmOptions& options) {
  const int64_t n = static_cast<int64_t>(spec.group.size());
  std::vector<GroupDim> dims = shape.dims;
  if (dims.empty()) dims.push_back(GroupDim{n, false, 0});
  MOESIM_RETURN_IF_ERROR(Validate(spec, dims));
  // All-to-all algorithms (direct, pairwise) move n^2 pieces; refused before allocating them.
  if ((spec.op == CollectiveOp::kAllToAll || spec.op == CollectiveOp::kAllToAllV) &&
      n > limits::kMaxCollectiveTransfers / std::max<int64_t>(n, 1)) {
    return Status::InvalidInput(
        std::string(CollectiveOpName(spec.op)) + " over " + std::to_string(n) + " devices makes " +
        std::to_string(n) + "^2 " + "transfers, past the limit of " +
        std::to_string(limits::kMaxCollectiveTransfers) + " (docs/limits.md)");
  }
  const std::vector<Algorithm> ok = Supported(spec.op);
  if (std::find(ok.begin(), ok.end(), algorithm) == ok.end()) {
    std::string names;
    for (Algorithm a : ok) names += (names.empty() ? "" : ", ") + std::string(AlgorithmName(a));
    return Status::InvalidInput("algorithm " + std::string(AlgorithmName(algorithm)) +
                                " does not implement " + CollectiveOpName(spec.op) +
                                " (choose one of: " + names + ")");
  }
  CollectivePlan plan;
  plan.algorithm = AlgorithmName(algorithm);
  const Groups whole = {spec.group};
  const Reduce r = ToReduce(spec.op);
  switch (algorithm) {
    case Algorithm::kRing:
      if (spec.op == CollectiveOp::kBroadcast) {
        Broadcast(spec, options, &plan);
      } else {
        AddStage(RingFamily(r, whole, dims, spec.bytes, RingKind::kUni), &plan);
      }
      break;
    case Algorithm::kBidirectionalRing:
      AddStage(RingFamily(r, whole, dims, spec.bytes, RingKind::kBi), &plan);
      break;
    case Algorithm::kTorus:
      AddStage(RingFamily(r, whole, dims, spec.bytes, RingKind::kTorus), &plan);
      break;
    case Algorithm::kDoubleBinaryTree:
      DoubleBinaryTree(spec, options, &plan);
      break;
    case Algorithm::kHalvingDoubling:
      if ((n & (n - 1)) != 0) {
        return Status::InvalidInput("halving_doubling needs a power-of-two group; got " +
                                    std::to_string(n) + " devices");
      }
      HalvingDoubling(spec, &plan);
      break;
    case Algorithm::kHierarchical:
      Hierarchical(spec, dims, options, &plan);
      break;
    case Algorithm::kDirect:
      if (spec.op == CollectiveOp::kSendRecv) {
        Step step;
        step.transfers.push_back({spec.group[0], spec.group[1], spec.bytes});
        Stage stage;
        stage.streams.push_back({std::move(step)});
        plan.stages.push_back(std::move(stage));
      } else {
        AllToAll(spec, false, &plan);
      }
      break;
    case Algorithm::kPairwise:
      AllToAll(spec, true, &plan);
      break;
  }
  return plan;
}

HierarchicalLevels SplitHierarchical(const std::vector<GroupDim>& dims) {
  HierarchicalLevels levels;
  // Inner = the trailing dimensions of the fastest class among the nontrivial ones; when all are
  // of one class, the innermost nontrivial dimension alone.
  int fastest = 1 << 30;
  for (const GroupDim& d : dims) {
    if (d.size > 1) fastest = std::min(fastest, d.speed_class);
  }
  size_t split = dims.size();
  while (split > 0 && (dims[split - 1].size == 1 || dims[split - 1].speed_class == fastest)) {
    --split;
  }
  levels.outer.assign(dims.begin(), dims.begin() + static_cast<std::ptrdiff_t>(split));
  levels.inner.assign(dims.begin() + static_cast<std::ptrdiff_t>(split), dims.end());
  if (Product(levels.outer) == 1) {
    size_t last = dims.size();
    while (last > 0 && dims[last - 1].size == 1) --last;
    if (last == 0) return {};
    levels.outer.assign(dims.begin(), dims.begin() + static_cast<std::ptrdiff_t>(last - 1));
    levels.inner.assign(dims.begin() + static_cast<std::ptrdiff_t>(last - 1), dims.end());
  }
  return levels;
}

Algorithm LevelAlgorithm(const std::vector<GroupDim>& dims, bool bidirectional_rings) {
  switch (AutoKind(dims, bidirectional_rings)) {
    case RingKind::kTorus:
      return Algorithm::kTorus;
    case RingKind::kBi:
      return Algorithm::kBidirectionalRing;
    default:
      return Algorithm::kRing;
  }
}

Algorithm DefaultAlgorithm(CollectiveOp op, const GroupShape& shape) {
  switch (op) {
    case CollectiveOp::kAllToAll:
    case CollectiveOp::kAllToAllV:
    case CollectiveOp::kSendRecv:
      return Algorithm::kDirect;
    case CollectiveOp::kBroadcast:
      return Algorithm::kRing;
    default:
      break;
  }
  int classes_lo = 1 << 30, classes_hi = -1;
  for (const GroupDim& d : shape.dims) {
    if (d.size <= 1) continue;
    classes_lo = std::min(classes_lo, d.speed_class);
    classes_hi = std::max(classes_hi, d.speed_class);
  }
  if (classes_hi > classes_lo) return Algorithm::kHierarchical;
  return LevelAlgorithm(shape.dims);
}

}  // namespace moesim::sim
