#include "calib/gemm_table.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace moesim::calib {
namespace {

constexpr size_t kMinRows = 6;  // 3 parameters, twice over

Status RowError(const std::string& path, int line, const std::string& what) {
  return Status::InvalidInput(path + ":" + std::to_string(line) + ": " + what);
}

bool ParseInt(const std::string& s, int64_t* out) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || end == nullptr || *end != '\0') return false;
  *out = v;
  return true;
}

bool ParseDouble(const std::string& s, double* out) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end == nullptr || *end != '\0') return false;
  *out = v;
  return true;
}

using Vec3 = std::array<double, 3>;

// The parameters from the search's unconstrained coordinates.
GemmTableFit FromCoords(const Vec3& x) {
  GemmTableFit f;
  f.max_fraction = 1 / (1 + std::exp(-x[0]));
  f.k_half = std::exp(x[1]);
  f.overhead_s = std::exp(x[2]);
  return f;
}

double SumSquaredLog(const std::vector<GemmTableRow>& rows, const GemmParams& p) {
  double sum = 0;
  for (const GemmTableRow& r : rows) {
    const double e = std::log(GemmKernelTime(r.shape, p).total_s() / r.MeasuredS());
    sum += e * e;
  }
  return sum;
}

// Nelder-Mead (standard coefficients 1, 2, 0.5, 0.5) from `x0` with steps `step`.
Vec3 NelderMead(const std::vector<GemmTableRow>& rows, const GemmParams& base, const Vec3& x0,
                double step) {
  auto f = [&](const Vec3& x) { return SumSquaredLog(rows, WithFit(base, FromCoords(x))); };
  std::array<Vec3, 4> s;
  std::array<double, 4> v;
  for (size_t i = 0; i < 4; ++i) {
    s[i] = x0;
    if (i > 0) s[i][i - 1] += step;
    v[i] = f(s[i]);
  }
  for (int iter = 0; iter < 600; ++iter) {
    std::array<size_t, 4> o = {0, 1, 2, 3};
    std::sort(o.begin(), o.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    const size_t best = o[0], worst = o[3], second = o[2];
    if (std::abs(v[worst] - v[best]) <= 1e-12 * (1 + std::abs(v[best]))) break;
    Vec3 c{};
    for (size_t i : {o[0], o[1], o[2]}) {
      for (size_t d = 0; d < 3; ++d) c[d] += s[i][d] / 3;
    }
    auto along = [&](double t) {
      Vec3 x;
      for (size_t d = 0; d < 3; ++d) x[d] = c[d] + t * (s[worst][d] - c[d]);
      return x;
    };
    const Vec3 r = along(-1);
    const double fr = f(r);
    if (fr < v[best]) {
      const Vec3 e = along(-2);
      const double fe = f(e);
      if (fe < fr) {
        s[worst] = e, v[worst] = fe;
      } else {
        s[worst] = r, v[worst] = fr;
      }
    } else if (fr < v[second]) {
      s[worst] = r, v[worst] = fr;
    } else {
      const Vec3 k = fr < v[worst] ? along(-0.5) : along(0.5);
      const double fk = f(k);
      if (fk < std::min(fr, v[worst])) {
        s[worst] = k, v[worst] = fk;
      } else {
        for (size_t i : {o[1], o[2], o[3]}) {
          for (size_t d = 0; d < 3; ++d) s[i][d] = s[best][d] + 0.5 * (s[i][d] - s[best][d]);
          v[i] = f(s[i]);
        }
      }
    }
  }
  size_t best = 0;
  for (size_t i = 1; i < 4; ++i) {
    if (v[i] < v[best]) best = i;
  }
  return s[best];
}

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double at = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(at));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (at - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

HeldOutError ErrorStats(const std::vector<double>& errors) {
  HeldOutError e;
  e.points = errors.size();
  if (errors.empty()) return e;
  e.median_abs_rel = Quantile(errors, 0.5);
  e.p90_abs_rel = Quantile(errors, 0.9);
  return e;
}

}  // namespace

double GemmTableRow::MeasuredS() const {
  return 2.0 * static_cast<double>(shape.b) * static_cast<double>(shape.m) *
         static_cast<double>(shape.n) * static_cast<double>(shape.k) / flops_per_s;
}

Expected<GemmTable> ReadGemmTable(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidInput(path + ": cannot open");
  GemmTable t;
  t.path = path;
  std::string line;
  int at = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++at;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (t.source.empty()) t.source = line.substr(1);
      continue;
    }
    if (!header) {
      if (line != "b,m,n,k,dtype,flops_per_s") {
        return RowError(path, at, "header must be b,m,n,k,dtype,flops_per_s, got \"" + line + "\"");
      }
      header = true;
      continue;
    }
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) f.push_back(c);
    if (f.size() != 6) {
      return RowError(path, at, "expected 6 columns, got " + std::to_string(f.size()));
    }
    GemmTableRow r;
    r.line = at;
    const char* names[] = {"b", "m", "n", "k"};
    int64_t* dims[] = {&r.shape.b, &r.shape.m, &r.shape.n, &r.shape.k};
    for (size_t i = 0; i < 4; ++i) {
      if (!ParseInt(f[i], dims[i]) || *dims[i] <= 0) {
        return RowError(path, at,
                        std::string(names[i]) + ": must be an integer > 0, got \"" + f[i] + "\"");
      }
    }
    if (f[4] != "bf16" && f[4] != "fp8") {
      return RowError(path, at, "dtype: must be bf16 or fp8, got \"" + f[4] + "\"");
    }
    r.shape.fp8 = f[4] == "fp8";
    if (!ParseDouble(f[5], &r.flops_per_s) || !std::isfinite(r.flops_per_s) ||
        !(r.flops_per_s > 0)) {
      return RowError(path, at, "flops_per_s: must be a number > 0, got \"" + f[5] + "\"");
    }
    t.rows.push_back(r);
  }
  if (!header) return Status::InvalidInput(path + ": no header line b,m,n,k,dtype,flops_per_s");
  return t;
}

std::vector<GemmTableRow> RowsOf(const std::vector<GemmTableRow>& rows, bool fp8) {
  std::vector<GemmTableRow> out;
  for (const GemmTableRow& r : rows) {
    if (r.shape.fp8 == fp8) out.push_back(r);
  }
  return out;
}

GemmParams WithFit(GemmParams base, const GemmTableFit& fit) {
  base.max_fraction = fit.max_fraction;
  base.k_half = fit.k_half;
  base.overhead_s = fit.overhead_s;
  return base;
}

Expected<GemmTableFit> FitGemmTable(const std::vector<GemmTableRow>& rows, const GemmParams& base) {
  if (rows.size() < kMinRows) {
    return Status::InvalidInput("gemm table fit: " + std::to_string(rows.size()) +
                                " rows; need at least " + std::to_string(kMinRows));
  }
  if (!(base.peak_flops_per_s > 0)) {
    return Status::InvalidInput("gemm table fit: the profile has no peak for this data type");
  }
  // Starts: 80% of peak; k_half 64 .. 1024; overhead 1 .. 10 us.
  Vec3 best{};
  double best_v = INFINITY;
  for (double kh : {64.0, 256.0, 1024.0}) {
    for (double oh : {1e-6, 1e-5}) {
      const Vec3 x = NelderMead(rows, base, {std::log(4.0), std::log(kh), std::log(oh)}, 0.5);
      const double v = SumSquaredLog(rows, WithFit(base, FromCoords(x)));
      if (v < best_v) best_v = v, best = x;
    }
  }
  // A restart from the best point, for the simplex that collapsed early.
  best = NelderMead(rows, base, best, 0.1);
  GemmTableFit fit = FromCoords(best);
  fit.rms_log_error =
      std::sqrt(SumSquaredLog(rows, WithFit(base, fit)) / static_cast<double>(rows.size()));
  return fit;
}

Expected<HeldOutError> KFoldGemmTable(const std::vector<GemmTableRow>& rows, const GemmParams& base,
                                      int folds) {
  if (folds < 2) return Status::InvalidInput("gemm table k-fold: need at least 2 folds");
  std::vector<double> errors;
  for (int f = 0; f < folds; ++f) {
    std::vector<GemmTableRow> train, test;
    for (size_t i = 0; i < rows.size(); ++i) {
      (static_cast<int>(i % static_cast<size_t>(folds)) == f ? test : train).push_back(rows[i]);
    }
    Expected<GemmTableFit> fit = FitGemmTable(train, base);
    if (!fit.ok()) return fit.status();
    const GemmParams p = WithFit(base, *fit);
    for (const GemmTableRow& r : test) {
      errors.push_back(std::abs(GemmKernelTime(r.shape, p).total_s() / r.MeasuredS() - 1));
    }
  }
  return ErrorStats(errors);
}

HeldOutError GemmTableError(const std::vector<GemmTableRow>& rows, const GemmParams& params) {
  std::vector<double> errors;
  for (const GemmTableRow& r : rows) {
    errors.push_back(std::abs(GemmKernelTime(r.shape, params).total_s() / r.MeasuredS() - 1));
  }
  return ErrorStats(errors);
}

}  // namespace moesim::calib
