// moesim-real: trains the simulator's models for real (CPU with Eigen and MPI; CUDA with
// cuBLAS and NCCL) and measures them, so simulated and measured steps can be compared op by op.
//   moesim-real train SCENARIO [--set PATH=VALUE ...] --backend cpu|cuda --steps N [--data FILE]
//                     [--trace FILE] [--checkpoint DIR] [--resume DIR] ...
//   moesim-real bench --backend cpu|cuda [--json FILE]
// Launch several ranks with mpirun. Exit codes: 0 ok, 2 bad input, 1 internal error; an error
// on any rank of a multi-rank run ends every rank (MPI_Abort) after printing its text.
#include <CLI/CLI.hpp>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>

#include "proto/scenario_loader.h"
#include "real/bench/bench.h"
#include "real/comm/mpi_comm.h"
#include "real/kernels/cpu_device.h"
#include "real/limits.h"
#include "real/train/trainer.h"
#ifdef MOESIM_REAL_WITH_CUDA
#include "real/comm/nccl_comm.h"
#include "real/kernels/cuda_device.h"
#endif

namespace moesim::real {
namespace {

struct Backend {
  std::unique_ptr<Device<float>> device;
  std::unique_ptr<Comm> comm;
};

// bf16: bf16 GEMM compute on a GPU (training.precision BF16_MIXED); the CPU is always fp32.
Expected<Backend> MakeBackend(const std::string& kind, int expert_parallel, bool bf16) {
  Backend b;
  Expected<std::unique_ptr<MpiComm>> mpi = MpiComm::Create(expert_parallel);
  if (!mpi.ok()) return mpi.status();
  if (kind == "cpu") {
    b.device = std::make_unique<CpuDevice<float>>();
    b.comm = std::move(*mpi);
    return b;
  }
#ifdef MOESIM_REAL_WITH_CUDA
  std::string why;
  const int gpus = CudaDevice::DeviceCount(&why);
  if (gpus == 0) return Status::InvalidInput("--backend cuda: no CUDA device (" + why + ")");
  Expected<std::unique_ptr<CudaDevice>> dev = CudaDevice::Create((*mpi)->LocalRank() % gpus, bf16);
  if (!dev.ok()) return dev.status();
  Expected<std::unique_ptr<NcclComm>> nccl = NcclComm::Create(std::move(*mpi), dev->get());
  if (!nccl.ok()) return nccl.status();
  b.device = std::move(*dev);
  b.comm = std::move(*nccl);
  return b;
#else
  (void)bf16;
  return Status::InvalidInput(
      "--backend cuda: this moesim-real was built without CUDA (MOESIM_WITH_CUDA=OFF)");
#endif
}

// A decimal integer in [0, 2^64) (CLI11 wraps larger values and negative ones into uint64).
const CLI::Validator kUint64(
    [](const std::string& v) {
      uint64_t out = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
      if (v.empty() || ec != std::errc() || end != v.data() + v.size()) {
        return "value " + v + " is not an integer in [0, 18446744073709551615]";
      }
      return std::string();
    },
    "UINT64");

// BYTES: a decimal integer with an optional K, M, G, T or P suffix (powers of 1024; "KiB", "KB"
// and lower case accepted), rewritten to the number of bytes; refused when it does not fit int64.
const CLI::Validator kBytes(
    [](std::string& v) {
      const std::string err = "value " + v + " is not a byte count (N, NK, NM, NG, NT or NP)";
      uint64_t n = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (v.empty() || ec != std::errc()) return err;
      std::string unit(v.substr(static_cast<size_t>(end - v.data())));
      for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const std::string units = "kmgtp";
      uint64_t scale = 1;
      if (!unit.empty()) {
        const size_t u = units.find(unit[0]);
        if (u == std::string::npos ||
            !(unit.size() == 1 || unit.substr(1) == "b" || unit.substr(1) == "ib")) {
          return err;
        }
        scale = uint64_t{1} << (10 * (u + 1));
      }
      if (n > static_cast<uint64_t>(INT64_MAX) / scale) return "value " + v + " is too large";
      v = std::to_string(n * scale);
      return std::string();
    },
    "BYTES");

int WorldRank() {
  int rank = 0;
  if (MpiInitialized()) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}
int WorldSize() {
  int size = 1;
  if (MpiInitialized()) MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// Prints the error; in a multi-rank run ends every rank, since others may wait in a collective.
int Fail(const std::string& command, const Status& st) {
  const int size = WorldSize();
  // In one write (Status::PrintTo), so that MPI_Abort's banner cannot land inside the line.
  st.PrintTo("moesim-real " + command +
             (size > 1 ? ": rank " + std::to_string(WorldRank()) : std::string()));
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, st.exit_code());
  return st.exit_code();
}

}  // namespace
}  // namespace moesim::real

int main(int argc, char** argv) {
  using namespace moesim;
  using namespace moesim::real;
  CLI::App app{"moesim-real: trains dense and MoE transformers for real and measures them"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "moesim-real 0.1.0");

  // train
  CLI::App* train = app.add_subcommand("train", "Train a scenario's model");
  LoadOptions load;
  TrainOptions t;
  std::string backend = "cpu";
  train->add_option("scenario", load.path, "Scenario file (protobuf text format)")->required();
  train->add_option("--set", load.overrides, "Override one scalar field (repeatable)")
      ->type_name("PATH=VALUE")
      ->allow_extra_args(false);
  train->add_option("--backend", backend, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  // Every integer option is range-checked here (exit 2 naming the option) and again by
  // ValidateTrainOptions (real/limits.h states the ranges).
  const auto steps_range = CLI::Range(int64_t{1}, kMaxSteps);
  const auto count_range = CLI::Range(int64_t{0}, kMaxSteps);
  train->add_option("--steps", t.steps, "Train until this many steps are done")
      ->required()
      ->check(steps_range);
  train
      ->add_option("--schedule-steps", t.schedule_steps,
                   "Length of the warm-up + cosine lr schedule (default: the checkpoint's when "
                   "resuming, else --steps)")
      ->check(count_range);
  train->add_option("--data", t.data_path, "Text file read as bytes (default: synthetic tokens)");
  train->add_option("--trace", t.trace_path, "Chrome trace JSON of the profiled steps");
  train->add_option("--trace-warmup", t.trace_warmup, "Steps before profiling starts")
      ->check(count_range);
  train->add_option("--trace-steps", t.trace_steps, "Steps profiled")->check(steps_range);
  train->add_option("--checkpoint", t.checkpoint_dir, "Checkpoint directory (written at the end)");
  train
      ->add_option("--checkpoint-every", t.checkpoint_every,
                   "Also checkpoint every N steps (0 = only at the end)")
      ->check(count_range);
  train->add_option("--resume", t.resume_dir, "Continue from this checkpoint directory");
  train->add_option("--metrics", t.metrics_path, "Per-step metrics as JSON lines (exact losses)");
  train->add_option("--seed", t.seed, "Seed of initialization and data")->check(kUint64);
  train
      ->add_option("--micro-batch", t.micro_batch_seqs,
                   "Sequences per micro-batch per rank (default 0: the whole local batch)")
      ->check(CLI::Range(int64_t{0}, kMaxMicroBatch));
  train
      ->add_option("--expert-parallel", t.expert_parallel,
                   "Ranks the experts are sharded over (divides the ranks)")
      ->check(CLI::Range(int64_t{1}, kMaxRanks));
  train
      ->add_option("--max-memory", t.max_memory_bytes,
                   "Refuse a run whose estimated memory per rank (parameters, gradients, AdamW "
                   "moments, activations, host buffers) exceeds this many bytes; suffixes K, M, "
                   "G, T, P (powers of 1024) allowed (default: the machine's physical memory)")
      ->transform(kBytes)
      ->check(CLI::Range(int64_t{1}, INT64_MAX));
  train->add_option("--lr", t.optimizer.lr, "Peak learning rate");
  train->add_option("--min-lr-ratio", t.optimizer.min_lr_ratio, "Final lr / peak lr, in [0, 1]");
  train->add_option("--warmup", t.optimizer.warmup_steps, "Linear warm-up steps")
      ->check(count_range);
  train->add_option("--weight-decay", t.optimizer.weight_decay, "AdamW decoupled weight decay");
  train->add_option("--clip", t.optimizer.clip_norm, "Global gradient-norm clip (0 = off)");
  train->add_option("--beta1", t.optimizer.beta1, "AdamW beta1, in [0, 1)");
  train->add_option("--beta2", t.optimizer.beta2, "AdamW beta2, in [0, 1)");
  train->add_option("--aux-loss", t.aux_loss_coef, "Load-balancing loss coefficient");
  train->add_option("--z-loss", t.z_loss_coef, "Router z-loss coefficient");
  train->add_option("--log-every", t.log_every, "Log every N steps (>= 1)")->check(steps_range);
  train
      ->add_option("--debug-poison-step", t.poison_step,
                   "Testing: make the loss NaN at this step (0-based)")
      ->group("");
  train
      ->add_option("--debug-comm-error-step", t.comm_error_step,
                   "Testing: the last rank makes a failing MPI/NCCL call at this step")
      ->group("");

  // bench
  CLI::App* bench = app.add_subcommand("bench", "Microbenchmarks for calibration, as JSON");
  BenchOptions b;
  std::string bench_backend = "cpu";
  std::string json_path = "-";
  bench->add_option("--backend", bench_backend, "cpu | cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  bench->add_option("--json", json_path, "Output file, - = stdout");
  bench->add_flag("--quick", b.quick, "Small grid (for tests)");
  bench->add_option("--repeats", b.repeats, "Timed repetitions per point (median reported)")
      ->check(CLI::Range(1, static_cast<int>(kMaxBenchRepeats)));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  if (Status st = InitMpi(&argc, &argv); !st.ok())
    return Fail(app.get_subcommands()[0]->get_name(), st);
  int code = 0;
  try {
    if (train->parsed()) {
      if (Status valid = ValidateTrainOptions(t); !valid.ok()) {
        code = Fail("train", valid);
      } else {
        Expected<Scenario> sc = LoadScenario(load);
        Expected<Backend> be = sc.ok()
                                   ? MakeBackend(backend, static_cast<int>(t.expert_parallel),
                                                 sc->training.precision == Precision::kBf16Mixed)
                                   : Expected<Backend>(sc.status());
        if (!be.ok()) {
          code = Fail("train", be.status());
        } else {
          std::ostream* log = be->comm->rank() == 0 ? &std::cout : nullptr;
          Expected<TrainResult> r = Train(*sc, t, be->device.get(), be->comm.get(), log);
          if (!r.ok()) code = Fail("train", r.status());
        }
      }
    } else if (bench->parsed()) {
      Expected<Backend> be = MakeBackend(bench_backend, 1, /*bf16=*/true);
      if (!be.ok()) {
        code = Fail("bench", be.status());
      } else {
        Status st = RunBench(b, be->device.get(), be->comm.get(), json_path);
        if (!st.ok()) code = Fail("bench", st);
      }
    }
  } catch (const std::exception& e) {
    code = Fail(app.get_subcommands()[0]->get_name(),
                Status::Internal(std::string("internal error: ") + e.what()));
  }
  FinalizeMpi();
  return code;
}
