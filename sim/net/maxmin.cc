#include "sim/net/maxmin.h"

#include <algorithm>

namespace moesim::sim {
namespace {

// Min-heap order: smaller share first; at equal shares constraints before bounds, then lower id.
struct Later {
  template <typename K>
  bool operator()(const K& a, const K& b) const {
    if (a.share != b.share) return a.share > b.share;
    const bool a_bound = a.id < 0, b_bound = b.id < 0;
    if (a_bound != b_bound) return a_bound;
    return a_bound ? ~a.id > ~b.id : a.id > b.id;
  }
};

}  // namespace

MaxMinSystem::ConstraintId MaxMinSystem::AddConstraint(double capacity) {
  Con c;
  c.capacity = capacity;
  cons_.push_back(std::move(c));
  return static_cast<ConstraintId>(cons_.size() - 1);
}

void MaxMinSystem::SetCapacity(ConstraintId c, double capacity) {
  cons_[c].capacity = capacity;
  MarkDirty(c);
}

void MaxMinSystem::MarkDirty(ConstraintId c) {
  if (cons_[c].dirty) return;
  cons_[c].dirty = true;
  dirty_.push_back(c);
}

MaxMinSystem::VariableId MaxMinSystem::AddVariable(std::span<const ConstraintId> constraints,
                                                   double weight, double bound) {
  VariableId v;
  if (!free_vars_.empty()) {
    v = free_vars_.back();
    free_vars_.pop_back();
  } else {
    v = num_slots();
    vars_.emplace_back();
  }
  Var& var = vars_[v];
  var.cons.assign(constraints.begin(), constraints.end());
  var.pos.resize(var.cons.size());
  var.weight = weight;
  var.bound = bound;
  var.rate = 0;
  var.live = true;
  var.fixed = false;
  for (size_t k = 0; k < var.cons.size(); ++k) {
    Con& c = cons_[var.cons[k]];
    var.pos[k] = static_cast<int32_t>(c.uses.size());
    c.uses.push_back(Use{v, static_cast<int32_t>(k)});
    MarkDirty(var.cons[k]);
  }
  if (var.cons.empty()) pending_bound_only_.push_back(v);
  ++live_vars_;
  return v;
}

void MaxMinSystem::RemoveVariable(VariableId v) {
  Var& var = vars_[v];
  for (size_t k = 0; k < var.cons.size(); ++k) {
    Con& c = cons_[var.cons[k]];
    const int32_t p = var.pos[k];
    const Use moved = c.uses.back();
    c.uses[p] = moved;
    vars_[moved.var].pos[moved.k] = p;
    c.uses.pop_back();
    MarkDirty(var.cons[k]);
  }
  var.cons.clear();
  var.pos.clear();
  var.live = false;
  var.rate = 0;
  free_vars_.push_back(v);
  --live_vars_;
}

double MaxMinSystem::usage(ConstraintId c) const {
  double sum = 0;
  for (const Use& u : cons_[c].uses) sum += vars_[u.var].rate;
  return sum;
}

void MaxMinSystem::SolveAll(std::vector<VariableId>* changed) {
  for (ConstraintId c = 0; c < num_constraints(); ++c) MarkDirty(c);
  Solve(changed);
}

void MaxMinSystem::Fix(VariableId v, double rate) {
  Var& var = vars_[v];
  var.fixed = true;
  var.rate = rate;
  for (ConstraintId c : var.cons) {
    Con& con = cons_[c];
    con.remaining -= rate;
    con.weight_sum -= var.weight;
    --con.unfixed;
    if (con.touched != touch_epoch_) {
      con.touched = touch_epoch_;
      touched_list_.push_back(c);
    }
  }
}

void MaxMinSystem::Solve(std::vector<VariableId>* changed) {
  ++epoch_;
  comp_cons_.clear();
  comp_vars_.clear();
  for (ConstraintId c : dirty_) {
    cons_[c].dirty = false;
    if (cons_[c].stamp != epoch_) {
      cons_[c].stamp = epoch_;
      comp_cons_.push_back(c);
    }
  }
  dirty_.clear();
  // Breadth-first over the constraint-variable graph: the components holding a dirty constraint.
  for (size_t i = 0; i < comp_cons_.size(); ++i) {
    for (const Use& u : cons_[comp_cons_[i]].uses) {
      Var& var = vars_[u.var];
      if (var.stamp == epoch_) continue;
      var.stamp = epoch_;
      comp_vars_.push_back(u.var);
      for (ConstraintId c2 : var.cons) {
        if (cons_[c2].stamp != epoch_) {
          cons_[c2].stamp = epoch_;
          comp_cons_.push_back(c2);
        }
      }
    }
  }
  for (VariableId v : pending_bound_only_) {
    if (vars_[v].live && vars_[v].stamp != epoch_) {
      vars_[v].stamp = epoch_;
      comp_vars_.push_back(v);
    }
  }
  pending_bound_only_.clear();
  last_solved_ = static_cast<int64_t>(comp_vars_.size());

  old_rate_.resize(comp_vars_.size());
  heap_.clear();
  for (size_t i = 0; i < comp_vars_.size(); ++i) {
    Var& var = vars_[comp_vars_[i]];
    old_rate_[i] = var.rate;
    var.fixed = false;
    if (var.bound != kNoBound) heap_.push_back(HeapKey{var.bound / var.weight, ~comp_vars_[i], 0});
  }
  for (ConstraintId c : comp_cons_) {
    Con& con = cons_[c];
    con.remaining = con.capacity;
    con.weight_sum = 0;
    con.unfixed = static_cast<int64_t>(con.uses.size());
    con.version = 0;
    for (const Use& u : con.uses) con.weight_sum += vars_[u.var].weight;
    if (con.unfixed > 0) heap_.push_back(HeapKey{con.remaining / con.weight_sum, c, 0});
  }
  std::make_heap(heap_.begin(), heap_.end(), Later{});

  // Progressive filling. `level` is the last share fixed: shares never decrease, so a share
  // computed below it (rounding in `remaining`) is clamped to it.
  double level = 0;
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    const HeapKey key = heap_.back();
    heap_.pop_back();
    ++touch_epoch_;
    touched_list_.clear();
    if (key.id >= 0) {
      Con& con = cons_[key.id];
      if (key.version != con.version || con.unfixed == 0) continue;
      level = std::max(level, key.share);
      for (const Use& u : con.uses) {
        if (!vars_[u.var].fixed) Fix(u.var, level * vars_[u.var].weight);
      }
    } else {
      const VariableId v = ~key.id;
      if (vars_[v].fixed) continue;
      level = std::max(level, key.share);
      Fix(v, vars_[v].bound);
    }
    for (ConstraintId c : touched_list_) {
      Con& con = cons_[c];
      if (con.unfixed == 0) continue;
      ++con.version;
      const double share = std::max(level, std::max(con.remaining, 0.0) / con.weight_sum);
      heap_.push_back(HeapKey{share, c, con.version});
      std::push_heap(heap_.begin(), heap_.end(), Later{});
    }
  }

  if (changed != nullptr) {
    for (size_t i = 0; i < comp_vars_.size(); ++i) {
      if (vars_[comp_vars_[i]].rate != old_rate_[i]) changed->push_back(comp_vars_[i]);
    }
  }
}

}  // namespace moesim::sim
