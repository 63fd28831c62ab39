#include "real/train/data.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/system_memory.h"
#include "real/limits.h"
#include "real/train/memory_estimate.h"

namespace moesim::real {

Expected<DataSource> DataSource::Create(const std::string& path, uint64_t seed, int64_t vocab_size,
                                        int64_t seq_len) {
  if (seq_len < 1 || seq_len > kMaxDimension || vocab_size < 1 || vocab_size > kMaxDimension) {
    return Status::InvalidInput("data: model.seq_len=" + std::to_string(seq_len) +
                                " and model.vocab_size=" + std::to_string(vocab_size) +
                                " must be in [1, " + std::to_string(kMaxDimension) + "]");
  }
  DataSource d;
  d.path_ = path;
  d.vocab_ = vocab_size;
  d.seq_len_ = seq_len;
  d.rng_ = Rng(DeriveSeed(seed, "data"));
  if (!path.empty()) {
    if (vocab_size < 256) {
      return Status::InvalidInput("--data " + path + ": text is read as bytes, which needs " +
                                  "model.vocab_size >= 256 (got " + std::to_string(vocab_size) +
                                  ")");
    }
    // stat() first: a directory, FIFO or device is refused before it is opened (a FIFO would
    // block in open, a directory fails in read).
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
      return Status::InvalidInput("--data " + path + ": cannot open (" +
                                  (ec ? ec.message() : std::string("no such file")) + ")");
    }
    if (!fs::is_regular_file(st)) {
      return Status::InvalidInput("--data " + path + ": not a regular file" +
                                  (fs::is_directory(st) ? " (a directory)" : ""));
    }
    const uintmax_t size = fs::file_size(path, ec);
    if (ec) return Status::InvalidInput("--data " + path + ": " + ec.message());
    const double physical = PhysicalMemoryBytes();
    if (physical > 0 && static_cast<double>(size) > physical) {
      return Status::InvalidInput("--data " + path + ": " + std::to_string(size) +
                                  " bytes, more than the machine's " + FormatBytes(physical) +
                                  " of memory (the text is read into memory)");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return Status::InvalidInput("--data " + path + ": cannot open (" + std::strerror(errno) +
                                  ")");
    }
    d.text_.resize(static_cast<size_t>(size));
    in.read(reinterpret_cast<char*>(d.text_.data()), static_cast<std::streamsize>(size));
    if (in.gcount() != static_cast<std::streamsize>(size)) {
      return Status::InvalidInput("--data " + path + ": read " + std::to_string(in.gcount()) +
                                  " of " + std::to_string(size) + " bytes");
    }
    if (static_cast<int64_t>(d.text_.size()) < seq_len + 2) {
      return Status::InvalidInput("--data " + path + ": " + std::to_string(d.text_.size()) +
                                  " bytes, fewer than one sequence of " +
                                  std::to_string(seq_len + 1) + " tokens");
    }
    return d;
  }
  Rng table(DeriveSeed(seed, "synthetic-language"));
  d.successors_.resize(static_cast<size_t>(vocab_size * 4));
  for (int32_t& s : d.successors_) {
    s = static_cast<int32_t>(table.Below(static_cast<uint64_t>(vocab_size)));
  }
  return d;
}

void DataSource::Sequence(uint64_t draw, std::vector<int32_t>* out) const {
  out->resize(static_cast<size_t>(seq_len_ + 1));
  if (!text_.empty()) {
    const uint64_t span = text_.size() - static_cast<uint64_t>(seq_len_);
    const uint64_t start = draw % span;
    for (int64_t i = 0; i <= seq_len_; ++i)
      (*out)[static_cast<size_t>(i)] = text_[start + static_cast<uint64_t>(i)];
    return;
  }
  Rng rng(draw);
  const auto v = static_cast<uint64_t>(vocab_);
  int32_t tok = static_cast<int32_t>(rng.Below(v));
  for (int64_t i = 0; i <= seq_len_; ++i) {
    (*out)[static_cast<size_t>(i)] = tok;
    const double u = rng.Uniform();
    const int32_t* succ = successors_.data() + static_cast<int64_t>(tok) * 4;
    tok = u < 0.6    ? succ[0]
          : u < 0.8  ? succ[1]
          : u < 0.9  ? succ[2]
          : u < 0.95 ? succ[3]
                     : static_cast<int32_t>(rng.Below(v));
  }
}

void DataSource::NextBatch(int64_t global_seqs, int64_t first, int64_t count,
                           std::vector<int32_t>* tokens, std::vector<int32_t>* targets) {
  tokens->assign(static_cast<size_t>(count * seq_len_), 0);
  targets->assign(static_cast<size_t>(count * seq_len_), 0);
  std::vector<int32_t> seq;
  for (int64_t i = 0; i < global_seqs; ++i) {
    const uint64_t draw = rng_.Next();
    if (i < first || i >= first + count) continue;
    Sequence(draw, &seq);
    const auto base = static_cast<size_t>((i - first) * seq_len_);
    for (int64_t t = 0; t < seq_len_; ++t) {
      (*tokens)[base + static_cast<size_t>(t)] = seq[static_cast<size_t>(t)];
      (*targets)[base + static_cast<size_t>(t)] = seq[static_cast<size_t>(t + 1)];
    }
  }
  drawn_ += global_seqs;
}

std::string DataSource::Describe() const {
  if (!text_.empty()) return path_ + " (" + std::to_string(text_.size()) + " bytes as tokens)";
  return "synthetic (vocab " + std::to_string(vocab_) + ")";
}

}  // namespace moesim::real
