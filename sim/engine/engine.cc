#include "sim/engine/engine.h"

#include <cstdio>
#include <utility>

namespace moesim::sim {
namespace {

std::string Seconds(SimTime t) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.12g", t.seconds());
  return buf;
}

}  // namespace

int64_t Engine::AddPendingReporter(PendingReporter reporter) {
  const int64_t handle = next_reporter_++;
  reporters_.emplace(handle, std::move(reporter));
  return handle;
}

void Engine::RemovePendingReporter(int64_t handle) { reporters_.erase(handle); }

std::vector<std::string> Engine::Waiting() const {
  std::vector<std::string> waiting;
  for (const auto& [handle, reporter] : reporters_) reporter(&waiting);
  return waiting;
}

Status Engine::Run(const RunLimits& limits) {
  stop_ = false;
  int64_t run_here = 0;
  auto set_clock = [this](SimTime t) { now_ = t; };
  while (true) {
    if (limits.max_events > 0 && run_here >= limits.max_events && !queue_.empty() &&
        queue_.NextTime() <= limits.until) {
      return Status::Internal("simulation stopped at t=" + Seconds(now_) + " s after " +
                              std::to_string(run_here) + " events (RunLimits::max_events); " +
                              std::to_string(queue_.size()) + " events still pending");
    }
    if (!queue_.RunNext(limits.until, set_clock)) break;
    ++events_run_;
    ++run_here;
    if (stop_) return Status::Ok();
  }
  if (!queue_.empty()) return Status::Ok();  // stopped at `until`
  const std::vector<std::string> waiting = Waiting();
  if (waiting.empty()) return Status::Ok();
  constexpr size_t kShown = 8;
  std::string msg = "simulation stuck at t=" + Seconds(now_) + " s: no event left, but " +
                    std::to_string(waiting.size()) + " item(s) wait: ";
  for (size_t i = 0; i < waiting.size() && i < kShown; ++i) {
    msg += (i ? "; " : "") + waiting[i];
  }
  if (waiting.size() > kShown) {
    msg += "; ... and " + std::to_string(waiting.size() - kShown) + " more";
  }
  return Status::Internal(msg);
}

}  // namespace moesim::sim
