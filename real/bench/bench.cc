#include "real/bench/bench.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "real/limits.h"

namespace moesim::real {
namespace {

using json = nlohmann::json;

// Median seconds of `repeats` runs of `op` on the device clock (after one warm-up run).
// `before` (optional) runs ahead of each timed repeat, untimed.
Expected<double> TimeOp(Device<float>* dev, int repeats, const std::function<Status()>& op,
                        const std::function<Status()>& before = {}) {
  MOESIM_RETURN_IF_ERROR(op());
  MOESIM_RETURN_IF_ERROR(dev->Synchronize());
  int64_t slot = 0;
  for (int r = 0; r < repeats; ++r) {
    if (before) MOESIM_RETURN_IF_ERROR(before());
    dev->RecordTimestamp(slot++);
    MOESIM_RETURN_IF_ERROR(op());
    dev->RecordTimestamp(slot++);
  }
  Expected<std::vector<double>> t = dev->ReadTimestamps(slot);
  if (!t.ok()) return t.status();
  std::vector<double> d;
  for (int r = 0; r < repeats; ++r) {
    d.push_back((*t)[static_cast<size_t>(2 * r + 1)] - (*t)[static_cast<size_t>(2 * r)]);
  }
  std::sort(d.begin(), d.end());
  return d[d.size() / 2];
}

Expected<Tensor<float>> Buffer(Device<float>* dev, const std::string& name, int64_t n, float v) {
  Expected<Tensor<float>> t = Tensor<float>::Make(dev, name, n);
  if (t.ok()) dev->Fill(t->data(), n, v);
  return t;
}

std::string Now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

Status Gemms(const BenchOptions& o, Device<float>* dev, json* out) {
  std::vector<int64_t> sizes;
  if (o.quick) {
    sizes = {32, 64, 128};
  } else if (dev->IsGpu()) {
    sizes = {256, 512, 1024, 2048, 4096, 8192};
  } else {
    sizes = {64, 128, 256, 512, 1024};
  }
  const int64_t mx = sizes.back();
  Expected<Tensor<float>> a = Buffer(dev, "bench.a", mx * mx, 0.01f);
  Expected<Tensor<float>> b = Buffer(dev, "bench.b", mx * mx, 0.01f);
  Expected<Tensor<float>> c = Buffer(dev, "bench.c", mx * mx, 0.0f);
  if (!a.ok()) return a.status();
  if (!b.ok()) return b.status();
  if (!c.ok()) return c.status();
  for (int64_t m : sizes) {
    for (int64_t n : sizes) {
      for (int64_t k : sizes) {
        Expected<double> t = TimeOp(dev, o.repeats, [&] {
          dev->Gemm(false, false, m, n, k, 1.0f, a->data(), k, b->data(), n, 0.0f, c->data(), n);
          return Status::Ok();
        });
        if (!t.ok()) return t.status();
        const double flops = 2.0 * static_cast<double>(m * n * k);
        out->push_back({{"m", m},
                        {"n", n},
                        {"k", k},
                        {"flops", flops},
                        {"time_s", *t},
                        {"flops_per_s", flops / *t}});
      }
    }
  }
  return Status::Ok();
}

Status Memory(const BenchOptions& o, Device<float>* dev, json* out) {
  std::vector<int64_t> sizes;
  const int64_t top = o.quick ? (1 << 16) : dev->IsGpu() ? (1 << 28) : (1 << 24);
  for (int64_t n = 1 << 12; n <= top; n *= 4) sizes.push_back(n);
  const int64_t mx = sizes.back();
  Expected<Tensor<float>> x = Buffer(dev, "bench.x", mx, 0.5f);
  Expected<Tensor<float>> y = Buffer(dev, "bench.y", mx, 0.25f);
  Expected<Tensor<float>> z = Buffer(dev, "bench.z", mx, 0.0f);
  Expected<Tensor<float>> r = Buffer(dev, "bench.rstd", mx / 256, 0.0f);
  Expected<Tensor<float>> v = Buffer(dev, "bench.v", mx, 0.0f);
  if (!v.ok()) return v.status();
  if (!x.ok()) return x.status();
  if (!y.ok()) return y.status();
  if (!z.ok()) return z.status();
  if (!r.ok()) return r.status();
  struct Kernel {
    const char* name;
    double bytes_per_element;  // read + written
    std::function<void(int64_t)> run;
  };
  const int64_t cols = 256;  // rows of 256 for the row-wise ops
  std::vector<Kernel> kernels = {
      {"copy", 8, [&](int64_t n) { dev->CopyBytes(x->data(), z->data(), n * 4); }},
      {"axpy", 12, [&](int64_t n) { dev->Axpy(x->data(), z->data(), n, 0.5f); }},
      {"swiglu", 12, [&](int64_t n) { dev->SwiGluForward(x->data(), y->data(), z->data(), n); }},
      {"rmsnorm", 8,
       [&](int64_t n) {
         dev->RmsNormForward(x->data(), y->data(), z->data(), r->data(), n / cols, cols, 1e-5);
       }},
      {"softmax", 8, [&](int64_t n) { dev->Softmax(z->data(), n / cols, cols, false); }},
      // Reads weights, gradient and both moments, writes weights and moments (the simulator's
      // optimizer.step counts the same 28 bytes per fp32 parameter).
      {"adamw", 28,
       [&](int64_t n) {
         dev->AdamW(y->data(), x->data(), z->data(), v->data(), n, 1e-4, 0.9, 0.95, 1e-8, 0.1, 0.5,
                    0.5, 1.0);
       }},
  };
  for (const Kernel& kern : kernels) {
    for (int64_t n : sizes) {
      Expected<double> t = TimeOp(dev, o.repeats, [&] {
        kern.run(n);
        return Status::Ok();
      });
      if (!t.ok()) return t.status();
      const double bytes = kern.bytes_per_element * static_cast<double>(n);
      out->push_back({{"kernel", kern.name},
                      {"elements", n},
                      {"bytes", bytes},
                      {"time_s", *t},
                      {"bytes_per_s", bytes / *t}});
    }
  }
  return Status::Ok();
}

Status GroupedGemms(const BenchOptions& o, Device<float>* dev, json* out) {
  struct Shape {
    int64_t experts, rows, d_model, hidden;
  };
  std::vector<Shape> shapes;
  const std::vector<int64_t> experts =
      o.quick ? std::vector<int64_t>{4} : std::vector<int64_t>{8, 32};
  const std::vector<int64_t> rows =
      o.quick ? std::vector<int64_t>{16, 64} : std::vector<int64_t>{32, 128, 512, 2048};
  // (d_model, hidden) pairs; on a CPU also a half-size pair whose weights stay in cache, as the
  // small models a CPU trains keep them.
  std::vector<std::pair<int64_t, int64_t>> dims;
  if (o.quick) {
    dims = {{64, 128}};
  } else if (dev->IsGpu()) {
    dims = {{2048, 4096}};
  } else {
    dims = {{256, 512}, {128, 256}};
  }
  for (const auto& [m, f] : dims) {
    for (int64_t e : experts) {
      for (int64_t r : rows) shapes.push_back({e, r, m, f});
    }
  }
  int64_t max_in = 0, max_w = 0;
  for (const Shape& s : shapes) {
    max_in = std::max(max_in, s.experts * s.rows * std::max(s.d_model, s.hidden));
    max_w = std::max(max_w, s.experts * s.d_model * s.hidden);
  }
  Expected<Tensor<float>> x = Buffer(dev, "bench.expert_in", max_in, 0.01f);
  Expected<Tensor<float>> w = Buffer(dev, "bench.expert_w", max_w, 0.01f);
  Expected<Tensor<float>> h = Buffer(dev, "bench.expert_h", max_in, 0.0f);
  if (!x.ok()) return x.status();
  if (!w.ok()) return w.status();
  if (!h.ok()) return h.status();
  for (const Shape& s : shapes) {
    Expected<double> t = TimeOp(dev, o.repeats, [&] {
      for (int64_t e = 0; e < s.experts; ++e) {
        dev->Gemm(false, false, s.rows, s.hidden, s.d_model, 1.0f,
                  x->data() + e * s.rows * s.d_model, s.d_model,
                  w->data() + e * s.d_model * s.hidden, s.hidden, 0.0f,
                  h->data() + e * s.rows * s.hidden, s.hidden);
      }
      return Status::Ok();
    });
    if (!t.ok()) return t.status();
    const double flops = 2.0 * static_cast<double>(s.experts * s.rows * s.d_model * s.hidden);
    out->push_back({{"experts", s.experts},
                    {"rows_per_expert", s.rows},
                    {"d_model", s.d_model},
                    {"hidden", s.hidden},
                    {"flops", flops},
                    {"time_s", *t},
                    {"flops_per_s", flops / *t}});
  }
  return Status::Ok();
}

Status Collectives(const BenchOptions& o, Device<float>* dev, Comm* comm, json* out) {
  const int n = comm->size();
  const int64_t top = o.quick ? (1 << 16) : dev->IsGpu() ? (1 << 28) : (1 << 24);
  const int64_t max_elems = top / 4;
  Expected<Tensor<float>> send = Buffer(dev, "bench.send", max_elems, 1.0f);
  Expected<Tensor<float>> recv = Buffer(dev, "bench.recv", max_elems, 0.0f);
  if (!send.ok()) return send.status();
  if (!recv.ok()) return recv.status();
  // On a CPU, training runs compute between two collectives, which evicts their buffers from
  // the caches; back-to-back repeats would keep them there (3-15x faster than the same
  // all-to-all in training). Each repeat therefore first streams through a buffer larger than
  // the caches, then waits for every rank. Not when the ranks outnumber the host's cores: there
  // a barrier before each repeat times the scheduler's quantum, not the transfer, so those
  // runs keep back-to-back repeats, and so does --quick (its few small messages, 1-64 KiB,
  // would time the barrier's exit skew rather than the transfer).
  const auto cores = static_cast<int>(std::thread::hardware_concurrency());
  const bool own_cores = cores == 0 || n <= cores;
  const int64_t flush_elems = dev->IsGpu() || !own_cores || o.quick ? 0 : (64 << 20) / 4;
  Expected<Tensor<float>> flush = Buffer(dev, "bench.flush", std::max<int64_t>(flush_elems, 1), 0);
  if (!flush.ok()) return flush.status();
  float scale = 1.0f;
  std::function<Status()> cold;
  if (flush_elems > 0) {
    cold = [&]() -> Status {
      scale = -scale;
      dev->Fill(flush->data(), flush_elems, scale);
      return comm->Barrier();
    };
  }
  for (const char* op : {"all_reduce", "all_to_all"}) {
    for (int64_t bytes = 1024; bytes <= top; bytes *= 4) {
      const int64_t elems = bytes / 4 / n * n;  // all-to-all: equal chunks
      if (elems == 0) continue;
      const std::vector<int64_t> counts(static_cast<size_t>(n), elems / n);
      MOESIM_RETURN_IF_ERROR(comm->Barrier());
      Expected<double> t = TimeOp(
          dev, o.repeats,
          [&] {
            if (op[4] == 'r') return comm->AllReduceSum(send->data(), elems, Group::kWorld);
            return comm->AllToAllV(send->data(), counts, recv->data(), counts, Group::kWorld);
          },
          cold);
      if (!t.ok()) return t.status();
      // The slowest rank's time.
      std::vector<double> times(static_cast<size_t>(n), 0.0);
      times[static_cast<size_t>(comm->rank())] = *t;
      MOESIM_RETURN_IF_ERROR(comm->AllReduceHost(times.data(), n, Group::kWorld));
      const double slowest = *std::max_element(times.begin(), times.end());
      const double b = static_cast<double>(elems * 4);
      const double algbw = b / slowest;
      const double factor = n == 1         ? 1.0
                            : op[4] == 'r' ? 2.0 * (n - 1) / n
                                           : static_cast<double>(n - 1) / n;
      out->push_back({{"op", op},
                      {"bytes", b},
                      {"ranks", n},
                      {"caches", cold ? "cold" : "warm"},
                      {"time_s", slowest},
                      {"algbw_bytes_per_s", algbw},
                      {"busbw_bytes_per_s", algbw * factor}});
    }
  }
  return Status::Ok();
}

}  // namespace

Status RunBench(const BenchOptions& o, Device<float>* dev, Comm* comm,
                const std::string& json_path) {
  if (o.repeats < 1 || o.repeats > kMaxBenchRepeats) {
    return Status::InvalidInput("--repeats " + std::to_string(o.repeats) + ": must be in [1, " +
                                std::to_string(kMaxBenchRepeats) + "]");
  }
  json gemm = json::array(), memory = json::array(), grouped = json::array(), coll = json::array();
  MOESIM_RETURN_IF_ERROR(Gemms(o, dev, &gemm));
  MOESIM_RETURN_IF_ERROR(Memory(o, dev, &memory));
  MOESIM_RETURN_IF_ERROR(GroupedGemms(o, dev, &grouped));
  MOESIM_RETURN_IF_ERROR(Collectives(o, dev, comm, &coll));
  if (comm->rank() != 0) return Status::Ok();
  json root = {{"tool", "moesim-real bench"},
               {"backend", dev->IsGpu() ? "cuda" : "cpu"},
               {"device", dev->Name()},
               {"comm", comm->Name()},
               {"ranks", comm->size()},
               {"date", Now()},
               {"repeats", o.repeats},
               {"statistic", "median"},
               {"gemm", gemm},
               {"memory", memory},
               {"grouped_gemm", grouped},
               {"collectives", coll}};
  const std::string text = root.dump(2) + "\n";
  if (json_path == "-") {
    std::cout << text;
    return std::cout ? Status::Ok() : Status::Internal("cannot write to stdout");
  }
  std::ofstream out(json_path, std::ios::binary);
  if (!out) return Status::InvalidInput(json_path + ": cannot open for writing");
  out << text;
  out.close();
  return out ? Status::Ok() : Status::InvalidInput(json_path + ": write failed");
}

}  // namespace moesim::real
