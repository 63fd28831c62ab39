// point_share.h
//
// Splitting a planner run over processes (`mpirun -n N moesim plan|sweep`, cli/mpi_share.h):
// every process enumerates the same points; the processes take them in chunks from a counter
// they share (dynamic work distribution), in enumeration order, the chunks shrinking toward the
// end; the results travel between processes as bytes (EncodePointResults, each point's index
// with it) and come back in input order, so what rank 0 prints is what one process prints.
//
// The schedule. GuidedChunks cuts the points into chunks of consecutive indices. Chunk k goes
// to whichever process draws the number k from the shared counter, so every point goes to
// exactly one process whatever the timing; a process that finishes a chunk early draws the
// next. No cost is estimated beforehand: estimating means loading every point once more, a
// fifth of the work of a plan of cheap points, while the small chunks at the end already let
// the processes finish within about one point of each other.
//
// Thread safety: the free functions are pure; a ChunkHandout is shared by one process's
// evaluating threads and its fetching thread (see there); a PointDistributor is called from one
// thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "sim/planner/planner.h"

namespace moesim {

// The chunks in which the processes take the points, as consecutive index ranges: each holds
// an eighth, over the processes, of the points still untaken (rounded up, at least one):
// guided scheduling, large chunks first (few draws from the counter), single points at the end
// (the processes finish together). An eighth rather than a half: points of one kind (a large
// pipeline, say) are enumerated together, and a chunk of them must not outweigh the rest.
struct ChunkSchedule {
  std::vector<size_t> ends;  // chunk k is [k == 0 ? 0 : ends[k - 1], ends[k]); ascending
  size_t chunks() const { return ends.size(); }
  size_t begin(size_t k) const { return k == 0 ? 0 : ends[k - 1]; }
};
// REQUIRES: processes >= 1. No chunks for no points.
ChunkSchedule GuidedChunks(size_t points, int processes);

// The results at `indices` as bytes, each with its index: outcome, message and the report's
// figures (network, times, breakdown, metrics, cost, the memory report's sizes, axes, op and
// flow counts; not its tensor list nor a kept program). Doubles travel as their bits: the
// processes of one run share one byte order (one machine architecture).
std::string EncodePointResults(const std::vector<PointResult>& results,
                               const std::vector<size_t>& indices);
// Reads what EncodePointResults wrote into results[i] for each index i it carries (overrides
// and scenario are left as they are), appending those indices to *indices when given. Errors
// (kInternal) on bytes that are short, long or otherwise malformed, and on an index past
// results->size().
Status DecodePointResults(const std::string& bytes, std::vector<PointResult>* results,
                          std::vector<size_t>* indices = nullptr);

// One process's side of the schedule. Its evaluating threads take points one at a time (Next)
// from the chunk this process drew last; when that is used up, Next asks the fetching thread
// (the one thread that talks to the other processes) for another and waits. The fetching thread
// calls Serve in its loop, which draws a chunk's number from the shared counter when asked.
// Thread safe.
class ChunkHandout {
 public:
  // `schedule` must outlive the handout.
  explicit ChunkHandout(const ChunkSchedule& schedule) : schedule_(schedule) {}

  // Any evaluating thread: the index of this process's next point, or nullopt once the counter
  // has passed the last chunk and this process's points are all handed out.
  std::optional<size_t> Next();

  // The fetching thread: waits up to `wait` for an evaluating thread to ask (or for Wake); when
  // one asked, draws the next chunk's number with draw() (a number >= chunks(): none left) and
  // hands that chunk out. Returns whether it drew.
  bool Serve(std::chrono::milliseconds wait, const std::function<uint64_t()>& draw);
  // Ends one wait of Serve early (the evaluation has returned).
  void Wake();

  // The indices this process took, chunk by chunk in the order drawn; complete once Next has
  // returned nullopt.
  std::vector<size_t> Taken() const;

 private:
  const ChunkSchedule& schedule_;
  mutable std::mutex mu_;
  std::condition_variable asked_cv_, served_cv_;
  size_t next_ = 0, end_ = 0;  // the undealt indices of the current chunk
  bool asked_ = false, exhausted_ = false, woken_ = false;
  std::vector<size_t> drawn_;  // chunk numbers, in the order drawn
};

// Evaluates this process's points, pulling each one's index from next() (nullopt: none left,
// thread safe) on the caller's threads, into their places in the returned vector (sized for all
// points); done(k) after the k-th of them finishes.
using NextPoint = std::function<std::optional<size_t>()>;
using ShareEvaluator = std::function<std::vector<PointResult>(
    const NextPoint& next, const std::function<void(size_t)>& done)>;

// Splits one RunPoints call over processes (RunOptions::distributor). Every process calls Run
// with the same number of points, in the same order of calls.
class PointDistributor {
 public:
  virtual ~PointDistributor() = default;
  // Evaluates this process's share of `points` points (evaluate, fed from
  // GuidedChunks(points, processes) through the shared counter) and returns every point's
  // result (overrides and scenario left empty for the points of other processes), in input
  // order; progress(done, total) counts all processes' finished points.
  virtual std::vector<PointResult> Run(size_t points, const ShareEvaluator& evaluate,
                                       const std::function<void(size_t, size_t)>& progress) = 0;
};

}  // namespace moesim
