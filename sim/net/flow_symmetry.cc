#include "sim/net/flow_symmetry.h"

#include <algorithm>
#include <map>

namespace moesim::sim {
namespace {

// Relabels `keys` (one per element) as dense colours in order of first appearance.
int32_t Relabel(const std::vector<std::vector<int32_t>>& keys, std::vector<int32_t>* colour) {
  std::map<std::vector<int32_t>, int32_t> ids;
  colour->resize(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    (*colour)[i] = ids.emplace(keys[i], static_cast<int32_t>(ids.size())).first->second;
  }
  return static_cast<int32_t>(ids.size());
}

}  // namespace

FlowClasses ClassifyFlows(const std::vector<LinkSpec>& links,
                          std::span<const std::span<const LinkId>> routes,
                          std::span<const double> bytes) {
  FlowClasses out;
  const size_t n = routes.size();
  out.class_of.assign(n, -1);
  std::vector<int32_t> sent;  // the flows that send something
  for (size_t f = 0; f < n; ++f) {
    if (!routes[f].empty() && bytes[f] > 0) {
      sent.push_back(static_cast<int32_t>(f));
      out.links.insert(out.links.end(), routes[f].begin(), routes[f].end());
    }
  }
  std::sort(out.links.begin(), out.links.end());
  out.links.erase(std::unique(out.links.begin(), out.links.end()), out.links.end());
  if (sent.empty()) return out;

  // Incidences by flow (local link indices, route order) and by link (flows, with multiplicity).
  const size_t nf = sent.size(), nl = out.links.size();
  std::vector<std::vector<int32_t>> flow_links(nf), link_flows(nl);
  for (size_t i = 0; i < nf; ++i) {
    for (LinkId l : routes[static_cast<size_t>(sent[i])]) {
      const auto li = static_cast<int32_t>(std::lower_bound(out.links.begin(), out.links.end(), l) -
                                           out.links.begin());
      flow_links[i].push_back(li);
      link_flows[static_cast<size_t>(li)].push_back(static_cast<int32_t>(i));
    }
  }

  // Initial colours: flows by bytes, links by capacity.
  std::vector<int32_t> fcol(nf), lcol(nl);
  {
    std::map<double, int32_t> by_bytes, by_cap;
    for (size_t i = 0; i < nf; ++i) {
      const double b = bytes[static_cast<size_t>(sent[i])];
      fcol[i] = by_bytes.emplace(b, static_cast<int32_t>(by_bytes.size())).first->second;
    }
    for (size_t li = 0; li < nl; ++li) {
      const double c = links[static_cast<size_t>(out.links[li])].bytes_per_s;
      lcol[li] = by_cap.emplace(c, static_cast<int32_t>(by_cap.size())).first->second;
    }
  }

  // Colour refinement: a link's new colour is its colour and the multiset of its flows'
  // colours; a flow's, its colour and the multiset of its links' (new) colours. Each round
  // refines the last, so it ends when neither count grows: the coarsest equitable partition.
  int32_t flow_classes = -1, link_classes = -1;
  std::vector<std::vector<int32_t>> keys;
  while (true) {
    keys.assign(nl, {});
    for (size_t li = 0; li < nl; ++li) {
      std::vector<int32_t>& k = keys[li];
      k.push_back(lcol[li]);
      for (int32_t f : link_flows[li]) k.push_back(fcol[static_cast<size_t>(f)]);
      std::sort(k.begin() + 1, k.end());
    }
    const int32_t nlc = Relabel(keys, &lcol);
    keys.assign(nf, {});
    for (size_t i = 0; i < nf; ++i) {
      std::vector<int32_t>& k = keys[i];
      k.push_back(fcol[i]);
      for (int32_t li : flow_links[i]) k.push_back(lcol[static_cast<size_t>(li)]);
      std::sort(k.begin() + 1, k.end());
    }
    const int32_t nfc = Relabel(keys, &fcol);
    if (nfc == flow_classes && nlc == link_classes) break;
    flow_classes = nfc;
    link_classes = nlc;
  }

  // Relabel() numbers colours by first appearance and `sent` is ascending, so flow colours are
  // already class ids in order of their first flow.
  out.classes = flow_classes;
  out.size.assign(static_cast<size_t>(flow_classes), 0);
  for (size_t i = 0; i < nf; ++i) {
    out.class_of[static_cast<size_t>(sent[i])] = fcol[i];
    ++out.size[static_cast<size_t>(fcol[i])];
  }
  // Representatives: the first (lowest id) link of each link class; n(L, F) counted on it.
  out.rep_links.assign(static_cast<size_t>(flow_classes), {});
  out.rep_counts.assign(static_cast<size_t>(flow_classes), {});
  std::vector<char> seen(static_cast<size_t>(link_classes), 0);
  std::vector<double> count(static_cast<size_t>(flow_classes), 0);
  std::vector<size_t> touched;
  for (size_t li = 0; li < nl; ++li) {
    if (seen[static_cast<size_t>(lcol[li])] != 0) continue;
    seen[static_cast<size_t>(lcol[li])] = 1;
    touched.clear();
    for (int32_t f : link_flows[li]) {
      const auto c = static_cast<size_t>(fcol[static_cast<size_t>(f)]);
      if (count[c]++ == 0) touched.push_back(c);
    }
    for (size_t c : touched) {
      out.rep_links[c].push_back(out.links[li]);
      out.rep_counts[c].push_back(count[c]);
      count[c] = 0;
    }
  }
  return out;
}

}  // namespace moesim::sim
