// `moesim collective --topology T --op OP --group AXES|N --bytes MIN:MAX [--network
// analytical|flow] [--algorithm A] [--link-efficiency [KIND=]E] [--json FILE|-]`: a simulated
// nccl-tests table. One row per size doubling from MIN to MAX; each row times one collective
// alone on the topology: size, time, algbw = size / time, busbw = algbw x nccl-tests' factor
// (2(n-1)/n for all_reduce; (n-1)/n for all_gather, reduce_scatter, all_to_all; 1 for
// broadcast). Sizes take nccl-tests' binary suffixes: K = 2^10, M = 2^20, G = 2^30.
// JSON: {"rows": [{"bytes", "time_s", "algbw_bytes_per_s", "busbw_bytes_per_s"}], ...}.
#include <charconv>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "sim/collectives/algorithms.h"
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

Status Run(const Args& args) {
  auto op = sim::ParseCollectiveOp(args.op);
  if (!op.ok()) return op.status().WithPrefix("--op: ");
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
  auto hw = DefaultHardwareFor(args.topology);
  if (!hw.ok()) return hw.status();
  sim::LinkEfficiencies eff;
  MOESIM_RETURN_IF_ERROR(ParseEfficiency(args.efficiency, &hw->link_efficiency, &eff));
  auto topo = BuildTopology(args.topology, *hw);
  if (!topo.ok()) return topo.status();
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
  nlohmann::json by_kind = nlohmann::json::object();
  std::string by_kind_text;
  for (int k = 0; k < kNumLinkKinds; ++k) {
    const auto& e = eff.by_kind[static_cast<size_t>(k)];
    if (!e) continue;
    by_kind[LinkKindName(static_cast<LinkKind>(k))] = *e;
    by_kind_text +=
        std::string(", ") + LinkKindName(static_cast<LinkKind>(k)) + " " + Fmt("%.3g", *e);
  }
  j["link_efficiency_by_kind"] = by_kind;
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
                  "all_reduce | all_gather | reduce_scatter | all_to_all | broadcast")
      ->required();
  sub->add_option("--group", args->group,
                  "N = devices 0..N-1, or physical dimensions, e.g. x,y / gpu / node,gpu")
      ->required()
      ->type_name("AXES|N");
  sub->add_option("--bytes", args->bytes, "Sizes per device, doubling from MIN to MAX, e.g. 1M:8G")
      ->required()
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
  sub->add_option("--json", args->json, "Write JSON to FILE, or to stdout with -")
      ->type_name("FILE|-");
  return [args]() -> Status { return Run(*args); };
}

}  // namespace

MOESIM_REGISTER_COMMAND("collective",
                        "Simulated nccl-tests: time, algbw and busbw of one collective over sizes",
                        80, Setup);

}  // namespace moesim::cli
