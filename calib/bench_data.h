// bench_data.h
//
// The measurements `moesim-real bench --json` writes (real/bench/bench.h), read back for the
// fit: GEMMs over (m, n, k), memory-bound kernels over sizes, the MoE grouped GEMMs, and
// collectives over message sizes and rank counts. Every time is the median of the bench's
// repeats, in seconds. Several files (one per rank count) merge into one BenchData.
// Errors are kInvalidInput naming the file and the field: `b.json: gemm[3].time_s: must be a
// number > 0, got -1`. Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace moesim::calib {

struct GemmPoint {
  int64_t m = 0, n = 0, k = 0;
  double time_s = 0;
  std::string where;  // "file: gemm[3]", for reports
  int64_t count = 1;  // GEMMs of this shape one after another in time_s (grouped: experts)
};

struct MemoryPoint {
  std::string kernel;  // copy, axpy, swiglu, rmsnorm, softmax, adamw (MemoryKernel names)
  int64_t elements = 0;
  double bytes = 0;  // read + written
  double time_s = 0;
  std::string where;
};

// `experts` GEMMs of (rows, hidden, d_model), one after another, as MoeLayer runs them.
struct GroupedGemmPoint {
  int64_t experts = 0, rows = 0, d_model = 0, hidden = 0;
  double time_s = 0;
  std::string where;
};

struct CollectivePoint {
  std::string op;    // all_reduce | all_to_all
  double bytes = 0;  // nccl-tests size: the buffer (all-reduce), all a rank sends (all-to-all)
  int64_t ranks = 1;
  double time_s = 0;  // the slowest rank's median
  std::string where;
};

// Compute points (gemm, memory, grouped_gemm) come from the files launched on the fewest ranks:
// in a multi-rank bench every rank runs them at once, and on a host with fewer cores than ranks
// they time-share, which is not the chip's speed. Collectives come from every file. A point
// measured by several files keeps its fastest time (other work on the machine only adds time).
struct BenchData {
  std::string backend;        // "cpu" | "cuda"
  std::string device;         // the device's name as the bench reported it
  int64_t compute_ranks = 1;  // the rank count of the files the compute points come from
  std::vector<std::string> files;
  std::vector<std::string> notes;  // what merging left out, for the report
  std::vector<GemmPoint> gemm;
  std::vector<MemoryPoint> memory;
  std::vector<GroupedGemmPoint> grouped_gemm;
  std::vector<CollectivePoint> collectives;
};

// Parses one `moesim-real bench --json` document; `name` is used in messages.
Expected<BenchData> ParseBenchJson(const std::string& text, const std::string& name);
// Reads and parses a file.
Expected<BenchData> ReadBenchJson(const std::string& path);
// Appends `more` to `into` (compute points as above); kInvalidInput when the backends differ
// (one profile per chip).
Status MergeBench(BenchData more, BenchData* into);

}  // namespace moesim::calib
