#include "proto/topology_file_reader.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "common/limits.h"
#include "proto/hardware_profiles.h"
#include "proto/topology_name.h"

namespace moesim {
namespace {

namespace gp = google::protobuf;

// First parse error as "FILE:LINE:COL: message".
class FirstError : public gp::io::ErrorCollector {
 public:
  explicit FirstError(std::string source) : source_(std::move(source)) {}
  void AddError(int line, gp::io::ColumnNumber column, const std::string& message) override {
    if (error_.empty()) {
      error_ = source_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " +
               message;
    }
  }
  void AddWarning(int, gp::io::ColumnNumber, const std::string&) override {}
  const std::string& error() const { return error_; }

 private:
  std::string source_;
  std::string error_;
};

}  // namespace

Expected<ParsedTopologyFile> ReadTopologyFile(const std::string& path) {
  const Status unreadable = Status::InvalidInput(std::string("topology \"") + path +
                                                 "\" is neither a known topology name (" +
                                                 TopologyNameForms() + ") nor a readable file");
  if (static_cast<int64_t>(path.size()) > limits::kMaxPathLength) return unreadable;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return unreadable;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > static_cast<uintmax_t>(limits::kMaxInputFileBytes)) {
    return Status::InvalidInput(path + ": " + std::to_string(size) + " bytes, past the limit of " +
                                std::to_string(limits::kMaxInputFileBytes) +
                                " for a topology file (docs/limits.md)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return unreadable;
  std::stringstream ss;
  ss << in.rdbuf();
  pb::TopologyFile file;
  gp::TextFormat::Parser parser;
  FirstError errors(path);
  parser.RecordErrorsTo(&errors);
  auto tree = std::make_unique<gp::TextFormat::ParseInfoTree>();
  parser.WriteLocationsTo(tree.get());
  if (!parser.ParseFromString(ss.str(), &file)) {
    return Status::InvalidInput(errors.error().empty() ? path + ": cannot parse" : errors.error());
  }
  ParsedTopologyFile parsed{std::move(file),
                            FieldLocator(path, pb::TopologyFile::descriptor(), std::move(tree))};
  MOESIM_RETURN_IF_ERROR(CheckEnumValues(parsed.file, parsed.where));
  return parsed;
}

Expected<int64_t> TopologyFileDevices(const ParsedTopologyFile& parsed) {
  const pb::TopologyFile& f = parsed.file;
  if (!f.base().empty()) {
    auto name = ParseTopologyName(f.base());
    if (!name.ok()) return name.status().WithPrefix(parsed.where.Where("base") + ": ");
    return name->num_devices();
  }
  if (f.num_devices() <= 0 || f.num_devices() > limits::kMaxDevices) {
    return Status::InvalidInput(
        parsed.where.Where("num_devices") + ": num_devices=" + std::to_string(f.num_devices()) +
        " must be in [1, " + std::to_string(limits::kMaxDevices) + "] (or give base)");
  }
  return f.num_devices();
}

Expected<std::string> TopologyFileChip(const ParsedTopologyFile& parsed) {
  const pb::TopologyFile& f = parsed.file;
  std::string chip = f.chip();
  std::string field = "chip";
  if (chip.empty() && !f.base().empty()) {
    auto name = ParseTopologyName(f.base());
    if (!name.ok()) return name.status().WithPrefix(parsed.where.Where("base") + ": ");
    chip = name->chip;
    field = "base";
  }
  if (chip.empty()) {
    return Status::InvalidInput(parsed.where.source() + ": chip is missing");
  }
  auto profile = BuiltinHardwareProfile(chip);
  if (!profile.ok()) {
    return profile.status().WithPrefix(parsed.where.Where(field) + ": " + field + ": ");
  }
  return chip;
}

}  // namespace moesim
