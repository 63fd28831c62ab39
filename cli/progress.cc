#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace moesim::cli {

Progress::Progress(std::string prefix, std::string unit, std::ostream& out, bool terminal)
    : prefix_(std::move(prefix)),
      unit_(std::move(unit)),
      out_(out),
      terminal_(terminal),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

void Progress::Update(size_t done, size_t total) {
  if (done < last_done_) {
    ++run_;
    last_tenth_ = 0;
  }
  last_done_ = done;
  const auto now = std::chrono::steady_clock::now();
  const bool finished = done == total;
  const size_t tenth = total > 0 ? done * 10 / total : 10;
  if (terminal_) {
    if (!finished && now - last_print_ < std::chrono::milliseconds(100)) return;
  } else {
    if (!finished && tenth == last_tenth_) return;
    last_tenth_ = tenth;
  }
  last_print_ = now;
  char elapsed[32];
  std::snprintf(elapsed, sizeof(elapsed), "%.1f s",
                std::chrono::duration<double>(now - start_).count());
  const std::string run = run_ > 1 ? "run " + std::to_string(run_) + ": " : "";
  out_ << (terminal_ ? "\r" : "") << prefix_ << ": " << run << done << "/" << total << " " << unit_
       << ", " << elapsed << (terminal_ && !finished ? "" : "\n") << std::flush;
}

bool StderrIsTerminal() { return isatty(fileno(stderr)) != 0; }

}  // namespace moesim::cli
