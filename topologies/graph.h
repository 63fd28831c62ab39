// graph.h
//
// The Boost.Graph view of a Topology: one vertex per topology vertex (same ids), one directed edge
// per Link, in link-id order, carrying its LinkId. Internal to topologies/ and its tests; other
// libraries use Topology's own accessors. Thread safety: immutable after Topology is built.
#pragma once

#include <boost/graph/adjacency_list.hpp>

#include "topologies/topology.h"

namespace moesim {

struct TopologyEdge {
  LinkId link = -1;
};

struct TopologyGraph {
  using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS,
                                      boost::no_property, TopologyEdge>;
  explicit TopologyGraph(size_t num_vertices) : g(num_vertices) {}
  Graph g;
};

}  // namespace moesim
