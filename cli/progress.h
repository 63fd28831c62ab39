// progress.h
//
// The progress line of long commands (plan, sweep) on stderr. On a terminal one line is
// rewritten in place, at most ten times a second; otherwise (a log file, CI, a pipe) a line is
// written per tenth of the work, so that a log reads as a short list instead of one line
// thousands of "\r" updates long. Each line says the elapsed time.
#pragma once

#include <chrono>
#include <cstddef>
#include <ostream>
#include <string>

namespace moesim::cli {

class Progress {
 public:
  // "plan: 150/3120 configurations": prefix "plan", unit "configurations". `terminal` is
  // normally whether stderr is one (StderrIsTerminal()).
  Progress(std::string prefix, std::string unit, std::ostream& out, bool terminal);
  // Reports `done` of `total`. A `done` lower than the last one starts a new run (the budget
  // planner runs one batch per MoE candidate): its lines say "run N". Not thread-safe: the
  // planner calls it under its own lock.
  void Update(size_t done, size_t total);

 private:
  std::string prefix_, unit_;
  std::ostream& out_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_, last_print_;
  size_t last_done_ = 0;
  size_t last_tenth_ = 0;
  int run_ = 1;
};

bool StderrIsTerminal();

}  // namespace moesim::cli
