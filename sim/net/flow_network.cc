#include "sim/net/flow_network.h"

#include <cstdio>
#include <utility>

namespace moesim::sim {

FlowNetwork::FlowNetwork(Engine* engine, std::vector<LinkSpec> links)
    : engine_(engine), links_(std::move(links)), link_bytes_(links_.size(), 0.0) {
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
  Add(system_.AddVariable(route), bytes, latency, std::move(done), std::move(label));
}

void FlowNetwork::StartGroup(std::span<const std::span<const LinkId>> routes,
                             std::span<const double> bytes, DoneFn done, const std::string& label) {
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
  for (size_t i = 0; i < routes.size(); ++i) {
    const std::span<const LinkId> route = routes[i];
    const SimTime latency = SimTime::FromSeconds(RouteLatencySeconds(links_, route));
    if (route.empty() || !(bytes[i] > 0)) {
      Deliver(engine_->now() + latency, nullptr, g);
      continue;
    }
    for (LinkId l : route) link_bytes_[l] += bytes[i];
    const int32_t f = Add(system_.AddVariable(route), bytes[i], latency, nullptr, label);
    flows_[f].group = g;
  }
}

void FlowNetwork::StartBundle(std::span<const LinkId> links, std::span<const double> counts,
                              double bytes, SimTime latency, DoneFn done, std::string label) {
  if (links.empty() || !(bytes > 0)) {
    Deliver(engine_->now() + latency, std::move(done));
    return;
  }
  for (size_t i = 0; i < links.size(); ++i) link_bytes_[links[i]] += bytes * counts[i];
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

void FlowNetwork::Deliver(SimTime at, DoneFn done, int32_t group) {
  const int64_t ps = at.picoseconds();
  auto [it, fresh] = deliveries_.try_emplace(ps);
  if (fresh) engine_->ScheduleAt(at, [this, ps] { FireDeliveries(ps); });
  it->second.push_back(Delivery{std::move(done), group});
}

void FlowNetwork::FireDeliveries(int64_t at_ps) {
  auto node = deliveries_.extract(at_ps);
  for (Delivery& d : node.mapped()) {
    if (d.group < 0) {
      d.done();
      continue;
    }
    Group& g = groups_[d.group];
    if (--g.left > 0) continue;
    DoneFn done = std::move(g.done);
    g.done = nullptr;
    free_groups_.push_back(d.group);
    done();
  }
}

void FlowNetwork::Complete(int32_t f) {
  Flow& fl = flows_[f];
  system_.RemoveVariable(fl.var);
  flow_of_var_[fl.var] = -1;
  fl.active = false;
  fl.scheduled = false;
  fl.label.clear();
  Deliver(engine_->now() + fl.latency, std::move(fl.done), fl.group);
  fl.done = nullptr;
  fl.group = -1;
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
