// plan.h
//
// What a collective algorithm produces: a CollectivePlan, a pure description of who sends how
// many bytes to whom, and in what order. Algorithms (algorithms.h) build plans without any
// network; runners (runner.h) time them on the `analytical` or `flow` network level.
//
//   CollectivePlan = stages, run one after another (a barrier between stages);
//   Stage          = streams, run concurrently (independent parts of the data);
//   Stream         = steps, run one after another;
//   Step           = transfers (src, dst, bytes) that start together; the step ends when all of
//                    them are delivered, and is repeated `repeat` times back to back (a ring's
//                    2(n-1) identical steps are one Step with repeat 2(n-1)).
//
// Sizes follow nccl-tests: `bytes` of a CollectiveSpec is the per-device buffer S
//   all_reduce: S in and out; all_gather: S out (S/n in); reduce_scatter: S in (S/n out);
//   all_to_all: S sent per device, S/n to each peer (itself included); broadcast: S from the
//   root; send_recv: S from group[0] to group[1]. Bus bandwidth = algbw x BusBandwidthFactor.
// Thread safety: values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "sim/net/network.h"

namespace moesim::sim {

enum class CollectiveOp {
  kAllReduce,
  kAllGather,
  kReduceScatter,
  kAllToAll,
  kAllToAllV,
  kBroadcast,
  kSendRecv
};
// "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "all_to_all_v", "broadcast",
// "send_recv".
const char* CollectiveOpName(CollectiveOp op);
Expected<CollectiveOp> ParseCollectiveOp(const std::string& name);

// nccl-tests' busbw / algbw: 2(n-1)/n for all-reduce; (n-1)/n for all-gather, reduce-scatter and
// all-to-all(v); 1 for broadcast and send/recv. n = 1 gives 0 for the (n-1) forms.
double BusBandwidthFactor(CollectiveOp op, int64_t n);

struct Transfer {
  DeviceId src = 0;
  DeviceId dst = 0;
  double bytes = 0;
};

struct Step {
  std::vector<Transfer> transfers;
  int64_t repeat = 1;
};
using Stream = std::vector<Step>;

struct Stage {
  std::vector<Stream> streams;
};

struct CollectivePlan {
  std::string algorithm;  // name of the algorithm that built it
  std::vector<Stage> stages;

  // Bytes sent by all transfers, repeats included.
  double TotalBytes() const;
  // Transfers started, repeats included.
  int64_t TotalTransfers() const;
};

// Plans that run at the same time on disjoint groups (SPMD: every group of a mesh axis runs the
// same collective at once), as one plan: where all plans have the same shape at stage i (as the
// plans of congruent groups do), stream j's step k of the result holds every plan's stream j
// step k transfers, so that they share links within one step; otherwise the result's stage i
// lists all their streams side by side. The algorithm name is the first plan's.
CollectivePlan MergeConcurrent(std::vector<CollectivePlan> plans);

}  // namespace moesim::sim
