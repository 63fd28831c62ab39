// maxmin.h
//
// MaxMinSystem: a weighted max-min fair sharing solver (progressive filling), the model under
// SimGrid's network level. It knows only variables (here: flow rates) and constraints (here: link
// capacities); nothing of flows, links or collectives.
//
// The system. Variables x_v >= 0 with weights w_v > 0 and optional bounds b_v; constraints c with
// capacities C_c > 0; each variable uses a set of constraints V(c) = {v : v uses c}:
//
//     for every constraint c:   sum_{v in V(c)} x_v <= C_c
//     for every variable v:     x_v <= b_v            (b_v = +inf when unbounded)
//
// The max-min fair allocation maximizes the smallest x_v / w_v, then the next smallest, and so
// on (lexicographically). It is unique, and is found by progressive filling:
//
//   1. every variable is unfixed; R_c = C_c; W_c = sum of w_v over unfixed v in V(c).
//   2. the fair share of c is s_c = R_c / W_c; of a bounded unfixed variable, b_v / w_v.
//   3. take the smallest share s (ties: constraints before bounds, then lowest id). If it is a
//      constraint c, fix every unfixed v in V(c) at x_v = s * w_v; if it is a bound, fix that v
//      at b_v. For each newly fixed v and each c' it uses: R_c' -= x_v, W_c' -= w_v.
//   4. repeat from 2 until every variable is fixed.
//
// Each step saturates one constraint (or one bound), and no share ever decreases, so every fixed
// variable is limited by a saturated constraint on which it has the largest share: the
// definition of max-min fairness. Example: two flows on one 100 GB/s link get 50 each; a third
// flow that also crosses a 30 GB/s link gets 30 there, and the first two then get 35 each.
//
// Incremental solving. Adding or removing a variable, or changing a capacity, marks the
// constraints involved dirty. Solve() re-solves only the connected components (variables linked
// through shared constraints) that contain a dirty constraint: the allocation of a component
// depends on nothing outside it, so the result is exactly that of a full solve. Variables in
// other components keep their rates untouched.
//
// Complexity of one Solve(): O(E + P log K) for the E (variable, constraint) incidences and K
// constraints of the re-solved components, P <= E + K the heap pushes: a heap of shares whose
// keys are lower bounds, refreshed when they reach the top (a fix only raises the shares of the
// constraints it touches), so the pops are those of an exact heap. Determinism: the same sequence
// of calls gives bit-identical rates (fixed iteration orders, no hashing). Thread safety: none; one
// owner.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace moesim::sim {

class MaxMinSystem {
 public:
  using ConstraintId = int32_t;
  using VariableId = int32_t;
  static constexpr double kNoBound = std::numeric_limits<double>::infinity();

  // REQUIRES: capacity >= 0 (0: every variable using it gets rate 0).
  ConstraintId AddConstraint(double capacity);
  // REQUIRES: capacity >= 0.
  void SetCapacity(ConstraintId c, double capacity);
  double capacity(ConstraintId c) const { return cons_[c].capacity; }

  // A new variable using `constraints` (a constraint listed twice counts twice: its rate is
  // charged twice there). Its rate is 0 until the next Solve().
  // REQUIRES: weight > 0; bound > 0; every id valid; constraints non-empty or bound finite.
  // Ids of removed variables are reused.
  VariableId AddVariable(std::span<const ConstraintId> constraints, double weight = 1.0,
                         double bound = kNoBound);
  // As above with a coefficient per constraint: the variable charges coefficients[i] x its rate
  // to constraints[i] (a bundle of identical flows, coefficients[i] of which cross that link).
  // Progressive filling then shares c as R_c / sum of w_v x a_vc over its unfixed variables.
  // REQUIRES: coefficients.size() == constraints.size(), every coefficient > 0.
  VariableId AddVariable(std::span<const ConstraintId> constraints,
                         std::span<const double> coefficients, double weight = 1.0,
                         double bound = kNoBound);
  // A variable standing for counts[i] identical unit-weight variables on constraints[i] (the
  // flows of one symmetry class: flow_symmetry.h): charged as AddVariable(constraints, counts),
  // but when fixed its rate is taken off each constraint's remaining capacity one copy at a
  // time, as the separate variables would be, so the rounding is theirs (but for ties; see
  // flow_symmetry.h).
  // REQUIRES: counts.size() == constraints.size(), every count a positive integer.
  VariableId AddReplicatedVariable(std::span<const ConstraintId> constraints,
                                   std::span<const double> counts);
  // REQUIRES: v is live. O(route length): the constraints' lists drop it during the next
  // Solve(), which visits them anyway; its id is reused only after that.
  void RemoveVariable(VariableId v);

  // Re-solves every component touched since the last Solve(). When `changed` is given, appends
  // the live variables whose rate differs from before (new variables count as changed from 0).
  void Solve(std::vector<VariableId>* changed = nullptr);
  // Marks every constraint dirty, then Solve() (for tests: the full solve).
  void SolveAll(std::vector<VariableId>* changed = nullptr);

  // Rate of a live variable after the last Solve() that covered it.
  double rate(VariableId v) const { return vars_[v].rate; }
  // The constraints of a live variable, as given to AddVariable(). Valid until the next
  // AddVariable().
  std::span<const ConstraintId> constraints(VariableId v) const {
    return {pool_.data() + vars_[v].offset, static_cast<size_t>(vars_[v].length)};
  }
  // Sum of the rates (times their coefficients) of the variables using c (after Solve()).
  double usage(ConstraintId c) const;
  bool live(VariableId v) const { return v >= 0 && v < num_slots() && vars_[v].live; }

  int32_t num_constraints() const { return static_cast<int32_t>(cons_.size()); }
  int64_t num_variables() const { return live_vars_; }
  // Variables re-solved by the last Solve() (the size of the touched components).
  int64_t last_solved_variables() const { return last_solved_; }

 private:
  // Layout for speed: a variable's constraint list lives in one shared pool (variables added
  // together sit together); the per-solve scratch of constraints is a separate dense array.
  struct HeapKey {
    double share;
    int32_t id;  // >= 0: constraint; < 0: bound of variable ~id
    uint32_t version;
  };
  struct Var {
    int64_t offset = 0;  // into pool_
    int32_t length = 0;
    uint32_t stamp = 0;
    double weight = 1;
    double bound = kNoBound;
    double rate = 0;
    bool live = false;
    bool fixed = false;
    bool unit_coefs = true;
    bool replicated = false;  // AddReplicatedVariable
    HeapKey own{0, -1, 0};    // during a solve: the first of its one-variable constraints
  };
  struct Con {
    double capacity = 0;
    std::vector<VariableId> uses;  // may hold removed variables until the next Solve()
    std::vector<double> coefs;     // by entry of `uses`
    uint32_t stamp = 0;
    bool dirty = false;
  };
  struct Scratch {  // one per constraint, for one solve
    double remaining = 0;
    double weight_sum = 0;
    int64_t unfixed = 0;
    double current = 0;  // its share now (clamped to the level when last touched)
    double in_heap = 0;  // the share of its live key in the heap (<= current)
    uint32_t version = 0;
    uint32_t touched = 0;
  };
  int32_t num_slots() const { return static_cast<int32_t>(vars_.size()); }
  void MarkDirty(ConstraintId c);
  void Fix(VariableId v, double rate);
  void CompactPool();

  std::vector<Var> vars_;
  std::vector<Con> cons_;
  std::vector<Scratch> scratch_;
  std::vector<ConstraintId> pool_;
  std::vector<double> coef_pool_;  // by entry of pool_
  int64_t pool_garbage_ = 0;       // entries of removed variables
  std::vector<VariableId> free_vars_;
  std::vector<VariableId> removed_;  // freed at the end of the next Solve()
  std::vector<ConstraintId> dirty_;
  std::vector<VariableId> pending_bound_only_;  // new variables without constraints
  int64_t live_vars_ = 0;
  int64_t non_unit_weights_ = 0;  // live variables with weight != 1
  int64_t non_unit_coefs_ = 0;    // live variables with a coefficient != 1
  int64_t last_solved_ = 0;
  int64_t unfixed_vars_ = 0;  // of the component being solved
  uint32_t epoch_ = 0;
  // Scratch reused across solves.
  std::vector<ConstraintId> comp_cons_;
  std::vector<VariableId> comp_vars_;
  std::vector<double> old_rate_;
  std::vector<HeapKey> heap_;
  std::vector<ConstraintId> touched_list_;
  uint32_t touch_epoch_ = 0;
};

}  // namespace moesim::sim
