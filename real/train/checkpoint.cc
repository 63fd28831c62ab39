#include "real/train/checkpoint.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace moesim::real {
namespace {

constexpr char kMagic[8] = {'M', 'O', 'E', 'S', 'I', 'M', 'C', 'K'};
constexpr uint32_t kVersion = 1;

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

class Reader {
 public:
  explicit Reader(std::ifstream* in) : in_(in) {}
  template <typename V>
  bool Pod(V* v) {
    return static_cast<bool>(in_->read(reinterpret_cast<char*>(v), sizeof(V)));
  }
  bool Str(std::string* s) {
    uint64_t n = 0;
    if (!Pod(&n) || n > (1u << 20)) return false;
    s->resize(n);
    return static_cast<bool>(in_->read(s->data(), static_cast<std::streamsize>(n)));
  }
  bool Bytes(void* p, size_t n) {
    return static_cast<bool>(in_->read(static_cast<char*>(p), static_cast<std::streamsize>(n)));
  }

 private:
  std::ifstream* in_;
};

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
    nlohmann::json j = {{"format", "moesim-real checkpoint"},
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
      out << j.dump(2) << "\n";
      out.close();
      if (!out) return Status::InvalidInput(path + ": write failed");
    }
    std::filesystem::rename(path + ".tmp", path, ec);
    if (ec) return Status::InvalidInput(path + ": rename failed: " + ec.message());
  }
  return Collective(comm);
}

template <typename T>
Expected<CheckpointMeta> LoadCheckpoint(const std::string& dir, ParamSet<T>& params, Comm* comm) {
  const int rank = comm != nullptr ? comm->rank() : 0;
  const int world = comm != nullptr ? comm->size() : 1;
  const int ep = comm != nullptr ? comm->expert_size() : 1;
  const std::string meta_path = (std::filesystem::path(dir) / "meta.json").string();
  std::ifstream mf(meta_path);
  if (!mf) return Status::InvalidInput(meta_path + ": cannot open (not a checkpoint directory?)");
  nlohmann::json j = nlohmann::json::parse(mf, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("step")) {
    return Status::InvalidInput(meta_path + ": not a moesim-real checkpoint");
  }
  CheckpointMeta meta;
  meta.step = j.value("step", int64_t{0});
  meta.schedule_steps = j.value("schedule_steps", int64_t{0});
  meta.world = j.value("world", 1);
  meta.expert_parallel = j.value("expert_parallel", 1);
  meta.seed = j.value("seed", uint64_t{0});
  meta.data.rng_state = j.value("data_rng_state", uint64_t{0});
  meta.data.sequences_drawn = j.value("data_sequences_drawn", int64_t{0});
  meta.notes = j.value("notes", "");
  if (meta.world != world || meta.expert_parallel != ep) {
    return Status::InvalidInput(dir + ": saved with " + std::to_string(meta.world) +
                                " ranks and expert parallelism " +
                                std::to_string(meta.expert_parallel) + ", resumed with " +
                                std::to_string(world) + " and " + std::to_string(ep));
  }
  const std::string path = RankFile(dir, rank);
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidInput(path + ": cannot open");
  Reader r(&in);
  char magic[8];
  uint32_t version = 0, scalar = 0;
  int64_t step = 0;
  uint64_t n_entries = 0;
  if (!r.Bytes(magic, 8) || std::memcmp(magic, kMagic, 8) != 0 || !r.Pod(&version) ||
      version != kVersion || !r.Pod(&step) || !r.Pod(&scalar) || !r.Pod(&n_entries)) {
    return Status::InvalidInput(path + ": not a moesim-real checkpoint (bad header)");
  }
  if (step != meta.step) {
    return Status::InvalidInput(path + ": holds step " + std::to_string(step) + ", meta.json " +
                                std::to_string(meta.step));
  }
  if (scalar != sizeof(T)) {
    return Status::InvalidInput(path + ": saved with " + std::to_string(scalar) +
                                "-byte scalars, this run uses " + std::to_string(sizeof(T)));
  }
  if (n_entries != params.entries().size()) {
    return Status::InvalidInput(path + ": " + std::to_string(n_entries) +
                                " parameter tensors, the model has " +
                                std::to_string(params.entries().size()));
  }
  for (const ParamEntry& e : params.entries()) {
    std::string name;
    int64_t count = 0, offset = 0;
    if (!r.Str(&name) || !r.Pod(&count) || !r.Pod(&offset)) {
      return Status::InvalidInput(path + ": truncated parameter table");
    }
    if (name != e.name || count != e.count || offset != e.offset) {
      return Status::InvalidInput(path + ": parameter " + name + " [" + std::to_string(count) +
                                  "] does not match the model's " + e.name + " [" +
                                  std::to_string(e.count) + "]");
    }
  }
  int64_t total = 0;
  if (!r.Pod(&total) || total != params.params().size()) {
    return Status::InvalidInput(path + ": parameter buffer size mismatch");
  }
  uint64_t sum = 0xCBF29CE484222325ULL;
  for (Tensor<T>* t : {&params.params(), &params.moment1(), &params.moment2()}) {
    std::vector<T> host(static_cast<size_t>(total));
    if (!r.Bytes(host.data(), host.size() * sizeof(T))) {
      return Status::InvalidInput(path + ": truncated data");
    }
    sum = Fnv1a(host.data(), host.size() * sizeof(T), sum);
    t->Upload(host);
  }
  uint64_t saved_sum = 0;
  if (!r.Pod(&saved_sum) || saved_sum != sum) {
    return Status::InvalidInput(path + ": checksum mismatch (corrupt checkpoint)");
  }
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
