#include "sim/collectives/dispatch.h"

#include <algorithm>
#include <set>

#include "common/limits.h"

namespace moesim::sim {
namespace {

// A flat plan and the layout exchange have n (n - 1) transfers, which BuildCollectivePlan caps at
// limits::kMaxCollectiveTransfers = 2^22 = 2048^2 (docs/limits.md).
constexpr int64_t kMaxDispatchRanks = 2048;
constexpr int64_t kMaxTokensPerRank = int64_t{1} << 31;
constexpr int64_t kLayoutCountBytes = 4;  // DeepEP's counts are int32

struct DispatcherName_ {
  Dispatcher d;
  const char* name;
};
constexpr DispatcherName_ kDispatcherNames[] = {
    {Dispatcher::kHierarchical, "hierarchical"},
    {Dispatcher::kFlat, "flat"},
    {Dispatcher::kAllGather, "allgather"},
};

std::string Num(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// Ranks of one node in the plan: m, or n when the group fits in one node.
int64_t NodeSize(const ExpertRouting& r) { return std::min(r.ranks, r.ranks_per_node); }

void AddTransfer(DeviceId src, DeviceId dst, double bytes, DispatchDirection d, Step* step) {
  if (bytes <= 0) return;
  if (d == DispatchDirection::kDispatch) {
    step->transfers.push_back({src, dst, bytes});
  } else {
    step->transfers.push_back({dst, src, bytes});
  }
}

CollectivePlan HierarchicalPlan(const DispatchSpec& spec, DispatchDirection d) {
  const ExpertRouting r = spec.Routing();
  const DispatchFanout f = ExpectedFanout(r);
  const int64_t n = r.ranks, m = NodeSize(r), nodes = r.Nodes();
  const double t = static_cast<double>(spec.tokens_per_rank);
  const double b = spec.TokenBytes(d);
  const auto& g = spec.group;
  Stage stage;
  if (nodes > 1) {
    Step rdma;
    const double bytes = t * f.node_probability * b;
    for (int64_t s = 0; s < n; ++s) {
      for (int64_t node = 0; node < nodes; ++node) {
        if (node == s / m) continue;
        AddTransfer(g[static_cast<size_t>(s)], g[static_cast<size_t>(node * m + s % m)], bytes, d,
                    &rdma);
      }
    }
    if (!rdma.transfers.empty()) stage.streams.push_back({std::move(rdma)});
  }
  Step nvlink;
  const double bytes = static_cast<double>(nodes) * t * f.rank_probability * b;
  for (int64_t fwd = 0; fwd < n; ++fwd) {
    const int64_t base = fwd / m * m;
    for (int64_t l = 0; l < m; ++l) {
      if (base + l == fwd) continue;
      AddTransfer(g[static_cast<size_t>(fwd)], g[static_cast<size_t>(base + l)], bytes, d, &nvlink);
    }
  }
  if (!nvlink.transfers.empty()) stage.streams.push_back({std::move(nvlink)});
  CollectivePlan plan;
  plan.algorithm = "hierarchical";
  if (!stage.streams.empty()) plan.stages.push_back(std::move(stage));
  return plan;
}

}  // namespace

int64_t ExpertRouting::Nodes() const {
  return ranks <= ranks_per_node || ranks_per_node < 1 ? 1 : ranks / ranks_per_node;
}

int64_t ExpertRouting::EffectiveMaxNodes() const {
  const int64_t n = Nodes();
  return max_nodes_per_token <= 0 ? n : std::min(max_nodes_per_token, n);
}

Status ValidateRouting(const ExpertRouting& r) {
  if (r.ranks < 1 || r.ranks > limits::kMaxDevices) {
    return Status::InvalidInput("ranks=" + std::to_string(r.ranks) + " must be in [1, " +
                                std::to_string(limits::kMaxDevices) + "]");
  }
  if (r.ranks_per_node < 1 || r.ranks_per_node > limits::kMaxDevicesPerHost) {
    return Status::InvalidInput("ranks_per_node=" + std::to_string(r.ranks_per_node) +
                                " must be in [1, " + std::to_string(limits::kMaxDevicesPerHost) +
                                "]");
  }
  if (r.ranks > r.ranks_per_node && r.ranks % r.ranks_per_node != 0) {
    return Status::InvalidInput(
        "ranks=" + std::to_string(r.ranks) +
        " is not a whole number of nodes of ranks_per_node=" + std::to_string(r.ranks_per_node));
  }
  if (r.num_experts < 1 || r.num_experts > limits::kMaxExperts || r.num_experts % r.ranks != 0) {
    return Status::InvalidInput("num_experts=" + std::to_string(r.num_experts) +
                                " must be a positive multiple of ranks=" + std::to_string(r.ranks) +
                                ", at most " + std::to_string(limits::kMaxExperts));
  }
  if (r.max_nodes_per_token < 0) {
    return Status::InvalidInput("max_nodes_per_token=" + std::to_string(r.max_nodes_per_token) +
                                " must be >= 0 (0 = unlimited)");
  }
  const int64_t choosable = r.EffectiveMaxNodes() * (r.num_experts / r.Nodes());
  if (r.top_k < 1 || r.top_k > choosable) {
    return Status::InvalidInput("top_k=" + std::to_string(r.top_k) + " must be in [1, " +
                                std::to_string(choosable) +
                                "] (the experts of the nodes a token may reach)");
  }
  return Status::Ok();
}

double MissAllProbability(int64_t a, int64_t b, int64_t k) {
  if (a - b < k) return 0;
  double p = 1;
  for (int64_t i = 0; i < k; ++i) {
    p *= static_cast<double>(a - b - i) / static_cast<double>(a - i);
  }
  return p;
}

DispatchFanout ExpectedFanout(const ExpertRouting& r) {
  const int64_t n = r.ranks, nodes = r.Nodes(), reach = r.EffectiveMaxNodes();
  const int64_t per_node = r.num_experts / nodes, per_rank = r.num_experts / n;
  const int64_t pool = reach * per_node;  // experts of the M' chosen nodes
  const double chosen = static_cast<double>(reach) / static_cast<double>(nodes);
  DispatchFanout f;
  if (reach < nodes && 2 * reach <= r.top_k) {
    // Every chosen node gets one expert, uniform in the node, and the other k - M' are uniform
    // among the pool's remaining experts: a rank of a chosen node is missed when the node's own
    // expert is elsewhere in the node and the others all miss it.
    f.node_probability = chosen;
    f.rank_probability =
        chosen * (1 - (1 - static_cast<double>(per_rank) / static_cast<double>(per_node)) *
                          MissAllProbability(pool - reach, per_rank, r.top_k - reach));
  } else {
    f.rank_probability = chosen * (1 - MissAllProbability(pool, per_rank, r.top_k));
    f.node_probability = chosen * (1 - MissAllProbability(pool, per_node, r.top_k));
  }
  f.ranks = static_cast<double>(n) * f.rank_probability;
  f.other_ranks = static_cast<double>(n - 1) * f.rank_probability;
  f.nodes = static_cast<double>(nodes) * f.node_probability;
  f.other_nodes = static_cast<double>(nodes - 1) * f.node_probability;
  f.remote_ranks = static_cast<double>(n - NodeSize(r)) * f.rank_probability;
  return f;
}

const char* DispatcherName(Dispatcher d) {
  for (const auto& e : kDispatcherNames) {
    if (e.d == d) return e.name;
  }
  return "?";
}

Expected<Dispatcher> ParseDispatcher(const std::string& name) {
  std::string all;
  for (const auto& e : kDispatcherNames) {
    if (name == e.name) return e.d;
    all += (all.empty() ? "" : ", ") + std::string(e.name);
  }
  return Status::InvalidInput("unknown dispatcher \"" + name + "\" (one of: " + all + ")");
}

const char* DispatchDirectionName(DispatchDirection d) {
  return d == DispatchDirection::kDispatch ? "dispatch" : "combine";
}

ExpertRouting DispatchSpec::Routing() const {
  ExpertRouting r;
  r.ranks = static_cast<int64_t>(group.size());
  r.ranks_per_node = ranks_per_node;
  r.num_experts = num_experts;
  r.top_k = top_k;
  r.max_nodes_per_token = max_nodes_per_token;
  return r;
}

double DispatchSpec::TokenBytes(DispatchDirection d) const {
  const double h = static_cast<double>(hidden);
  if (d == DispatchDirection::kCombine) return h * combine_bytes_per_element;
  const int64_t blocks = (hidden + scale_block_elements - 1) / scale_block_elements;
  return h * dispatch_bytes_per_element +
         static_cast<double>(blocks) * dispatch_scale_bytes_per_block;
}

Status ValidateDispatchSpec(const DispatchSpec& spec) {
  const int64_t n = static_cast<int64_t>(spec.group.size());
  if (n < 1 || n > kMaxDispatchRanks) {
    return Status::InvalidInput("the EP group has " + std::to_string(n) +
                                " ranks; it must have 1 to " + std::to_string(kMaxDispatchRanks));
  }
  if (std::set<DeviceId>(spec.group.begin(), spec.group.end()).size() != spec.group.size()) {
    return Status::InvalidInput("the EP group lists a device twice");
  }
  MOESIM_RETURN_IF_ERROR(ValidateRouting(spec.Routing()));
  if (spec.tokens_per_rank < 1 || spec.tokens_per_rank > kMaxTokensPerRank) {
    return Status::InvalidInput("tokens_per_rank=" + std::to_string(spec.tokens_per_rank) +
                                " must be in [1, 2^31]");
  }
  if (spec.hidden < 1 || spec.hidden > limits::kMaxWidth) {
    return Status::InvalidInput("hidden=" + std::to_string(spec.hidden) + " must be in [1, 2^20]");
  }
  auto element = [](const char* name, double v) {
    return v > 0 && v <= 8 ? Status::Ok()
                           : Status::InvalidInput(std::string(name) + "=" + Num(v) +
                                                  " must be in (0, 8] bytes");
  };
  MOESIM_RETURN_IF_ERROR(element("dispatch_bytes_per_element", spec.dispatch_bytes_per_element));
  MOESIM_RETURN_IF_ERROR(element("combine_bytes_per_element", spec.combine_bytes_per_element));
  if (!(spec.dispatch_scale_bytes_per_block >= 0) || spec.dispatch_scale_bytes_per_block > 64) {
    return Status::InvalidInput("dispatch_scale_bytes_per_block=" +
                                Num(spec.dispatch_scale_bytes_per_block) + " must be in [0, 64]");
  }
  if (spec.scale_block_elements < 1 || spec.scale_block_elements > limits::kMaxWidth) {
    return Status::InvalidInput(
        "scale_block_elements=" + std::to_string(spec.scale_block_elements) +
        " must be in [1, 2^20]");
  }
  return Status::Ok();
}

DispatchTraffic ExpectedTraffic(const DispatchSpec& spec, DispatchDirection d) {
  const ExpertRouting r = spec.Routing();
  const DispatchFanout f = ExpectedFanout(r);
  const int64_t n = r.ranks, m = NodeSize(r), nodes = r.Nodes();
  const double t = static_cast<double>(spec.tokens_per_rank), b = spec.TokenBytes(d);
  DispatchTraffic out;
  out.rdma_bytes = t * f.other_nodes * b;
  out.nvlink_bytes =
      static_cast<double>(m - 1) * static_cast<double>(nodes) * t * f.rank_probability * b;
  out.flat_remote_bytes = t * f.remote_ranks * b;
  out.flat_local_bytes = static_cast<double>(m - 1) * t * f.rank_probability * b;
  out.bottleneck_is_rdma = nodes > 1;
  out.bottleneck_bytes =
      nodes > 1 ? t * f.nodes * b : t * static_cast<double>(n) * f.rank_probability * b;
  return out;
}

namespace {

// `bytes` from every member of `group` to every other, in one direct step, named `name`.
Expected<CollectivePlan> UniformAllToAll(const std::vector<DeviceId>& group, double bytes,
                                         const char* name) {
  const int64_t n = static_cast<int64_t>(group.size());
  CollectiveSpec c;
  c.op = CollectiveOp::kAllToAllV;
  c.group = group;
  c.matrix.assign(static_cast<size_t>(n * n), bytes);
  for (int64_t i = 0; i < n; ++i) c.matrix[static_cast<size_t>(i * n + i)] = 0;
  auto plan = BuildCollectivePlan(c, Algorithm::kDirect);
  if (plan.ok()) plan->algorithm = name;
  return plan;
}

}  // namespace

Expected<CollectivePlan> BuildDispatchPlan(const DispatchSpec& spec, Dispatcher dispatcher,
                                           DispatchDirection d, const GroupShape& shape) {
  MOESIM_RETURN_IF_ERROR(ValidateDispatchSpec(spec));
  const int64_t n = static_cast<int64_t>(spec.group.size());
  const double t = static_cast<double>(spec.tokens_per_rank), b = spec.TokenBytes(d);
  switch (dispatcher) {
    case Dispatcher::kHierarchical:
      return HierarchicalPlan(spec, d);
    case Dispatcher::kFlat: {
      return UniformAllToAll(spec.group, t * ExpectedFanout(spec.Routing()).rank_probability * b,
                             "flat");
    }
    case Dispatcher::kAllGather: {
      CollectiveSpec c;
      c.op = d == DispatchDirection::kDispatch ? CollectiveOp::kAllGather
                                               : CollectiveOp::kReduceScatter;
      c.group = spec.group;
      c.bytes = static_cast<double>(n) * t * b;
      auto plan = BuildCollectivePlan(c, DefaultAlgorithm(c.op, shape), shape);
      if (plan.ok()) plan->algorithm = "allgather (" + plan->algorithm + ")";
      return plan;
    }
  }
  return Status::Internal("unknown dispatcher");
}

Expected<CollectivePlan> BuildLayoutExchangePlan(const DispatchSpec& spec) {
  MOESIM_RETURN_IF_ERROR(ValidateDispatchSpec(spec));
  const int64_t n = static_cast<int64_t>(spec.group.size());
  return UniformAllToAll(
      spec.group, static_cast<double>((1 + spec.num_experts / n) * kLayoutCountBytes), "layout");
}

std::optional<double> DeepEpPublishedBandwidth(const DispatchSpec& spec, DispatchDirection d) {
  // deepseek-ai/DeepEP docs/legacy.md, "Normal kernels with NVLink and RDMA forwarding" (GB/s):
  // EP, dispatch, combine.
  struct Row {
    int64_t ep;
    double dispatch, combine;
  };
  constexpr Row kRows[] = {{8, 153, 158}, {16, 43, 43}, {32, 58, 57}, {64, 51, 50}};
  const ExpertRouting r = spec.Routing();
  const bool workload =
      spec.tokens_per_rank == 4096 && spec.hidden == 7168 && spec.num_experts == 256 &&
      spec.top_k == 8 && spec.ranks_per_node == 8 && spec.dispatch_bytes_per_element == 1 &&
      spec.dispatch_scale_bytes_per_block == 4 && spec.scale_block_elements == 128 &&
      spec.combine_bytes_per_element == 2 && ValidateRouting(r).ok() &&
      r.EffectiveMaxNodes() == std::min<int64_t>(4, r.Nodes());
  if (!workload) return std::nullopt;
  for (const Row& row : kRows) {
    if (row.ep == r.ranks) {
      return (d == DispatchDirection::kDispatch ? row.dispatch : row.combine) * 1e9;
    }
  }
  return std::nullopt;
}

}  // namespace moesim::sim
