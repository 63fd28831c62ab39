// fit.h
//
// Least-squares fits of a hardware profile to `moesim-real bench` measurements (Eigen). Every
// fit is scale-free (a 10 us op counts as much as a 10 ms one), and every model is
// the one the simulator evaluates, so a fitted profile reproduces the bench through the
// simulator's own formulas:
//   memory   t = bytes / (hbm_bytes_per_s x e[kernel]) + op_overhead_s, one efficiency per
//            bench kernel (copy, axpy, swiglu, rmsnorm, softmax, adamw: on a CPU they differ
//            100x, exp() and division against plain streaming), one overhead for all; the
//            simulator's elementwise ops each name their kernel (costmodel/step_plan.cc).
//            Linear in (1 / e[k], op_overhead_s): a weighted solve for a start, then
//            Levenberg-Marquardt on ln(model / measured). Each kernel needs 2 points.
//   gemm     t = ComputeTimeS(2mnk FLOPs, 4(mk + kn + mn) bytes, shape (m, n, k))
//              (x experts for the grouped GEMMs of an MoE layer, fitted with the single ones)
//              = 2mnk / (peak x e(m, n, k)) + op_overhead_s   (when FLOPs bound)
//            e = gemm_max_efficiency x s(m, h_m) x s(n, h_n) x s(k, h_k), s(x, h) = x / (x + h)
//            (costmodel/compute_time.cc); 1/e expands into terms in mnk, nk, mk, mn: packing
//            of the operands and writing the output. Nonlinear in (e_max, h): a log-spaced grid
//            over (h_m, h_n, h_k) for a start, then Levenberg-Marquardt on the log-parameters
//            (each step one Eigen LDLT solve), residuals ln(model / measured).
//   collectives on cpu-host:N (topologies/cpu_host.cc), as AnalyticalNetwork times them there:
//            all_reduce  t = 2 (n-1) alpha + 2 (n-1)/n x bytes / B
//            all_to_all  t =       alpha + (n-1)/n   x bytes / B
//            linear in (alpha, 1 / B): one solve in relative error per collective kind, and
//            one over both kinds for the link (link_latency_s = alpha, link_bytes_per_s = B),
//            since the simulator has one alpha-beta per link. Relative error bounds what a
//            point measured slow by interference (an MPI rank descheduled) can pull: 1.
// A fit refuses (kInvalidInput) when it has too few points to determine its parameters, or
// when the result is not physical (an efficiency above 1: the base profile's peak is too low).
// Thread safety: pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "calib/bench_data.h"
#include "common/status.h"
#include "proto/scenario.h"

namespace moesim::calib {

inline constexpr size_t kMinMemoryPoints = 4;
inline constexpr size_t kMinGemmPoints = 8;  // 4 parameters, twice over
inline constexpr size_t kMinCollectivePoints = 3;

struct PointResidual {
  std::string label;  // "gemm m=64 n=128 k=32 (b.json: gemm[7])"
  double measured_s = 0;
  double model_s = 0;
  double RelError() const { return model_s / measured_s - 1; }
};

struct FitParam {
  std::string name;  // the profile field it sets
  double value = 0;
  std::string unit;
};

struct FitReport {
  std::string name;    // "memory", "gemm", "all_reduce/SHM", "link/SHM"
  std::string model;   // the formula, one line
  bool fitted = true;  // false: nothing was fitted (a note says why)
  std::vector<FitParam> params;
  std::vector<PointResidual> points;
  std::vector<std::string> notes;
  double RmsRelError() const;
  // The `n` points with the largest |relative error|, largest first.
  std::vector<PointResidual> Worst(size_t n) const;
};

struct MemoryFit {
  double efficiency = 0;  // memory_efficiency: axpy's, else the kernels' geometric mean
  double overhead_s = 0;
  std::array<double, kNumMemoryKernels> kernel_efficiency{};  // 0 = not measured
  std::array<double, kNumMemoryKernels> kernel_rms_rel{};     // fit residual per kernel
};
Expected<MemoryFit> FitMemory(const std::vector<MemoryPoint>& points, double hbm_bytes_per_s,
                              FitReport* report);

struct GemmFit {
  double max_efficiency = 0;
  double m_half = 0, n_half = 0, k_half = 0;
};
// `grouped`: the MoE expert GEMMs (count = experts, shape rows x hidden x d_model), fitted
// together with `points`, each family with equal total weight: the single-GEMM grid reuses warm
// buffers, the grouped GEMMs stream a different weight matrix per expert as training does.
// REQUIRES: hw has peak_flops_per_s, hbm_bytes_per_s, memory_efficiency and op_overhead_s set
// (the memory fit's); its gemm_* fields are ignored.
Expected<GemmFit> FitGemm(const std::vector<GemmPoint>& points,
                          const std::vector<GemmPoint>& grouped, const HardwareProfile& hw,
                          FitReport* report);
// The simulator's time of one fp32 GEMM (m, n, k) under `hw` (costmodel ComputeTimeS).
double GemmTimeS(int64_t m, int64_t n, int64_t k, const HardwareProfile& hw);

struct AlphaBeta {
  double alpha_s = 0;
  double bytes_per_s = 0;
};
// cpu-host collective time, as the formulas above.
double CollectiveTimeS(const std::string& op, int64_t ranks, double bytes, const AlphaBeta& ab);
// Fits the points with ranks > 1 (others are skipped); `name` titles the report.
Expected<AlphaBeta> FitCollectives(const std::vector<CollectivePoint>& points,
                                   const std::string& name, FitReport* report);

struct CollectiveFitRecord {
  std::string op, group;
  AlphaBeta fit;
  double rms_rel = 0;
  int64_t points = 0;
};

struct Calibration {
  HardwareProfile profile;  // the base with every fitted field replaced
  std::array<double, kNumMemoryKernels> kernel_rms_rel{};  // memory fit residual per kernel
  std::vector<FitReport> reports;
  std::vector<CollectiveFitRecord> collective_fits;
};

// The group kind of a CPU bench's collectives: "SHM" when every rank has a core of its own;
// "SHM-timeshared" when the ranks outnumber the host's cores, so that every synchronization
// waits for a descheduled rank (milliseconds, not microseconds): a different link, fitted
// separately, and used by `validate-real` for runs placed the same way.
inline constexpr const char* kShmGroup = "SHM";
inline constexpr const char* kShmTimesharedGroup = "SHM-timeshared";

// All fits, in order memory -> gemm, single and grouped (uses memory's overhead) ->
// collectives per op and group kind, then the link per group kind (op "link" in
// collective_fits). The profile's link_* come from the first group kind of SHM, NVLINK,
// SHM-timeshared that has points. Collectives are fitted when the bench has points with more
// than one rank; otherwise the base's link figures stay and a note says so. `host_cores`: the
// cores of the host the bench ran on (0 = unknown: no time-shared group).
Expected<Calibration> Calibrate(const BenchData& bench, const HardwareProfile& base,
                                int64_t host_cores = 0);

}  // namespace moesim::calib
