#include "cli/mpi_share.h"

#include <algorithm>
#include <atomic>
#include <chrono>
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

class MpiDistributor : public PointDistributor {
 public:
  MpiDistributor(int rank, int size) : rank_(rank), size_(size) {}

  int Index() const override { return rank_; }
  int Processes() const override { return size_; }
  // Each point's cost comes from one rank, the others add 0: the sum is that cost exactly.
  void ShareCosts(std::vector<double>* costs) override {
    Check(MPI_Allreduce(MPI_IN_PLACE, costs->data(), static_cast<int>(costs->size()), MPI_DOUBLE,
                        MPI_SUM, MPI_COMM_WORLD),
          "Allreduce");
  }

  std::vector<PointResult> Run(const std::vector<double>& costs, const ShareEvaluator& evaluate,
                               const std::function<void(size_t, size_t)>& progress) override {
    const std::vector<int> owner = AssignByCost(costs, size_);
    std::vector<std::vector<size_t>> shares(static_cast<size_t>(size_));
    for (size_t i = 0; i < owner.size(); ++i) shares[static_cast<size_t>(owner[i])].push_back(i);
    const std::vector<size_t>& mine = shares[static_cast<size_t>(rank_)];

    // This rank's share on a thread of its own; this (the only thread that calls MPI) passes
    // the counts of finished points to rank 0, which reports all ranks' sum.
    std::atomic<size_t> done{0};
    std::atomic<bool> finished{false};
    std::vector<PointResult> results;
    std::thread share([&]() {
      results = evaluate(mine, [&](size_t d) { done = d; });
      finished = true;
    });
    if (rank_ == 0) {
      GatherProgress(shares, done, finished, costs.size(), progress);
    } else {
      SendProgress(mine.size(), done, finished);
    }
    share.join();
    WaitForAll();

    // Every rank gets every result: the bytes of each rank's share, in rank order.
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
    for (size_t r = 0; r < shares.size(); ++r) {
      if (static_cast<int>(r) == rank_) continue;
      const Status st = DecodePointResults(
          all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(lengths[r])), shares[r],
          &results);
      if (!st.ok()) {
        std::cerr << "moesim: rank " << r << "'s " << st.message() << "\n";
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    }
    return results;
  }

 private:
  static constexpr auto kPoll = std::chrono::milliseconds(20);

  // Rank 0: its own count plus the latest each other rank sent, until all shares are done (the
  // last message of each rank is its share's size, so none is left for a later Run).
  void GatherProgress(const std::vector<std::vector<size_t>>& shares,
                      const std::atomic<size_t>& done, const std::atomic<bool>& finished,
                      size_t total, const std::function<void(size_t, size_t)>& progress) {
    std::vector<unsigned long long> counts(shares.size(), 0);
    size_t reported = 0;
    for (;;) {
      int flag = 1;
      while (flag != 0) {
        MPI_Status status;
        Check(MPI_Iprobe(MPI_ANY_SOURCE, kProgressTag, MPI_COMM_WORLD, &flag, &status), "Iprobe");
        if (flag == 0) break;
        unsigned long long n = 0;
        Check(MPI_Recv(&n, 1, MPI_UNSIGNED_LONG_LONG, status.MPI_SOURCE, kProgressTag,
                       MPI_COMM_WORLD, MPI_STATUS_IGNORE),
              "Recv");
        counts[static_cast<size_t>(status.MPI_SOURCE)] = n;
      }
      const bool own_done = finished.load();
      counts[0] = done.load();
      size_t sum = 0;
      bool all_done = own_done;
      for (size_t r = 0; r < shares.size(); ++r) {
        sum += static_cast<size_t>(counts[r]);
        if (r > 0 && counts[r] < shares[r].size()) all_done = false;
      }
      if (progress && sum != reported) {
        reported = sum;
        progress(sum, total);
      }
      if (all_done) return;
      std::this_thread::sleep_for(kPoll);
    }
  }

  // Returns once every rank has finished its share, sleeping meanwhile: a rank blocked in a
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

  // Other ranks: their count whenever it changed (one message in flight at a time), the last
  // one the share's size.
  void SendProgress(size_t share, const std::atomic<size_t>& done,
                    const std::atomic<bool>& finished) {
    if (share == 0) return;
    MPI_Request request = MPI_REQUEST_NULL;
    unsigned long long sending = 0;
    for (;;) {
      const bool own_done = finished.load();
      const size_t d = done.load();
      if (d != sending) {
        Check(MPI_Wait(&request, MPI_STATUS_IGNORE), "Wait");
        sending = d;
        Check(MPI_Isend(&sending, 1, MPI_UNSIGNED_LONG_LONG, 0, kProgressTag, MPI_COMM_WORLD,
                        &request),
              "Isend");
      }
      if (own_done && sending == share) break;
      std::this_thread::sleep_for(kPoll);
    }
    Check(MPI_Wait(&request, MPI_STATUS_IGNORE), "Wait");
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
