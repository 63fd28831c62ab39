// validation.h
//
// `moesim validate-real`: runs each configuration of a validation set for real
// (`moesim-real train --trace --metrics`, under mpirun for more than one rank), simulates the
// same scenario with a calibrated profile on cpu-host:N, and compares the step time and every
// op class. Each configuration is measured `repeats` times (separate launches) so the error can
// be read against the run-to-run spread.
//
// A validation set is a CSV:
//   id,scenario,ranks,expert_parallel,overrides
// scenario: a path relative to the CSV's folder or the working directory; overrides:
// PATH=VALUE joined by ';'. ranks = MPI ranks = simulated devices (mesh data = ranks /
// expert_parallel, expert = expert_parallel: moesim-real's Data x Expert layout, the
// DATA_PARALLEL preset). The simulated cluster is cpu-host:ranks with the profile's chip.
//
// Time-sharing: when a host has fewer cores than ranks, ranks share cores; each rank then gets
// cores/ranks of a core, and the simulated chip's peak FLOP/s and memory bandwidth are scaled by
// that (per-op overhead by its inverse), and the links are the profile's SHM-timeshared fit
// (collective_fits, op "link": measured by a bench launched on as many ranks). The factor is a
// fact of the run's placement (counted, not fitted) and is reported with each configuration.
// Thread safety: runs processes; one call at a time per output directory.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace moesim::calib {

struct RealConfig {
  std::string id;
  std::string scenario;  // resolved path
  int64_t ranks = 1;
  int64_t expert_parallel = 1;
  std::vector<std::string> overrides;
  int line = 0;
};

// Errors name the file and line.
Expected<std::vector<RealConfig>> ReadRealConfigs(const std::string& csv_path);

struct MachineInfo {
  std::string hostname, cpu_model, date_utc, git_commit;
  int64_t cores = 0;  // logical CPUs the OS offers
};
// `source_dir`: where `git rev-parse` is asked for the commit ("unknown" when it cannot say).
MachineInfo DetectMachine(const std::string& source_dir);

struct ValidateRealOptions {
  std::string backend = "cpu";  // cpu | cuda
  std::string profile;          // calibrated profile file (or a built-in chip name)
  int64_t ranks = 0;            // > 0: every configuration runs on this many ranks
  int repeats = 3;
  int64_t steps = 10;
  int64_t trace_warmup = 2;
  int64_t trace_steps = 2;
  std::string out_dir;      // traces, metrics, logs and results.json go here
  std::string moesim_real;  // the binary
  std::string mpiexec;      // mpirun (needed for ranks > 1)
  int64_t cores = 0;        // 0 = the machine's
  std::string source_dir;   // for the git commit
  bool quiet = false;       // no progress lines
};

struct OpComparison {
  std::string op;  // op class ("moe.w1", "attn.q.dgrad", "grads.all_reduce")
  double simulated_s = 0;
  double measured_s = 0;  // median over repeats
  double ErrorPct() const { return measured_s > 0 ? 100 * (simulated_s / measured_s - 1) : 0; }
};

struct ConfigResult {
  RealConfig config;
  double core_share = 1;           // cores / ranks when ranks share cores, else 1
  std::string link_group = "SHM";  // the fitted link the simulation used (fit.h group kinds)
  double simulated_step_s = 0;
  std::vector<double> measured_step_s;  // one per repeat (each a median of steady steps)
  double MeasuredStepS() const;         // median over repeats
  double SpreadPct() const;             // (max - min) / median over repeats
  double ErrorPct() const { return 100 * (simulated_step_s / MeasuredStepS() - 1); }
  std::vector<OpComparison> ops;
  // MoE routing: the share of routed tokens dropped at capacity, simulated (the scenario's
  // routing) and measured (moesim-real's router, mean over repeats); -1 for a dense model.
  double simulated_dropped_fraction = -1;
  double measured_dropped_fraction = -1;
};

struct ValidationResult {
  MachineInfo machine;
  std::string profile;
  std::string backend;
  std::vector<ConfigResult> configs;
  double MapePct() const;
};

Expected<ValidationResult> RunRealValidation(const std::vector<RealConfig>& configs,
                                             const ValidateRealOptions& options);

}  // namespace moesim::calib
