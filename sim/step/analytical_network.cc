#include "sim/step/analytical_network.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "sim/collectives/dispatch.h"
#include "sim/collectives/runner.h"

namespace moesim {

AnalyticalNetwork::AnalyticalNetwork(std::shared_ptr<const Topology> topo, MeshPlacement placement,
                                     double link_efficiency, const Mesh& mesh,
                                     const sim::LinkEfficiencies& by_kind)
    : net_(sim::TopologyNetwork::Make(std::move(topo), link_efficiency, by_kind)),
      placement_(std::move(placement)),
      pipeline_axis_(mesh.pipeline_axis) {
  axis_index_.assign(static_cast<size_t>(mesh.num_axes), -1);
  for (int a = 0; a < mesh.num_axes; ++a) {
    const std::string& name = mesh.Name(static_cast<MeshAxis>(a));
    for (size_t i = 0; i < placement_.axis_names.size(); ++i) {
      if (placement_.axis_names[i] == name)
        axis_index_[static_cast<size_t>(a)] = static_cast<int>(i);
    }
  }
  stage_of_.assign(static_cast<size_t>(net_.topology->num_devices()), 0);
  const int pi = axis_index_[static_cast<size_t>(pipeline_axis_)];
  if (pi >= 0) {
    int64_t inner = 1;
    for (size_t i = static_cast<size_t>(pi) + 1; i < placement_.axis_sizes.size(); ++i) {
      inner *= placement_.axis_sizes[i];
    }
    const int64_t stages = placement_.axis_sizes[static_cast<size_t>(pi)];
    for (size_t idx = 0; idx < placement_.device_of.size(); ++idx) {
      stage_of_[static_cast<size_t>(placement_.device_of[idx])] =
          static_cast<int32_t>((static_cast<int64_t>(idx) / inner) % stages);
    }
  }
  pipeline_groups_ = Groups({pipeline_axis_});
}

std::vector<std::vector<DeviceId>> AnalyticalNetwork::Groups(
    const std::vector<MeshAxis>& axes) const {
  const auto& sizes = placement_.axis_sizes;
  std::vector<bool> in(sizes.size(), false);
  for (MeshAxis a : axes) in[static_cast<size_t>(axis_index_[static_cast<size_t>(a)])] = true;
  // A group is the mesh positions that agree on every axis outside `axes`; groups in row-major
  // order of those coordinates (the order of their coordinate tuples), members in mesh order.
  // Per axis, the stride of its coordinate in the group index (0 on the group's own axes).
  std::vector<int64_t> group_stride(sizes.size(), 0);
  int64_t num_groups = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    if (in[i]) continue;
    group_stride[i] = num_groups;
    num_groups *= sizes[i];
  }
  const int64_t total = static_cast<int64_t>(placement_.device_of.size());
  std::vector<std::vector<DeviceId>> out(static_cast<size_t>(num_groups));
  for (auto& g : out) g.reserve(static_cast<size_t>(total / num_groups));
  for (int64_t idx = 0; idx < total; ++idx) {
    int64_t rest = idx, group = 0;
    for (size_t i = sizes.size(); i-- > 0;) {
      group += rest % sizes[i] * group_stride[i];
      rest /= sizes[i];
    }
    out[static_cast<size_t>(group)].push_back(placement_.device_of[static_cast<size_t>(idx)]);
  }
  std::erase_if(out, [](const std::vector<DeviceId>& g) { return g.empty(); });
  return out;
}

std::pair<double, double> AnalyticalNetwork::LoadOverRate(
    const std::vector<std::pair<DeviceId, DeviceId>>& pairs) const {
  const auto& links = net_.links;
  std::vector<double> load(links.size(), 0);
  std::vector<LinkId> route;
  double latency = 0;
  for (const auto& [a, b] : pairs) {
    if (a == b) continue;
    // Not the topology's route cache: rings over every group would only bloat it.
    net_.topology->ComputeRoute(a, b, &(route = {}));
    double l = 0;
    for (LinkId id : route) {
      load[static_cast<size_t>(id)] += 1;
      l += links[static_cast<size_t>(id)].latency_s;
    }
    latency = std::max(latency, l);
  }
  double worst = 0;
  for (size_t l = 0; l < links.size(); ++l) {
    if (load[l] > 0) worst = std::max(worst, load[l] / links[l].bytes_per_s);
  }
  return {worst, latency};
}

AnalyticalNetwork::AxesNet AnalyticalNetwork::Compute(const std::vector<MeshAxis>& axes) const {
  AxesNet net;
  net.groups = Groups(axes);
  net.n = static_cast<int64_t>(net.groups.front().size());
  for (const auto& g : net.groups) {
    net.sorted.push_back(g);
    std::sort(net.sorted.back().begin(), net.sorted.back().end());
  }
  net.shape = sim::GroupShapeOf(*net_.topology, net.sorted.front());
  const auto& dims = net.shape.dims;
  net.dims.resize(dims.size());
  if (net.n > 1) {
    // Per shape dimension: the lines along it of every group (members whose row-major index over
    // the shape differs only in that digit), as the algorithms' rings run them.
    bool no_slower = true, faster = false;
    for (size_t j = 0; j < dims.size(); ++j) {
      DimRates& r = net.dims[j];
      r.size = dims[j].size;
      if (r.size < 2) continue;
      int64_t stride = 1;
      for (size_t k = j + 1; k < dims.size(); ++k) stride *= dims[k].size;
      std::vector<std::pair<DeviceId, DeviceId>> fwd, both;
      for (const auto& g : net.sorted) {
        for (int64_t i = 0; i < net.n; ++i) {
          if ((i / stride) % r.size != 0) continue;
          for (int64_t k = 0; k < r.size; ++k) {
            const DeviceId a = g[static_cast<size_t>(i + k * stride)];
            const DeviceId b = g[static_cast<size_t>(i + ((k + 1) % r.size) * stride)];
            fwd.push_back({a, b});
            both.push_back({a, b});
            both.push_back({b, a});
          }
        }
      }
      std::tie(r.uni_s_per_byte, r.uni_latency_s) = LoadOverRate(fwd);
      std::tie(r.bi_s_per_byte, r.bi_latency_s) = LoadOverRate(both);
      r.bi_s_per_byte /= 2;  // each direction carries half the data
      no_slower = no_slower && r.bi_s_per_byte <= r.uni_s_per_byte;
      faster = faster || r.bi_s_per_byte < r.uni_s_per_byte * (1 - 1e-9);
    }
    net.bidirectional = no_slower && faster;
  }
  // Pipeline neighbours: stage p to stage p + 1, every other coordinate equal (read from the
  // pipeline axis's entry only).
  const int pi = axis_index_[static_cast<size_t>(pipeline_axis_)];
  if (axes == std::vector<MeshAxis>{pipeline_axis_} && pi >= 0 &&
      placement_.axis_sizes[static_cast<size_t>(pi)] > 1) {
    for (const auto& g : pipeline_groups_) {
      for (size_t i = 0; i + 1 < g.size(); ++i) net.p2p_pairs.push_back({g[i], g[i + 1]});
    }
    std::tie(net.p2p_load_over_rate, net.p2p_latency_s) = LoadOverRate(net.p2p_pairs);
  }
  return net;
}

const AnalyticalNetwork::AxesNet& AnalyticalNetwork::Net(const std::vector<MeshAxis>& axes) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(axes);
  if (it == cache_.end()) {
    it = cache_.emplace(axes, std::make_unique<AxesNet>(Compute(axes))).first;
  }
  return *it->second;
}

const AnalyticalNetwork::ShiftNet& AnalyticalNetwork::Shift(
    const std::vector<MeshAxis>& axes) const {
  const AxesNet& net = Net(axes);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = shift_cache_.find(axes);
  if (it != shift_cache_.end()) return *it->second;
  std::vector<std::pair<DeviceId, DeviceId>> pairs;
  for (const auto& g : net.groups) {
    for (size_t i = 0; g.size() > 1 && i < g.size(); ++i)
      pairs.push_back({g[i], g[(i + 1) % g.size()]});
  }
  auto shift = std::make_unique<ShiftNet>();
  std::tie(shift->load_over_rate, shift->latency_s) = LoadOverRate(pairs);
  return *shift_cache_.emplace(axes, std::move(shift)).first->second;
}

const AnalyticalNetwork::A2aNet& AnalyticalNetwork::A2a(const std::vector<MeshAxis>& axes) const {
  const AxesNet& net = Net(axes);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = a2a_cache_.find(axes);
  if (it != a2a_cache_.end()) return *it->second;
  // Every ordered pair of every group, exactly (a sample of sources overestimates the most loaded
  // link: the maximum of noisy counts is biased up). In closed form on torus slices and GPU
  // clusters (Topology::AddAllPairsLoads), else O(n^2) routes per group; once per axis set, on the
  // first all-to-all over it, shared by every point of a sweep.
  auto a2a = std::make_unique<A2aNet>();
  const auto& links = net_.links;
  std::vector<double> pairs(links.size(), 0);
  for (const auto& g : net.groups) net_.topology->AddAllPairsLoads(g, &pairs, &a2a->latency_s);
  for (size_t l = 0; l < links.size(); ++l) {
    if (pairs[l] > 0) {
      a2a->pairs_per_link_over_rate =
          std::max(a2a->pairs_per_link_over_rate, pairs[l] / links[l].bytes_per_s);
    }
  }
  return *a2a_cache_.emplace(axes, std::move(a2a)).first->second;
}

sim::Algorithm AnalyticalNetwork::PickAlgorithm(const AxesNet& net, sim::CollectiveOp op) {
  const sim::Algorithm a = sim::DefaultAlgorithm(op, net.shape);
  return a == sim::Algorithm::kRing && net.bidirectional ? sim::Algorithm::kBidirectionalRing : a;
}

double AnalyticalNetwork::RingFamilyTime(const AxesNet& net, Pass pass, size_t first, size_t last,
                                         double bytes, sim::Algorithm algorithm) const {
  int64_t n = 1;
  std::vector<size_t> nd;  // nontrivial dimensions, outermost first
  for (size_t j = first; j < last; ++j) {
    n *= net.dims[j].size;
    if (net.dims[j].size > 1) nd.push_back(j);
  }
  if (n <= 1) return 0;
  if (algorithm == sim::Algorithm::kTorus && nd.size() <= 1) {
    algorithm = sim::Algorithm::kBidirectionalRing;
  }
  const double twice = pass == Pass::kAllReduce ? 2 : 1;
  if (algorithm != sim::Algorithm::kTorus) {
    // One nontrivial dimension (sim::LevelAlgorithm picks torus on more).
    const DimRates& r = net.dims[nd.front()];
    const bool bi = algorithm == sim::Algorithm::kBidirectionalRing;
    const double steps = twice * static_cast<double>(n - 1);
    return steps * (bytes / static_cast<double>(n) * (bi ? r.bi_s_per_byte : r.uni_s_per_byte) +
                    (bi ? r.bi_latency_s : r.uni_latency_s));
  }
  // Torus rounds: in round r part p (of S/D) runs on dimension nd[(p + r) % D] with M / d of
  // the bytes, M its share before the round; a round lasts as long as its slowest part.
  const size_t D = nd.size();
  std::vector<double> M(D, bytes / static_cast<double>(D));
  double total = 0;
  for (size_t round = 0; round < D; ++round) {
    double slowest = 0;
    for (size_t p = 0; p < D; ++p) {
      const DimRates& r = net.dims[nd[(p + round) % D]];
      const double d = static_cast<double>(r.size);
      slowest = std::max(slowest, (d - 1) * (M[p] / d * r.bi_s_per_byte + r.bi_latency_s));
      M[p] /= d;
    }
    total += slowest;
  }
  return twice * total;
}

double AnalyticalNetwork::ReduceTime(const AxesNet& net, Pass pass, double bytes) const {
  if (net.n <= 1) return 0;
  const sim::CollectiveOp op = pass == Pass::kReduceScatter ? sim::CollectiveOp::kReduceScatter
                               : pass == Pass::kAllGather   ? sim::CollectiveOp::kAllGather
                                                            : sim::CollectiveOp::kAllReduce;
  const sim::Algorithm algorithm = PickAlgorithm(net, op);
  const size_t all = net.dims.size();
  if (algorithm != sim::Algorithm::kHierarchical) {
    return RingFamilyTime(net, pass, 0, all, bytes, algorithm);
  }
  const sim::HierarchicalLevels levels = sim::SplitHierarchical(net.shape.dims);
  const size_t split = levels.outer.size();
  double m = 1;
  for (const sim::GroupDim& d : levels.inner) m *= static_cast<double>(d.size);
  const sim::Algorithm inner = sim::LevelAlgorithm(levels.inner, net.bidirectional);
  const sim::Algorithm outer = sim::LevelAlgorithm(levels.outer, net.bidirectional);
  switch (pass) {
    case Pass::kReduceScatter:
      return RingFamilyTime(net, Pass::kReduceScatter, split, all, bytes, inner) +
             RingFamilyTime(net, Pass::kReduceScatter, 0, split, bytes / m, outer);
    case Pass::kAllGather:
      return RingFamilyTime(net, Pass::kAllGather, 0, split, bytes / m, outer) +
             RingFamilyTime(net, Pass::kAllGather, split, all, bytes, inner);
    case Pass::kAllReduce:
      return RingFamilyTime(net, Pass::kReduceScatter, split, all, bytes, inner) +
             RingFamilyTime(net, Pass::kAllReduce, 0, split, bytes / m, outer) +
             RingFamilyTime(net, Pass::kAllGather, split, all, bytes, inner);
  }
  return 0;
}

double AnalyticalNetwork::Time(const CollectiveWork& w) const {
  if (w.kind == CollectiveKind::kSendRecv) {
    const AxesNet& net = Net({pipeline_axis_});
    return w.bytes * net.p2p_load_over_rate + net.p2p_latency_s;
  }
  const AxesNet& net = Net(w.axes);
  if (net.n <= 1) return 0;
  switch (w.kind) {
    case CollectiveKind::kReduceScatter:
      return ReduceTime(net, Pass::kReduceScatter, w.bytes);
    case CollectiveKind::kAllGather:
      return ReduceTime(net, Pass::kAllGather, w.bytes);
    case CollectiveKind::kAllReduce:
      return ReduceTime(net, Pass::kAllReduce, w.bytes);
    case CollectiveKind::kAllToAll:
      if (w.exchange.dispatcher == TokenDispatcher::kAllGather) return Time(AllGatherExchange(w));
      if (w.exchange.dispatcher != TokenDispatcher::kAllToAll) {
        auto t = ExchangeTime(w);
        return t.ok() ? *t : 0;
      }
      {
        const A2aNet& a2a = A2a(w.axes);
        return w.bytes / static_cast<double>(net.n) * a2a.pairs_per_link_over_rate *
                   w.max_over_mean +
               a2a.latency_s;
      }
    case CollectiveKind::kRingShift: {
      const ShiftNet& shift = Shift(w.axes);
      return w.bytes * shift.load_over_rate + shift.latency_s;
    }
    case CollectiveKind::kSendRecv:
      break;
  }
  return 0;
}

namespace {

// One step of transfers, as a plan of one stage.
sim::CollectivePlan OneStep(const char* algorithm, sim::Step step) {
  sim::CollectivePlan plan;
  plan.algorithm = algorithm;
  if (step.transfers.empty()) return plan;
  sim::Stage stage;
  stage.streams.push_back({std::move(step)});
  plan.stages.push_back(std::move(stage));
  return plan;
}

}  // namespace

Expected<sim::CollectivePlan> AnalyticalNetwork::Plan(const CollectiveWork& w,
                                                      int32_t stage) const {
  if (w.kind == CollectiveKind::kSendRecv) {
    sim::Step step;
    if (stage < 0) {
      for (const auto& [a, b] : Net({pipeline_axis_}).p2p_pairs)
        step.transfers.push_back({a, b, w.bytes});
    } else {
      const size_t from = static_cast<size_t>(stage), to = static_cast<size_t>(w.peer_program);
      for (const auto& g : pipeline_groups_) {
        if (from < g.size() && to < g.size() && from != to) {
          step.transfers.push_back({g[from], g[to], w.bytes});
        }
      }
    }
    return OneStep("direct", std::move(step));
  }
  const AxesNet& net = Net(w.axes);
  if (net.n <= 1) return sim::CollectivePlan{};
  std::vector<size_t> chosen;
  for (size_t i = 0; i < net.groups.size(); ++i) {
    if (stage < 0 || StageOf(net.groups[i].front()) == stage) chosen.push_back(i);
  }
  if (w.kind == CollectiveKind::kAllToAll && w.exchange.dispatcher == TokenDispatcher::kAllGather) {
    return Plan(AllGatherExchange(w), stage);
  }
  if (w.kind == CollectiveKind::kAllToAll && w.exchange.dispatcher != TokenDispatcher::kAllToAll) {
    return ExchangePlan(net, w, chosen);
  }
  if (w.kind == CollectiveKind::kRingShift) {
    sim::Step step;
    for (size_t i : chosen) {
      const auto& g = net.groups[i];
      for (size_t k = 0; k < g.size(); ++k)
        step.transfers.push_back({g[k], g[(k + 1) % g.size()], w.bytes});
    }
    return OneStep("ring_shift", std::move(step));
  }
  sim::CollectiveSpec spec;
  spec.bytes = w.bytes;
  switch (w.kind) {
    case CollectiveKind::kReduceScatter:
      spec.op = sim::CollectiveOp::kReduceScatter;
      break;
    case CollectiveKind::kAllGather:
      spec.op = sim::CollectiveOp::kAllGather;
      break;
    case CollectiveKind::kAllToAll:
      spec.op = sim::CollectiveOp::kAllToAll;
      spec.bytes = w.bytes * w.max_over_mean;
      break;
    default:
      spec.op = sim::CollectiveOp::kAllReduce;
  }
  const sim::Algorithm algorithm = PickAlgorithm(net, spec.op);
  sim::AlgorithmOptions options;
  options.bidirectional_rings = net.bidirectional;
  std::vector<sim::CollectivePlan> plans;
  for (size_t i : chosen) {
    spec.group = net.sorted[i];
    auto plan = sim::BuildCollectivePlan(spec, algorithm, net.shape, options);
    if (!plan.ok()) return plan.status();
    plans.push_back(std::move(*plan));
  }
  return sim::MergeConcurrent(std::move(plans));
}

CollectiveWork AnalyticalNetwork::AllGatherExchange(const CollectiveWork& w) const {
  // Megatron-Core's allgather dispatcher: every rank all-gathers the n ranks' tokens (n T rows
  // of the pass's precision), the busiest rank's share pacing it; combine reduce-scatters them.
  const TokenExchange& x = w.exchange;
  const int64_t blocks = (x.hidden + 127) / 128;
  const double row = static_cast<double>(x.hidden) * x.bytes_per_element +
                     static_cast<double>(blocks) * x.scale_bytes_per_block;
  CollectiveWork g;
  g.kind = x.combine ? CollectiveKind::kReduceScatter : CollectiveKind::kAllGather;
  g.axes = w.axes;
  g.bytes = static_cast<double>(Net(w.axes).n) * x.tokens * row * w.max_over_mean;
  return g;
}

Expected<sim::CollectivePlan> AnalyticalNetwork::ExchangePlan(
    const AxesNet& net, const CollectiveWork& w, const std::vector<size_t>& groups) const {
  const TokenExchange& x = w.exchange;
  // The node: the group's NVLink domain, its dimensions of speed class 0.
  int64_t m = 1;
  for (const sim::GroupDim& d : net.shape.dims) {
    if (d.speed_class == 0) m *= d.size;
  }
  const int64_t n = net.n;
  m = std::min(m, n);
  const int64_t nodes = n / m;
  sim::DispatchSpec spec;
  spec.ranks_per_node = m;
  const double tokens = std::max(1.0, x.tokens);
  spec.tokens_per_rank = std::clamp<int64_t>(std::llround(tokens), 1, int64_t{1} << 31);
  spec.hidden = x.hidden;
  spec.dispatch_bytes_per_element = x.bytes_per_element;
  spec.dispatch_scale_bytes_per_block = x.scale_bytes_per_block;
  spec.combine_bytes_per_element = x.bytes_per_element;
  spec.num_experts = (x.num_experts + n - 1) / n * n;  // padded to whole experts per rank
  spec.top_k = x.top_k;
  if (x.router_num_groups > 0 && x.router_group_topk > 0) {
    const int64_t per_group = std::max<int64_t>(
        1, (nodes + x.router_num_groups - 1) / x.router_num_groups);  // nodes a group spans
    spec.max_nodes_per_token = std::min(nodes, x.router_group_topk * per_group);
  }
  const sim::DispatchDirection direction =
      x.combine ? sim::DispatchDirection::kCombine : sim::DispatchDirection::kDispatch;
  const sim::Dispatcher dispatcher = sim::Dispatcher::kHierarchical;
  // The plan is built for whole tokens; its bytes scale to the tokens the busiest rank moves.
  const double scale = tokens * w.max_over_mean / static_cast<double>(spec.tokens_per_rank);
  std::vector<sim::CollectivePlan> plans;
  for (size_t i : groups) {
    spec.group = net.sorted[i];
    auto plan = sim::BuildDispatchPlan(spec, dispatcher, direction, net.shape);
    if (!plan.ok()) return plan.status();
    for (sim::Stage& stage : plan->stages) {
      for (sim::Stream& stream : stage.streams) {
        for (sim::Step& step : stream) {
          for (sim::Transfer& t : step.transfers) t.bytes *= scale;
        }
      }
    }
    if (dispatcher == sim::Dispatcher::kHierarchical &&
        direction == sim::DispatchDirection::kDispatch) {
      // DeepEP's layout exchange (num_tokens_per_rank) comes first.
      auto layout = sim::BuildLayoutExchangePlan(spec);
      if (!layout.ok()) return layout.status();
      plan->stages.insert(plan->stages.begin(), layout->stages.begin(), layout->stages.end());
    }
    plans.push_back(std::move(*plan));
  }
  return sim::MergeConcurrent(std::move(plans));
}

Expected<double> AnalyticalNetwork::ExchangeTime(const CollectiveWork& w) const {
  if (w.exchange.dispatcher == TokenDispatcher::kAllGather) return Time(AllGatherExchange(w));
  const ExchangeKey key{w.axes, w.exchange, w.max_over_mean};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = exchange_cache_.find(key);
    if (it != exchange_cache_.end()) return it->second;
  }
  auto plan = Plan(w);
  if (!plan.ok()) return plan.status();
  sim::AnalyticalCollectiveTimer timer(&net_.links, net_.route);
  const double t = timer.Seconds(*plan);
  std::lock_guard<std::mutex> lock(mu_);
  exchange_cache_.emplace(key, t);
  return t;
}

std::vector<std::vector<DeviceId>> AnalyticalNetwork::StageGroups(const std::vector<MeshAxis>& axes,
                                                                  int32_t stage) const {
  std::vector<std::vector<DeviceId>> out;
  for (const auto& g : Net(axes).groups) {
    if (!g.empty() && StageOf(g[0]) == stage) out.push_back(g);
  }
  return out;
}

double AnalyticalNetwork::RingBytesPerS(const std::vector<MeshAxis>& axes) const {
  const AxesNet& net = Net(axes);
  if (net.n <= 1) return 0;
  const double t = ReduceTime(net, Pass::kReduceScatter, 1e9);
  const double n = static_cast<double>(net.n);
  return t > 0 ? (n - 1) / n * 1e9 / t : 0;
}

}  // namespace moesim
