#include "real/layers/routing.h"

#include <algorithm>
#include <cmath>

namespace moesim::real {

template <typename T>
Routing Route(const T* logits, int64_t tokens, const RouterConfig& cfg) {
  const int64_t e_n = cfg.num_experts, k = cfg.top_k, s = cfg.group_size;
  const int64_t groups = tokens / s;
  Routing r;
  r.tokens = tokens;
  r.probs.assign(static_cast<size_t>(tokens * e_n), 0.0);
  r.lse.assign(static_cast<size_t>(tokens), 0.0);
  r.choice.assign(static_cast<size_t>(tokens * k), -1);
  r.pos.assign(static_cast<size_t>(tokens * k), -1);
  r.choice_fraction.assign(static_cast<size_t>(e_n), 0.0);
  r.expert_rows.assign(static_cast<size_t>(e_n), 0);
  r.expert_offset.assign(static_cast<size_t>(e_n + 1), 0);

  std::vector<int32_t> order(static_cast<size_t>(e_n));
  double z_sum = 0;
  for (int64_t n = 0; n < tokens; ++n) {
    const T* l = logits + n * e_n;
    double* p = r.probs.data() + n * e_n;
    double mx = static_cast<double>(l[0]);
    for (int64_t e = 1; e < e_n; ++e) mx = std::max(mx, static_cast<double>(l[e]));
    double sum = 0;
    for (int64_t e = 0; e < e_n; ++e) sum += std::exp(static_cast<double>(l[e]) - mx);
    const double lse = mx + std::log(sum);
    r.lse[static_cast<size_t>(n)] = lse;
    z_sum += lse * lse;
    for (int64_t e = 0; e < e_n; ++e) p[e] = std::exp(static_cast<double>(l[e]) - lse);
    for (int64_t e = 0; e < e_n; ++e) order[static_cast<size_t>(e)] = static_cast<int32_t>(e);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    for (int64_t j = 0; j < k; ++j)
      r.choice[static_cast<size_t>(n * k + j)] = order[static_cast<size_t>(j)];
  }
  r.z_loss = tokens > 0 ? z_sum / static_cast<double>(tokens) : 0.0;

  // Capacity, group by group; kept[(g, e)] lists (token, choice) in placement order.
  std::vector<std::vector<std::pair<int32_t, int32_t>>> kept(static_cast<size_t>(groups * e_n));
  double lb_sum = 0;
  std::vector<double> f(static_cast<size_t>(e_n)), pm(static_cast<size_t>(e_n));
  for (int64_t g = 0; g < groups; ++g) {
    std::fill(f.begin(), f.end(), 0.0);
    std::fill(pm.begin(), pm.end(), 0.0);
    for (int64_t j = 0; j < k; ++j) {
      for (int64_t n = g * s; n < (g + 1) * s; ++n) {
        const int32_t e = r.choice[static_cast<size_t>(n * k + j)];
        f[static_cast<size_t>(e)] += 1.0;
        auto& list = kept[static_cast<size_t>(g * e_n + e)];
        if (static_cast<int64_t>(list.size()) < cfg.capacity) {
          list.emplace_back(static_cast<int32_t>(n), static_cast<int32_t>(j));
        } else {
          ++r.dropped;
        }
      }
    }
    for (int64_t n = g * s; n < (g + 1) * s; ++n) {
      for (int64_t e = 0; e < e_n; ++e)
        pm[static_cast<size_t>(e)] += r.probs[static_cast<size_t>(n * e_n + e)];
    }
    double lb = 0;
    for (int64_t e = 0; e < e_n; ++e) {
      const double fe = f[static_cast<size_t>(e)] / static_cast<double>(s * k);
      lb += fe * pm[static_cast<size_t>(e)] / static_cast<double>(s);
      r.choice_fraction[static_cast<size_t>(e)] += f[static_cast<size_t>(e)];
    }
    lb_sum += static_cast<double>(e_n) * lb;
  }
  r.load_balance_loss = groups > 0 ? lb_sum / static_cast<double>(groups) : 0.0;
  for (double& c : r.choice_fraction) c /= static_cast<double>(std::max<int64_t>(1, tokens * k));

  // Dispatch layout: expert-major, then group, then placement order.
  for (int64_t e = 0; e < e_n; ++e) {
    r.expert_offset[static_cast<size_t>(e)] = r.rows();
    for (int64_t g = 0; g < groups; ++g) {
      for (const auto& [n, j] : kept[static_cast<size_t>(g * e_n + e)]) {
        r.pos[static_cast<size_t>(n * k + j)] = static_cast<int32_t>(r.rows());
        r.slot_token.push_back(n);
        r.slot_expert.push_back(static_cast<int32_t>(e));
      }
    }
    r.expert_rows[static_cast<size_t>(e)] = r.rows() - r.expert_offset[static_cast<size_t>(e)];
  }
  r.expert_offset[static_cast<size_t>(e_n)] = r.rows();
  return r;
}

std::vector<double> RouterBackward(const Routing& r, const RouterConfig& cfg,
                                   const std::vector<double>& slot_dgate, double aux_coef,
                                   double z_coef) {
  const int64_t e_n = cfg.num_experts, k = cfg.top_k, s = cfg.group_size, n_tok = r.tokens;
  const int64_t groups = n_tok / s;
  // dprobs: gates, then the load-balancing loss through P_e.
  std::vector<double> dp(static_cast<size_t>(n_tok * e_n), 0.0);
  for (int64_t row = 0; row < r.rows(); ++row) {
    dp[static_cast<size_t>(r.slot_token[static_cast<size_t>(row)] * e_n +
                           r.slot_expert[static_cast<size_t>(row)])] +=
        slot_dgate[static_cast<size_t>(row)];
  }
  if (aux_coef != 0 && groups > 0) {
    std::vector<double> f(static_cast<size_t>(e_n));
    for (int64_t g = 0; g < groups; ++g) {
      std::fill(f.begin(), f.end(), 0.0);
      for (int64_t n = g * s; n < (g + 1) * s; ++n) {
        for (int64_t j = 0; j < k; ++j)
          f[static_cast<size_t>(r.choice[static_cast<size_t>(n * k + j)])] += 1.0;
      }
      // d lb / d p[n][e] = E f_e / (S k) / S / G.
      const double c =
          aux_coef * static_cast<double>(e_n) /
          (static_cast<double>(s * k) * static_cast<double>(s) * static_cast<double>(groups));
      for (int64_t n = g * s; n < (g + 1) * s; ++n) {
        for (int64_t e = 0; e < e_n; ++e)
          dp[static_cast<size_t>(n * e_n + e)] += c * f[static_cast<size_t>(e)];
      }
    }
  }
  // Softmax backward, plus the z-loss: d lse^2 / d logit = 2 lse p.
  std::vector<double> dl(static_cast<size_t>(n_tok * e_n), 0.0);
  for (int64_t n = 0; n < n_tok; ++n) {
    const double* p = r.probs.data() + n * e_n;
    const double* d = dp.data() + n * e_n;
    double dot = 0;
    for (int64_t e = 0; e < e_n; ++e) dot += p[e] * d[e];
    const double zc = z_coef * 2.0 * r.lse[static_cast<size_t>(n)] / static_cast<double>(n_tok);
    for (int64_t e = 0; e < e_n; ++e)
      dl[static_cast<size_t>(n * e_n + e)] = p[e] * (d[e] - dot) + zc * p[e];
  }
  return dl;
}

template Routing Route<float>(const float*, int64_t, const RouterConfig&);
template Routing Route<double>(const double*, int64_t, const RouterConfig&);

}  // namespace moesim::real
