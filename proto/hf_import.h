// hf_import.h
//
// A Hugging Face `config.json` into a moesim scenario: the model block from the config's keys,
// plus cluster, sharding and training defaults that validate, so that the written scenario
// simulates as it is (`moesim import hf`, docs/import.md).
//
// Families (the config's model_type): mixtral, qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3,
// llama4 / llama4_text (the text model of text_config), olmoe, dbrx (ffn_config, attn_config),
// gpt_oss, and the dense llama, mistral, qwen2, qwen3 and gpt2.
//
// Invariant: every key of the config (nested keys of the objects the family reads, as
// "text_config.hidden_size") lands in exactly one of `mapped`, `not_mapped` and `ignored`, in the
// order the importer met it. Nothing is guessed silently: a key that changes the model's shape or
// cost and that the model block cannot express is in `not_mapped` with its reason, as is a key the
// importer does not know; `ignored` holds what does not change cost (token ids, dropout,
// initialisation, numerics of norms and RoPE). Facts of a family that no key states (GPT-2's tied
// embeddings, Qwen2's query/key/value biases) are in `notes`.
// Sizes are elements; seq_len in tokens. Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace moesim {

struct HfMappedKey {
  std::string key;    // "num_local_experts", "text_config.hidden_size"
  std::string field;  // "model.moe.num_experts"
  std::string value;  // as written to the scenario: "8", "SWIGLU"
};

struct HfUnmappedKey {
  std::string key;
  std::string reason;
};

struct HfImport {
  std::string family;         // the config's model_type
  std::string scenario_text;  // a scenario in protobuf text format, comments on top
  std::vector<HfMappedKey> mapped;
  std::vector<HfUnmappedKey> not_mapped;  // affect shape or cost; the model block cannot say them
  std::vector<HfUnmappedKey> ignored;     // do not affect cost
  std::vector<std::string> notes;         // the family's facts no key states
};

struct HfImportOptions {
  // The training sequence (model.seq_len); 0 = min(max_position_embeddings, 4096), or the learned
  // position table's size for GPT-2 (n_positions), which sizes that table.
  int64_t seq_len = 0;
};

// Reads `json_text` (the contents of a config.json; `source_name` names it in messages).
// Errors (kInvalidInput), each naming source_name, the key and its line: text that is not JSON
// (with its line), a top level that is not an object, a model_type missing or not one of the
// families above, a required key missing, a value of the wrong JSON type (a string where a
// number is due), a size that is not positive.
Expected<HfImport> ImportHfConfig(const std::string& json_text, const std::string& source_name,
                                  const HfImportOptions& options = {});

// The model_type values ImportHfConfig reads, comma-separated, for messages and --help.
std::string HfFamilies();

}  // namespace moesim
