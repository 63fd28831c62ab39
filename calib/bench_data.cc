#include "calib/bench_data.h"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>
#include <type_traits>

namespace moesim::calib {
namespace {

using json = nlohmann::json;

Status Bad(const std::string& where, const std::string& why) {
  return Status::InvalidInput(where + ": " + why);
}

Expected<double> Positive(const json& obj, const std::string& where, const char* key) {
  const std::string at = where + key;
  if (!obj.contains(key)) return Bad(at, "missing");
  const json& v = obj.at(key);
  if (!v.is_number()) return Bad(at, "must be a number, got " + v.dump());
  const double d = v.get<double>();
  if (!(d > 0)) return Bad(at, "must be a number > 0, got " + v.dump());
  return d;
}

Expected<int64_t> PositiveInt(const json& obj, const std::string& where, const char* key) {
  const std::string at = where + key;
  if (!obj.contains(key)) return Bad(at, "missing");
  const json& v = obj.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0) {
    return Bad(at, "must be an integer > 0, got " + v.dump());
  }
  return v.get<int64_t>();
}

Expected<std::string> String(const json& obj, const std::string& where, const char* key) {
  const std::string at = where + key;
  if (!obj.contains(key)) return Bad(at, "missing");
  if (!obj.at(key).is_string()) return Bad(at, "must be a string, got " + obj.at(key).dump());
  return obj.at(key).get<std::string>();
}

// The array `key` of the document; an absent section is an empty one (a bench may skip one).
Expected<const json*> Section(const json& root, const std::string& name, const char* key) {
  static const json kEmpty = json::array();
  if (!root.contains(key)) return &kEmpty;
  const json& a = root.at(key);
  if (!a.is_array()) return Bad(name + ": " + key, "must be an array");
  return &a;
}

#define CALIB_ASSIGN(lhs, expr)                   \
  do {                                            \
    auto calib_v_ = (expr);                       \
    if (!calib_v_.ok()) return calib_v_.status(); \
    lhs = *calib_v_;                              \
  } while (0)

}  // namespace

Expected<BenchData> ParseBenchJson(const std::string& text, const std::string& name) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e400
    return Bad(name, std::string("not valid JSON: ") + e.what());
  }
  if (!root.is_object()) return Bad(name, "the top level must be an object (moesim-real bench)");
  BenchData b;
  b.files.push_back(name);
  CALIB_ASSIGN(b.backend, String(root, name + ": ", "backend"));
  if (b.backend != "cpu" && b.backend != "cuda") {
    return Bad(name + ": backend", "must be \"cpu\" or \"cuda\", got \"" + b.backend + "\"");
  }
  if (root.contains("device") && root.at("device").is_string()) b.device = root.at("device");
  if (root.contains("ranks"))
    CALIB_ASSIGN(b.compute_ranks, PositiveInt(root, name + ": ", "ranks"));

  const json* sec = nullptr;
  CALIB_ASSIGN(sec, Section(root, name, "gemm"));
  for (size_t i = 0; i < sec->size(); ++i) {
    const std::string w = name + ": gemm[" + std::to_string(i) + "]";
    const json& o = (*sec)[i];
    if (!o.is_object()) return Bad(w, "must be an object");
    GemmPoint p;
    p.where = w;
    CALIB_ASSIGN(p.m, PositiveInt(o, w + ".", "m"));
    CALIB_ASSIGN(p.n, PositiveInt(o, w + ".", "n"));
    CALIB_ASSIGN(p.k, PositiveInt(o, w + ".", "k"));
    CALIB_ASSIGN(p.time_s, Positive(o, w + ".", "time_s"));
    b.gemm.push_back(p);
  }
  CALIB_ASSIGN(sec, Section(root, name, "memory"));
  for (size_t i = 0; i < sec->size(); ++i) {
    const std::string w = name + ": memory[" + std::to_string(i) + "]";
    const json& o = (*sec)[i];
    if (!o.is_object()) return Bad(w, "must be an object");
    MemoryPoint p;
    p.where = w;
    CALIB_ASSIGN(p.kernel, String(o, w + ".", "kernel"));
    CALIB_ASSIGN(p.elements, PositiveInt(o, w + ".", "elements"));
    CALIB_ASSIGN(p.bytes, Positive(o, w + ".", "bytes"));
    CALIB_ASSIGN(p.time_s, Positive(o, w + ".", "time_s"));
    b.memory.push_back(p);
  }
  CALIB_ASSIGN(sec, Section(root, name, "grouped_gemm"));
  for (size_t i = 0; i < sec->size(); ++i) {
    const std::string w = name + ": grouped_gemm[" + std::to_string(i) + "]";
    const json& o = (*sec)[i];
    if (!o.is_object()) return Bad(w, "must be an object");
    GroupedGemmPoint p;
    p.where = w;
    CALIB_ASSIGN(p.experts, PositiveInt(o, w + ".", "experts"));
    CALIB_ASSIGN(p.rows, PositiveInt(o, w + ".", "rows_per_expert"));
    CALIB_ASSIGN(p.d_model, PositiveInt(o, w + ".", "d_model"));
    CALIB_ASSIGN(p.hidden, PositiveInt(o, w + ".", "hidden"));
    CALIB_ASSIGN(p.time_s, Positive(o, w + ".", "time_s"));
    b.grouped_gemm.push_back(p);
  }
  CALIB_ASSIGN(sec, Section(root, name, "collectives"));
  for (size_t i = 0; i < sec->size(); ++i) {
    const std::string w = name + ": collectives[" + std::to_string(i) + "]";
    const json& o = (*sec)[i];
    if (!o.is_object()) return Bad(w, "must be an object");
    CollectivePoint p;
    p.where = w;
    CALIB_ASSIGN(p.op, String(o, w + ".", "op"));
    if (p.op != "all_reduce" && p.op != "all_to_all") {
      return Bad(w + ".op", "must be \"all_reduce\" or \"all_to_all\", got \"" + p.op + "\"");
    }
    CALIB_ASSIGN(p.bytes, Positive(o, w + ".", "bytes"));
    CALIB_ASSIGN(p.ranks, PositiveInt(o, w + ".", "ranks"));
    CALIB_ASSIGN(p.time_s, Positive(o, w + ".", "time_s"));
    b.collectives.push_back(p);
  }
  return b;
}

Expected<BenchData> ReadBenchJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidInput(path + ": cannot open bench file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseBenchJson(ss.str(), path);
}

Status MergeBench(BenchData more, BenchData* into) {
  if (into->files.empty()) {
    *into = std::move(more);
    return Status::Ok();
  }
  if (more.backend != into->backend) {
    return Status::InvalidInput(more.files.front() + ": backend \"" + more.backend +
                                "\" differs from " + into->files.front() + "'s \"" + into->backend +
                                "\" (one profile per chip)");
  }
  auto append = [](auto& dst, auto& src) {
    for (auto& x : src) dst.push_back(std::move(x));
  };
  auto drop = [](const BenchData& b, int64_t keep) {
    return b.files.front() + ": compute points of " + std::to_string(b.compute_ranks) +
           " ranks left out (those of " + std::to_string(keep) + " rank(s) are used)";
  };
  if (more.compute_ranks < into->compute_ranks) {
    into->notes.push_back(drop(*into, more.compute_ranks));
    into->gemm.clear();
    into->memory.clear();
    into->grouped_gemm.clear();
    into->compute_ranks = more.compute_ranks;
  }
  if (more.compute_ranks == into->compute_ranks) {
    append(into->gemm, more.gemm);
    append(into->memory, more.memory);
    append(into->grouped_gemm, more.grouped_gemm);
  } else {
    into->notes.push_back(drop(more, into->compute_ranks));
  }
  const std::string more_name = more.files.front();
  append(into->files, more.files);
  append(into->collectives, more.collectives);
  // The same point measured by several files: the fastest time stands, as interference from
  // other work on the machine only ever adds time.
  size_t merged = 0;
  auto keep_fastest = [&merged](auto& points, auto key) {
    std::map<decltype(key(points.front())), size_t> first;
    std::vector<std::decay_t<decltype(points.front())>> out;
    for (auto& p : points) {
      auto [it, fresh] = first.emplace(key(p), out.size());
      if (fresh) {
        out.push_back(std::move(p));
      } else {
        ++merged;
        if (p.time_s < out[it->second].time_s) out[it->second] = std::move(p);
      }
    }
    points = std::move(out);
  };
  if (!into->gemm.empty()) {
    keep_fastest(into->gemm, [](const GemmPoint& p) { return std::tuple(p.m, p.n, p.k); });
  }
  if (!into->memory.empty()) {
    keep_fastest(into->memory,
                 [](const MemoryPoint& p) { return std::pair(p.kernel, p.elements); });
  }
  if (!into->grouped_gemm.empty()) {
    keep_fastest(into->grouped_gemm, [](const GroupedGemmPoint& p) {
      return std::tuple(p.experts, p.rows, p.d_model, p.hidden);
    });
  }
  if (!into->collectives.empty()) {
    keep_fastest(into->collectives,
                 [](const CollectivePoint& p) { return std::tuple(p.op, p.bytes, p.ranks); });
  }
  if (merged > 0) {
    into->notes.push_back(std::to_string(merged) + " point(s) measured again in " + more_name +
                          ": the fastest time of each is used");
  }
  return Status::Ok();
}

}  // namespace moesim::calib
