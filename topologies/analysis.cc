#include "topologies/analysis.h"

#include <algorithm>
#include <boost/graph/breadth_first_search.hpp>
#include <boost/graph/push_relabel_max_flow.hpp>
#include <cmath>
#include <limits>

#include "common/limits.h"
#include "topologies/graph.h"

namespace moesim {
namespace {

using FlowTraits = boost::adjacency_list_traits<boost::vecS, boost::vecS, boost::directedS>;
using FlowGraph = boost::adjacency_list<
    boost::vecS, boost::vecS, boost::directedS, boost::no_property,
    boost::property<
        boost::edge_capacity_t, int64_t,
        boost::property<boost::edge_residual_capacity_t, int64_t,
                        boost::property<boost::edge_reverse_t, FlowTraits::edge_descriptor>>>>;

// Adds u -> v with capacity `cap` and its zero-capacity reverse edge (the residual graph).
void AddFlowEdge(FlowGraph& g, size_t u, size_t v, int64_t cap) {
  auto capacity = boost::get(boost::edge_capacity, g);
  auto reverse = boost::get(boost::edge_reverse, g);
  const auto e = boost::add_edge(u, v, g).first;
  const auto r = boost::add_edge(v, u, g).first;
  capacity[e] = cap;
  capacity[r] = 0;
  reverse[e] = r;
  reverse[r] = e;
}

}  // namespace

std::vector<int64_t> GraphHopDistances(const Topology& topo, VertexId source) {
  const auto& g = topo.graph().g;
  std::vector<int64_t> dist(static_cast<size_t>(topo.num_vertices()), -1);
  dist[static_cast<size_t>(source)] = 0;
  using Edge = TopologyGraph::Graph::edge_descriptor;
  struct Visitor : boost::default_bfs_visitor {
    std::vector<int64_t>* dist;
    void tree_edge(Edge e, const TopologyGraph::Graph& gr) const {
      (*dist)[boost::target(e, gr)] = (*dist)[boost::source(e, gr)] + 1;
    }
  } vis;
  vis.dist = &dist;
  boost::breadth_first_search(g, boost::vertex(static_cast<size_t>(source), g),
                              boost::visitor(vis));
  return dist;
}

int64_t DiameterHops(const Topology& topo) {
  const double steps =
      static_cast<double>(topo.diameter_sources().size()) *
      static_cast<double>(topo.num_vertices() + static_cast<int64_t>(topo.links().size()));
  if (steps > static_cast<double>(limits::kMaxDiameterSearchSteps)) return -1;
  int64_t diameter = 0;
  if (topo.routes_are_shortest_paths()) {
    // One search per source instead of one per pair (a 2,048-device file took 77 s).
    for (DeviceId a : topo.diameter_sources()) {
      const std::vector<int64_t> dist = GraphHopDistances(topo, a);
      for (DeviceId b = 0; b < topo.num_devices(); ++b) {
        diameter = std::max(diameter, dist[static_cast<size_t>(b)]);
      }
    }
    return diameter;
  }
  std::vector<LinkId> route;
  for (DeviceId a : topo.diameter_sources()) {
    for (DeviceId b = 0; b < topo.num_devices(); ++b) {
      if (a == b) continue;
      topo.ComputeRoute(a, b, &route);
      diameter = std::max(diameter, static_cast<int64_t>(route.size()));
    }
  }
  return diameter;
}

double MaxFlowBytesPerS(const Topology& topo, const std::vector<DeviceId>& from,
                        const std::vector<DeviceId>& to) {
  const size_t n = static_cast<size_t>(topo.num_vertices());
  const size_t source = n, sink = n + 1;
  FlowGraph g(n + 2);
  // Capacities in whole units of `unit` bytes/s: integer arithmetic keeps push-relabel exact.
  // The unit is 1 B/s unless the links' rates could sum past 2^60, so that every sum
  // push-relabel forms (at most all capacities together) stays inside int64_t.
  double max_rate = 0;
  for (const Link& l : topo.links()) max_rate = std::max(max_rate, l.bytes_per_s);
  const double unit = std::max(
      1.0,
      std::ceil(max_rate / 0x1p60 * static_cast<double>(std::max<size_t>(topo.links().size(), 1))));
  // A device's source (sink) edge carries at most what its links can send (receive).
  std::vector<int64_t> out_cap(n, 0), in_cap(n, 0);
  for (const Link& l : topo.links()) {
    const auto cap = static_cast<int64_t>(std::llround(l.bytes_per_s / unit));
    AddFlowEdge(g, static_cast<size_t>(l.src), static_cast<size_t>(l.dst), cap);
    out_cap[static_cast<size_t>(l.src)] += cap;
    in_cap[static_cast<size_t>(l.dst)] += cap;
  }
  for (DeviceId d : from)
    AddFlowEdge(g, source, static_cast<size_t>(d), out_cap[static_cast<size_t>(d)]);
  for (DeviceId d : to)
    AddFlowEdge(g, static_cast<size_t>(d), sink, in_cap[static_cast<size_t>(d)]);
  const int64_t flow = boost::push_relabel_max_flow(g, source, sink);
  return static_cast<double>(flow) * unit;
}

double BisectionBytesPerS(const Topology& topo) {
  const int64_t n = topo.num_devices();
  if (n < 2) return 0;
  double best = std::numeric_limits<double>::infinity();
  for (const auto& order : topo.bisection_orders()) {
    const auto half = static_cast<std::ptrdiff_t>(n / 2);
    const std::vector<DeviceId> a(order.begin(), order.begin() + half);
    const std::vector<DeviceId> b(order.begin() + half, order.end());
    best = std::min(best, MaxFlowBytesPerS(topo, a, b));
  }
  return best;
}

TopologySummary Summarize(const Topology& topo) {
  TopologySummary s;
  s.num_devices = topo.num_devices();
  s.num_vertices = topo.num_vertices();
  s.num_links = static_cast<int64_t>(topo.links().size());
  s.links_by_kind = topo.LinkCountsByKind();
  s.diameter_hops = DiameterHops(topo);
  s.bisection_bytes_per_s = BisectionBytesPerS(topo);
  return s;
}

}  // namespace moesim
