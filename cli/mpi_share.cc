#include "cli/mpi_share.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <streambuf>
#include <string>
#include <thread>
#include <vector>

#ifdef MOESIM_WITH_MPI
#include <mpi.h>
#endif

namespace moesim::cli {
namespace {

int EnvInt(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return end != v && n > 0 && n < std::numeric_limits<int>::max() ? static_cast<int>(n) : 0;
}

#ifdef MOESIM_WITH_MPI

constexpr int kProgressTag = 7301;

void Check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  std::cerr << "moesim: MPI " << what << " failed (" << rc << ")\n";
  MPI_Abort(MPI_COMM_WORLD, 1);
}

// The number of the next chunk, shared by all ranks: one 64-bit counter in a window on rank 0,
// drawn with an atomic fetch-and-add (passive target: rank 0 need not take part). Collective:
// every rank constructs and destroys it together.
class ChunkCounter {
 public:
  explicit ChunkCounter(int rank) {
    const MPI_Aint bytes = rank == 0 ? sizeof(int64_t) : 0;
    Check(MPI_Win_allocate(bytes, sizeof(int64_t), MPI_INFO_NULL, MPI_COMM_WORLD, &base_, &win_),
          "Win_allocate");
    if (rank == 0) {
      Check(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win_), "Win_lock");
      *base_ = 0;
      Check(MPI_Win_unlock(0, win_), "Win_unlock");
    }
    Check(MPI_Barrier(MPI_COMM_WORLD), "Barrier");  // no rank draws before the counter is 0
    Check(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_), "Win_lock_all");
  }
  ~ChunkCounter() {
    MPI_Win_unlock_all(win_);
    MPI_Win_free(&win_);
  }
  ChunkCounter(const ChunkCounter&) = delete;
  ChunkCounter& operator=(const ChunkCounter&) = delete;

  uint64_t Draw() {
    const int64_t one = 1;
    int64_t drawn = 0;
    Check(MPI_Fetch_and_op(&one, &drawn, MPI_INT64_T, 0, 0, MPI_SUM, win_), "Fetch_and_op");
    Check(MPI_Win_flush(0, win_), "Win_flush");
    return static_cast<uint64_t>(drawn);
  }

 private:
  int64_t* base_ = nullptr;
  MPI_Win win_ = MPI_WIN_NULL;
};

class MpiDistributor : public PointDistributor {
 public:
  MpiDistributor(int rank, int size) : rank_(rank), size_(size) {}

  std::vector<PointResult> Run(size_t points, const ShareEvaluator& evaluate,
                               const std::function<void(size_t, size_t)>& progress) override {
    const ChunkSchedule schedule = GuidedChunks(points, size_);
    ChunkCounter counter(rank_);
    ChunkHandout handout(schedule);

    // The evaluation on a thread of its own (its --jobs threads pull points from the handout);
    // this one, the only thread that calls MPI, draws chunks for it and passes the counts of
    // finished points to rank 0, which reports all ranks' sum.
    std::atomic<size_t> done{0};
    std::atomic<bool> finished{false};
    std::vector<PointResult> results;
    std::thread share([&]() {
      results = evaluate([&]() { return handout.Next(); }, [&](size_t d) { done = d; });
      finished = true;
      handout.Wake();
    });
    ProgressLoop(handout, counter, done, finished, points, progress);
    share.join();
    WaitForAll();
    const std::vector<size_t> mine = handout.Taken();

    // Every rank gets every result: the bytes of each rank's points (with their indices), in
    // rank order.
    const std::string bytes = EncodePointResults(results, mine);
    if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
      std::cerr << "moesim: a rank's results exceed 2 GiB\n";
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    const int length = static_cast<int>(bytes.size());
    std::vector<int> lengths(static_cast<size_t>(size_)), offsets(static_cast<size_t>(size_));
    Check(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD),
          "Allgather");
    size_t total = 0;
    for (size_t r = 0; r < lengths.size(); ++r) {
      if (total > static_cast<size_t>(std::numeric_limits<int>::max())) {
        std::cerr << "moesim: the results exceed 2 GiB\n";
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      offsets[r] = static_cast<int>(total);
      total += static_cast<size_t>(lengths[r]);
    }
    std::string all(total, '\0');
    Check(MPI_Allgatherv(bytes.data(), length, MPI_BYTE, all.data(), lengths.data(), offsets.data(),
                         MPI_BYTE, MPI_COMM_WORLD),
          "Allgatherv");
    // Every point exactly once over the ranks, else a bug: stop rather than print a wrong table.
    std::vector<char> seen(points, 0);
    for (size_t i : mine) seen[i] = 1;
    for (size_t r = 0; r < lengths.size(); ++r) {
      if (static_cast<int>(r) == rank_) continue;
      std::vector<size_t> theirs;
      Status st = DecodePointResults(
          all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(lengths[r])), &results,
          &theirs);
      for (size_t i : theirs) {
        if (st.ok() && seen[i] != 0) st = Status::Internal("point " + std::to_string(i) + " twice");
        seen[i] = 1;
      }
      if (!st.ok()) {
        std::cerr << "moesim: rank " << r << "'s " << st.message() << "\n";
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    }
    if (std::find(seen.begin(), seen.end(), 0) != seen.end()) {
      std::cerr << "moesim: a point was evaluated by no rank\n";
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return results;
  }

 private:
  static constexpr auto kPoll = std::chrono::milliseconds(20);

  // Until this rank's evaluation has returned and (rank 0) every rank's count has come in, or
  // (other ranks) the last count has gone out: draws a chunk whenever the evaluating threads
  // ask, and passes the counts of finished points on.
  void ProgressLoop(ChunkHandout& handout, ChunkCounter& counter, const std::atomic<size_t>& done,
                    const std::atomic<bool>& finished, size_t total,
                    const std::function<void(size_t, size_t)>& progress) {
    std::vector<unsigned long long> counts(static_cast<size_t>(size_), 0);
    size_t reported = 0;
    MPI_Request request = MPI_REQUEST_NULL;
    unsigned long long sending = 0;
    auto last_poll = std::chrono::steady_clock::now();
    for (;;) {
      const bool own_done = finished.load();
      // While evaluating, wait for a request for a chunk; after it, only pace the loop.
      if (own_done) {
        std::this_thread::sleep_for(kPoll);
      } else if (handout.Serve(kPoll, [&]() { return counter.Draw(); }) &&
                 std::chrono::steady_clock::now() - last_poll < kPoll) {
        continue;  // chunks are drawn at once; the counts go out at the pace of the poll
      }
      last_poll = std::chrono::steady_clock::now();
      if (rank_ == 0) {
        if (GatherCounts(&counts, done.load(), own_done, total, &reported, progress)) break;
      } else {
        // Its count whenever it changed (one message in flight at a time); its last one is
        // every point it evaluated, so none is left for a later Run.
        const size_t d = done.load();
        if (d != sending) {
          Check(MPI_Wait(&request, MPI_STATUS_IGNORE), "Wait");
          sending = d;
          Check(MPI_Isend(&sending, 1, MPI_UNSIGNED_LONG_LONG, 0, kProgressTag, MPI_COMM_WORLD,
                          &request),
                "Isend");
        }
        if (own_done && sending == d) break;
      }
    }
    Check(MPI_Wait(&request, MPI_STATUS_IGNORE), "Wait");
  }

  // Rank 0: its own count plus the latest each other rank sent; true once the sum is every
  // point and its own evaluation has returned (each count only grows, so the sum reaches the
  // total only with every rank's last message in).
  static bool GatherCounts(std::vector<unsigned long long>* counts, size_t own, bool own_done,
                           size_t total, size_t* reported,
                           const std::function<void(size_t, size_t)>& progress) {
    for (;;) {
      int flag = 0;
      MPI_Status status;
      Check(MPI_Iprobe(MPI_ANY_SOURCE, kProgressTag, MPI_COMM_WORLD, &flag, &status), "Iprobe");
      if (flag == 0) break;
      unsigned long long n = 0;
      Check(MPI_Recv(&n, 1, MPI_UNSIGNED_LONG_LONG, status.MPI_SOURCE, kProgressTag, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE),
            "Recv");
      (*counts)[static_cast<size_t>(status.MPI_SOURCE)] = n;
    }
    (*counts)[0] = own;
    size_t sum = 0;
    for (unsigned long long c : *counts) sum += static_cast<size_t>(c);
    if (progress && sum != *reported) {
      *reported = sum;
      progress(sum, total);
    }
    return own_done && sum == total;
  }

  // Returns once every rank has finished its points, sleeping meanwhile: a rank blocked in a
  // collective spins on its core, which a rank still computing on the same node needs.
  static void WaitForAll() {
    MPI_Request request = MPI_REQUEST_NULL;
    Check(MPI_Ibarrier(MPI_COMM_WORLD, &request), "Ibarrier");
    for (;;) {
      int flag = 0;
      Check(MPI_Test(&request, &flag, MPI_STATUS_IGNORE), "Test");
      if (flag != 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  int rank_, size_;
};

// Discards what is written to it: the std::cerr of ranks other than 0.
class NullBuffer : public std::streambuf {
 protected:
  int overflow(int c) override { return c; }
};

#endif  // MOESIM_WITH_MPI

}  // namespace

int EnvironmentWorldSize() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    if (const int n = EnvInt(name); n > 0) return n;
  }
  return 1;
}

int DefaultJobs(const MpiSession& mpi) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / mpi.local_size());
}

MpiSession::MpiSession() {
#ifdef MOESIM_WITH_MPI
  if (EnvironmentWorldSize() <= 1) return;
  int provided = 0;
  Check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "Init");
  Check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "Comm_rank");
  Check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "Comm_size");
  if (size_ <= 1) return;
  local_size_ = std::max(1, EnvInt("OMPI_COMM_WORLD_LOCAL_SIZE"));
  distributor_ = std::make_unique<MpiDistributor>(rank_, size_);
  if (rank_ != 0) {
    if (std::freopen("/dev/null", "w", stdout) == nullptr) std::fclose(stdout);
    static NullBuffer null;
    std::cerr.rdbuf(&null);
  }
#endif
}

MpiSession::~MpiSession() {
#ifdef MOESIM_WITH_MPI
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized != 0) MPI_Finalize();
#endif
}

}  // namespace moesim::cli
