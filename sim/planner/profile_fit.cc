#include "sim/planner/profile_fit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "sim/planner/validation_set.h"

namespace moesim {
namespace {

struct Row {
  std::string set;
  ValidationRow row;
  std::string chip;
  std::vector<double> log_metric;  // at each grid point
};

// log rho: positive when the simulation is faster than the measurement.
double LogRho(const Row& r, double log_metric) {
  const double lm = std::log(r.row.measured);
  return r.row.metric == "step_time_s" ? lm - log_metric : log_metric - lm;
}

// The row's log metric at x, interpolated linearly in log x over the grid (extrapolated
// from the end segments).
double LogMetricAt(const Row& r, const std::vector<double>& log_x, double lx) {
  size_t j = 1;
  while (j + 1 < log_x.size() && log_x[j] < lx) ++j;
  const double t = (lx - log_x[j - 1]) / (log_x[j] - log_x[j - 1]);
  return r.log_metric[j - 1] + t * (r.log_metric[j] - r.log_metric[j - 1]);
}

double Sum(const std::vector<const Row*>& rows, const std::vector<double>& log_x, double lx) {
  double s = 0;
  for (const Row* r : rows) s += LogRho(*r, LogMetricAt(*r, log_x, lx));
  return s;
}

// The x in [lo, hi] (log space) with sum log rho = 0; the nearer bound when there is none.
double Solve(const std::vector<const Row*>& rows, const std::vector<double>& log_x,
             bool* at_bound) {
  double a = log_x.front(), b = log_x.back();
  const double fa = Sum(rows, log_x, a), fb = Sum(rows, log_x, b);
  *at_bound = false;
  if ((fa > 0) == (fb > 0)) {
    *at_bound = true;
    return std::exp(std::abs(fa) < std::abs(fb) ? a : b);
  }
  for (int it = 0; it < 100; ++it) {
    const double m = 0.5 * (a + b);
    ((Sum(rows, log_x, m) > 0) == (fa > 0) ? a : b) = m;
  }
  return std::exp(0.5 * (a + b));
}

double ErrorPct(const Row& r, double log_metric) {
  return 100 * (std::exp(log_metric) - r.row.measured) / r.row.measured;
}

}  // namespace

Expected<std::vector<ChipFit>> FitPublished(const std::vector<std::string>& sets,
                                            const PublishedFitOptions& o,
                                            const std::function<void(size_t, size_t)>& progress) {
  if (!(o.lo > 0 && o.hi > o.lo) || o.grid < 2 || o.folds < 2) {
    return Status::InvalidInput(
        "calibrate --published: the range must satisfy 0 < lo < hi, grid >= 2, folds >= 2");
  }
  // Rows, their chips, in file order; first id wins.
  std::vector<Row> rows;
  std::set<std::string> seen;
  const std::string path = "hardware." + o.param;
  for (const std::string& set : sets) {
    auto read = ReadValidationSet(set);
    if (!read.ok()) return read.status();
    for (const ValidationRow& vr : *read) {
      if (!seen.insert(vr.id).second) continue;
      auto sc = LoadValidationRowScenario(set, vr);
      if (!sc.ok()) return sc.status();
      if (!o.chips.empty() &&
          std::find(o.chips.begin(), o.chips.end(), sc->hardware.chip) == o.chips.end()) {
        continue;
      }
      rows.push_back({set, vr, sc->hardware.chip, {}});
    }
  }
  std::vector<double> log_x;
  for (int j = 0; j < o.grid; ++j) {
    log_x.push_back(std::log(o.lo) +
                    (std::log(o.hi) - std::log(o.lo)) * j / static_cast<double>(o.grid - 1));
  }
  // Simulate every row at every grid point; rows with the same scenario and overrides share.
  std::map<std::string, std::vector<double>> cache;
  const size_t total = rows.size() * log_x.size();
  size_t done = 0;
  for (Row& r : rows) {
    const std::string key =
        r.set + "|" + r.row.scenario + "|" + r.row.overrides + "|" + r.row.metric;
    if (auto it = cache.find(key); it != cache.end()) {
      r.log_metric = it->second;
      done += log_x.size();
      if (progress) progress(done, total);
      continue;
    }
    for (double lx : log_x) {
      char value[64];
      std::snprintf(value, sizeof(value), "%.17g", std::exp(lx));
      auto sc = LoadValidationRowScenario(r.set, r.row, {path + "=" + value});
      if (!sc.ok()) return sc.status();
      SimulateOptions opts;
      opts.network = o.network;
      auto rep = SimulateScenario(*sc, opts);
      if (!rep.ok()) {
        return rep.status().WithPrefix(r.set + ":" + std::to_string(r.row.line) + ": row " +
                                       r.row.id + ": ");
      }
      const double m = ValidationMetric(r.row, *rep, *sc);
      if (!(m > 0)) {
        return Status::InvalidInput(r.set + ":" + std::to_string(r.row.line) + ": row " + r.row.id +
                                    ": simulated " + r.row.metric + " is not positive at " + path +
                                    "=" + value);
      }
      r.log_metric.push_back(std::log(m));
      if (progress) progress(++done, total);
    }
    cache[key] = r.log_metric;
  }
  // Per chip, in order of first appearance.
  std::vector<std::string> chips;
  for (const Row& r : rows) {
    if (std::find(chips.begin(), chips.end(), r.chip) == chips.end()) chips.push_back(r.chip);
  }
  std::vector<ChipFit> out;
  for (const std::string& chip : chips) {
    std::vector<const Row*> mine;
    for (const Row& r : rows) {
      if (r.chip == chip) mine.push_back(&r);
    }
    ChipFit f;
    f.chip = chip;
    f.value = Solve(mine, log_x, &f.at_bound);
    const int k = static_cast<int>(std::min<size_t>(static_cast<size_t>(o.folds), mine.size()));
    f.folds = k;
    f.held_out_valid = k >= 2;
    std::vector<double> fold_value(static_cast<size_t>(std::max(k, 1)), f.value);
    for (int fold = 0; fold < k && f.held_out_valid; ++fold) {
      std::vector<const Row*> train;
      for (size_t i = 0; i < mine.size(); ++i) {
        if (static_cast<int>(i % static_cast<size_t>(k)) != fold) train.push_back(mine[i]);
      }
      bool bound = false;
      fold_value[static_cast<size_t>(fold)] = Solve(train, log_x, &bound);
    }
    double lo_err = 0, hi_err = 0;
    for (size_t i = 0; i < mine.size(); ++i) {
      const Row& r = *mine[i];
      PublishedFitRow pr;
      pr.set = r.set;
      pr.id = r.row.id;
      pr.metric = r.row.metric;
      pr.measured = r.row.measured;
      pr.fold = f.held_out_valid ? static_cast<int>(i % static_cast<size_t>(k)) : 0;
      const double in = LogMetricAt(r, log_x, std::log(f.value));
      const double held = LogMetricAt(r, log_x, std::log(fold_value[static_cast<size_t>(pr.fold)]));
      pr.in_sample = std::exp(in);
      pr.held_out = std::exp(held);
      pr.error_in_pct = ErrorPct(r, in);
      pr.error_held_pct = ErrorPct(r, held);
      f.mape_in_pct += std::abs(pr.error_in_pct);
      f.mape_held_pct += std::abs(pr.error_held_pct);
      lo_err = i == 0 ? pr.error_in_pct : std::min(lo_err, pr.error_in_pct);
      hi_err = i == 0 ? pr.error_in_pct : std::max(hi_err, pr.error_in_pct);
      f.rows.push_back(std::move(pr));
    }
    const double n = static_cast<double>(mine.size());
    f.mape_in_pct /= n;
    f.mape_held_pct /= n;
    f.spread_in_pp = hi_err - lo_err;
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace moesim
