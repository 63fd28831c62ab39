// `moesim import hf CONFIG.json [--out FILE] [--seq-len N] [--json FILE|-]`: a scenario from a
// Hugging Face config.json (proto/hf_import.h), with what each key became, which keys the model
// block cannot say (and why) and which do not matter for cost. With --out the scenario goes to
// FILE and the listing to stdout; without it the scenario goes to stdout and the listing to
// stderr, so that `moesim import hf c.json > s.textproto` works. Bad input (not JSON, an unknown
// model_type, a missing or mistyped key): exit 2, naming the file, the key and its line.
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "proto/hf_import.h"

namespace moesim::cli {
namespace {

void PrintListing(const HfImport& r, std::ostream& os) {
  os << "model_type " << r.family << "\n\nmapped (" << r.mapped.size() << "):\n";
  for (const auto& m : r.mapped)
    os << "  " << m.key << " -> " << m.field << " = " << m.value << "\n";
  os << "\nnot mapped (" << r.not_mapped.size() << "): the scenario misses them\n";
  for (const auto& k : r.not_mapped) os << "  " << k.key << ": " << k.reason << "\n";
  os << "\nignored (" << r.ignored.size() << "): no effect on cost\n";
  for (const auto& k : r.ignored) os << "  " << k.key << ": " << k.reason << "\n";
  if (!r.notes.empty()) {
    os << "\nnotes:\n";
    for (const auto& n : r.notes) os << "  " << n << "\n";
  }
}

nlohmann::json ListingJson(const HfImport& r, const std::string& out) {
  nlohmann::json j;
  j["model_type"] = r.family;
  j["mapped"] = nlohmann::json::array();
  for (const auto& m : r.mapped) {
    j["mapped"].push_back({{"key", m.key}, {"field", m.field}, {"value", m.value}});
  }
  for (const char* list : {"not_mapped", "ignored"}) {
    j[list] = nlohmann::json::array();
    for (const auto& k : list == std::string("ignored") ? r.ignored : r.not_mapped) {
      j[list].push_back({{"key", k.key}, {"reason", k.reason}});
    }
  }
  j["notes"] = r.notes;
  if (!out.empty()) j["scenario_file"] = out;
  return j;
}

RunFn Setup(CLI::App* sub) {
  sub->require_subcommand(1);
  CLI::App* hf = sub->add_subcommand(
      "hf",
      "A scenario from a Hugging Face config.json; lists each key as mapped (to which field), "
      "not mapped (with why) or ignored. model_type: " +
          HfFamilies());
  auto config = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto json = std::make_shared<std::string>();
  auto seq_len = std::make_shared<int64_t>(0);
  hf->add_option("config", *config, "The model's config.json")->required();
  hf->add_option("--out", *out,
                 "Write the scenario (protobuf text) to FILE; the listing goes to stdout. "
                 "Without it the scenario goes to stdout and the listing to stderr")
      ->type_name("FILE");
  hf->add_option("--seq-len", *seq_len,
                 "Training sequence length (model.seq_len); default min(max_position_embeddings, "
                 "4096), or GPT-2's n_positions")
      ->check(CLI::PositiveNumber);
  hf->add_option("--json", *json, "Write the listing as JSON to FILE, or to stdout with -")
      ->type_name("FILE|-");
  hf->footer(
      "Example: moesim import hf config.json --out model.textproto && moesim simulate "
      "model.textproto\nOnly the model block comes from the config; cluster (one 8-GPU H100 "
      "node), sharding and training are defaults to edit (docs/import.md).");
  return [config, out, json, seq_len]() -> Status {
    if (*json == "-" && out->empty()) {
      return Status::InvalidInput(
          "--json - writes the listing to stdout, where the scenario would go: give --out FILE");
    }
    std::ifstream in(*config, std::ios::binary);
    if (!in) return Status::InvalidInput(*config + ": cannot open");
    std::stringstream text;
    text << in.rdbuf();
    HfImportOptions options;
    options.seq_len = *seq_len;
    auto r = ImportHfConfig(text.str(), *config, options);
    if (!r.ok()) return r.status();
    if (!out->empty()) {
      std::ofstream f(*out, std::ios::binary);
      if (!f) return Status::InvalidInput(*out + ": cannot open for writing");
      f << r->scenario_text;
      f.close();
      if (!f) return Status::InvalidInput(*out + ": write failed");
    }
    if (*json == "-") return WriteJson(ListingJson(*r, *out), "-");
    if (!json->empty()) MOESIM_RETURN_IF_ERROR(WriteJson(ListingJson(*r, *out), *json));
    if (out->empty()) {
      std::cout << r->scenario_text;
      PrintListing(*r, std::cerr);
    } else {
      PrintListing(*r, std::cout);
      std::cout << "\nwrote " << *out << "\n";
    }
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("import",
                        "A scenario from another tool's description of a model: `import hf "
                        "config.json` (Hugging Face)",
                        25, Setup);

}  // namespace moesim::cli
