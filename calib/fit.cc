#include "calib/fit.h"

#include <Eigen/Dense>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "costmodel/opgraph.h"

namespace moesim::calib {
namespace {

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

Status TooFew(const std::string& what, size_t have, size_t need, const std::string& why) {
  return Status::InvalidInput("calibrate: " + what + ": " + std::to_string(have) +
                              " point(s), need at least " + std::to_string(need) + " (" + why +
                              ")");
}

// Weighted linear least squares min sum_i ((A_i x - t_i) / t_i)^2: relative errors.
Eigen::VectorXd SolveRelative(const Eigen::MatrixXd& a, const Eigen::VectorXd& t) {
  Eigen::MatrixXd aw = a;
  Eigen::VectorXd ones = Eigen::VectorXd::Ones(t.size());
  for (Eigen::Index i = 0; i < t.size(); ++i) aw.row(i) /= t(i);
  return aw.colPivHouseholderQr().solve(ones);
}

double LatencySteps(const std::string& op, int64_t n) {
  return op == "all_reduce" ? 2.0 * static_cast<double>(n - 1) : 1.0;
}
double BandwidthFactor(const std::string& op, int64_t n) {
  const double dn = static_cast<double>(n);
  return op == "all_reduce" ? 2.0 * (dn - 1) / dn : (dn - 1) / dn;
}

HardwareProfile WithGemm(HardwareProfile hw, const Eigen::Vector4d& theta) {
  hw.gemm_max_efficiency = std::exp(theta(0));
  hw.gemm_m_half = std::exp(theta(1));
  hw.gemm_n_half = std::exp(theta(2));
  hw.gemm_k_half = std::exp(theta(3));
  return hw;
}

// Weighted log residuals w_i ln(model_i / measured_i).
Eigen::VectorXd GemmResiduals(const std::vector<GemmPoint>& pts, const std::vector<double>& w,
                              const HardwareProfile& hw, const Eigen::Vector4d& theta) {
  const HardwareProfile h = WithGemm(hw, theta);
  Eigen::VectorXd r(static_cast<Eigen::Index>(pts.size()));
  for (size_t i = 0; i < pts.size(); ++i) {
    const double model =
        static_cast<double>(pts[i].count) * GemmTimeS(pts[i].m, pts[i].n, pts[i].k, h);
    r(static_cast<Eigen::Index>(i)) = w[i] * std::log(model / pts[i].time_s);
  }
  return r;
}

size_t Distinct(const std::vector<GemmPoint>& pts, int64_t GemmPoint::*dim) {
  std::set<int64_t> s;
  for (const auto& p : pts) s.insert(p.*dim);
  return s.size();
}

// Levenberg-Marquardt on `theta` minimizing |residuals(theta)|^2, central-difference Jacobian;
// each step one Eigen LDLT solve of (J'J + lambda diag(J'J)) delta = -J'r.
Eigen::VectorXd LevenbergMarquardt(
    const std::function<Eigen::VectorXd(const Eigen::VectorXd&)>& residuals,
    Eigen::VectorXd theta) {
  const Eigen::Index p = theta.size();
  Eigen::VectorXd r = residuals(theta);
  double cost = r.squaredNorm();
  double lambda = 1e-3;
  for (int iter = 0; iter < 200; ++iter) {
    Eigen::MatrixXd jac(r.size(), p);
    for (Eigen::Index j = 0; j < p; ++j) {
      const double step = 1e-6;
      Eigen::VectorXd tp = theta, tm = theta;
      tp(j) += step;
      tm(j) -= step;
      jac.col(j) = (residuals(tp) - residuals(tm)) / (2 * step);
    }
    const Eigen::MatrixXd jtj = jac.transpose() * jac;
    const Eigen::VectorXd g = jac.transpose() * r;
    bool improved = false;
    bool converged = false;
    for (int tries = 0; tries < 20 && !improved; ++tries) {
      Eigen::MatrixXd lhs = jtj;
      for (Eigen::Index j = 0; j < p; ++j) lhs(j, j) += lambda * std::max(jtj(j, j), 1e-12);
      const Eigen::VectorXd cand = theta + lhs.ldlt().solve(-g);
      const Eigen::VectorXd rc = residuals(cand);
      const double cc = rc.squaredNorm();
      if (std::isfinite(cc) && cc < cost) {
        converged = cost - cc < 1e-15 * (1 + cost);
        theta = cand;
        r = rc;
        cost = cc;
        lambda = std::max(lambda / 10, 1e-12);
        improved = true;
      } else {
        lambda *= 10;
      }
    }
    if (!improved || converged) break;
  }
  return theta;
}
}  // namespace

double FitReport::RmsRelError() const {
  if (points.empty()) return 0;
  double s = 0;
  for (const auto& p : points) s += p.RelError() * p.RelError();
  return std::sqrt(s / static_cast<double>(points.size()));
}

std::vector<PointResidual> FitReport::Worst(size_t n) const {
  std::vector<PointResidual> v = points;
  std::stable_sort(v.begin(), v.end(), [](const PointResidual& a, const PointResidual& b) {
    return std::abs(a.RelError()) > std::abs(b.RelError());
  });
  if (v.size() > n) v.resize(n);
  return v;
}

Expected<MemoryFit> FitMemory(const std::vector<MemoryPoint>& points, double hbm_bytes_per_s,
                              FitReport* report) {
  if (points.size() < kMinMemoryPoints) {
    return TooFew("memory", points.size(), kMinMemoryPoints,
                  "2 parameters: bandwidth efficiency and per-op overhead");
  }
  std::set<double> sizes;
  for (const auto& p : points) sizes.insert(p.bytes);
  if (sizes.size() < 2) {
    return Status::InvalidInput(
        "calibrate: memory: every point has the same size; the bandwidth and the per-op "
        "overhead cannot be told apart");
  }
  if (!(hbm_bytes_per_s > 0)) {
    return Status::InvalidInput("calibrate: the base profile has no hbm_bytes_per_s");
  }
  // One efficiency per kernel (column), one per-op overhead shared by all (last column).
  std::vector<MemoryKernel> kernels;
  std::vector<Eigen::Index> column(points.size());
  std::array<size_t, kNumMemoryKernels> count{};
  for (size_t i = 0; i < points.size(); ++i) {
    MemoryKernel k;
    if (!ParseMemoryKernel(points[i].kernel, &k)) {
      return Status::InvalidInput("calibrate: memory: " + points[i].where + ": kernel \"" +
                                  points[i].kernel + "\" is not one the simulator knows (" +
                                  MemoryKernelChoices() + ")");
    }
    auto it = std::find(kernels.begin(), kernels.end(), k);
    if (it == kernels.end()) it = kernels.insert(kernels.end(), k);
    column[i] = it - kernels.begin();
    ++count[static_cast<size_t>(k)];
  }
  for (MemoryKernel k : kernels) {
    if (count[static_cast<size_t>(k)] < 2) {
      return TooFew(std::string("memory: kernel ") + MemoryKernelName(k),
                    count[static_cast<size_t>(k)], 2, "its efficiency, checked by a second size");
    }
  }
  const auto n = static_cast<Eigen::Index>(points.size());
  const auto nk = static_cast<Eigen::Index>(kernels.size());
  Eigen::MatrixXd a = Eigen::MatrixXd::Zero(n, nk + 1);
  Eigen::VectorXd t(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const MemoryPoint& p = points[static_cast<size_t>(i)];
    a(i, column[static_cast<size_t>(i)]) = p.bytes / hbm_bytes_per_s;  // x 1 / efficiency
    a(i, nk) = 1.0;                                                    // x overhead
    t(i) = p.time_s;
  }
  Eigen::VectorXd x = SolveRelative(a, t);
  report->name = "memory";
  report->model =
      "t = bytes / (hbm_bytes_per_s x kernel_memory_efficiency[kernel]) + op_overhead_s";
  if (x(nk) < 0) {
    // A negative fixed cost is not physical (noise on the smallest points): start without it.
    Eigen::VectorXd x1 = SolveRelative(a.leftCols(nk), t);
    x.head(nk) = x1;
    x(nk) = 0;
  }
  for (Eigen::Index j = 0; j < nk; ++j) {
    if (!(x(j) > 0)) {
      return Status::InvalidInput(std::string("calibrate: memory: kernel ") +
                                  MemoryKernelName(kernels[static_cast<size_t>(j)]) +
                                  ": time does not grow with bytes (slope " + Num(x(j)) +
                                  "); its points are not usable");
    }
  }
  // The linear solve weighs relative errors, which punish over-prediction without bound and
  // under-prediction at most 1. The fit proper is in log space, symmetric: ln(model /
  // measured), from the linear solution.
  const double floor_s = 1e-3 * t.minCoeff();
  Eigen::VectorXd start(nk + 1);
  for (Eigen::Index j = 0; j < nk; ++j) start(j) = std::log(x(j));
  start(nk) = std::log(std::max(x(nk), floor_s));
  auto log_residuals = [&](const Eigen::VectorXd& th) {
    Eigen::VectorXd r(n);
    for (Eigen::Index i = 0; i < n; ++i) {
      const Eigen::Index j = column[static_cast<size_t>(i)];
      r(i) = std::log((a(i, j) * std::exp(th(j)) + std::exp(th(nk))) / t(i));
    }
    return r;
  };
  const Eigen::VectorXd th = LevenbergMarquardt(log_residuals, start);
  MemoryFit fit;
  fit.overhead_s = std::exp(th(nk));
  double log_sum = 0;
  for (Eigen::Index j = 0; j < nk; ++j) {
    const MemoryKernel k = kernels[static_cast<size_t>(j)];
    const double e = 1.0 / std::exp(th(j));
    if (e > 1) {
      return Status::InvalidInput(
          std::string("calibrate: memory: kernel ") + MemoryKernelName(k) +
          ": measured bandwidth is " + Num(e) +
          " x the base profile's hbm_bytes_per_s=" + Num(hbm_bytes_per_s) +
          "; an efficiency must be <= 1: give a base profile with the true bandwidth");
    }
    fit.kernel_efficiency[static_cast<size_t>(k)] = e;
    log_sum += std::log(e);
  }
  // What ops of no listed kernel use (matmuls bound by memory): the streaming kernel's, or
  // the geometric mean of those measured.
  const double axpy = fit.kernel_efficiency[static_cast<size_t>(MemoryKernel::kAxpy)];
  fit.efficiency = axpy > 0 ? axpy : std::exp(log_sum / static_cast<double>(nk));
  report->params = {{"memory_efficiency", fit.efficiency, ""},
                    {"op_overhead_s", fit.overhead_s, "s"}};
  for (MemoryKernel k : kernels) {
    report->params.push_back({std::string("kernel_memory_efficiency[") + MemoryKernelName(k) + "]",
                              fit.kernel_efficiency[static_cast<size_t>(k)], ""});
  }
  std::array<double, kNumMemoryKernels> sq{};
  for (Eigen::Index i = 0; i < n; ++i) {
    const MemoryPoint& p = points[static_cast<size_t>(i)];
    const MemoryKernel k = kernels[static_cast<size_t>(column[static_cast<size_t>(i)])];
    const double model =
        p.bytes / (hbm_bytes_per_s * fit.kernel_efficiency[static_cast<size_t>(k)]) +
        fit.overhead_s;
    report->points.push_back(
        {p.kernel + " " + std::to_string(p.elements) + " elements (" + p.where + ")", p.time_s,
         model});
    sq[static_cast<size_t>(k)] += (model / p.time_s - 1) * (model / p.time_s - 1);
  }
  for (MemoryKernel k : kernels) {
    const auto at = static_cast<size_t>(k);
    fit.kernel_rms_rel[at] = std::sqrt(sq[at] / static_cast<double>(count[at]));
  }
  return fit;
}

double GemmTimeS(int64_t m, int64_t n, int64_t k, const HardwareProfile& hw) {
  ComputeWork w;
  w.matmul = true;
  w.m = m;
  w.n = n;
  w.k = k;
  const double dm = static_cast<double>(m), dn = static_cast<double>(n),
               dk = static_cast<double>(k);
  w.flops = 2 * dm * dn * dk;
  w.bytes = 4 * (dm * dk + dk * dn + dm * dn);  // fp32, as the bench runs
  return ComputeTimeS(w, hw);
}

Expected<GemmFit> FitGemm(const std::vector<GemmPoint>& single,
                          const std::vector<GemmPoint>& grouped, const HardwareProfile& hw,
                          FitReport* report) {
  if (single.size() < kMinGemmPoints) {
    return TooFew("gemm", single.size(), kMinGemmPoints,
                  "4 parameters: gemm_max_efficiency and the half-points of m, n, k");
  }
  for (auto [dim, name] :
       {std::pair{&GemmPoint::m, "m"}, {&GemmPoint::n, "n"}, {&GemmPoint::k, "k"}}) {
    if (Distinct(single, dim) < 2) {
      return Status::InvalidInput(std::string("calibrate: gemm: every point has the same ") + name +
                                  "; its half-point cannot be fitted");
    }
  }
  std::vector<GemmPoint> points = single;
  std::vector<double> w(single.size(), 1.0 / std::sqrt(static_cast<double>(single.size())));
  for (const GemmPoint& g : grouped) {
    points.push_back(g);
    w.push_back(1.0 / std::sqrt(static_cast<double>(grouped.size())));
  }
  double w2_sum = 0;
  for (double x : w) w2_sum += x * x;
  // Start: the best of a log-spaced grid of half-points, each with its best e_max when the
  // overhead is ignored (ln e_max is then the mean log-ratio: no solve needed).
  Eigen::Vector4d best = Eigen::Vector4d::Zero();
  double best_cost = std::numeric_limits<double>::infinity();
  std::vector<double> grid;
  for (double h = 0.5; h <= 4096; h *= 2) grid.push_back(h);
  HardwareProfile unit = hw;
  unit.op_overhead_s = 0;
  for (double hm : grid) {
    for (double hn : grid) {
      for (double hk : grid) {
        Eigen::Vector4d th(0.0, std::log(hm), std::log(hn), std::log(hk));
        // e_max = 1 gives residuals w ln(model / measured); ln e_max is their weighted mean.
        const Eigen::VectorXd r = GemmResiduals(points, w, unit, th);
        double mean = 0;
        for (size_t i = 0; i < w.size(); ++i) mean += w[i] * r(static_cast<Eigen::Index>(i));
        mean /= w2_sum;
        th(0) = mean;
        double cost = 0;
        for (size_t i = 0; i < w.size(); ++i) {
          const double d = r(static_cast<Eigen::Index>(i)) - w[i] * mean;
          cost += d * d;
        }
        if (cost < best_cost) {
          best_cost = cost;
          best = th;
        }
      }
    }
  }
  // Levenberg-Marquardt on ln(e_max, h_m, h_n, h_k), overhead included.
  const Eigen::VectorXd theta_x = LevenbergMarquardt(
      [&](const Eigen::VectorXd& t) { return GemmResiduals(points, w, hw, Eigen::Vector4d(t)); },
      Eigen::VectorXd(best));
  const Eigen::Vector4d theta(theta_x);
  GemmFit fit;
  fit.max_efficiency = std::exp(theta(0));
  fit.m_half = std::exp(theta(1));
  fit.n_half = std::exp(theta(2));
  fit.k_half = std::exp(theta(3));
  if (fit.max_efficiency > 1) {
    return Status::InvalidInput("calibrate: gemm: gemm_max_efficiency fits as " +
                                Num(fit.max_efficiency) + " > 1: the base profile's " +
                                "peak_flops_per_s=" + Num(hw.peak_flops_per_s) +
                                " is below what was measured");
  }
  report->name = "gemm";
  report->model =
      "t = 2mnk / (peak_flops_per_s x e) + op_overhead_s, e = gemm_max_efficiency x "
      "m/(m+gemm_m_half) x n/(n+gemm_n_half) x k/(k+gemm_k_half)";
  report->params = {{"gemm_max_efficiency", fit.max_efficiency, ""},
                    {"gemm_m_half", fit.m_half, ""},
                    {"gemm_n_half", fit.n_half, ""},
                    {"gemm_k_half", fit.k_half, ""}};
  const HardwareProfile h = WithGemm(hw, theta);
  for (const GemmPoint& p : points) {
    report->points.push_back({(p.count > 1 ? std::to_string(p.count) + " x " : std::string()) +
                                  "gemm m=" + std::to_string(p.m) + " n=" + std::to_string(p.n) +
                                  " k=" + std::to_string(p.k) + " (" + p.where + ")",
                              p.time_s,
                              static_cast<double>(p.count) * GemmTimeS(p.m, p.n, p.k, h)});
  }
  return fit;
}

double CollectiveTimeS(const std::string& op, int64_t ranks, double bytes, const AlphaBeta& ab) {
  if (ranks <= 1) return 0;
  return LatencySteps(op, ranks) * ab.alpha_s + BandwidthFactor(op, ranks) * bytes / ab.bytes_per_s;
}

Expected<AlphaBeta> FitCollectives(const std::vector<CollectivePoint>& all, const std::string& name,
                                   FitReport* report) {
  std::vector<CollectivePoint> points;
  for (const auto& p : all) {
    if (p.ranks > 1) points.push_back(p);
  }
  if (points.size() < kMinCollectivePoints) {
    return TooFew(name, points.size(), kMinCollectivePoints,
                  "2 parameters: alpha and bandwidth, from runs with more than one rank");
  }
  std::set<double> sizes;
  for (const auto& p : points) sizes.insert(p.bytes);
  if (sizes.size() < 2) {
    return Status::InvalidInput("calibrate: " + name +
                                ": every point has the same size; alpha and bandwidth cannot "
                                "be told apart");
  }
  const auto n = static_cast<Eigen::Index>(points.size());
  Eigen::MatrixXd a(n, 2);
  Eigen::VectorXd t(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const CollectivePoint& p = points[static_cast<size_t>(i)];
    a(i, 0) = LatencySteps(p.op, p.ranks);
    a(i, 1) = BandwidthFactor(p.op, p.ranks) * p.bytes;
    t(i) = p.time_s;
  }
  Eigen::VectorXd x = SolveRelative(a, t);
  report->name = name;
  report->model =
      "all_reduce: t = 2(n-1) alpha + 2(n-1)/n bytes / B; all_to_all: t = alpha + (n-1)/n "
      "bytes / B";
  if (x(0) < 0) {
    report->notes.push_back("alpha fitted as " + Num(x(0)) + " s < 0; refitted with alpha = 0");
    Eigen::VectorXd x1 = SolveRelative(a.rightCols(1), t);
    x = Eigen::Vector2d(0.0, x1(0));
  }
  if (!(x(1) > 0)) {
    return Status::InvalidInput("calibrate: " + name +
                                ": time does not grow with message size; not usable");
  }
  AlphaBeta ab{x(0), 1.0 / x(1)};
  report->params = {{"alpha_s", ab.alpha_s, "s"}, {"bytes_per_s", ab.bytes_per_s, "B/s"}};
  for (const CollectivePoint& p : points) {
    report->points.push_back({p.op + " " + Num(p.bytes) + " B on " + std::to_string(p.ranks) +
                                  " ranks (" + p.where + ")",
                              p.time_s, CollectiveTimeS(p.op, p.ranks, p.bytes, ab)});
  }
  return ab;
}

Expected<Calibration> Calibrate(const BenchData& bench, const HardwareProfile& base,
                                int64_t host_cores) {
  Calibration c;
  c.profile = base;
  HardwareProfile& hw = c.profile;

  FitReport mem;
  Expected<MemoryFit> mf = FitMemory(bench.memory, base.hbm_bytes_per_s, &mem);
  if (!mf.ok()) return mf.status();
  hw.memory_efficiency = mf->efficiency;
  hw.op_overhead_s = mf->overhead_s;
  hw.kernel_memory_efficiency = mf->kernel_efficiency;
  c.kernel_rms_rel = mf->kernel_rms_rel;
  c.reports.push_back(std::move(mem));

  std::vector<GemmPoint> grouped;
  for (const GroupedGemmPoint& p : bench.grouped_gemm) {
    grouped.push_back({p.rows, p.hidden, p.d_model, p.time_s, p.where, p.experts});
  }
  FitReport gemm;
  Expected<GemmFit> gf = FitGemm(bench.gemm, grouped, hw, &gemm);
  if (!gf.ok()) return gf.status();
  hw.gemm_max_efficiency = gf->max_efficiency;
  hw.gemm_m_half = gf->m_half;
  hw.gemm_n_half = gf->n_half;
  hw.gemm_k_half = gf->k_half;
  // Large-GEMM efficiency, for what reads matmul_efficiency alone (reports, MFU priors).
  hw.matmul_efficiency = gf->max_efficiency;
  if (!grouped.empty()) {
    gemm.notes.push_back(std::to_string(grouped.size()) +
                         " grouped (MoE expert) GEMM points fitted with the single ones, each "
                         "family weighted equally");
  }
  c.reports.push_back(std::move(gemm));

  bool multi = false;
  for (const auto& p : bench.collectives) multi = multi || p.ranks > 1;
  if (!multi) {
    FitReport note;
    note.name = "link";
    note.fitted = false;
    note.notes.push_back(
        "no collective was measured on more than one rank: link_bytes_per_s and "
        "link_latency_s stay the base profile's (run `mpirun -n 2 moesim-real bench` too)");
    c.reports.push_back(std::move(note));
    return c;
  }
  // The group kind: ranks of one host exchange through shared memory on the CPU; on GPUs the
  // bench's ranks are the GPUs of one node (NVLink).
  std::map<std::string, std::vector<CollectivePoint>> by_group;
  for (const auto& p : bench.collectives) {
    if (p.ranks <= 1) continue;
    const char* group = bench.backend != "cpu"                   ? "NVLINK"
                        : host_cores > 0 && p.ranks > host_cores ? kShmTimesharedGroup
                                                                 : kShmGroup;
    by_group[group].push_back(p);
  }
  bool link_set = false;
  for (const char* group : {kShmGroup, "NVLINK", kShmTimesharedGroup}) {
    auto it = by_group.find(group);
    if (it == by_group.end()) continue;
    for (const char* op : {"all_reduce", "all_to_all"}) {
      std::vector<CollectivePoint> pts;
      for (const auto& p : it->second) {
        if (p.op == op) pts.push_back(p);
      }
      FitReport r;
      Expected<AlphaBeta> ab = FitCollectives(pts, std::string(op) + "/" + group, &r);
      if (!ab.ok()) return ab.status();
      c.collective_fits.push_back(
          {op, group, *ab, r.RmsRelError(), static_cast<int64_t>(r.points.size())});
      c.reports.push_back(std::move(r));
    }
    FitReport link;
    Expected<AlphaBeta> ab = FitCollectives(it->second, std::string("link/") + group, &link);
    if (!ab.ok()) return ab.status();
    c.collective_fits.push_back(
        {"link", group, *ab, link.RmsRelError(), static_cast<int64_t>(link.points.size())});
    if (!link_set) {
      hw.link_latency_s = ab->alpha_s;
      hw.link_bytes_per_s = ab->bytes_per_s;
      hw.link_efficiency = 1;  // the fitted bandwidth is already what collectives reach
      link.params = {{"link_latency_s", ab->alpha_s, "s"},
                     {"link_bytes_per_s", ab->bytes_per_s, "B/s"},
                     {"link_efficiency", 1, ""}};
      link_set = true;
    } else {
      link.notes.push_back(
          "recorded in collective_fits; validate-real uses it for runs with more ranks than "
          "cores");
    }
    c.reports.push_back(std::move(link));
  }
  return c;
}

}  // namespace moesim::calib
