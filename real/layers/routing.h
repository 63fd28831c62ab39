// routing.h
//
// Token routing of an MoE layer, on the host: router softmax, top-k, expert capacity with token
// dropping, the dispatch layout, and the two auxiliary losses with their gradients.
//
// Definitions (N tokens in groups of S consecutive tokens, G = N / S groups, E experts):
//  - p[n] = softmax(logits[n]); choice[n][0..k) = the k largest, best first (ties: lower
//    expert index first). The gate of choice (n, e) is p[n][e] (un-renormalized, as in Switch
//    Transformer, so that the router is trained by the main loss also when k = 1).
//  - Capacity C per expert per group (GShard): within a group, all first choices are placed in
//    token order, then all second choices, ...; an assignment to an expert that already holds C
//    tokens of the group is dropped (pos = -1). A token whose every choice is dropped gets a zero
//    MoE output and passes through the residual unchanged.
//  - Dispatch layout: kept assignments as rows ordered by expert, then group, then placement
//    order. Row r holds token slot_token[r]; pos[n k + j] is the row of choice j of token n.
//  - Load-balancing loss (Switch/GShard): per group, f_e = (choices of e, before dropping) /
//    (S k) and P_e = mean over the group's tokens of p[n][e]; lb = mean over groups of
//    E sum_e f_e P_e (1 for perfectly uniform routing). Gradient flows through P only.
//  - Router z-loss (ST-MoE): z = mean over tokens of logsumexp(logits[n])^2.
// Both losses are means over groups/tokens, so splitting a batch's groups over ranks and
// averaging the ranks' losses gives the loss of the whole batch.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

namespace moesim::real {

struct RouterConfig {
  int64_t num_experts = 0;
  int64_t top_k = 0;
  int64_t capacity = 0;    // C, per expert per group
  int64_t group_size = 0;  // S tokens; REQUIRES: divides the token count
};

struct Routing {
  int64_t tokens = 0;
  std::vector<double> probs;            // [tokens, E]
  std::vector<double> lse;              // [tokens] logsumexp of the logits
  std::vector<int32_t> choice;          // [tokens, k] expert, best first
  std::vector<int32_t> pos;             // [tokens, k] dispatch row, -1 = dropped
  std::vector<int32_t> slot_token;      // [rows]
  std::vector<int32_t> slot_expert;     // [rows]
  std::vector<int64_t> expert_rows;     // [E] kept rows per expert
  std::vector<int64_t> expert_offset;   // [E + 1] first row of each expert
  std::vector<double> choice_fraction;  // [E] share of all choices (before dropping)
  int64_t dropped = 0;                  // dropped assignments
  double load_balance_loss = 0;
  double z_loss = 0;
  int64_t rows() const { return static_cast<int64_t>(slot_token.size()); }
};

// Routes `tokens` rows of router logits [tokens, E].
template <typename T>
Routing Route(const T* logits, int64_t tokens, const RouterConfig& cfg);

// Gradient of  sum_r slot_dgate[r] * gate(r) + aux_coef * lb + z_coef * z  with respect to
// the logits [tokens, E]; gate(r) = p[slot_token[r]][slot_expert[r]].
std::vector<double> RouterBackward(const Routing& routing, const RouterConfig& cfg,
                                   const std::vector<double>& slot_dgate, double aux_coef,
                                   double z_coef);

}  // namespace moesim::real
