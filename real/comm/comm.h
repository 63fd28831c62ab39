// comm.h
//
// Comm: the collectives the trainer and the expert-parallel MoE layer need, over a 2-D mesh of
// ranks (Data x Expert). Rank r sits at data index r / expert_size and expert index
// r % expert_size, so expert-parallel peers are neighbours (on one node where possible).
//   Group::kWorld   every rank.
//   Group::kExpert  the ranks with my data index: they share a batch slice's experts (EP peers).
//   Group::kData    the ranks with my expert index: replicas of the same experts (DP peers).
// Device-buffer collectives take pointers in the memory of the backend's device (host memory
// for MpiComm, GPU memory for NcclComm); host collectives always take host memory.
//
// Every call is collective over its group: all members call it in the same order. A failure
// (an MPI or NCCL error) comes back as a Status naming the call and the library's error text;
// the caller must then end every rank (see trainer.h), since the others may be blocked.
// Thread safety: one thread per Comm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace moesim::real {

enum class Group { kWorld, kData, kExpert };
const char* GroupName(Group g);  // "world", "data", "expert"

class Comm {
 public:
  virtual ~Comm() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int expert_size() const = 0;  // ranks in Group::kExpert
  int data_size() const { return size() / expert_size(); }
  int expert_rank() const { return rank() % expert_size(); }
  int data_rank() const { return rank() / expert_size(); }
  int GroupSize(Group g) const {
    return g == Group::kWorld ? size() : g == Group::kData ? data_size() : expert_size();
  }
  int GroupRank(Group g) const {
    return g == Group::kWorld ? rank() : g == Group::kData ? data_rank() : expert_rank();
  }
  // "mpi (Open MPI 4.1.4)", "nccl 2.27.3 over mpi".
  virtual std::string Name() const = 0;

  // In-place sum over the group of n elements in device memory.
  virtual Status AllReduceSum(float* x, int64_t n, Group g) = 0;
  virtual Status AllReduceSum(double* x, int64_t n, Group g) = 0;
  // Personalized exchange in device memory: send_counts[p] elements of `send` (in peer order,
  // packed) go to group member p; recv_counts[p] elements arrive from p, packed in peer order.
  // REQUIRES: recv_counts[p] equals what p sends to this rank.
  virtual Status AllToAllV(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                           const std::vector<int64_t>& recv_counts, Group g) = 0;
  virtual Status AllToAllV(const double* send, const std::vector<int64_t>& send_counts,
                           double* recv, const std::vector<int64_t>& recv_counts, Group g) = 0;

  // Host memory: sum of n doubles in place.
  virtual Status AllReduceHost(double* x, int64_t n, Group g) = 0;
  // Host memory: send holds per_peer values for each group member in peer order; recv gets
  // per_peer values from each member, in peer order.
  virtual Status AllToAllHost(const std::vector<int64_t>& send, std::vector<int64_t>* recv,
                              int64_t per_peer, Group g) = 0;
  // Host memory: rank 0 of the world receives every rank's string, in rank order (others get
  // an empty vector).
  virtual Status GatherStrings(const std::string& mine, std::vector<std::string>* all) = 0;
  virtual Status Barrier() = 0;

  // Testing hook: issues a call the communication library itself rejects (e.g. a negative
  // count), so tests can check that a real library error ends every rank with its text.
  virtual Status DebugFailingCall() = 0;
};

}  // namespace moesim::real
