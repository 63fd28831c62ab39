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

// The rule's centre of log rho over the rows at log x: the mean (geometric-mean rule) or the
// median (the middle two averaged for an even count). Both rise with x where every row does.
double Centre(const std::vector<const Row*>& rows, const std::vector<double>& log_x, double lx,
              FitRule rule) {
  std::vector<double> l;
  for (const Row* r : rows) l.push_back(LogRho(*r, LogMetricAt(*r, log_x, lx)));
  if (l.empty()) return 0;
  if (rule == FitRule::kGeometricMean) {
    double s = 0;
    for (double v : l) s += v;
    return s / static_cast<double>(l.size());
  }
  std::sort(l.begin(), l.end());
  const size_t n = l.size();
  return n % 2 == 1 ? l[n / 2] : 0.5 * (l[n / 2 - 1] + l[n / 2]);
}

// The x in [lo, hi] (log space) where the rule's centre of log rho is 0; the nearer bound when
// there is none.
double Solve(const std::vector<const Row*>& rows, const std::vector<double>& log_x, FitRule rule,
             bool* at_bound) {
  double a = log_x.front(), b = log_x.back();
  const double fa = Centre(rows, log_x, a, rule), fb = Centre(rows, log_x, b, rule);
  *at_bound = false;
  if ((fa > 0) == (fb > 0)) {
    *at_bound = true;
    return std::exp(std::abs(fa) < std::abs(fb) ? a : b);
  }
  for (int it = 0; it < 100; ++it) {
    const double m = 0.5 * (a + b);
    ((Centre(rows, log_x, m, rule) > 0) == (fa > 0) ? a : b) = m;
  }
  return std::exp(0.5 * (a + b));
}

double ErrorPct(const Row& r, double log_metric) {
  return 100 * (std::exp(log_metric) - r.row.measured) / r.row.measured;
}

// The rule's loss at x: sum of squared log rho (geometric mean) or of |log rho| (median).
double Loss(const std::vector<const Row*>& rows, const std::vector<double>& log_x, double x,
            FitRule rule) {
  double s = 0;
  for (const Row* r : rows) {
    const double l = LogRho(*r, LogMetricAt(*r, log_x, std::log(x)));
    s += rule == FitRule::kGeometricMean ? l * l : std::abs(l);
  }
  return s;
}

// The 1-D fit of the rows under every scan value; the scan index with the least loss over them
// (the first on ties) and its fitted value.
struct ScanChoice {
  size_t scan = 0;
  double value = 0;
  bool at_bound = false;
  std::vector<double> losses;  // per scan value
};
ScanChoice Choose(const std::vector<std::vector<const Row*>>& by_scan,
                  const std::vector<double>& log_x, FitRule rule) {
  ScanChoice c;
  double best = 0;
  for (size_t v = 0; v < by_scan.size(); ++v) {
    bool bound = false;
    const double x = Solve(by_scan[v], log_x, rule, &bound);
    const double loss = Loss(by_scan[v], log_x, x, rule);
    c.losses.push_back(loss);
    if (v == 0 || loss < best - 1e-12) {
      best = loss;
      c = {v, x, bound, c.losses};
    }
  }
  c.losses.resize(by_scan.size());
  return c;
}

}  // namespace

Expected<std::vector<ChipFit>> FitPublished(const std::vector<std::string>& sets,
                                            const PublishedFitOptions& o,
                                            const std::function<void(size_t, size_t)>& progress) {
  if (!(o.lo > 0 && o.hi > o.lo) || o.grid < 2 || o.folds < 2) {
    return Status::InvalidInput(
        "calibrate --published: the range must satisfy 0 < lo < hi, grid >= 2, folds >= 2");
  }
  if (!o.scan_values.empty() && (o.scan_param.empty() || o.scan_param == o.param)) {
    return Status::InvalidInput(
        "calibrate --published: --scan needs a Hardware field other than --param");
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
  // The scan values as override strings; one empty entry without a scan.
  std::vector<std::string> scan_overrides;
  for (double v : o.scan_values) {
    char value[64];
    std::snprintf(value, sizeof(value), "%.17g", v);
    scan_overrides.push_back("hardware." + o.scan_param + "=" + value);
  }
  if (scan_overrides.empty()) scan_overrides.push_back("");
  // Simulate every row at every grid point under every scan value; rows with the same scenario
  // and overrides share.
  std::vector<std::vector<Row>> grids(scan_overrides.size(), rows);
  const size_t total = rows.size() * log_x.size() * scan_overrides.size();
  size_t done = 0;
  for (size_t v = 0; v < scan_overrides.size(); ++v) {
    std::map<std::string, std::vector<double>> cache;
    for (Row& r : grids[v]) {
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
        std::vector<std::string> extra = {path + "=" + value};
        if (!scan_overrides[v].empty()) extra.push_back(scan_overrides[v]);
        auto sc = LoadValidationRowScenario(r.set, r.row, extra);
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
          return Status::InvalidInput(r.set + ":" + std::to_string(r.row.line) + ": row " +
                                      r.row.id + ": simulated " + r.row.metric +
                                      " is not positive at " + path + "=" + value);
        }
        r.log_metric.push_back(std::log(m));
        if (progress) progress(++done, total);
      }
      cache[key] = r.log_metric;
    }
  }
  // Per chip, in order of first appearance.
  std::vector<std::string> chips;
  for (const Row& r : rows) {
    if (std::find(chips.begin(), chips.end(), r.chip) == chips.end()) chips.push_back(r.chip);
  }
  std::vector<ChipFit> out;
  for (const std::string& chip : chips) {
    std::vector<size_t> mine;  // indices into rows
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].chip == chip) mine.push_back(i);
    }
    // Rows of `which` (indices into mine) under every scan value.
    auto by_scan = [&](const std::vector<size_t>& which) {
      std::vector<std::vector<const Row*>> b(grids.size());
      for (size_t v = 0; v < grids.size(); ++v) {
        for (size_t i : which) b[v].push_back(&grids[v][mine[i]]);
      }
      return b;
    };
    std::vector<size_t> all(mine.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    // Too few rows for the scan: only the first scan value is considered.
    const bool scan = mine.size() >= static_cast<size_t>(std::max(o.scan_min_rows, 1));
    auto choose = [&](const std::vector<size_t>& which) {
      auto b = by_scan(which);
      if (!scan) b.resize(1);
      ScanChoice c = Choose(b, log_x, o.rule);
      c.losses.resize(grids.size(), std::nan(""));
      return c;
    };
    const ScanChoice whole = choose(all);
    ChipFit f;
    f.chip = chip;
    f.value = whole.value;
    f.at_bound = whole.at_bound;
    if (!o.scan_values.empty()) {
      f.scan_value = o.scan_values[whole.scan];
      f.scan_losses = whole.losses;
    }
    const int k = static_cast<int>(std::min<size_t>(static_cast<size_t>(o.folds), mine.size()));
    f.folds = k;
    f.held_out_valid = k >= 2;
    // Each fold: the whole procedure (scan choice and fit) on the other folds' rows.
    std::vector<ScanChoice> fold_fit(static_cast<size_t>(std::max(k, 1)), whole);
    for (int fold = 0; fold < k && f.held_out_valid; ++fold) {
      std::vector<size_t> train;
      for (size_t i = 0; i < mine.size(); ++i) {
        if (static_cast<int>(i % static_cast<size_t>(k)) != fold) train.push_back(i);
      }
      fold_fit[static_cast<size_t>(fold)] = choose(train);
    }
    double lo_err = 0, hi_err = 0;
    for (size_t i = 0; i < mine.size(); ++i) {
      const Row& r = grids[whole.scan][mine[i]];
      PublishedFitRow pr;
      pr.set = r.set;
      pr.id = r.row.id;
      pr.metric = r.row.metric;
      pr.measured = r.row.measured;
      pr.fold = f.held_out_valid ? static_cast<int>(i % static_cast<size_t>(k)) : 0;
      const ScanChoice& ff = fold_fit[static_cast<size_t>(pr.fold)];
      const double in = LogMetricAt(r, log_x, std::log(f.value));
      const double held = LogMetricAt(grids[ff.scan][mine[i]], log_x, std::log(ff.value));
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
