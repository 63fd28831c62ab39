// `moesim collective --topology T --op OP --group AXES|N --bytes MIN:MAX [--network
// analytical|flow] [--algorithm A] [--link-efficiency [KIND=]E] [--json FILE|-]`: a simulated
// nccl-tests table. One row per size doubling from MIN to MAX; each row times one collective
// alone on the topology: size, time, algbw = size / time, busbw = algbw x nccl-tests' factor
// (2(n-1)/n for all_reduce; (n-1)/n for all_gather, reduce_scatter, all_to_all; 1 for
// broadcast). Sizes take nccl-tests' binary suffixes: K = 2^10, M = 2^20, G = 2^30.
// JSON: {"rows": [{"bytes", "time_s", "algbw_bytes_per_s", "busbw_bytes_per_s"}], ...}.
//
// `--op dispatch|combine` times MoE token dispatch / combine instead (sim/collectives/
// dispatch.h): one row per EP size (`--ep 8,16,32,64`: devices 0..EP-1, or one `--group`), with
// the kernel time, the layout exchange apart, and DeepEP's bottleneck bandwidth (logical bytes
// per rank over the kernel time: RDMA when the group spans nodes, else NVLink); on an H800
// topology with DeepEP's benchmark workload, the published figure and the error.
// JSON: {"rows": [{"ep", "nodes", "ranks_per_node", "time_s", "layout_time_s",
// "bottleneck_bytes", "bottleneck_bytes_per_s", "bottleneck_link", "rdma_bytes", "nvlink_bytes",
// "published_bytes_per_s" (null), "error" (null)}], ...}.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "sim/collectives/algorithms.h"
#include "sim/collectives/dispatch.h"
#include "sim/collectives/runner.h"
#include "sim/topology/topology_network.h"
#include "topologies/topology.h"

namespace moesim::cli {
namespace {

struct Args {
  std::string topology;
  std::string op;
  std::string group;
  std::string bytes;
  std::string network = "analytical";
  std::string algorithm;
  std::vector<std::string> efficiency;
  std::string json;
  // --op dispatch | combine
  std::string ep;
  int64_t tokens = 4096;
  int64_t hidden = 7168;
  int64_t experts = 256;
  int64_t top_k = 8;
  int64_t max_nodes = 4;
  int64_t ranks_per_node = 0;
  std::string dispatch_precision = "fp8";
  std::string dispatcher = "hierarchical";
};

Expected<int64_t> ParseSize(const std::string& text) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  int64_t scale = 1;
  if (ec == std::errc() && ptr + 1 == end) {
    switch (*ptr) {
      case 'K':
      case 'k':
        scale = int64_t{1} << 10;
        break;
      case 'M':
      case 'm':
        scale = int64_t{1} << 20;
        break;
      case 'G':
      case 'g':
        scale = int64_t{1} << 30;
        break;
      default:
        ec = std::errc::invalid_argument;
    }
    ++ptr;
  }
  if (ec != std::errc() || ptr != end || v < 1 || v > (int64_t{1} << 50) / scale) {
    return Status::InvalidInput("--bytes: \"" + text +
                                "\" is not a size (a positive integer, optionally with K, M or G)");
  }
  return v * scale;
}

Status ParseEfficiency(const std::vector<std::string>& items, double* uniform,
                       sim::LinkEfficiencies* eff) {
  for (const std::string& item : items) {
    const size_t eq = item.find('=');
    const std::string value = eq == std::string::npos ? item : item.substr(eq + 1);
    double e = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), e);
    if (ec != std::errc() || ptr != value.data() + value.size() || !(e > 0) || e > 1) {
      return Status::InvalidInput("--link-efficiency " + item +
                                  ": the efficiency must be a number in (0, 1]");
    }
    if (eq == std::string::npos) {
      *uniform = e;
      continue;
    }
    const std::string kind = item.substr(0, eq);
    int k = 0;
    std::string names;
    for (; k < kNumLinkKinds; ++k) {
      std::string name = LinkKindName(static_cast<LinkKind>(k));
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      names += (names.empty() ? "" : ", ") + name;
      std::string lower = kind;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower == name) break;
    }
    if (k == kNumLinkKinds) {
      return Status::InvalidInput("--link-efficiency " + item + ": unknown link kind \"" + kind +
                                  "\" (one of: " + names + ")");
    }
    eff->by_kind[static_cast<size_t>(k)] = e;
  }
  return Status::Ok();
}

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

// The per-kind link efficiencies into j["link_efficiency_by_kind"]; returns them as text
// (", KIND E" each) for the table's header.
std::string PutEfficiencies(const sim::LinkEfficiencies& eff, nlohmann::json* j) {
  nlohmann::json by_kind = nlohmann::json::object();
  std::string text;
  for (int k = 0; k < kNumLinkKinds; ++k) {
    const auto& e = eff.by_kind[static_cast<size_t>(k)];
    if (!e) continue;
    by_kind[LinkKindName(static_cast<LinkKind>(k))] = *e;
    text += std::string(", ") + LinkKindName(static_cast<LinkKind>(k)) + " " + Fmt("%.3g", *e);
  }
  (*j)["link_efficiency_by_kind"] = by_kind;
  return text;
}

// "8,16,32" -> {8, 16, 32}.
Expected<std::vector<int64_t>> ParseEpList(const std::string& text) {
  std::vector<int64_t> out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data() + at, text.data() + comma, v);
    if (ec != std::errc() || ptr != text.data() + comma || v < 1) {
      return Status::InvalidInput("--ep " + text +
                                  ": expected positive integers separated by commas, e.g. 8,16,32");
    }
    out.push_back(v);
    at = comma + 1;
  }
  return out;
}

// Ranks per node of `group`: the product of the sizes of its fastest dimensions (its NVLink
// domain); a group of one speed class is one node.
int64_t RanksPerNode(const sim::GroupShape& shape, int64_t n) {
  if (shape.dims.empty()) return n;
  int fastest = shape.dims.front().speed_class;
  for (const sim::GroupDim& d : shape.dims) fastest = std::min(fastest, d.speed_class);
  int64_t m = 1;
  for (const sim::GroupDim& d : shape.dims) m *= d.speed_class == fastest ? d.size : 1;
  return m;
}

bool ContainsH800(std::string name) {
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name.find("H800") != std::string::npos;
}

// The topology of --topology with its default hardware and the --link-efficiency overrides.
struct TopologySetup {
  HardwareProfile hw;
  sim::LinkEfficiencies eff;
  std::shared_ptr<const Topology> topology;
};
Expected<TopologySetup> LoadTopology(const Args& args) {
  TopologySetup s;
  auto hw = DefaultHardwareFor(args.topology);
  if (!hw.ok()) return hw.status();
  s.hw = *hw;
  MOESIM_RETURN_IF_ERROR(ParseEfficiency(args.efficiency, &s.hw.link_efficiency, &s.eff));
  auto topo = BuildTopology(args.topology, s.hw);
  if (!topo.ok()) return topo.status();
  s.topology = *topo;
  return s;
}

Status RunDispatch(const Args& args, sim::DispatchDirection direction) {
  if (!args.bytes.empty() || !args.algorithm.empty()) {
    return Status::InvalidInput(std::string("--op ") + sim::DispatchDirectionName(direction) +
                                ": --bytes and --algorithm are for the nccl-tests collectives; "
                                "the sizes come from --tokens, --hidden and the routing, the "
                                "algorithm from --dispatcher");
  }
  if (args.ep.empty() == args.group.empty()) {
    return Status::InvalidInput(std::string("--op ") + sim::DispatchDirectionName(direction) +
                                ": give the EP group(s) with either --ep 8,16,... or --group");
  }
  if (args.ranks_per_node < 0) {
    return Status::InvalidInput("--ranks-per-node " + std::to_string(args.ranks_per_node) +
                                ": must be > 0 (or 0: from the topology)");
  }
  auto dispatcher = sim::ParseDispatcher(args.dispatcher);
  if (!dispatcher.ok()) return dispatcher.status().WithPrefix("--dispatcher: ");
  if (args.dispatch_precision != "fp8" && args.dispatch_precision != "bf16") {
    return Status::InvalidInput("--dispatch-precision " + args.dispatch_precision +
                                ": one of fp8, bf16");
  }
  auto setup = LoadTopology(args);
  if (!setup.ok()) return setup.status();
  const HardwareProfile* hw = &setup->hw;
  const sim::LinkEfficiencies& eff = setup->eff;
  const std::shared_ptr<const Topology>* topo = &setup->topology;
  std::vector<std::vector<DeviceId>> groups;
  if (!args.group.empty()) {
    auto g = sim::ParseDeviceGroup(**topo, args.group);
    if (!g.ok()) return g.status();
    groups.push_back(*g);
  } else {
    auto sizes = ParseEpList(args.ep);
    if (!sizes.ok()) return sizes.status();
    for (int64_t ep : *sizes) {
      if (ep > (*topo)->num_devices()) {
        return Status::InvalidInput("--ep " + std::to_string(ep) + ": topology \"" + args.topology +
                                    "\" has " + std::to_string((*topo)->num_devices()) +
                                    " devices");
      }
      auto g = sim::ParseDeviceGroup(**topo, std::to_string(ep));
      if (!g.ok()) return g.status();
      groups.push_back(*g);
    }
  }
  const bool flow = args.network == "flow";
  const sim::TopologyNetwork net = sim::TopologyNetwork::Make(*topo, *hw, eff);
  sim::AnalyticalCollectiveTimer analytical(&net.links, net.route);
  auto seconds_of = [&](const sim::CollectivePlan& plan) -> Expected<double> {
    if (flow) return sim::FlowCollectiveSeconds(plan, net.links, net.route);
    return analytical.Seconds(plan);
  };
  const bool fp8 = args.dispatch_precision == "fp8";
  const bool h800 = ContainsH800((*topo)->name());

  sim::DispatchSpec spec;
  spec.tokens_per_rank = args.tokens;
  spec.hidden = args.hidden;
  spec.num_experts = args.experts;
  spec.top_k = args.top_k;
  spec.max_nodes_per_token = args.max_nodes;
  spec.dispatch_bytes_per_element = fp8 ? 1 : 2;
  spec.dispatch_scale_bytes_per_block = fp8 ? 4 : 0;
  const char* op = sim::DispatchDirectionName(direction);

  nlohmann::json j;
  j["topology"] = (*topo)->name();
  j["chip"] = hw->chip;
  j["op"] = op;
  j["dispatcher"] = sim::DispatcherName(*dispatcher);
  j["network"] = flow ? "flow" : "analytical";
  j["tokens_per_rank"] = args.tokens;
  j["hidden"] = args.hidden;
  j["num_experts"] = args.experts;
  j["top_k"] = args.top_k;
  j["max_nodes_per_token"] = args.max_nodes;
  j["dispatch_precision"] = args.dispatch_precision;
  j["bytes_per_token"] = spec.TokenBytes(direction);
  j["link_efficiency"] = hw->link_efficiency;
  const std::string by_kind_text = PutEfficiencies(eff, &j);
  const bool table = args.json != "-";
  if (table) {
    std::cout << "# moesim collective: " << op << " (" << sim::DispatcherName(*dispatcher)
              << ") on " << (*topo)->name() << " (" << hw->chip << "), " << args.tokens
              << " tokens per rank, hidden " << args.hidden << ", top-" << args.top_k << " of "
              << args.experts << " experts, "
              << (args.max_nodes > 0 ? "at most " + std::to_string(args.max_nodes) + " nodes"
                                     : std::string("any nodes"))
              << " per token, "
              << (direction == sim::DispatchDirection::kDispatch ? (fp8 ? "FP8" : "BF16") : "BF16")
              << " " << Fmt("%.0f", spec.TokenBytes(direction)) << " B per token, "
              << (flow ? "flow" : "analytical") << " network, link efficiency "
              << Fmt("%.3g", hw->link_efficiency) << by_kind_text << "\n";
    std::cout << "# bottleneck = DeepEP's: logical bytes per rank (its own traffic included) over "
                 "the kernel time, RDMA across nodes, NVLink in one; layout exchange apart\n";
    std::cout << "#   EP  nodes  ranks/node    time(us)  layout(us)  bottleneck(GB/s)  link    "
                 "published(GB/s)   error\n";
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& group : groups) {
    const int64_t n = static_cast<int64_t>(group.size());
    const sim::GroupShape shape = sim::GroupShapeOf(**topo, group);
    spec.group = group;
    spec.ranks_per_node = args.ranks_per_node > 0 ? args.ranks_per_node : RanksPerNode(shape, n);
    auto plan = sim::BuildDispatchPlan(spec, *dispatcher, direction, shape);
    if (!plan.ok()) return plan.status().WithPrefix("EP " + std::to_string(n) + ": ");
    auto layout = sim::BuildLayoutExchangePlan(spec);
    if (!layout.ok()) return layout.status();
    auto t = seconds_of(*plan);
    if (!t.ok()) return t.status();
    auto tl = seconds_of(*layout);
    if (!tl.ok()) return tl.status();
    const sim::DispatchTraffic traffic = sim::ExpectedTraffic(spec, direction);
    const double bw = *t > 0 ? traffic.bottleneck_bytes / *t : 0;
    const int64_t nodes = spec.Routing().Nodes();
    // 0: no published figure for this setup.
    const double published = h800 && *dispatcher == sim::Dispatcher::kHierarchical
                                 ? sim::DeepEpPublishedBandwidth(spec, direction).value_or(0)
                                 : 0;
    const char* link = traffic.bottleneck_is_rdma ? "RDMA" : "NVLink";
    nlohmann::json row = {{"ep", n},
                          {"nodes", nodes},
                          {"ranks_per_node", spec.ranks_per_node},
                          {"time_s", *t},
                          {"layout_time_s", *tl},
                          {"bottleneck_bytes", traffic.bottleneck_bytes},
                          {"bottleneck_bytes_per_s", bw},
                          {"bottleneck_link", link},
                          {"rdma_bytes", traffic.rdma_bytes},
                          {"nvlink_bytes", traffic.nvlink_bytes},
                          {"published_bytes_per_s", nullptr},
                          {"error", nullptr}};
    if (published > 0) {
      row["published_bytes_per_s"] = published;
      row["error"] = bw / published - 1;
    }
    rows.push_back(row);
    if (table) {
      std::printf("%6lld  %5lld  %10lld  %10.1f  %10.1f  %16.1f  %-6s  %15s  %6s\n",
                  static_cast<long long>(n), static_cast<long long>(nodes),
                  static_cast<long long>(spec.ranks_per_node), *t * 1e6, *tl * 1e6, bw / 1e9, link,
                  published > 0 ? Fmt("%.0f", published / 1e9).c_str() : "-",
                  published > 0 ? Fmt("%+.1f%%", (bw / published - 1) * 100).c_str() : "-");
    }
  }
  std::fflush(stdout);
  j["rows"] = rows;
  if (!args.json.empty()) return WriteJson(j, args.json);
  return Status::Ok();
}

Status Run(const Args& args) {
  if (args.op == "dispatch") return RunDispatch(args, sim::DispatchDirection::kDispatch);
  if (args.op == "combine") return RunDispatch(args, sim::DispatchDirection::kCombine);
  auto op = sim::ParseCollectiveOp(args.op);
  if (!op.ok()) return op.status().WithPrefix("--op: ");
  if (args.group.empty() || args.bytes.empty()) {
    return Status::InvalidInput("--op " + args.op + ": --group and --bytes are required");
  }
  if (*op == sim::CollectiveOp::kAllToAllV || *op == sim::CollectiveOp::kSendRecv) {
    return Status::InvalidInput("--op: " + args.op +
                                " takes per-pair sizes; use all_reduce, all_gather, "
                                "reduce_scatter, all_to_all or broadcast");
  }
  const size_t colon = args.bytes.find(':');
  auto lo = ParseSize(args.bytes.substr(0, colon));
  if (!lo.ok()) return lo.status();
  auto hi = colon == std::string::npos ? lo : ParseSize(args.bytes.substr(colon + 1));
  if (!hi.ok()) return hi.status();
  if (*hi < *lo) {
    return Status::InvalidInput("--bytes " + args.bytes + ": MAX is smaller than MIN");
  }
  auto setup = LoadTopology(args);
  if (!setup.ok()) return setup.status();
  const HardwareProfile* hw = &setup->hw;
  const sim::LinkEfficiencies& eff = setup->eff;
  const std::shared_ptr<const Topology>* topo = &setup->topology;
  auto group = sim::ParseDeviceGroup(**topo, args.group);
  if (!group.ok()) return group.status();
  const sim::GroupShape shape = sim::GroupShapeOf(**topo, *group);
  sim::Algorithm algorithm = sim::DefaultAlgorithm(*op, shape);
  if (!args.algorithm.empty()) {
    auto a = sim::ParseAlgorithm(args.algorithm);
    if (!a.ok()) return a.status().WithPrefix("--algorithm: ");
    algorithm = *a;
  }
  const bool flow = args.network == "flow";
  const sim::TopologyNetwork net = sim::TopologyNetwork::Make(*topo, *hw, eff);
  sim::AnalyticalCollectiveTimer analytical(&net.links, net.route);
  const int64_t n = static_cast<int64_t>(group->size());

  std::string shape_text;
  for (const sim::GroupDim& d : shape.dims) {
    shape_text += (shape_text.empty() ? "" : "x") + std::to_string(d.size) + (d.wraps ? "w" : "");
  }
  nlohmann::json j;
  j["topology"] = (*topo)->name();
  j["chip"] = hw->chip;
  j["op"] = sim::CollectiveOpName(*op);
  j["group_size"] = n;
  j["group_shape"] = shape_text;
  j["algorithm"] = sim::AlgorithmName(algorithm);
  j["network"] = flow ? "flow" : "analytical";
  j["link_efficiency"] = hw->link_efficiency;
  const std::string by_kind_text = PutEfficiencies(eff, &j);
  nlohmann::json rows = nlohmann::json::array();
  const bool table = args.json != "-";
  if (table) {
    std::cout << "# moesim collective: " << sim::CollectiveOpName(*op) << " on " << (*topo)->name()
              << " (" << hw->chip << "), group of " << n << " (" << shape_text << "; w = wraps), "
              << sim::AlgorithmName(algorithm) << ", " << (flow ? "flow" : "analytical")
              << " network, link efficiency " << Fmt("%.3g", hw->link_efficiency) << by_kind_text
              << "\n";
    std::cout << "#        size(B)      time(us)   algbw(GB/s)   busbw(GB/s)\n";
  }
  const double factor = sim::BusBandwidthFactor(*op, n);
  for (int64_t bytes = *lo; bytes <= *hi; bytes *= 2) {
    sim::CollectiveSpec spec;
    spec.op = *op;
    spec.group = *group;
    spec.bytes = static_cast<double>(bytes);
    auto plan = sim::BuildCollectivePlan(spec, algorithm, shape);
    if (!plan.ok()) return plan.status();
    double seconds = 0;
    if (flow) {
      auto t = sim::FlowCollectiveSeconds(*plan, net.links, net.route);
      if (!t.ok()) return t.status();
      seconds = *t;
    } else {
      seconds = analytical.Seconds(*plan);
    }
    const double algbw = seconds > 0 ? static_cast<double>(bytes) / seconds : 0;
    rows.push_back({{"bytes", bytes},
                    {"time_s", seconds},
                    {"algbw_bytes_per_s", algbw},
                    {"busbw_bytes_per_s", algbw * factor}});
    if (table) {
      std::printf("%16lld  %12.2f  %12.2f  %12.2f\n", static_cast<long long>(bytes), seconds * 1e6,
                  algbw / 1e9, algbw * factor / 1e9);
    }
    if (bytes > *hi / 2) break;
  }
  std::fflush(stdout);
  j["rows"] = rows;
  if (!args.json.empty()) return WriteJson(j, args.json);
  return Status::Ok();
}

RunFn Setup(CLI::App* sub) {
  auto args = std::make_shared<Args>();
  sub->add_option("--topology", args->topology,
                  "A topology name or file: tpu-v5e:16x16, dgx-h100:4, ... (see moesim topo)")
      ->required();
  sub->add_option("--op", args->op,
                  "all_reduce | all_gather | reduce_scatter | all_to_all | broadcast | "
                  "dispatch | combine (MoE tokens)")
      ->required();
  sub->add_option("--group", args->group,
                  "N = devices 0..N-1, or physical dimensions, e.g. x,y / gpu / node,gpu "
                  "(required but with dispatch / combine, which may take --ep)")
      ->type_name("AXES|N");
  sub->add_option("--bytes", args->bytes,
                  "Sizes per device, doubling from MIN to MAX, e.g. 1M:8G (required but with "
                  "dispatch / combine)")
      ->type_name("MIN:MAX");
  sub->add_option("--network", args->network,
                  "analytical: alpha-beta per step from its bottleneck (default); flow: max-min "
                  "fair sharing of links")
      ->check(CLI::IsMember({"analytical", "flow"}));
  sub->add_option("--algorithm", args->algorithm,
                  "ring | bidir_ring | torus | double_binary_tree | halving_doubling | "
                  "hierarchical | direct | pairwise (default: by topology)");
  sub->add_option("--link-efficiency", args->efficiency,
                  "Fraction of line rate reached, for all links or one kind, e.g. 0.8 or "
                  "infiniband=0.94 (default: the hardware profile's link_efficiency)")
      ->type_name("[KIND=]E");
  sub->add_option("--ep", args->ep,
                  "dispatch / combine: EP sizes, one row each, over devices 0..EP-1, e.g. "
                  "8,16,32,64")
      ->type_name("N[,N...]");
  sub->add_option("--tokens", args->tokens, "dispatch / combine: tokens per rank (default 4096)");
  sub->add_option("--hidden", args->hidden, "dispatch / combine: hidden size (default 7168)");
  sub->add_option("--experts", args->experts,
                  "dispatch / combine: routed experts, placed contiguously on the ranks "
                  "(default 256)");
  sub->add_option("--top-k", args->top_k, "dispatch / combine: experts per token (default 8)");
  sub->add_option("--max-nodes", args->max_nodes,
                  "dispatch / combine: nodes a token may reach, 0 = any (default 4, "
                  "DeepSeek-V3's node-limited routing)");
  sub->add_option("--ranks-per-node", args->ranks_per_node,
                  "dispatch / combine: GPUs per NVLink domain (default: from the topology)");
  sub->add_option("--dispatch-precision", args->dispatch_precision,
                  "dispatch / combine: fp8 (1 byte per element + an fp32 scale per 128, as "
                  "DeepEP) or bf16; combine is bf16 (default fp8)");
  sub->add_option("--dispatcher", args->dispatcher,
                  "dispatch / combine: hierarchical (DeepEP's normal kernels) | flat "
                  "(all-to-all-v) | allgather (Megatron-Core's all-gather dispatcher)");
  sub->add_option("--json", args->json, "Write JSON to FILE, or to stdout with -")
      ->type_name("FILE|-");
  return [args]() -> Status { return Run(*args); };
}

}  // namespace

MOESIM_REGISTER_COMMAND("collective",
                        "Simulated nccl-tests: time, algbw and busbw of one collective over sizes; "
                        "MoE dispatch / combine by EP size",
                        80, Setup);

}  // namespace moesim::cli
