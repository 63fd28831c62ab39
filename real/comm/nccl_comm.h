// nccl_comm.h
//
// NcclComm: Comm between GPUs with NCCL. Device-buffer collectives run on the CudaDevice's
// stream (so they order with the kernels and CUDA events time them): all-reduce with
// ncclAllReduce, all-to-all-v as grouped ncclSend/ncclRecv. One NCCL communicator per group
// (world, data, expert), bootstrapped over MPI: the group's rank 0 creates the ncclUniqueId and
// MPI_Bcast sends it to the others. Host-side calls (counts, strings, barriers) go to the
// MpiComm it owns. Errors come back as a Status with NCCL's text (ncclGetErrorString and
// ncclGetLastError); the caller ends every rank.
// Thread safety: one thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "real/comm/mpi_comm.h"
#include "real/kernels/cuda_device.h"

namespace moesim::real {

class NcclComm final : public Comm {
 public:
  // Collective over the MPI world. `dev` must outlive the communicator.
  static Expected<std::unique_ptr<NcclComm>> Create(std::unique_ptr<MpiComm> mpi, CudaDevice* dev);
  ~NcclComm() override;

  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  int expert_size() const override { return mpi_->expert_size(); }
  std::string Name() const override;

  Status AllReduceSum(float* x, int64_t n, Group g) override;
  Status AllReduceSum(double* x, int64_t n, Group g) override;
  Status AllToAllV(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                   const std::vector<int64_t>& recv_counts, Group g) override;
  Status AllToAllV(const double* send, const std::vector<int64_t>& send_counts, double* recv,
                   const std::vector<int64_t>& recv_counts, Group g) override;
  Status AllReduceHost(double* x, int64_t n, Group g) override {
    return mpi_->AllReduceHost(x, n, g);
  }
  Status AllToAllHost(const std::vector<int64_t>& send, std::vector<int64_t>* recv,
                      int64_t per_peer, Group g) override {
    return mpi_->AllToAllHost(send, recv, per_peer, g);
  }
  Status GatherStrings(const std::string& mine, std::vector<std::string>* all) override {
    return mpi_->GatherStrings(mine, all);
  }
  Status Barrier() override;
  Status DebugFailingCall() override;

  struct Impl;

 private:
  NcclComm(std::unique_ptr<MpiComm> mpi, CudaDevice* dev);
  std::unique_ptr<MpiComm> mpi_;
  CudaDevice* dev_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moesim::real
