// flow_symmetry.h
//
// Flows identical by symmetry. A group of flows that start together (one collective step) is
// split into classes whose members must get the same max-min fair rate: the coarsest equitable
// partition of the bipartite graph of flows and the links they cross (colour refinement, the
// 1-dimensional Weisfeiler-Leman algorithm), starting from flows coloured by their bytes and
// links by their capacity.
//
// Equitable: every flow of class F crosses the same number of links of class L (counted with
// multiplicity), and every link of class L is crossed by the same number n(L, F) of flows of F.
// Then, on a network where these flows are alone, progressive filling keeps the flows of a class
// at one rate and the links of a class at one remaining capacity, step by step (a link of L has
// share (C_L - sum_F n(L, F) x_F) / sum_F n(L, F) over the unfixed classes, the same on each),
// so the max-min allocation is that of the quotient system (in floating point to the bit but
// where constraints tie and the full solve rounds their remaining capacity in another order): one
// variable per flow class, one constraint per link class (its representative link), the variable of
// F charged n(L, F) x its rate on L's representative. Every flow of a class also sends the same
// bytes, so the members finish their bandwidth phase together. FlowNetwork::StartGroup uses this to
// run a collective step alone on its links as one weighted flow per class (see flow_network.h for
// when it splits).
//
// Units: bytes, bytes/s. Invariants of the result: class ids 0..classes-1 in order of their
// first flow; representatives are the lowest link id of their class; a flow with no bytes or an
// empty route is in no class (-1). Deterministic: no hashing, ordered maps only.
// Cost: O(E log E) per refinement round for the E (flow, link) incidences; rounds are few (at
// most the number of classes). Thread safety: a pure function.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sim/net/network.h"

namespace moesim::sim {

struct FlowClasses {
  int32_t classes = 0;
  std::vector<int32_t> class_of;  // by flow; -1 = nothing to send
  std::vector<int32_t> size;      // by class: its flows
  // By class: the quotient variable's links (one representative per link class it crosses, in
  // ascending id) and how many of the class's flows cross that representative.
  std::vector<std::vector<LinkId>> rep_links;
  std::vector<std::vector<double>> rep_counts;
  std::vector<LinkId> links;  // every link a flow crosses, distinct, ascending
};

// The classes of flows identical by symmetry among flows i (routes[i], bytes[i]) started
// together on `links`. REQUIRES: routes.size() == bytes.size(); every id a valid link.
FlowClasses ClassifyFlows(const std::vector<LinkSpec>& links,
                          std::span<const std::span<const LinkId>> routes,
                          std::span<const double> bytes);

}  // namespace moesim::sim
