#include "real/train/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "real/limits.h"

namespace moesim::real {
namespace {

constexpr char kMagic[8] = {'M', 'O', 'E', 'S', 'I', 'M', 'C', 'K'};
constexpr uint32_t kVersion = 1;
constexpr const char* kFormat = "moesim-real checkpoint";

std::string RankFile(const std::string& dir, int rank) {
  char name[32];
  std::snprintf(name, sizeof(name), "rank-%05d.bin", rank);
  return (std::filesystem::path(dir) / name).string();
}

uint64_t Fnv1a(const void* data, size_t bytes, uint64_t h = 0xCBF29CE484222325ULL) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001B3ULL;
  }
  return h;
}

class Writer {
 public:
  explicit Writer(std::ofstream* out) : out_(out) {}
  template <typename V>
  void Pod(const V& v) {
    out_->write(reinterpret_cast<const char*>(&v), sizeof(V));
  }
  void Str(const std::string& s) {
    Pod(static_cast<uint64_t>(s.size()));
    out_->write(s.data(), static_cast<std::streamsize>(s.size()));
  }
  void Bytes(const void* p, size_t n) {
    out_->write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
  }

 private:
  std::ofstream* out_;
};

// Reads from a stream of known size; never reads past it, so a length read from the file is
// checked against what is left before anything is allocated for it.
class Reader {
 public:
  Reader(std::istream* in, int64_t size) : in_(in), left_(size) {}
  int64_t left() const { return left_; }
  template <typename V>
  bool Pod(V* v) {
    return Bytes(v, static_cast<int64_t>(sizeof(V)));
  }
  bool Bytes(void* p, int64_t n) {
    if (n < 0 || n > left_) return false;
    if (n > 0 && !in_->read(static_cast<char*>(p), static_cast<std::streamsize>(n))) return false;
    left_ -= n;
    return true;
  }

 private:
  std::istream* in_;
  int64_t left_;
};

// At most kMaxQuotedBytes of `text` in double quotes, printable ASCII kept, the rest escaped.
std::string Quote(std::string_view text) {
  std::string out = "\"";
  const size_t n = std::min(text.size(), static_cast<size_t>(kMaxQuotedBytes));
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  out += "\"";
  if (n < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

// A regular file's size; errors name the path.
Expected<int64_t> RegularFileSize(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return Status::InvalidInput(path + ": cannot open (no such file)");
  if (!fs::is_regular_file(st)) return Status::InvalidInput(path + ": not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return Status::InvalidInput(path + ": " + ec.message());
  if (size > static_cast<uintmax_t>(INT64_MAX)) return Status::InvalidInput(path + ": too large");
  return static_cast<int64_t>(size);
}

// The header and parameter table of a rank file, its sizes checked against the file.
struct Header {
  int64_t step = 0;
  uint32_t scalar = 0;
  std::vector<CheckpointTensor> table;
  int64_t total = 0;
};

Expected<Header> ReadHeader(Reader& r, const std::string& path) {
  const std::string bad = path + ": not a moesim-real checkpoint rank file";
  char magic[8];
  uint32_t version = 0;
  if (!r.Bytes(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) {
    return Status::InvalidInput(bad + " (no MOESIMCK header)");
  }
  Header h;
  uint64_t n_entries = 0;
  if (!r.Pod(&version) || !r.Pod(&h.step) || !r.Pod(&h.scalar) || !r.Pod(&n_entries)) {
    return Status::InvalidInput(bad + " (truncated header)");
  }
  if (version != kVersion) {
    return Status::InvalidInput(path + ": format version " + std::to_string(version) +
                                ", this moesim-real reads version " + std::to_string(kVersion));
  }
  if (h.step < 0 || h.step > kMaxSteps) {
    return Status::InvalidInput(path + ": step " + std::to_string(h.step) + " outside [0, " +
                                std::to_string(kMaxSteps) + "]");
  }
  if (h.scalar != 4 && h.scalar != 8) {
    return Status::InvalidInput(path + ": scalar size " + std::to_string(h.scalar) +
                                " bytes (must be 4 or 8)");
  }
  // Every entry takes at least a length, one name byte, a count and an offset.
  constexpr uint64_t kMinEntryBytes = 8 + 1 + 8 + 8;
  if (n_entries > static_cast<uint64_t>(r.left()) / kMinEntryBytes) {
    return Status::InvalidInput(path + ": " + std::to_string(n_entries) +
                                " parameter tensors cannot fit in the file's remaining " +
                                std::to_string(r.left()) + " bytes");
  }
  h.table.resize(static_cast<size_t>(n_entries));
  for (size_t i = 0; i < h.table.size(); ++i) {
    CheckpointTensor& t = h.table[i];
    const std::string where = path + ": parameter table entry " + std::to_string(i);
    uint64_t len = 0;
    if (!r.Pod(&len)) return Status::InvalidInput(where + ": truncated");
    if (len == 0 || len > static_cast<uint64_t>(kMaxTensorNameBytes)) {
      return Status::InvalidInput(where + ": name length " + std::to_string(len) + " outside [1, " +
                                  std::to_string(kMaxTensorNameBytes) + "]");
    }
    t.name.resize(static_cast<size_t>(len));
    if (!r.Bytes(t.name.data(), static_cast<int64_t>(len)) || !r.Pod(&t.count) ||
        !r.Pod(&t.offset)) {
      return Status::InvalidInput(where + ": truncated");
    }
    if (t.count < 0 || t.offset < 0) {
      return Status::InvalidInput(where + " " + Quote(t.name) + ": negative count " +
                                  std::to_string(t.count) + " or offset " +
                                  std::to_string(t.offset));
    }
  }
  if (!r.Pod(&h.total)) return Status::InvalidInput(path + ": truncated after the parameter table");
  // The rest is three buffers of `total` scalars and the checksum, exactly.
  const int64_t data_left = r.left() - 8;
  const int64_t per_buffer = 3 * static_cast<int64_t>(h.scalar);
  if (h.total < 0 || data_left < 0 || h.total > data_left / per_buffer ||
      h.total * per_buffer != data_left) {
    return Status::InvalidInput(path + ": declares " + std::to_string(h.total) +
                                " elements in each of 3 buffers of " + std::to_string(h.scalar) +
                                "-byte scalars, the file has " + std::to_string(r.left()) +
                                " bytes after the table (checksum included)");
  }
  for (const CheckpointTensor& t : h.table) {
    if (t.offset > h.total || t.count > h.total - t.offset) {
      return Status::InvalidInput(path + ": parameter " + Quote(t.name) + " [" +
                                  std::to_string(t.count) + " at " + std::to_string(t.offset) +
                                  "] lies outside the buffers of " + std::to_string(h.total) +
                                  " elements");
    }
  }
  return h;
}

Status ReadChecksum(Reader& r, uint64_t sum, const std::string& path) {
  uint64_t saved = 0;
  if (!r.Pod(&saved) || saved != sum) {
    return Status::InvalidInput(path + ": checksum mismatch (corrupt checkpoint)");
  }
  return Status::Ok();
}

Expected<CheckpointFile> ReadFileFrom(std::istream& in, int64_t size, const std::string& path,
                                      int64_t max_data_bytes) {
  Reader r(&in, size);
  Expected<Header> h = ReadHeader(r, path);
  if (!h.ok()) return h.status();
  CheckpointFile f;
  f.step = h->step;
  f.scalar_bytes = h->scalar;
  f.table = std::move(h->table);
  f.total = h->total;
  const int64_t bytes = r.left() - 8;  // exactly the three buffers (ReadHeader)
  if (bytes > max_data_bytes) {
    return Status::InvalidInput(path + ": " + std::to_string(bytes) +
                                " bytes of parameters and moments, more than the " +
                                std::to_string(max_data_bytes) + " allowed");
  }
  f.data.resize(static_cast<size_t>(bytes));
  if (!r.Bytes(f.data.data(), bytes)) return Status::InvalidInput(path + ": truncated data");
  MOESIM_RETURN_IF_ERROR(ReadChecksum(r, Fnv1a(f.data.data(), f.data.size()), path));
  return f;
}

using json = nlohmann::json;

// A JSON value as printable ASCII (non-ASCII escaped by the dump), at most kMaxQuotedBytes.
std::string Dump(const json& j) {
  std::string text = j.dump(-1, ' ', /*ensure_ascii=*/true, json::error_handler_t::replace);
  if (text.size() > static_cast<size_t>(kMaxQuotedBytes)) {
    const size_t n = text.size();
    text.resize(static_cast<size_t>(kMaxQuotedBytes));
    text += "... (" + std::to_string(n) + " bytes)";
  }
  return text;
}

// meta.json's fields; errors name the file and the field.
class MetaFields {
 public:
  MetaFields(const json& j, const std::string& name) : j_(j), name_(name) {}

  Expected<const json*> Get(const char* key) const {
    const auto it = j_.find(key);
    if (it == j_.end()) return Fail(key, "is missing");
    return &*it;
  }
  Status Int(const char* key, int64_t lo, int64_t hi, int64_t* out) const {
    Expected<const json*> v = Get(key);
    if (!v.ok()) return v.status();
    const json& x = **v;
    const std::string want =
        "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got ";
    if (!x.is_number_integer()) return Fail(key, want + Dump(x));
    if (x.is_number_unsigned()) {
      const auto u = x.get<uint64_t>();
      if (u > static_cast<uint64_t>(hi) || (lo > 0 && u < static_cast<uint64_t>(lo))) {
        return Fail(key, want + std::to_string(u));
      }
      *out = static_cast<int64_t>(u);
      return Status::Ok();
    }
    const auto v64 = x.get<int64_t>();
    if (v64 < lo || v64 > hi) return Fail(key, want + std::to_string(v64));
    *out = v64;
    return Status::Ok();
  }
  Status U64(const char* key, uint64_t* out) const {
    Expected<const json*> v = Get(key);
    if (!v.ok()) return v.status();
    if (!(*v)->is_number_unsigned()) {
      return Fail(key, "must be an integer in [0, 18446744073709551615], got " + Dump(**v));
    }
    *out = (*v)->get<uint64_t>();
    return Status::Ok();
  }
  Status Str(const char* key, std::string* out) const {
    Expected<const json*> v = Get(key);
    if (!v.ok()) return v.status();
    if (!(*v)->is_string()) return Fail(key, "must be a string, got " + Dump(**v));
    *out = (*v)->get<std::string>();
    return Status::Ok();
  }
  bool Has(const char* key) const { return j_.contains(key); }

 private:
  Status Fail(const char* key, const std::string& what) const {
    return Status::InvalidInput(name_ + ": field \"" + key + "\" " + what);
  }
  const json& j_;
  const std::string& name_;
};

// The rank file agrees with meta.json.
Status CheckAgainstMeta(const CheckpointMeta& meta, int64_t step, uint32_t scalar,
                        const std::string& path) {
  if (step != meta.step) {
    return Status::InvalidInput(path + ": holds step " + std::to_string(step) + ", meta.json " +
                                std::to_string(meta.step));
  }
  if (static_cast<int>(scalar) != meta.scalar_bytes) {
    return Status::InvalidInput(path + ": " + std::to_string(scalar) + "-byte scalars, meta.json " +
                                std::to_string(meta.scalar_bytes));
  }
  return Status::Ok();
}

Status Collective(Comm* comm) { return comm != nullptr ? comm->Barrier() : Status::Ok(); }

}  // namespace

template <typename T>
Status SaveCheckpoint(const std::string& dir, const CheckpointMeta& meta, ParamSet<T>& params,
                      Comm* comm) {
  const int rank = comm != nullptr ? comm->rank() : 0;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return Status::InvalidInput(dir + ": cannot create checkpoint directory: " + ec.message());
  const std::string final_path = RankFile(dir, rank), tmp_path = final_path + ".tmp";
  {
    std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
    if (!out) return Status::InvalidInput(tmp_path + ": cannot open for writing");
    Writer w(&out);
    w.Bytes(kMagic, sizeof(kMagic));
    w.Pod(kVersion);
    w.Pod(meta.step);
    w.Pod(static_cast<uint32_t>(sizeof(T)));
    w.Pod(static_cast<uint64_t>(params.entries().size()));
    for (const ParamEntry& e : params.entries()) {
      w.Str(e.name);
      w.Pod(e.count);
      w.Pod(e.offset);
    }
    const int64_t total = params.params().size();
    w.Pod(total);
    uint64_t sum = 0xCBF29CE484222325ULL;
    for (Tensor<T>* t : {&params.params(), &params.moment1(), &params.moment2()}) {
      const std::vector<T> host = t->Download();
      w.Bytes(host.data(), host.size() * sizeof(T));
      sum = Fnv1a(host.data(), host.size() * sizeof(T), sum);
    }
    w.Pod(sum);
    out.close();
    if (!out) return Status::InvalidInput(tmp_path + ": write failed");
  }
  MOESIM_RETURN_IF_ERROR(Collective(comm));  // every rank's file is complete
  std::filesystem::rename(tmp_path, final_path, ec);
  if (ec) return Status::InvalidInput(final_path + ": rename failed: " + ec.message());
  MOESIM_RETURN_IF_ERROR(Collective(comm));
  if (rank == 0) {
    nlohmann::json j = {{"format", kFormat},
                        {"version", kVersion},
                        {"step", meta.step},
                        {"schedule_steps", meta.schedule_steps},
                        {"world", meta.world},
                        {"expert_parallel", meta.expert_parallel},
                        {"seed", meta.seed},
                        {"data_rng_state", meta.data.rng_state},
                        {"data_sequences_drawn", meta.data.sequences_drawn},
                        {"scalar_bytes", sizeof(T)},
                        {"notes", meta.notes}};
    const std::string path = (std::filesystem::path(dir) / "meta.json").string();
    {
      std::ofstream out(path + ".tmp", std::ios::binary | std::ios::trunc);
      out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      out.close();
      if (!out) return Status::InvalidInput(path + ": write failed");
    }
    std::filesystem::rename(path + ".tmp", path, ec);
    if (ec) return Status::InvalidInput(path + ": rename failed: " + ec.message());
  }
  return Collective(comm);
}

Expected<CheckpointMeta> ParseCheckpointMeta(std::string_view text, const std::string& name) {
  if (text.size() > static_cast<size_t>(kMaxMetaJsonBytes)) {
    return Status::InvalidInput(name + ": " + std::to_string(text.size()) + " bytes, more than " +
                                std::to_string(kMaxMetaJsonBytes) + " (not a checkpoint's meta)");
  }
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    const auto* pe = dynamic_cast<const json::parse_error*>(&e);
    return Status::InvalidInput(name + ": not valid JSON" +
                                (pe ? " (at byte " + std::to_string(pe->byte) + ")" : ""));
  }
  if (!j.is_object()) return Status::InvalidInput(name + ": not a JSON object");
  const MetaFields f(j, name);
  std::string format;
  MOESIM_RETURN_IF_ERROR(f.Str("format", &format));
  if (format != kFormat) {
    return Status::InvalidInput(name + ": field \"format\" is " + Quote(format) + ", not \"" +
                                kFormat + "\"");
  }
  int64_t version = 0, world = 0, ep = 0, scalar = 0;
  MOESIM_RETURN_IF_ERROR(f.Int("version", kVersion, kVersion, &version));
  CheckpointMeta m;
  MOESIM_RETURN_IF_ERROR(f.Int("step", 0, kMaxSteps, &m.step));
  MOESIM_RETURN_IF_ERROR(f.Int("schedule_steps", 0, kMaxSteps, &m.schedule_steps));
  MOESIM_RETURN_IF_ERROR(f.Int("world", 1, kMaxRanks, &world));
  MOESIM_RETURN_IF_ERROR(f.Int("expert_parallel", 1, world, &ep));
  MOESIM_RETURN_IF_ERROR(f.U64("seed", &m.seed));
  MOESIM_RETURN_IF_ERROR(f.U64("data_rng_state", &m.data.rng_state));
  MOESIM_RETURN_IF_ERROR(
      f.Int("data_sequences_drawn", 0, kMaxSequencesDrawn, &m.data.sequences_drawn));
  MOESIM_RETURN_IF_ERROR(f.Int("scalar_bytes", 4, 8, &scalar));
  if (scalar != 4 && scalar != 8) {
    return Status::InvalidInput(name + ": field \"scalar_bytes\" must be 4 or 8, got " +
                                std::to_string(scalar));
  }
  if (world % ep != 0) {
    return Status::InvalidInput(name + ": field \"expert_parallel\" " + std::to_string(ep) +
                                " does not divide field \"world\" " + std::to_string(world));
  }
  if (f.Has("notes")) MOESIM_RETURN_IF_ERROR(f.Str("notes", &m.notes));
  m.world = static_cast<int>(world);
  m.expert_parallel = static_cast<int>(ep);
  m.scalar_bytes = static_cast<int>(scalar);
  return m;
}

Expected<CheckpointMeta> ReadCheckpointMeta(const std::string& path) {
  Expected<int64_t> size = RegularFileSize(path);
  if (!size.ok()) {
    return Status::InvalidInput(size.status().message() + " (not a checkpoint directory?)");
  }
  if (*size > kMaxMetaJsonBytes) {
    return Status::InvalidInput(path + ": " + std::to_string(*size) + " bytes, more than " +
                                std::to_string(kMaxMetaJsonBytes) + " (not a checkpoint's meta)");
  }
  std::ifstream in(path, std::ios::binary);
  std::string text(static_cast<size_t>(*size), '\0');
  if (!in || !in.read(text.data(), static_cast<std::streamsize>(text.size()))) {
    return Status::InvalidInput(path + ": cannot read");
  }
  return ParseCheckpointMeta(text, path);
}

Expected<CheckpointFile> ParseCheckpointFile(std::string_view bytes, const std::string& name,
                                             int64_t max_data_bytes) {
  std::istringstream in(std::string(bytes), std::ios::binary);
  return ReadFileFrom(in, static_cast<int64_t>(bytes.size()), name, max_data_bytes);
}

Expected<CheckpointContents> ReadCheckpoint(const std::string& dir, int rank,
                                            int64_t max_data_bytes) {
  CheckpointContents c;
  Expected<CheckpointMeta> meta =
      ReadCheckpointMeta((std::filesystem::path(dir) / "meta.json").string());
  if (!meta.ok()) return meta.status();
  c.meta = std::move(*meta);
  if (rank < 0 || rank >= c.meta.world) {
    return Status::InvalidInput(dir + ": rank " + std::to_string(rank) + " outside the " +
                                std::to_string(c.meta.world) + " ranks of the checkpoint");
  }
  const std::string path = RankFile(dir, rank);
  Expected<int64_t> size = RegularFileSize(path);
  if (!size.ok()) return size.status();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidInput(path + ": cannot open");
  Expected<CheckpointFile> f = ReadFileFrom(in, *size, path, max_data_bytes);
  if (!f.ok()) return f.status();
  c.file = std::move(*f);
  MOESIM_RETURN_IF_ERROR(CheckAgainstMeta(c.meta, c.file.step, c.file.scalar_bytes, path));
  return c;
}

template <typename T>
Expected<CheckpointMeta> LoadCheckpoint(const std::string& dir, ParamSet<T>& params, Comm* comm) {
  const int rank = comm != nullptr ? comm->rank() : 0;
  const int world = comm != nullptr ? comm->size() : 1;
  const int ep = comm != nullptr ? comm->expert_size() : 1;
  Expected<CheckpointMeta> meta_or =
      ReadCheckpointMeta((std::filesystem::path(dir) / "meta.json").string());
  if (!meta_or.ok()) return meta_or.status();
  const CheckpointMeta& meta = *meta_or;
  if (meta.world != world || meta.expert_parallel != ep) {
    return Status::InvalidInput(dir + ": saved with " + std::to_string(meta.world) +
                                " ranks and expert parallelism " +
                                std::to_string(meta.expert_parallel) + ", resumed with " +
                                std::to_string(world) + " and " + std::to_string(ep));
  }
  const std::string path = RankFile(dir, rank);
  Expected<int64_t> size = RegularFileSize(path);
  if (!size.ok()) return size.status();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidInput(path + ": cannot open");
  Reader r(&in, *size);
  Expected<Header> h = ReadHeader(r, path);
  if (!h.ok()) return h.status();
  MOESIM_RETURN_IF_ERROR(CheckAgainstMeta(meta, h->step, h->scalar, path));
  if (h->scalar != sizeof(T)) {
    return Status::InvalidInput(path + ": saved with " + std::to_string(h->scalar) +
                                "-byte scalars, this run uses " + std::to_string(sizeof(T)));
  }
  if (h->table.size() != params.entries().size()) {
    return Status::InvalidInput(path + ": " + std::to_string(h->table.size()) +
                                " parameter tensors, the model has " +
                                std::to_string(params.entries().size()));
  }
  for (size_t i = 0; i < h->table.size(); ++i) {
    const CheckpointTensor& t = h->table[i];
    const ParamEntry& e = params.entries()[i];
    if (t.name != e.name || t.count != e.count || t.offset != e.offset) {
      return Status::InvalidInput(path + ": parameter " + Quote(t.name) + " [" +
                                  std::to_string(t.count) + "] does not match the model's " +
                                  e.name + " [" + std::to_string(e.count) + "]");
    }
  }
  if (h->total != params.params().size()) {
    return Status::InvalidInput(path + ": parameter buffers of " + std::to_string(h->total) +
                                " elements, the model's have " +
                                std::to_string(params.params().size()));
  }
  uint64_t sum = 0xCBF29CE484222325ULL;
  std::vector<T> host(static_cast<size_t>(h->total));
  for (Tensor<T>* t : {&params.params(), &params.moment1(), &params.moment2()}) {
    const auto bytes = static_cast<int64_t>(host.size() * sizeof(T));
    if (!r.Bytes(host.data(), bytes)) return Status::InvalidInput(path + ": truncated data");
    sum = Fnv1a(host.data(), host.size() * sizeof(T), sum);
    t->Upload(host);
  }
  MOESIM_RETURN_IF_ERROR(ReadChecksum(r, sum, path));
  MOESIM_RETURN_IF_ERROR(Collective(comm));
  return meta;
}

template Status SaveCheckpoint<float>(const std::string&, const CheckpointMeta&, ParamSet<float>&,
                                      Comm*);
template Status SaveCheckpoint<double>(const std::string&, const CheckpointMeta&, ParamSet<double>&,
                                       Comm*);
template Expected<CheckpointMeta> LoadCheckpoint<float>(const std::string&, ParamSet<float>&,
                                                        Comm*);
template Expected<CheckpointMeta> LoadCheckpoint<double>(const std::string&, ParamSet<double>&,
                                                         Comm*);

}  // namespace moesim::real
