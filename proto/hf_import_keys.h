// hf_import_keys.h
//
// Internal to hf_import.cc and hf_import_families.cc: reads the keys of a Hugging Face config
// and books each one into exactly one of HfImport's mapped / not_mapped / ignored lists (the
// first booking of a key wins). Errors name the source, the key's line (the first line where
// `"key":` appears in the text, 0 when not found) and the key's path.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "proto/hf_import.h"
#include "proto/moesim.pb.h"

namespace moesim::hf {

// One JSON object of the config and the prefix of its keys' paths ("" or "text_config.").
struct Obj {
  const nlohmann::json* j;
  std::string prefix;
};

class Keys {
 public:
  Keys(const std::string& text, const std::string& source, HfImport* out)
      : text_(text), source_(source), out_(out) {}

  Status Error(const Obj& o, const std::string& key, const std::string& message) const;
  // Present with a non-null value.
  bool Has(const Obj& o, const std::string& key) const;
  bool Booked(const Obj& o, const std::string& key) const {
    return booked_.count(o.prefix + key) > 0;
  }
  // A required positive integer; errors name the key when missing, of another type or <= 0.
  Status Int(const Obj& o, const std::string& key, int64_t* v) const;
  // As Int when present and not null; *v untouched (and false returned) otherwise.
  Expected<bool> OptInt(const Obj& o, const std::string& key, int64_t* v) const;
  Expected<bool> OptBool(const Obj& o, const std::string& key, bool* v) const;
  Expected<bool> OptString(const Obj& o, const std::string& key, std::string* v) const;
  // A nested object (absent or null: false).
  Expected<bool> OptObject(const Obj& o, const std::string& key, Obj* sub) const;

  // Booking. Each does nothing when the key is absent from `o` or already booked.
  void Map(const Obj& o, const std::string& key, const std::string& field,
           const std::string& value);
  void NotMapped(const Obj& o, const std::string& key, const std::string& reason);
  void Ignore(const Obj& o, const std::string& key, const std::string& reason);
  // Books the keys of `o` that every family shares (token ids, dropout, numerics, bookkeeping)
  // as ignored, then every key still not booked as not mapped ("not read for model_type ...").
  void Finish(const Obj& o, const std::string& family);
  void Note(std::string note) { out_->notes.push_back(std::move(note)); }

 private:
  int LineOf(const std::string& key) const;
  bool Present(const Obj& o, const std::string& key) const;
  bool Book(const Obj& o, const std::string& key);

  const std::string& text_;
  std::string source_;
  HfImport* out_;
  std::set<std::string> booked_;
};

// What the family readers fill: the model block and the training sequence length.
struct Built {
  pb::Model model;
  int64_t max_positions = 0;      // max_position_embeddings (0 = not given)
  int64_t learned_positions = 0;  // GPT-2's n_positions: the position table's rows
};

// Family readers (hf_import_families.cc). `family` is the model_type as written.
Status ReadLlamaLike(Keys& k, const Obj& o, const std::string& family, Built* b);
Status ReadDeepSeek(Keys& k, const Obj& o, const std::string& family, Built* b);
Status ReadLlama4(Keys& k, const Obj& root, const std::string& family, Built* b);
Status ReadDbrx(Keys& k, const Obj& o, const std::string& family, Built* b);
Status ReadGpt2(Keys& k, const Obj& o, const std::string& family, Built* b);

std::string Num(int64_t v);

}  // namespace moesim::hf
