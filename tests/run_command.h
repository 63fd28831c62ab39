// run_command.h
//
// Runs a built executable as a user does, for the tests of command-line behaviour (exit codes,
// output, messages). Header-only: each test binary that needs it includes it.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace moesim::test_cli {

struct RunResult {
  int exit_code = -1;  // -1 when the command could not start or did not exit normally
  std::string out;     // stdout; add "2>&1" to the command for stderr too
};

// Runs `command` through the shell.
inline RunResult RunCommand(const std::string& command) {
  RunResult r;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `moesim ARGS` from the build tree.
inline RunResult Moesim(const std::string& args) {
  return RunCommand(std::string(MOESIM_BINARY_DIR) + "/moesim " + args);
}

}  // namespace moesim::test_cli
