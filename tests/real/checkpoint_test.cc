// Checkpoint reading against damaged input, through the entry points a fuzzer uses
// (ParseCheckpointMeta, ParseCheckpointFile, ReadCheckpoint) and LoadCheckpoint: every meta.json
// field missing, of the wrong type and out of range is refused naming the field; every
// truncation of a rank file is refused; lengths and counts larger than the file are refused
// before allocating; messages quote at most a short escaped excerpt of the file.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "real/kernels/cpu_device.h"
#include "real/train/checkpoint.h"

namespace moesim::real {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A saved checkpoint of a two-tensor parameter set, with its meta.json and rank file as text.
struct Saved {
  std::string dir, meta_text, rank_bytes;
};

Saved Save(const std::string& name, ParamSet<float>* ps, CpuDevice<float>* dev) {
  for (const char* n : {"w", "layers.0.attn.norm"}) {
    ParamEntry e;
    e.name = n;
    e.count = 20;
    ps->Add(e);
  }
  EXPECT_TRUE(ps->Allocate(dev).ok());
  ps->Initialize(dev, 3);
  Saved s;
  s.dir = (fs::temp_directory_path() / ("moesim_real_ckpt_" + name)).string();
  fs::remove_all(s.dir);
  CheckpointMeta meta;
  meta.step = 7;
  meta.schedule_steps = 10;
  meta.seed = 5;
  meta.data = {0xDEADBEEFCAFEF00DULL, 112};
  EXPECT_TRUE(SaveCheckpoint(s.dir, meta, *ps, nullptr).ok());
  auto slurp = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  s.meta_text = slurp(s.dir + "/meta.json");
  s.rank_bytes = slurp(s.dir + "/rank-00000.bin");
  return s;
}

TEST(CheckpointRead, ReadCheckpointReturnsTheTableAndDataWithoutAModel) {
  CpuDevice<float> dev;
  ParamSet<float> ps;
  const Saved s = Save("read", &ps, &dev);
  Expected<CheckpointContents> c = ReadCheckpoint(s.dir);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->meta.step, 7);
  EXPECT_EQ(c->meta.scalar_bytes, 4);
  EXPECT_EQ(c->meta.data.sequences_drawn, 112);
  ASSERT_EQ(c->file.table.size(), 2u);
  EXPECT_EQ(c->file.table[1].name, "layers.0.attn.norm");
  EXPECT_EQ(c->file.table[1].offset, 32);  // 20 elements padded to 32
  EXPECT_EQ(c->file.total, 64);
  ASSERT_EQ(c->file.data.size(), 3u * 64 * 4);
  const std::vector<float> p = ps.params().Download();
  EXPECT_EQ(std::memcmp(c->file.data.data(), p.data(), p.size() * 4), 0);
  // Rank out of range; a missing directory.
  EXPECT_FALSE(ReadCheckpoint(s.dir, 1).ok());
  EXPECT_FALSE(ReadCheckpoint(s.dir, -1).ok());
  Expected<CheckpointContents> none = ReadCheckpoint(s.dir + "/nope");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Status::Code::kInvalidInput);
}

// For each field: missing, a string, a float, and values just outside its range.
TEST(CheckpointRead, EveryMetaFieldMissingWrongTypeOrOutOfRangeIsRefusedNamingIt) {
  CpuDevice<float> dev;
  ParamSet<float> ps;
  const Saved s = Save("meta", &ps, &dev);
  const json good = json::parse(s.meta_text);
  ASSERT_TRUE(ParseCheckpointMeta(s.meta_text, "m.json").ok());
  struct Case {
    const char* field;
    std::vector<json> bad;
  };
  const std::vector<Case> cases = {
      {"format", {"other", 1}},
      {"version", {0, 2, "1", 1.0}},
      {"step", {"two", -1, 1e30, 1.5, 1000000000001LL, json::array()}},
      {"schedule_steps", {"x", -1, 1e30}},
      {"world", {"one", 0, -1, 1e30, 4294967297LL, 1048577}},
      {"expert_parallel", {"x", 0, 2, -1, 1e30}},  // world is 1
      {"seed", {"x", -1, 1e30, 0.5}},
      {"data_rng_state", {"x", -1, 1e30}},
      {"data_sequences_drawn", {"x", -1, 1e30, int64_t{1} << 62 | 1}},
      {"scalar_bytes", {"4", 2, 6, 16, -4}},
      {"notes", {1, json::object()}},
  };
  for (const Case& c : cases) {
    std::vector<json> variants = c.bad;
    if (std::string(c.field) != "notes") variants.push_back(nullptr);  // nullptr = erase
    for (const json& v : variants) {
      json j = good;
      if (v.is_null()) {
        j.erase(c.field);
      } else {
        j[c.field] = v;
      }
      Expected<CheckpointMeta> m = ParseCheckpointMeta(j.dump(), "ck/meta.json");
      ASSERT_FALSE(m.ok()) << c.field << " = " << v.dump();
      EXPECT_EQ(m.status().code(), Status::Code::kInvalidInput);
      EXPECT_EQ(
          m.status().message().rfind("ck/meta.json: field \"" + std::string(c.field) + "\"", 0), 0u)
          << m.status().message();
    }
  }
  // Not JSON, not an object, too large.
  for (const std::string& text :
       {std::string("{\"step\": "), std::string("[1, 2]"), std::string("\x01\x02\xff"),
        std::string(static_cast<size_t>(kMaxMetaJsonBytes) + 1, ' ')}) {
    Expected<CheckpointMeta> m = ParseCheckpointMeta(text, "ck/meta.json");
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().message().rfind("ck/meta.json: ", 0), 0u) << m.status().message();
    EXPECT_LT(m.status().message().size(), 200u);
  }
}

TEST(CheckpointRead, EveryTruncationOfARankFileIsRefused) {
  CpuDevice<float> dev;
  ParamSet<float> ps;
  const Saved s = Save("trunc", &ps, &dev);
  ASSERT_TRUE(ParseCheckpointFile(s.rank_bytes, "r.bin", 1 << 20).ok());
  for (size_t n = 0; n < s.rank_bytes.size(); ++n) {
    Expected<CheckpointFile> f = ParseCheckpointFile(s.rank_bytes.substr(0, n), "r.bin", 1 << 20);
    ASSERT_FALSE(f.ok()) << n;
    EXPECT_EQ(f.status().code(), Status::Code::kInvalidInput);
  }
  // A byte more is refused too (the sizes must add up exactly).
  EXPECT_FALSE(ParseCheckpointFile(s.rank_bytes + "x", "r.bin", 1 << 20).ok());
  // The data limit is checked before reading the data.
  Expected<CheckpointFile> capped = ParseCheckpointFile(s.rank_bytes, "r.bin", 100);
  ASSERT_FALSE(capped.ok());
  EXPECT_NE(capped.status().message().find("more than the 100 allowed"), std::string::npos);
}

// Offsets of the rank file's fields (checkpoint.h): magic 8, version 4, step 8, scalar 4.
constexpr size_t kCountAt = 24;
constexpr size_t kFirstNameLengthAt = 32;

template <typename V>
std::string With(std::string bytes, size_t at, V v) {
  std::memcpy(bytes.data() + at, &v, sizeof(V));
  return bytes;
}

TEST(CheckpointRead, HugeCountsAndLengthsAreRefusedBeforeAllocating) {
  CpuDevice<float> dev;
  ParamSet<float> ps;
  const Saved s = Save("huge", &ps, &dev);
  auto message = [](const std::string& bytes) {
    Expected<CheckpointFile> f = ParseCheckpointFile(bytes, "r.bin", int64_t{1} << 40);
    EXPECT_FALSE(f.ok());
    return f.ok() ? std::string() : f.status().message();
  };
  EXPECT_NE(message(With(s.rank_bytes, kCountAt, ~uint64_t{0})).find("cannot fit"),
            std::string::npos);
  EXPECT_NE(message(With(s.rank_bytes, kFirstNameLengthAt, uint64_t{1} << 20))
                .find("parameter table entry 0: name length 1048576 outside [1, 256]"),
            std::string::npos);
  EXPECT_NE(message(With(s.rank_bytes, kFirstNameLengthAt, uint64_t{0})).find("name length 0"),
            std::string::npos);
  // "w" then count and offset: a count beyond the buffers.
  const size_t count_at = kFirstNameLengthAt + 8 + 1;
  EXPECT_NE(message(With(s.rank_bytes, count_at, int64_t{1} << 40)).find("lies outside"),
            std::string::npos);
  EXPECT_NE(message(With(s.rank_bytes, count_at, int64_t{-1})).find("negative count"),
            std::string::npos);
  EXPECT_NE(message(With(s.rank_bytes, count_at + 8, INT64_MAX)).find("lies outside"),
            std::string::npos);
  // The total after the table: larger than the file, negative.
  const size_t total_at = s.rank_bytes.size() - 8 - 3 * 64 * 4 - 8;
  EXPECT_NE(message(With(s.rank_bytes, total_at, INT64_MAX)).find("declares"), std::string::npos);
  EXPECT_NE(message(With(s.rank_bytes, total_at, int64_t{-3})).find("declares"), std::string::npos);
  EXPECT_NE(message(With(s.rank_bytes, 8, uint32_t{9})).find("format version 9"),
            std::string::npos);
  EXPECT_NE(message(With(s.rank_bytes, 20, uint32_t{3})).find("scalar size 3"), std::string::npos);
}

TEST(CheckpointRead, ABinaryTensorNameIsQuotedShortAndEscaped) {
  CpuDevice<float> dev;
  ParamSet<float> ps;
  const Saved s = Save("binary_name", &ps, &dev);
  // Replace the 1-byte name "w" by 200 binary bytes (length field and name, the rest kept).
  std::string name(200, '\0');
  for (size_t i = 0; i < name.size(); ++i) name[i] = static_cast<char>(i * 37 + 1);
  std::string bytes = s.rank_bytes.substr(0, kFirstNameLengthAt);
  const uint64_t len = name.size();
  bytes.append(reinterpret_cast<const char*>(&len), sizeof(len));
  bytes += name;
  bytes += s.rank_bytes.substr(kFirstNameLengthAt + 8 + 1);
  std::ofstream(s.dir + "/rank-00000.bin", std::ios::binary | std::ios::trunc) << bytes;
  Expected<CheckpointMeta> r = LoadCheckpoint(s.dir, ps, nullptr);
  ASSERT_FALSE(r.ok());
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("\\x01&K"), std::string::npos) << m;  // bytes 1, 38, 75
  EXPECT_NE(m.find("... (200 bytes)"), std::string::npos) << m;
  EXPECT_LT(m.size(), 64u * 4 + 200) << m;
  for (const char c : m) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << m;
}

TEST(CheckpointRead, LoadRefusesAMetaOfAnotherScalarSizeOrStep) {
  CpuDevice<float> dev;
  ParamSet<float> ps;
  const Saved s = Save("scalar", &ps, &dev);
  json j = json::parse(s.meta_text);
  j["scalar_bytes"] = 8;
  std::ofstream(s.dir + "/meta.json") << j.dump();
  Expected<CheckpointMeta> r = LoadCheckpoint(s.dir, ps, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("4-byte scalars, meta.json 8"), std::string::npos)
      << r.status().message();
  j["scalar_bytes"] = 4;
  j["step"] = 8;
  std::ofstream(s.dir + "/meta.json") << j.dump();
  r = LoadCheckpoint(s.dir, ps, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("holds step 7, meta.json 8"), std::string::npos)
      << r.status().message();
  // meta.json a directory: refused, no exception.
  fs::remove(s.dir + "/meta.json");
  fs::create_directory(s.dir + "/meta.json");
  r = LoadCheckpoint(s.dir, ps, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("meta.json: not a regular file"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace moesim::real
