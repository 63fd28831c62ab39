// mpi_comm.h
//
// MpiComm: Comm over MPI, for ranks whose device buffers are host memory (the CPU backend), and
// the host-side half of every backend (NcclComm uses MPI for counts, strings and bootstrap).
// The communicators use MPI_ERRORS_RETURN, so a failed call comes back as a Status holding
// MPI's error text ("MPI_Alltoallv (expert group): MPI_ERR_COUNT: invalid count argument")
// instead of aborting inside MPI; the program then ends every rank (main.cc, MPI_Abort).
//
// InitMpi/FinalizeMpi wrap MPI_Init/MPI_Finalize for main(); a program started without mpirun
// runs as a single rank (MPI singleton).
// Thread safety: one thread (MPI_THREAD_SINGLE).
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "real/comm/comm.h"

namespace moesim::real {

Status InitMpi(int* argc, char*** argv);
void FinalizeMpi();
bool MpiInitialized();
// "MPI_ERR_COUNT: invalid count argument" for an MPI error code.
std::string MpiErrorText(int code);

class MpiComm final : public Comm {
 public:
  // REQUIRES: InitMpi() succeeded. expert_size must divide the world size.
  static Expected<std::unique_ptr<MpiComm>> Create(int expert_size);
  ~MpiComm() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int expert_size() const override { return expert_size_; }
  std::string Name() const override;

  Status AllReduceSum(float* x, int64_t n, Group g) override;
  Status AllReduceSum(double* x, int64_t n, Group g) override;
  Status AllToAllV(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                   const std::vector<int64_t>& recv_counts, Group g) override;
  Status AllToAllV(const double* send, const std::vector<int64_t>& send_counts, double* recv,
                   const std::vector<int64_t>& recv_counts, Group g) override;
  Status AllReduceHost(double* x, int64_t n, Group g) override;
  Status AllToAllHost(const std::vector<int64_t>& send, std::vector<int64_t>* recv,
                      int64_t per_peer, Group g) override;
  Status GatherStrings(const std::string& mine, std::vector<std::string>* all) override;
  Status Barrier() override;
  Status DebugFailingCall() override;

  MPI_Comm Handle(Group g) const;
  // This rank's index among the ranks on its node (for picking a GPU).
  int LocalRank() const;

 private:
  MpiComm() = default;
  Status AllReduce(void* x, int64_t n, MPI_Datatype type, Group g);
  Status AllToAllVImpl(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                       const std::vector<int64_t>& recv_counts, MPI_Datatype type, Group g);

  int rank_ = 0, size_ = 1, expert_size_ = 1;
  MPI_Comm world_ = MPI_COMM_NULL, data_ = MPI_COMM_NULL, expert_ = MPI_COMM_NULL;
};

}  // namespace moesim::real
