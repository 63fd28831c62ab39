// bench.h
//
// `moesim-real bench`: microbenchmarks that calibrate the simulator's hardware profile
// (calib/ fits them), timed on the device's own clock (steady_clock / CUDA events) through the
// same Device and Comm the trainer uses, so they measure what training runs:
//   gemm          C = A B over a grid of (m, n, k); FLOP/s
//   memory        memory-bound ops (copy, axpy, rmsnorm, softmax, swiglu) over sizes; bytes/s
//   grouped_gemm  the MoE expert GEMMs (one GEMM per expert, as MoeLayer runs them); FLOP/s
//   collectives   all_reduce and all_to_all over message sizes across the launched ranks, with
//                 algorithm and bus bandwidth as nccl-tests defines them
// Each point: one warm-up run, then `repeats` timed runs; the median is reported (for
// collectives, the slowest rank's median). Rank 0 writes the JSON.
// Thread safety: one thread per rank; collective over the world.
#pragma once

#include <string>

#include "common/status.h"
#include "real/comm/comm.h"
#include "real/device.h"

namespace moesim::real {

struct BenchOptions {
  bool quick = false;  // a small grid, for tests
  int repeats = 5;
};

Status RunBench(const BenchOptions& options, Device<float>* dev, Comm* comm,
                const std::string& json_path);

}  // namespace moesim::real
