// mpi_share.h
//
// `mpirun -n N moesim plan|sweep ...`: the configurations split over MPI ranks. An MpiSession
// in a command's run starts MPI when the process runs under mpirun with more than one rank
// (OMPI_COMM_WORLD_SIZE or PMI_SIZE in the environment) and this build has MPI;
// otherwise it does nothing and the command runs as one process. Under it:
//   - every rank enumerates the same points and draws chunks of them, in enumeration order,
//     from a counter on rank 0 (MPI one-sided fetch-and-add; GuidedChunks and ChunkHandout in
//     sim/planner/point_share.h) until none is left, a rank that finishes a chunk early drawing
//     the next; its --jobs threads take the points of its chunks one by one;
//   - only the thread that called MpiSession's constructor calls MPI (MPI_THREAD_FUNNELED): it
//     draws the chunks the evaluating threads ask for and passes on the progress counts;
//   - every rank gets every result back (in input order; each rank's travel with their
//     indices), so that all make the same further calls and reach the same end (an error is
//     the same error on every rank: no rank waits);
//   - rank 0 prints what one process prints, progress counting all ranks' points; the others
//     print nothing (their stdout and std::cerr go to /dev/null) and write no files.
#pragma once

#include <memory>

#include "sim/planner/point_share.h"

namespace moesim::cli {

class MpiSession {
 public:
  MpiSession();   // MPI_Init when under mpirun with > 1 ranks
  ~MpiSession();  // MPI_Finalize when it initialized
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  bool active() const { return size_ > 1; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Ranks on this node (OMPI_COMM_WORLD_LOCAL_SIZE), 1 when not active: --jobs defaults to the
  // node's cores over them.
  int local_size() const { return local_size_; }
  // The splitter for RunOptions::distributor; null when not active.
  PointDistributor* distributor() { return distributor_.get(); }

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1;
  std::unique_ptr<PointDistributor> distributor_;
};

// --jobs when not given: the machine's cores, over this node's ranks under mpirun.
int DefaultJobs(const MpiSession& mpi);

// The ranks mpirun gives this process per its environment (1 when not under mpirun).
int EnvironmentWorldSize();

}  // namespace moesim::cli
