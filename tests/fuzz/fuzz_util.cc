#include "tests/fuzz/fuzz_util.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace moesim::fuzz {
namespace {

namespace fs = std::filesystem;

// Removes the directory when the process exits normally (libFuzzer's -runs / -max_total_time).
struct TempDirHolder {
  std::string path;
  TempDirHolder() {
    std::string templ =
        (fs::temp_directory_path() / ("moesim-fuzz-" + std::to_string(getpid()) + "-XXXXXX"))
            .string();
    if (mkdtemp(templ.data()) == nullptr) std::abort();  // nowhere to put inputs: not a finding
    path = templ;
  }
  ~TempDirHolder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

std::string AsString(const uint8_t* data, size_t size) {
  return size == 0 ? std::string() : std::string(reinterpret_cast<const char*>(data), size);
}

const std::string& TempDir() {
  static TempDirHolder holder;
  return holder.path;
}

std::string WriteTempFile(const std::string& name, std::string_view bytes) {
  const std::string path = (fs::path(TempDir()) / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) std::abort();  // a full disk is not a finding of the code under test
  return path;
}

std::vector<std::string> SetLines(const std::string& text, size_t max) {
  static constexpr std::string_view kPrefix = "#set ";
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size() && out.size() < max) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    if (line.substr(0, kPrefix.size()) == kPrefix) out.emplace_back(line.substr(kPrefix.size()));
    pos = end + 1;
  }
  return out;
}

std::pair<std::string, std::string> SplitAt(const std::string& text, std::string_view marker,
                                            bool* found) {
  const size_t at = text.find(marker);
  *found = at != std::string::npos;
  if (!*found) return {text, ""};
  return {text.substr(0, at), text.substr(at + marker.size())};
}

}  // namespace moesim::fuzz
