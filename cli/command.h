// command.h
//
// Each `moesim` subcommand lives in its own cli/cmd_NAME.cc and registers itself here with a
// static MOESIM_REGISTER_COMMAND, so that adding a command touches no other file. A command's
// setup declares its options on the CLI11 subcommand and returns the function that runs it;
// main() runs the chosen one and is the only place that turns its Status into an exit code
// (0 ok, 2 bad input, 1 internal error).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/status.h"

namespace moesim::cli {

using RunFn = std::function<Status()>;
using SetupFn = std::function<RunFn(CLI::App* sub)>;

struct CommandInfo {
  std::string name;
  std::string help;
  int order;  // position in --help
  SetupFn setup;
};

bool RegisterCommand(CommandInfo info);
const std::vector<CommandInfo>& RegisteredCommands();

// Options shared by the commands that read a scenario: [SCENARIO] and --set PATH=VALUE.
struct ScenarioArgs {
  std::string path;
  std::vector<std::string> overrides;
};
void AddScenarioOptions(CLI::App* sub, ScenarioArgs* args, bool scenario_required);

// --max-memory SIZE (bytes, or with a unit: 512M, 2G, 2GiB): the memory the command's
// simulations may use together; a simulation estimated to need more is refused (exit 2) before
// it allocates. *bytes stays 0 when not given (= the machine's physical memory).
void AddMaxMemoryOption(CLI::App* sub, uint64_t* bytes);

// Writes `j` (indented, trailing newline) to `target`: "-" = stdout, else a file.
Status WriteJson(const nlohmann::json& j, const std::string& target);
// Writes JSON text already formatted (e.g. an ordered_json's dump) the same way.
Status WriteJsonText(const std::string& text, const std::string& target);

}  // namespace moesim::cli

#define MOESIM_CONCAT_INNER(a, b) a##b
#define MOESIM_CONCAT(a, b) MOESIM_CONCAT_INNER(a, b)
#define MOESIM_REGISTER_COMMAND(...)                              \
  static const bool MOESIM_CONCAT(moesim_registered_, __LINE__) = \
      ::moesim::cli::RegisterCommand(::moesim::cli::CommandInfo{__VA_ARGS__})
