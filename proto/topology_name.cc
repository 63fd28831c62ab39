#include "proto/topology_name.h"

#include <charconv>
#include <set>

#include "common/checked_math.h"
#include "common/limits.h"

namespace moesim {
namespace {

struct Family {
  const char* name;
  int num_dims;  // 0 = any number (torus); GPU families and fattree take one number
  const char* chip;
  int64_t gpus_per_node;  // GPU families; 0 otherwise
};

const Family kFamilies[] = {
    {"tpu-v4", 3, "tpu-v4", 0},    {"tpu-v5p", 3, "tpu-v5p", 0},    {"tpu-v5e", 2, "tpu-v5e", 0},
    {"tpu-v6e", 2, "tpu-v6e", 0},  {"dgx-a100", 1, "a100-sxm", 8},  {"dgx-h100", 1, "h100-sxm", 8},
    {"dgx-b200", 1, "b200", 8},    {"gb200-nvl72", 1, "gb200", 72}, {"torus", 0, "tpu-v4", 0},
    {"fattree", 1, "h100-sxm", 0}, {"cpu-host", 1, "cpu", 0},
};

const Family* FindFamily(const std::string& name) {
  for (const auto& f : kFamilies) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

Status Bad(const std::string& text, const std::string& why) {
  return Status::InvalidInput("topology \"" + text + "\": " + why);
}

// Parses a positive decimal integer that is the whole of `s`.
bool ParsePositive(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end && *out > 0;
}

}  // namespace

const char* TopologyNameForms() {
  return "tpu-v4:AxBxC, tpu-v5p:AxBxC, tpu-v5e:AxB, tpu-v6e:AxB (append *N for N slices over "
         "DCN), dgx-a100:N, dgx-h100:N, dgx-b200:N, gb200-nvl72:N, torus:AxB..., fattree:N, "
         "cpu-host:N, or a path to a .textproto file";
}

bool TopologyName::is_gpu_cluster() const {
  const Family* f = FindFamily(family);
  return f != nullptr && f->gpus_per_node > 0;
}

int64_t TopologyName::devices_per_slice() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  const Family* f = FindFamily(family);
  if (f != nullptr && f->gpus_per_node > 0) n *= f->gpus_per_node;
  return n;
}

Status CheckDeviceCount(const TopologyName& name) {
  const Family* f = FindFamily(name.family);
  int64_t devices = std::max<int64_t>(f != nullptr ? f->gpus_per_node : 1, 1);
  std::vector<int64_t> factors = name.dims;
  factors.push_back(name.slices);
  for (int64_t d : factors) {
    const auto next = CheckedMul(devices, d);
    devices = next && *next <= limits::kMaxDevices ? *next : limits::kMaxDevices + 1;
  }
  if (devices > limits::kMaxDevices) {
    return Bad(name.text, "more devices than the limit of " + std::to_string(limits::kMaxDevices) +
                              " (docs/limits.md)");
  }
  return Status::Ok();
}

Expected<TopologyName> ParseTopologyName(const std::string& text) {
  TopologyName t;
  t.text = text;
  const size_t colon = text.find(':');
  if (colon == std::string::npos) {
    return Bad(text, std::string("not a known topology (") + TopologyNameForms() + ")");
  }
  t.family = text.substr(0, colon);
  const Family* family = FindFamily(t.family);
  if (family == nullptr) {
    return Bad(text, "unknown family \"" + t.family + "\" (" + TopologyNameForms() + ")");
  }
  t.chip = family->chip;

  std::string rest = text.substr(colon + 1);
  // Options after the first comma.
  const size_t comma = rest.find(',');
  if (comma != std::string::npos) {
    std::string opts = rest.substr(comma + 1);
    rest = rest.substr(0, comma);
    size_t start = 0;
    while (start <= opts.size()) {
      size_t end = opts.find(',', start);
      if (end == std::string::npos) end = opts.size();
      const std::string kv = opts.substr(start, end - start);
      const size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == kv.size()) {
        return Bad(text, "option \"" + kv + "\" is not KEY=VALUE");
      }
      const std::string key = kv.substr(0, eq);
      if (t.options.count(key) != 0) return Bad(text, "option \"" + key + "\" given twice");
      t.options[key] = kv.substr(eq + 1);
      start = end + 1;
    }
  }
  if (auto it = t.options.find("chip"); it != t.options.end()) t.chip = it->second;

  // Slices.
  const size_t star = rest.find('*');
  if (star != std::string::npos) {
    if (!t.is_tpu()) return Bad(text, "only TPU families have slices (*N)");
    if (!ParsePositive(rest.substr(star + 1), &t.slices)) {
      return Bad(text, "slice count \"" + rest.substr(star + 1) + "\" is not a positive integer");
    }
    rest = rest.substr(0, star);
  }

  // Dimensions separated by 'x'.
  size_t start = 0;
  while (true) {
    size_t end = rest.find('x', start);
    if (end == std::string::npos) end = rest.size();
    int64_t d = 0;
    const std::string part = rest.substr(start, end - start);
    if (!ParsePositive(part, &d)) {
      return Bad(text, "size \"" + part + "\" is not a positive integer");
    }
    t.dims.push_back(d);
    if (end == rest.size()) break;
    start = end + 1;
  }
  if (family->num_dims > 0 && static_cast<int>(t.dims.size()) != family->num_dims) {
    return Bad(text, t.family + " takes " + std::to_string(family->num_dims) +
                         (family->num_dims == 1 ? " number" : " dimensions") + ", got " +
                         std::to_string(t.dims.size()));
  }
  MOESIM_RETURN_IF_ERROR(CheckDeviceCount(t));
  return t;
}

}  // namespace moesim
