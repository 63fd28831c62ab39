#include "sim/planner/planner.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>

#include "common/limits.h"
#include "common/system_memory.h"
#include "sim/planner/point_share.h"

#include "proto/scenario_loader.h"

namespace moesim {

std::string TopologyCache::Key(const Scenario& sc) {
  const HardwareProfile& h = sc.hardware;
  return sc.cluster.topology + "|" + h.chip + "|" + std::to_string(h.link_bytes_per_s) + "|" +
         std::to_string(h.link_latency_s) + "|" + std::to_string(h.scaleout_bytes_per_s) + "|" +
         std::to_string(h.scaleout_latency_s) + "|" + std::to_string(h.devices_per_host);
}

Expected<std::shared_ptr<const AnalyticalNetwork>> TopologyCache::Network(const Scenario& sc) {
  auto topo = Get(sc);
  if (!topo.ok()) return topo.status();
  const Mesh& m = sc.sharding.mesh;
  const std::string key =
      Key(sc) + "|" + std::to_string(sc.hardware.link_efficiency) + "|" + m.Key();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = networks_.find(key);
    if (it != networks_.end()) return it->second;
  }
  auto placement = PlaceScenarioMesh(**topo, m);
  if (!placement.ok()) return placement.status();
  auto net = std::make_shared<const AnalyticalNetwork>(*topo, std::move(*placement),
                                                       sc.hardware.link_efficiency, m);
  std::lock_guard<std::mutex> lock(mu_);
  return networks_.emplace(key, net).first->second;
}

Expected<std::shared_ptr<const Topology>> TopologyCache::Get(const Scenario& sc) {
  const std::string key = Key(sc);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = graphs_.find(key);
    if (it != graphs_.end()) return it->second;
  }
  auto built = BuildTopology(sc.cluster.topology, sc.hardware);
  if (!built.ok()) return built.status();
  std::lock_guard<std::mutex> lock(mu_);
  return graphs_.emplace(key, *built).first->second;
}

namespace {

using PointLoader = std::function<Expected<Scenario>(const std::vector<std::string>& overrides)>;

// Runs `worker` on `count` threads, this one included; a thread the system cannot start leaves
// its work to the ones that did (each worker takes work until none is left).
void RunOnThreads(size_t count, const std::function<void()>& worker) {
  std::vector<std::thread> threads;
  for (size_t j = 1; j < count; ++j) {
    try {
      threads.emplace_back(worker);
    } catch (const std::system_error&) {
      break;
    }
  }
  worker();
  for (auto& t : threads) t.join();
}

// Evaluates points[i] into results[i] for each index i that next() hands out (nullopt: none
// left), at most `count` of them, with up to options.jobs threads, each loaded by load(i);
// done(k) after the k-th finishes (serialized).
void EvaluatePoints(const std::function<Expected<Scenario>(size_t)>& load,
                    const std::vector<std::vector<std::string>>& points, const NextPoint& next,
                    size_t count, const RunOptions& options,
                    const std::function<void(size_t)>& finished,
                    std::vector<PointResult>* results) {
  TopologyCache cache;
  std::mutex progress_mu;
  size_t done = 0;
  // Never more threads than points (or limits::kMaxJobs); a thread the system cannot start
  // leaves its work to the ones that did (every worker takes points until none is left).
  const size_t jobs = std::min({static_cast<size_t>(std::max(1, options.jobs)),
                                std::max<size_t>(count, 1), static_cast<size_t>(limits::kMaxJobs)});
  // Points run `jobs` at a time: each may use its share of the memory budget.
  const double budget =
      options.max_memory_bytes > 0 ? options.max_memory_bytes : PhysicalMemoryBytes();
  const double per_point_memory = budget / static_cast<double>(jobs);
  auto report_done = [&]() {
    if (!finished) return;
    std::lock_guard<std::mutex> lock(progress_mu);
    finished(++done);
  };
  auto worker = [&]() {
    for (std::optional<size_t> at = next(); at; at = next()) {
      const size_t i = *at;
      PointResult& r = (*results)[i];
      r.overrides = points[i];
      if (options.cancel != nullptr && options.cancel->load()) {
        r.outcome = PointResult::Outcome::kInvalid;
        r.message = "cancelled";
        r.cancelled = true;
        report_done();
        continue;
      }
      auto sc = load(i);
      if (!sc.ok()) {
        r.outcome = PointResult::Outcome::kInvalid;
        r.message = sc.status().message();
      } else {
        r.scenario = *sc;
        const MemoryReport mem = ComputeMemory(*sc);
        if (!mem.fits) r.outcome = PointResult::Outcome::kDoesNotFit;
        if (mem.fits || options.simulate_unfit) {
          auto topo = cache.Get(*sc);
          SimulateOptions opts;
          opts.network = options.network;
          opts.max_memory_bytes = per_point_memory;
          opts.memory = &mem;
          opts.breakdown = options.breakdown;
          if (topo.ok()) opts.topology = *topo;
          if (topo.ok() && options.network == NetworkLevel::kAnalytical) {
            auto net = cache.Network(*sc);
            if (net.ok()) opts.analytical = *net;
          }
          auto rep = topo.ok() ? SimulateScenario(*sc, opts) : Expected<SimReport>(topo.status());
          if (rep.ok()) {
            r.report = std::move(*rep);
          } else {
            r.outcome = PointResult::Outcome::kInvalid;
            r.message = rep.status().message();
          }
        } else {
          r.report.memory = mem;
        }
      }
      if (!options.keep_details) {
        r.scenario = Scenario{};
        r.report.memory.tensors = {};
        r.report.memory.stage_peak_bytes = {};
        r.report.axes = {};
        r.report.breakdown.compute_by_class = {};
        r.report.breakdown.exposed_by_collective = {};
      }
      report_done();
    }
  };
  RunOnThreads(jobs, worker);
}

// Runs `fn(i)` for i in [0, n) on up to `jobs` threads.
void ParallelFor(size_t n, int jobs, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  RunOnThreads(std::min({static_cast<size_t>(std::max(1, jobs)), std::max<size_t>(n, 1),
                         static_cast<size_t>(limits::kMaxJobs)}),
               [&]() {
                 for (size_t i = next++; i < n; i = next++) fn(i);
               });
}

// Under a PointDistributor: every process evaluates the points it draws
// (PointDistributor::Run) and gets every result back; every result then gets its point's
// overrides and, with keep_details, its loaded scenario: every process then loads every point
// once, beforehand (on its threads), and evaluates the ones it draws from those. Without
// keep_details a process loads only the points it draws, as it evaluates them.
std::vector<PointResult> RunDistributed(const PointLoader& load,
                                        const std::vector<std::vector<std::string>>& points,
                                        const RunOptions& options) {
  std::vector<std::optional<Expected<Scenario>>> loaded(points.size());
  if (options.keep_details) {
    ParallelFor(points.size(), options.jobs, [&](size_t i) { loaded[i].emplace(load(points[i])); });
  }
  auto evaluate = [&](const NextPoint& next, const std::function<void(size_t)>& done) {
    std::vector<PointResult> results(points.size());
    EvaluatePoints([&](size_t i) { return loaded[i] ? *loaded[i] : load(points[i]); }, points, next,
                   points.size(), options, done, &results);
    return results;
  };
  std::vector<PointResult> results =
      options.distributor->Run(points.size(), evaluate, options.progress);
  ParallelFor(points.size(), options.jobs, [&](size_t i) {
    results[i].overrides = points[i];
    if (loaded[i] && loaded[i]->ok()) results[i].scenario = std::move(**loaded[i]);
  });
  return results;
}

std::vector<PointResult> RunLoadedPoints(const PointLoader& load,
                                         const std::vector<std::vector<std::string>>& points,
                                         const RunOptions& options) {
  if (options.distributor != nullptr) return RunDistributed(load, points, options);
  std::vector<PointResult> results(points.size());
  std::atomic<size_t> next{0};
  auto in_order = [&]() -> std::optional<size_t> {
    const size_t i = next++;
    return i < points.size() ? std::optional<size_t>(i) : std::nullopt;
  };
  std::function<void(size_t)> finished;
  if (options.progress) finished = [&](size_t done) { options.progress(done, points.size()); };
  EvaluatePoints([&](size_t i) { return load(points[i]); }, points, in_order, points.size(),
                 options, finished, &results);
  return results;
}

}  // namespace

std::vector<PointResult> RunPoints(const std::string& scenario_path,
                                   const std::vector<std::vector<std::string>>& points,
                                   const RunOptions& options) {
  return RunLoadedPoints(
      [&](const std::vector<std::string>& o) {
        return LoadScenario({scenario_path, o});
      },
      points, options);
}

std::vector<PointResult> RunPoints(const ScenarioText& base,
                                   const std::vector<std::vector<std::string>>& points,
                                   const RunOptions& options) {
  return RunLoadedPoints(
      [&](const std::vector<std::string>& o) {
        return LoadScenarioFromText(base.text, base.source_name, o, base.base_dir);
      },
      points, options);
}

Expected<ScenarioText> ReadScenarioText(const std::string& path) {
  if (path.empty()) return ScenarioText{DefaultScenarioText(), "<default>", "."};
  // Mirrors LoadScenario, so that messages and relative paths come out the same.
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidInput(path + ": cannot open scenario file");
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return ScenarioText{buf.str(), path, dir.empty() ? "." : dir};
}

Expected<std::vector<std::vector<std::string>>> GridPoints(
    const std::vector<std::string>& base, const std::vector<std::string>& vary_specs) {
  std::vector<std::vector<std::string>> points = {base};
  for (const std::string& spec : vary_specs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      return Status::InvalidInput("--vary \"" + spec + "\": expected PATH=V1,V2,...");
    }
    const std::string path = spec.substr(0, eq);
    std::vector<std::string> values;
    size_t start = eq + 1;
    while (start <= spec.size()) {
      size_t end = spec.find(',', start);
      if (end == std::string::npos) end = spec.size();
      const std::string v = spec.substr(start, end - start);
      if (v.empty()) return Status::InvalidInput("--vary \"" + spec + "\": empty value");
      if (Status st = CheckOverride(path + "=" + v); !st.ok()) {
        return st.WithPrefix("--vary \"" + spec + "\": ");
      }
      values.push_back(v);
      start = end + 1;
    }
    std::vector<std::vector<std::string>> next;
    for (const auto& p : points) {
      for (const auto& v : values) {
        auto q = p;
        q.push_back(path + "=" + v);
        next.push_back(std::move(q));
      }
    }
    points = std::move(next);
  }
  return points;
}

std::vector<std::array<int64_t, 4>> MeshFactorizations(int64_t devices, int64_t num_experts,
                                                       int64_t num_layers, int64_t max_pipeline) {
  std::vector<std::array<int64_t, 4>> out;
  auto divisors = [](int64_t n) {
    std::vector<int64_t> d;
    for (int64_t i = 1; i <= n; ++i) {
      if (n % i == 0) d.push_back(i);
    }
    return d;
  };
  for (int64_t p : divisors(devices)) {
    if (p > max_pipeline || num_layers % p != 0) continue;
    for (int64_t e : divisors(devices / p)) {
      if ((num_experts == 0 && e > 1) || (num_experts > 0 && num_experts % e != 0)) continue;
      for (int64_t m : divisors(devices / p / e)) {
        out.push_back({devices / p / e / m, e, m, p});
      }
    }
  }
  return out;
}

const char* OutcomeName(PointResult::Outcome o) {
  switch (o) {
    case PointResult::Outcome::kOk:
      return "ok";
    case PointResult::Outcome::kInvalid:
      return "invalid";
    case PointResult::Outcome::kDoesNotFit:
      return "does_not_fit";
  }
  return "?";
}

std::vector<std::string> MeshOverrides(const std::string& strategy,
                                       const std::array<int64_t, 4>& mesh) {
  return {"sharding.strategy=" + strategy, "sharding.mesh.data=" + std::to_string(mesh[0]),
          "sharding.mesh.expert=" + std::to_string(mesh[1]),
          "sharding.mesh.model=" + std::to_string(mesh[2]),
          "sharding.mesh.pipeline=" + std::to_string(mesh[3])};
}

}  // namespace moesim
