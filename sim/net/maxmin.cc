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
  scratch_.emplace_back();
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

void MaxMinSystem::CompactPool() {
  std::vector<ConstraintId> pool;
  std::vector<double> coefs;
  pool.reserve(pool_.size() - static_cast<size_t>(pool_garbage_));
  coefs.reserve(pool.capacity());
  for (Var& var : vars_) {
    if (!var.live) continue;
    const int64_t offset = static_cast<int64_t>(pool.size());
    pool.insert(pool.end(), pool_.begin() + var.offset, pool_.begin() + var.offset + var.length);
    coefs.insert(coefs.end(), coef_pool_.begin() + var.offset,
                 coef_pool_.begin() + var.offset + var.length);
    var.offset = offset;
  }
  pool_ = std::move(pool);
  coef_pool_ = std::move(coefs);
  pool_garbage_ = 0;
}

MaxMinSystem::VariableId MaxMinSystem::AddVariable(std::span<const ConstraintId> constraints,
                                                   double weight, double bound) {
  return AddVariable(constraints, {}, weight, bound);
}

MaxMinSystem::VariableId MaxMinSystem::AddVariable(std::span<const ConstraintId> constraints,
                                                   std::span<const double> coefficients,
                                                   double weight, double bound) {
  if (pool_garbage_ > 4096 && 2 * pool_garbage_ > static_cast<int64_t>(pool_.size())) {
    CompactPool();
  }
  VariableId v;
  if (!free_vars_.empty()) {
    v = free_vars_.back();
    free_vars_.pop_back();
  } else {
    v = num_slots();
    vars_.emplace_back();
  }
  Var& var = vars_[v];
  var.offset = static_cast<int64_t>(pool_.size());
  var.length = static_cast<int32_t>(constraints.size());
  pool_.insert(pool_.end(), constraints.begin(), constraints.end());
  var.unit_coefs = true;
  var.replicated = false;
  if (coefficients.empty()) {
    coef_pool_.insert(coef_pool_.end(), constraints.size(), 1.0);
  } else {
    coef_pool_.insert(coef_pool_.end(), coefficients.begin(), coefficients.end());
    for (double a : coefficients) var.unit_coefs = var.unit_coefs && a == 1.0;
  }
  if (!var.unit_coefs) ++non_unit_coefs_;
  var.weight = weight;
  var.bound = bound;
  var.rate = 0;
  var.live = true;
  var.fixed = false;
  if (weight != 1.0) ++non_unit_weights_;
  for (size_t i = 0; i < constraints.size(); ++i) {
    Con& con = cons_[constraints[i]];
    con.uses.push_back(v);
    con.coefs.push_back(coefficients.empty() ? 1.0 : coefficients[i]);
    MarkDirty(constraints[i]);
  }
  if (constraints.empty()) pending_bound_only_.push_back(v);
  ++live_vars_;
  return v;
}

MaxMinSystem::VariableId MaxMinSystem::AddReplicatedVariable(
    std::span<const ConstraintId> constraints, std::span<const double> counts) {
  const VariableId v = AddVariable(constraints, counts);
  vars_[v].replicated = !vars_[v].unit_coefs;
  return v;
}

void MaxMinSystem::RemoveVariable(VariableId v) {
  Var& var = vars_[v];
  for (ConstraintId c : constraints(v)) MarkDirty(c);
  var.live = false;
  var.rate = 0;
  if (var.weight != 1.0) --non_unit_weights_;
  if (!var.unit_coefs) --non_unit_coefs_;
  pool_garbage_ += var.length;
  removed_.push_back(v);
  --live_vars_;
}

double MaxMinSystem::usage(ConstraintId c) const {
  double sum = 0;
  const Con& con = cons_[c];
  for (size_t i = 0; i < con.uses.size(); ++i) {
    if (vars_[con.uses[i]].live) sum += vars_[con.uses[i]].rate * con.coefs[i];
  }
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
  --unfixed_vars_;
  const ConstraintId* c = pool_.data() + var.offset;
  const double* a = coef_pool_.data() + var.offset;
  for (int32_t k = 0; k < var.length; ++k) {
    Scratch& s = scratch_[c[k]];
    if (var.unit_coefs) {
      s.remaining -= rate;
      s.weight_sum -= var.weight;
    } else if (var.replicated) {
      for (double copy = 0; copy < a[k]; copy += 1) {
        s.remaining -= rate;
        s.weight_sum -= 1;
      }
    } else {
      s.remaining -= rate * a[k];
      s.weight_sum -= var.weight * a[k];
    }
    --s.unfixed;
    if (s.touched != touch_epoch_) {
      s.touched = touch_epoch_;
      touched_list_.push_back(c[k]);
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
  // Every constraint of a removed variable is dirty, so this also drops removed variables from
  // the lists (in place, keeping the order of the others).
  const size_t all_cons = cons_.size();
  for (size_t i = 0; i < comp_cons_.size(); ++i) {
    std::vector<VariableId>& uses = cons_[comp_cons_[i]].uses;
    std::vector<double>& coefs = cons_[comp_cons_[i]].coefs;
    size_t kept = 0;
    for (size_t j = 0; j < uses.size(); ++j) {
      if (vars_[uses[j]].live) {
        coefs[kept] = coefs[j];
        uses[kept++] = uses[j];
      }
    }
    uses.resize(kept);
    coefs.resize(kept);
    for (VariableId v : uses) {
      Var& var = vars_[v];
      if (var.stamp == epoch_) continue;
      var.stamp = epoch_;
      comp_vars_.push_back(v);
      if (comp_cons_.size() == all_cons) continue;  // every constraint already found
      const ConstraintId* c = pool_.data() + var.offset;
      for (int32_t k = 0; k < var.length; ++k) {
        if (cons_[c[k]].stamp != epoch_) {
          cons_[c[k]].stamp = epoch_;
          comp_cons_.push_back(c[k]);
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
    var.own = HeapKey{0, -1, 0};
    if (var.bound != kNoBound) heap_.push_back(HeapKey{var.bound / var.weight, ~comp_vars_[i], 0});
  }
  for (ConstraintId c : comp_cons_) {
    const Con& con = cons_[c];
    Scratch& s = scratch_[c];
    s.remaining = con.capacity;
    s.unfixed = static_cast<int64_t>(con.uses.size());
    s.version = 0;
    if (non_unit_weights_ == 0 && non_unit_coefs_ == 0) {
      s.weight_sum = static_cast<double>(s.unfixed);
    } else {
      s.weight_sum = 0;
      for (size_t j = 0; j < con.uses.size(); ++j) {
        s.weight_sum += vars_[con.uses[j]].weight * con.coefs[j];
      }
    }
    if (s.unfixed > 0) {
      s.current = s.remaining / s.weight_sum;
      s.in_heap = s.current;
      const HeapKey key{s.current, c, 0};
      if (s.unfixed > 1) {
        heap_.push_back(key);
        continue;
      }
      // A constraint of one variable keeps its share until that variable is fixed, and then
      // has none left: of a variable's own constraints only the first in heap order can fix
      // it, so only that one goes into the heap (the others would be popped as spent).
      HeapKey& own = vars_[con.uses[0]].own;
      if (own.id < 0 || Later{}(own, key)) own = key;
    }
  }
  for (VariableId v : comp_vars_) {
    if (vars_[v].own.id >= 0) heap_.push_back(vars_[v].own);
  }
  std::make_heap(heap_.begin(), heap_.end(), Later{});

  // Progressive filling. `level` is the last share fixed: shares never decrease, so a share
  // computed below it (rounding in `remaining`) is clamped to it. Once every variable is fixed
  // the keys left are stale (each would be skipped below): a bundle across a fabric leaves one
  // per link it crosses, which popping one by one made most of a large solve.
  unfixed_vars_ = static_cast<int64_t>(comp_vars_.size());
  double level = 0;
  while (!heap_.empty() && unfixed_vars_ > 0) {
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    const HeapKey key = heap_.back();
    heap_.pop_back();
    ++touch_epoch_;
    touched_list_.clear();
    if (key.id >= 0) {
      Scratch& s = scratch_[key.id];
      if (key.version != s.version || s.unfixed == 0) continue;
      if (s.current != key.share) {  // a lower bound of its share: back in at its share
        s.in_heap = s.current;
        heap_.push_back(HeapKey{s.current, key.id, s.version});
        std::push_heap(heap_.begin(), heap_.end(), Later{});
        continue;
      }
      level = std::max(level, key.share);
      for (VariableId v : cons_[key.id].uses) {
        if (!vars_[v].fixed) Fix(v, level * vars_[v].weight);
      }
    } else {
      const VariableId v = ~key.id;
      if (vars_[v].fixed) continue;
      level = std::max(level, key.share);
      Fix(v, vars_[v].bound);
    }
    for (ConstraintId c : touched_list_) {
      Scratch& s = scratch_[c];
      if (s.unfixed == 0) continue;
      s.current = std::max(level, std::max(s.remaining, 0.0) / s.weight_sum);
      // Shares only grow as variables are fixed, so the key in the heap stays a lower bound and
      // is refreshed when it reaches the top; only a share that rounding lowered below it needs
      // a new key now. Either way the pops follow the order of an exact heap.
      if (s.current < s.in_heap) {
        ++s.version;
        s.in_heap = s.current;
        heap_.push_back(HeapKey{s.current, c, s.version});
        std::push_heap(heap_.begin(), heap_.end(), Later{});
      }
    }
  }

  for (VariableId v : removed_) free_vars_.push_back(v);
  removed_.clear();
  if (changed != nullptr) {
    for (size_t i = 0; i < comp_vars_.size(); ++i) {
      if (vars_[comp_vars_[i]].rate != old_rate_[i]) changed->push_back(comp_vars_[i]);
    }
  }
}

}  // namespace moesim::sim
