#include "sim/net/flow_network.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace moesim::sim {

FlowNetwork::FlowNetwork(Engine* engine, std::vector<LinkSpec> links)
    : engine_(engine),
      links_(std::move(links)),
      link_bytes_(links_.size(), 0.0),
      link_users_(links_.size(), 0),
      link_agg_(links_.size(), -1) {
  for (const LinkSpec& l : links_) system_.AddConstraint(l.bytes_per_s);
  reporter_ = engine_->AddPendingReporter(
      [this](std::vector<std::string>* waiting) { ReportStuck(waiting); });
}

FlowNetwork::~FlowNetwork() { engine_->RemovePendingReporter(reporter_); }

void FlowNetwork::Start(std::span<const LinkId> route, double bytes, DoneFn done,
                        std::string label) {
  const SimTime latency = SimTime::FromSeconds(RouteLatencySeconds(links_, route));
  if (route.empty() || !(bytes > 0)) {
    Deliver(engine_->now() + latency, std::move(done));
    return;
  }
  for (LinkId l : route) link_bytes_[l] += bytes;
  Claim(route);
  Add(system_.AddVariable(route), bytes, latency, std::move(done), std::move(label));
}

void FlowNetwork::Claim(std::span<const LinkId> route) {
  for (LinkId l : route) {
    if (link_agg_[l] >= 0) Split(link_agg_[l]);
  }
  for (LinkId l : route) ++link_users_[l];
}

void FlowNetwork::Release(std::span<const LinkId> route) {
  for (LinkId l : route) --link_users_[l];
}

void FlowNetwork::ReleaseAggregate(int32_t a) {
  for (LinkId l : aggs_[a].links) {
    --link_users_[l];
    link_agg_[l] = -1;
  }
  aggs_[a].links.clear();
  aggs_[a].classes.clear();
  free_aggs_.push_back(a);
}

void FlowNetwork::Split(int32_t a) {
  ++split_groups_;
  const std::vector<int32_t> classes = aggs_[a].classes;
  ReleaseAggregate(a);
  for (int32_t c : classes) {
    // The class's state, moved out before Add() can reallocate flows_.
    Flow& cl = flows_[c];
    const double bytes = cl.bytes, bytes_left = cl.bytes_left, rate = cl.rate;
    const SimTime updated = cl.updated, completion_at = cl.completion_at;
    const bool scheduled = cl.scheduled;
    const int32_t group = cl.group;
    std::vector<LinkId> member_links = std::move(cl.member_links);
    std::vector<int64_t> member_ends = std::move(cl.member_ends);
    std::vector<SimTime> member_latency = std::move(cl.member_latency);
    std::string label = std::move(cl.label);
    system_.RemoveVariable(cl.var);
    flow_of_var_[cl.var] = -1;
    cl.active = false;
    cl.scheduled = false;
    ++cl.version;
    cl.group = -1;
    cl.agg = -1;
    free_flows_.push_back(c);
    int64_t begin = 0;
    for (size_t m = 0; m < member_ends.size(); ++m) {
      const std::span<const LinkId> route(member_links.data() + begin,
                                          static_cast<size_t>(member_ends[m] - begin));
      begin = member_ends[m];
      for (LinkId l : route) ++link_users_[l];
      const int32_t f = Add(system_.AddVariable(route), bytes, member_latency[m], nullptr, label);
      // Its progress so far is the class's; its completion stands unless its rate changes.
      Flow& fl = flows_[f];
      fl.group = group;
      fl.bytes_left = bytes_left;
      fl.rate = rate;
      fl.updated = updated;
      fl.scheduled = scheduled;
      if (scheduled) ScheduleCompletion(f, completion_at);
    }
  }
}

void FlowNetwork::StartGroup(std::span<const std::span<const LinkId>> routes,
                             std::span<const double> bytes, DoneFn done, const std::string& label,
                             const FlowClasses* classes) {
  if (routes.empty()) {
    Deliver(engine_->now(), std::move(done));
    return;
  }
  int32_t g;
  if (!free_groups_.empty()) {
    g = free_groups_.back();
    free_groups_.pop_back();
  } else {
    g = static_cast<int32_t>(groups_.size());
    groups_.emplace_back();
  }
  groups_[g].left = static_cast<int64_t>(routes.size());
  groups_[g].done = std::move(done);
  // One flow per class while alone on its links (fewer classes than flows, or nothing to gain).
  bool aggregate = classes != nullptr && classes->class_of.size() == routes.size() &&
                   classes->classes > 0 &&
                   classes->classes < static_cast<int32_t>(classes->class_of.size());
  for (size_t i = 0; aggregate && i < classes->links.size(); ++i) {
    aggregate = link_users_[classes->links[i]] == 0;
  }
  if (aggregate) {
    StartAggregate(routes, bytes, *classes, g, label);
    return;
  }
  for (size_t i = 0; i < routes.size(); ++i) {
    const std::span<const LinkId> route = routes[i];
    const SimTime latency = SimTime::FromSeconds(RouteLatencySeconds(links_, route));
    if (route.empty() || !(bytes[i] > 0)) {
      Deliver(engine_->now() + latency, nullptr, g);
      continue;
    }
    for (LinkId l : route) link_bytes_[l] += bytes[i];
    Claim(route);
    const int32_t f = Add(system_.AddVariable(route), bytes[i], latency, nullptr, label);
    flows_[f].group = g;
  }
}

void FlowNetwork::StartAggregate(std::span<const std::span<const LinkId>> routes,
                                 std::span<const double> bytes, const FlowClasses& classes,
                                 int32_t g, const std::string& label) {
  ++aggregated_groups_;
  int32_t a;
  if (!free_aggs_.empty()) {
    a = free_aggs_.back();
    free_aggs_.pop_back();
  } else {
    a = static_cast<int32_t>(aggs_.size());
    aggs_.emplace_back();
  }
  aggs_[a].links = classes.links;
  for (LinkId l : classes.links) {
    ++link_users_[l];
    link_agg_[l] = a;
  }
  const size_t n = static_cast<size_t>(classes.classes);
  std::vector<int32_t> flow_of_class(n, -1);
  for (size_t c = 0; c < n; ++c) {
    const int32_t f =
        Add(system_.AddReplicatedVariable(classes.rep_links[c], classes.rep_counts[c]), 0,
            SimTime(), nullptr, label);
    flows_[f].group = g;
    flows_[f].agg = a;
    flows_[f].member_links.clear();
    flows_[f].member_ends.clear();
    flows_[f].member_latency.clear();
    flow_of_class[c] = f;
    aggs_[a].classes.push_back(f);
  }
  for (size_t i = 0; i < routes.size(); ++i) {
    const std::span<const LinkId> route = routes[i];
    const SimTime latency = SimTime::FromSeconds(RouteLatencySeconds(links_, route));
    const int32_t c = classes.class_of[i];
    if (c < 0) {
      Deliver(engine_->now() + latency, nullptr, g);
      continue;
    }
    for (LinkId l : route) link_bytes_[l] += bytes[i];
    Flow& fl = flows_[flow_of_class[static_cast<size_t>(c)]];
    fl.bytes = fl.bytes_left = bytes[i];  // the same for every flow of a class
    fl.member_links.insert(fl.member_links.end(), route.begin(), route.end());
    fl.member_ends.push_back(static_cast<int64_t>(fl.member_links.size()));
    fl.member_latency.push_back(latency);
    fl.latency = std::max(fl.latency, latency);
  }
}

void FlowNetwork::StartBundle(std::span<const LinkId> links, std::span<const double> counts,
                              double bytes, SimTime latency, DoneFn done, std::string label) {
  if (links.empty() || !(bytes > 0)) {
    Deliver(engine_->now() + latency, std::move(done));
    return;
  }
  for (size_t i = 0; i < links.size(); ++i) link_bytes_[links[i]] += bytes * counts[i];
  Claim(links);
  Add(system_.AddVariable(links, counts), bytes, latency, std::move(done), std::move(label));
}

int32_t FlowNetwork::Add(MaxMinSystem::VariableId var, double bytes, SimTime latency, DoneFn done,
                         std::string label) {
  int32_t f;
  if (!free_flows_.empty()) {
    f = free_flows_.back();
    free_flows_.pop_back();
  } else {
    f = static_cast<int32_t>(flows_.size());
    flows_.emplace_back();
  }
  Flow& fl = flows_[f];
  fl.var = var;
  fl.bytes = bytes;
  fl.bytes_left = bytes;
  fl.rate = 0;
  fl.updated = engine_->now();
  fl.latency = latency;
  fl.scheduled = false;
  ++fl.version;
  fl.done = std::move(done);
  fl.group = -1;
  fl.agg = -1;
  fl.label = std::move(label);
  fl.active = true;
  if (flow_of_var_.size() <= static_cast<size_t>(fl.var)) flow_of_var_.resize(fl.var + 1, -1);
  flow_of_var_[fl.var] = f;
  RequestSolve();
  return f;
}

void FlowNetwork::RequestSolve() {
  if (solve_pending_) return;
  solve_pending_ = true;
  engine_->ScheduleAt(
      engine_->now(), [this] { Solve(); }, kSolvePriority);
}

void FlowNetwork::Solve() {
  solve_pending_ = false;
  changed_.clear();
  system_.Solve(&changed_);
  ++solves_;
  rate_updates_ += system_.last_solved_variables();
  const SimTime now = engine_->now();
  for (MaxMinSystem::VariableId v : changed_) {
    Flow& fl = flows_[flow_of_var_[v]];
    // A flow split from its class keeps the class's completion while its rate is the class's.
    if (fl.scheduled && fl.rate == system_.rate(v)) continue;
    fl.bytes_left -= fl.rate * (now - fl.updated).seconds();
    if (fl.bytes_left < 0) fl.bytes_left = 0;
    fl.updated = now;
    fl.rate = system_.rate(v);
    ++fl.version;  // cancels the pending completion, if any
    fl.scheduled = fl.rate > 0;
    if (fl.scheduled) {
      ScheduleCompletion(flow_of_var_[v], now + SimTime::CeilSeconds(fl.bytes_left / fl.rate));
    }
  }
}

void FlowNetwork::ScheduleCompletion(int32_t f, SimTime at) {
  flows_[f].completion_at = at;
  const int64_t ps = at.picoseconds();
  auto [it, fresh] = completions_.try_emplace(ps);
  if (fresh) engine_->ScheduleAt(at, [this, ps] { FireCompletions(ps); });
  it->second.push_back(Completion{f, flows_[f].version});
}

void FlowNetwork::FireCompletions(int64_t at_ps) {
  auto node = completions_.extract(at_ps);
  for (const Completion& c : node.mapped()) {
    const Flow& fl = flows_[c.flow];
    if (fl.active && fl.scheduled && fl.version == c.version) Complete(c.flow);
  }
}

void FlowNetwork::Deliver(SimTime at, DoneFn done, int32_t group, int64_t flows) {
  const int64_t ps = at.picoseconds();
  auto [it, fresh] = deliveries_.try_emplace(ps);
  if (fresh) engine_->ScheduleAt(at, [this, ps] { FireDeliveries(ps); });
  it->second.push_back(Delivery{std::move(done), group, flows});
}

void FlowNetwork::FireDeliveries(int64_t at_ps) {
  auto node = deliveries_.extract(at_ps);
  for (Delivery& d : node.mapped()) {
    if (d.group < 0) {
      d.done();
      continue;
    }
    Group& g = groups_[d.group];
    g.left -= d.flows;
    if (g.left > 0) continue;
    DoneFn done = std::move(g.done);
    g.done = nullptr;
    free_groups_.push_back(d.group);
    done();
  }
}

void FlowNetwork::Complete(int32_t f) {
  Flow& fl = flows_[f];
  int64_t flows = 1;
  if (fl.agg >= 0) {
    flows = static_cast<int64_t>(fl.member_latency.size());
    std::vector<int32_t>& classes = aggs_[fl.agg].classes;
    classes.erase(std::find(classes.begin(), classes.end(), f));
    if (classes.empty()) ReleaseAggregate(fl.agg);
  } else {
    Release(system_.constraints(fl.var));
  }
  system_.RemoveVariable(fl.var);
  flow_of_var_[fl.var] = -1;
  fl.active = false;
  fl.scheduled = false;
  fl.label.clear();
  Deliver(engine_->now() + fl.latency, std::move(fl.done), fl.group, flows);
  fl.done = nullptr;
  fl.group = -1;
  fl.agg = -1;
  free_flows_.push_back(f);
  RequestSolve();
}

void FlowNetwork::ReportStuck(std::vector<std::string>* waiting) const {
  for (size_t f = 0; f < flows_.size(); ++f) {
    const Flow& fl = flows_[f];
    if (!fl.active || fl.scheduled) continue;
    std::string links;
    for (MaxMinSystem::ConstraintId l : system_.constraints(fl.var)) {
      links += (links.empty() ? "" : ",") + std::to_string(l);
    }
    char buf[160];
    std::snprintf(buf, sizeof(buf), "flow %s%s%.6g of %.6g bytes left on links [", fl.label.c_str(),
                  fl.label.empty() ? "" : ": ", fl.bytes_left, fl.bytes);
    waiting->push_back(buf + links + "] with no bandwidth");
  }
}

}  // namespace moesim::sim
