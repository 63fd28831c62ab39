// moesim: simulator and cost model for Mixture-of-Experts training. See README.md.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <tuple>

#include "cli/command.h"
#include "proto/maxtext_preset.h"
#include "proto/megatron_args.h"

namespace moesim::cli {

namespace {
std::vector<CommandInfo>& Registry() {
  static std::vector<CommandInfo> commands;
  return commands;
}
}  // namespace

bool RegisterCommand(CommandInfo info) {
  Registry().push_back(std::move(info));
  return true;
}

const std::vector<CommandInfo>& RegisteredCommands() { return Registry(); }

void AddScenarioOptions(CLI::App* sub, ScenarioArgs* args, bool scenario_required) {
  auto* opt =
      sub->add_option("scenario", args->path,
                      "Scenario file (protobuf text format)" +
                          std::string(scenario_required ? ""
                                                        : "; none = the built-in default "
                                                          "(Apple 2024 1.6B/64E on 256 TPU-v5e)"));
  if (scenario_required) opt->required();
  sub->add_option("--set", args->overrides,
                  "Override one scalar field, e.g. --set model.moe.num_experts=32 (repeatable)")
      ->type_name("PATH=VALUE")
      ->allow_extra_args(false);
  // After --set: CLI11 runs option callbacks in the order options were added, so the arguments'
  // overrides follow (and win over) the --set ones.
  sub->add_option_function<std::string>(
         "--megatron-args",
         [args](const std::string& text) {
           auto parsed = moesim::ParseMegatronArgs(text);
           if (!parsed.ok()) {
             throw CLI::ValidationError("--megatron-args", parsed.status().message());
           }
           for (const std::string& f : parsed->ignored) {
             std::cerr << "moesim: --megatron-args: " << f << ": not modelled, ignored\n";
           }
           for (const std::string& note : parsed->notes) {
             std::cerr << "moesim: --megatron-args: " << note << "\n";
           }
           for (std::string& o : parsed->overrides) args->overrides.push_back(std::move(o));
         },
         "Megatron-LM command-line arguments (parallel sizes, batch, recomputation, model), "
         "applied as --set overrides of the megatron form (docs/megatron.md)")
      ->type_name("\"ARGS\"");
  // Last: per_device_batch_size becomes training fields only on the scenario loaded so far (its
  // device count and mesh), so the overrides read it with everything above applied.
  sub->add_option_function<std::string>(
         "--maxtext",
         [args](const std::string& text) {
           std::vector<std::string> sets;
           auto sc = moesim::LoadScenarioWithMaxText({args->path, args->overrides}, text, &sets);
           if (!sc.ok()) throw CLI::ValidationError("--maxtext", sc.status().message());
           for (std::string& s : sets) args->overrides.push_back(std::move(s));
         },
         "MaxText config overrides, e.g. \"ici_fsdp_parallelism=64 ici_expert_parallelism=4 "
         "per_device_batch_size=8\", applied as --set overrides of the maxtext form "
         "(docs/maxtext.md)")
      ->type_name("\"KEY=VALUE ...\"");
}

void AddMaxMemoryOption(CLI::App* sub, uint64_t* bytes) {
  sub->add_option("--max-memory", *bytes,
                  "Memory the simulations may use, e.g. 2G or 512MiB (default: the machine's "
                  "physical memory); larger ones are refused before they allocate")
      ->type_name("SIZE")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{1} << 20, uint64_t{1} << 50));
}

Status WriteJson(const nlohmann::json& j, const std::string& target) {
  return WriteJsonText(j.dump(2) + "\n", target);
}

Status WriteJsonText(const std::string& text, const std::string& target) {
  if (target == "-") {
    std::cout << text;
    return std::cout ? Status::Ok() : Status::Internal("cannot write to stdout");
  }
  std::ofstream out(target, std::ios::binary);
  if (!out) return Status::InvalidInput(target + ": cannot open for writing");
  out << text;
  out.close();
  if (!out) return Status::InvalidInput(target + ": write failed");
  return Status::Ok();
}

}  // namespace moesim::cli

int main(int argc, char** argv) {
  using namespace moesim::cli;
  CLI::App app{
      "moesim: predicts the training step time of dense and Mixture-of-Experts transformers on "
      "TPU and GPU clusters, under a given sharding"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "moesim 0.1.0");
  std::vector<CommandInfo> commands = RegisteredCommands();
  std::sort(commands.begin(), commands.end(), [](const CommandInfo& a, const CommandInfo& b) {
    // Registration order depends on link order: ties must not decide the listing.
    return std::tie(a.order, a.name) < std::tie(b.order, b.name);
  });
  std::map<CLI::App*, RunFn> runners;
  for (const CommandInfo& c : commands) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    runners[sub] = c.setup(sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    // CLI11 returns 0 for --help/--version and its own codes for errors; ours are 0/1/2.
    return code == 0 ? 0 : 2;
  }
  for (auto& [sub, run] : runners) {
    if (!sub->parsed()) continue;
    try {
      const moesim::Status st = run();
      if (!st.ok()) {
        st.PrintTo("moesim " + sub->get_name());
        return st.exit_code();
      }
      return 0;
    } catch (const std::exception& e) {
      moesim::Status::Internal(std::string("internal error: ") + e.what())
          .PrintTo("moesim " + sub->get_name());
      return 1;
    }
  }
  return 2;
}
