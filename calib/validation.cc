#include "calib/validation.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <system_error>

#include "calib/fit.h"
#include "calib/measured_run.h"
#include "calib/profile_io.h"
#include "common/csv.h"
#include "proto/scenario_loader.h"
#include "sim/step/simulate.h"

namespace moesim::calib {
namespace {

namespace fs = std::filesystem;

bool ParsePositive(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (end != s.c_str() + s.size() || v <= 0) return false;
  *out = v;
  return true;
}

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string Exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string Trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

// Output of a shell command, "" on failure.
std::string Capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[256];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  pclose(p);
  return Trim(out);
}

std::string Tail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  std::string l;
  while (std::getline(in, l)) all.push_back(l);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    out += "\n  " + all[i];
  }
  return out;
}

// `hardware.FIELD=VALUE` for every scalar field set in the profile message.
std::vector<std::string> HardwareOverrides(const pb::Hardware& h) {
  std::vector<std::string> out;
  const google::protobuf::Reflection* refl = h.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  refl->ListFields(h, &fields);
  for (const auto* f : fields) {
    // Repeated fields: the recorded collective fits (not read by the simulator) and the kernel
    // efficiencies, which have no `--set` form and are copied onto the scenario after loading.
    if (f->is_repeated()) continue;
    std::string v;
    switch (f->cpp_type()) {
      case google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE:
        v = Exact(refl->GetDouble(h, f));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT64:
        v = std::to_string(refl->GetInt64(h, f));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_STRING:
        v = refl->GetString(h, f);
        break;
      default:
        continue;
    }
    out.push_back("hardware." + f->name() + "=" + v);
  }
  return out;
}

Expected<std::map<std::string, double>> SimulatedOps(const SimReport& r) {
  std::map<std::string, double> ops;
  if (!r.program) return Status::Internal("simulation kept no program");
  for (size_t i = 0; i < r.program->ops.size(); ++i) {
    const Op& op = r.program->ops[i];
    if (op.program != 0) continue;
    ops[OpClass(op.name)] += r.timing[i].end_s - r.timing[i].start_s;
  }
  return ops;
}

}  // namespace

Expected<std::vector<RealConfig>> ReadRealConfigs(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidInput(path + ": cannot open validation set");
  const std::string header = "id,scenario,ranks,expert_parallel,overrides";
  std::string line;
  std::getline(in, line);
  if (Trim(line) != header) {
    return Status::InvalidInput(path + ":1: header must be \"" + header + "\"");
  }
  const fs::path dir = fs::path(path).parent_path();
  std::vector<RealConfig> out;
  std::set<std::string> ids;
  int n = 1;
  while (std::getline(in, line)) {
    ++n;
    if (Trim(line).empty() || line[0] == '#') continue;
    const std::string where = path + ":" + std::to_string(n) + ": ";
    const auto f = SplitCsvLine(line);
    if (f.size() != 5) {
      return Status::InvalidInput(where + "expected 5 fields, got " + std::to_string(f.size()));
    }
    RealConfig c;
    c.line = n;
    c.id = Trim(f[0]);
    if (c.id.empty() || c.id.find_first_of("/ '\"") != std::string::npos) {
      return Status::InvalidInput(where + "id=\"" + c.id +
                                  "\" must be non-empty, without spaces, quotes or '/'");
    }
    if (!ids.insert(c.id).second)
      return Status::InvalidInput(where + "id \"" + c.id + "\" repeats");
    c.scenario = Trim(f[1]);
    // The non-throwing form: a name the file system refuses (too long, say) is just not a file.
    std::error_code ec;
    if (fs::exists(dir / c.scenario, ec)) {
      c.scenario = (dir / c.scenario).lexically_normal().string();
    }
    if (!fs::exists(c.scenario, ec)) {
      return Status::InvalidInput(where + "scenario=\"" + Trim(f[1]) +
                                  "\" is not a file (relative to " + dir.string() + " or here)");
    }
    if (!ParsePositive(Trim(f[2]), &c.ranks)) {
      return Status::InvalidInput(where + "ranks=\"" + f[2] + "\" is not a positive integer");
    }
    if (!ParsePositive(Trim(f[3]), &c.expert_parallel)) {
      return Status::InvalidInput(where + "expert_parallel=\"" + f[3] +
                                  "\" is not a positive integer");
    }
    std::stringstream ss(f[4]);
    std::string o;
    while (std::getline(ss, o, ';')) {
      if (!Trim(o).empty()) c.overrides.push_back(Trim(o));
    }
    out.push_back(c);
  }
  if (out.empty()) return Status::InvalidInput(path + ": no configuration");
  return out;
}

MachineInfo DetectMachine(const std::string& source_dir) {
  MachineInfo m;
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0) m.hostname = host;
  std::ifstream cpu("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpu, line)) {
    if (line.rfind("processor", 0) == 0) ++m.cores;
    if (m.cpu_model.empty() && line.rfind("model name", 0) == 0) {
      m.cpu_model = Trim(line.substr(line.find(':') + 1));
    }
  }
  if (m.cores == 0) m.cores = std::max<int64_t>(1, sysconf(_SC_NPROCESSORS_ONLN));
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  m.date_utc = buf;
  // The source tree the binary was built from, else the working directory's repository.
  for (const std::string& dir : {source_dir, std::string(".")}) {
    if (m.git_commit.empty()) {
      m.git_commit = Capture("git -C " + Quote(dir) + " rev-parse --short HEAD 2>/dev/null");
    }
  }
  if (m.git_commit.empty()) m.git_commit = "unknown";
  return m;
}

double ConfigResult::MeasuredStepS() const { return Median(measured_step_s); }

double ConfigResult::SpreadPct() const {
  if (measured_step_s.empty()) return 0;
  const auto [lo, hi] = std::minmax_element(measured_step_s.begin(), measured_step_s.end());
  return 100 * (*hi - *lo) / MeasuredStepS();
}

double ValidationResult::MapePct() const {
  if (configs.empty()) return 0;
  double s = 0;
  for (const auto& c : configs) s += std::abs(c.ErrorPct());
  return s / static_cast<double>(configs.size());
}

Expected<ValidationResult> RunRealValidation(const std::vector<RealConfig>& configs_in,
                                             const ValidateRealOptions& o) {
  if (o.repeats < 1) return Status::InvalidInput("--repeats must be >= 1");
  if (o.steps <= o.trace_warmup + o.trace_steps) {
    return Status::InvalidInput("--steps " + std::to_string(o.steps) + " leaves no steady step " +
                                "after " + std::to_string(o.trace_warmup) + " warm-up and " +
                                std::to_string(o.trace_steps) + " traced steps");
  }
  std::error_code exists_ec;
  if (!fs::exists(o.moesim_real, exists_ec)) {
    return Status::InvalidInput("moesim-real not found at " + o.moesim_real +
                                " (build the moesim-real target; validate-real runs it)");
  }
  Expected<pb::Hardware> profile = ReadProfileMessage(o.profile);
  if (!profile.ok()) return profile.status();
  Expected<HardwareProfile> resolved = ResolveProfile(*profile);
  if (!resolved.ok()) return resolved.status().WithPrefix(o.profile + ": ");

  ValidationResult res;
  res.machine = DetectMachine(o.source_dir);
  res.profile = o.profile;
  res.backend = o.backend;
  const int64_t cores = o.cores > 0 ? o.cores : res.machine.cores;
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return Status::InvalidInput(o.out_dir + ": cannot create (" + ec.message() + ")");

  // Simulate first: a scenario the simulator rejects should fail before minutes of training.
  for (RealConfig c : configs_in) {
    if (o.ranks > 0) c.ranks = o.ranks;
    const std::string where = c.id + " (line " + std::to_string(c.line) + "): ";
    if (c.ranks % c.expert_parallel != 0) {
      return Status::InvalidInput(where + "expert_parallel=" + std::to_string(c.expert_parallel) +
                                  " does not divide ranks=" + std::to_string(c.ranks));
    }
    if (c.ranks > 1 && o.mpiexec.empty()) {
      return Status::InvalidInput(where + std::to_string(c.ranks) +
                                  " ranks need mpirun, which is not on PATH (or set "
                                  "MOESIM_MPIEXEC)");
    }
    ConfigResult cr;
    cr.config = c;
    pb::Hardware hw = *profile;
    if (c.ranks > cores && o.backend == "cpu") {
      cr.core_share = static_cast<double>(cores) / static_cast<double>(c.ranks);
      hw.set_peak_flops_per_s(resolved->peak_flops_per_s * cr.core_share);
      hw.set_hbm_bytes_per_s(resolved->hbm_bytes_per_s * cr.core_share);
      hw.set_op_overhead_s(resolved->op_overhead_s / cr.core_share);
      cr.link_group = std::string(kShmGroup) + " (no " + kShmTimesharedGroup + " fit)";
      for (const pb::CollectiveFit& f : profile->collective_fits()) {
        if (f.op() == "link" && f.group() == kShmTimesharedGroup) {
          hw.set_link_latency_s(f.alpha_s());
          hw.set_link_bytes_per_s(f.bytes_per_s());
          hw.set_link_efficiency(1);
          cr.link_group = kShmTimesharedGroup;
        }
      }
    }
    std::vector<std::string> ov = c.overrides;
    std::string topo = "cpu-host:" + std::to_string(c.ranks);
    if (resolved->chip != "cpu") topo += ",chip=" + resolved->chip;
    for (const std::string& s :
         {"cluster.topology=" + topo, std::string("sharding.strategy=DATA_PARALLEL"),
          "sharding.mesh.data=" + std::to_string(c.ranks / c.expert_parallel),
          "sharding.mesh.expert=" + std::to_string(c.expert_parallel),
          std::string("sharding.mesh.model=1"), std::string("sharding.mesh.pipeline=1")}) {
      ov.push_back(s);
    }
    for (const std::string& s : HardwareOverrides(hw)) ov.push_back(s);
    Expected<Scenario> sc = LoadScenario({c.scenario, ov});
    if (!sc.ok()) return sc.status().WithPrefix(where);
    // Fractions of hbm_bytes_per_s, which the core share above already scaled.
    sc->hardware.kernel_memory_efficiency = resolved->kernel_memory_efficiency;
    SimulateOptions so;
    so.keep_program = true;
    Expected<SimReport> sim = SimulateScenario(*sc, so);
    if (!sim.ok()) return sim.status().WithPrefix(where);
    cr.simulated_step_s = sim->step_time_s;
    if (sc->model.is_moe()) cr.simulated_dropped_fraction = sim->dropped_token_fraction;
    Expected<std::map<std::string, double>> ops = SimulatedOps(*sim);
    if (!ops.ok()) return ops.status();
    for (const auto& [name, s] : *ops) cr.ops.push_back({name, s, 0});
    res.configs.push_back(std::move(cr));
  }

  // Measure: repeats interleaved over configurations, so slow drift of the machine's load
  // shows up as spread rather than as a bias of one configuration.
  std::vector<std::vector<std::map<std::string, double>>> measured_ops(res.configs.size());
  for (int rep = 1; rep <= o.repeats; ++rep) {
    for (size_t i = 0; i < res.configs.size(); ++i) {
      ConfigResult& cr = res.configs[i];
      const RealConfig& c = cr.config;
      const fs::path dir = fs::path(o.out_dir) / c.id;
      fs::create_directories(dir, ec);
      const std::string stem = (dir / ("rep" + std::to_string(rep))).string();
      const std::string trace = stem + ".trace.json", metrics = stem + ".metrics.jsonl",
                        log = stem + ".log";
      std::string cmd;
      if (c.ranks > 1) {
        cmd = Quote(o.mpiexec) + " --allow-run-as-root --oversubscribe -n " +
              std::to_string(c.ranks) + " ";
      }
      cmd += Quote(o.moesim_real) + " train " + Quote(c.scenario);
      for (const std::string& s : c.overrides) cmd += " --set " + Quote(s);
      cmd += " --backend " + o.backend + " --steps " + std::to_string(o.steps) +
             " --expert-parallel " + std::to_string(c.expert_parallel) + " --trace " +
             Quote(trace) + " --trace-warmup " + std::to_string(o.trace_warmup) +
             " --trace-steps " + std::to_string(o.trace_steps) + " --metrics " + Quote(metrics) +
             " --log-every 1000 > " + Quote(log) + " 2>&1";
      if (!o.quiet) {
        std::cerr << "validate-real: " << c.id << " repeat " << rep << "/" << o.repeats << " ("
                  << c.ranks << " rank" << (c.ranks > 1 ? "s" : "") << ")" << std::endl;
      }
      const int rc = std::system(cmd.c_str());
      if (rc != 0) {
        const std::string how = rc > 0 && WIFEXITED(rc)
                                    ? "exit code " + std::to_string(WEXITSTATUS(rc))
                                    : "status " + std::to_string(rc);
        return Status::InvalidInput(c.id + ": moesim-real failed (" + how + "); " + log +
                                    " ends:" + Tail(log, 8));
      }
      Expected<MeasuredRun> run = ReadMeasuredRun(trace, metrics, o.trace_warmup + o.trace_steps);
      if (!run.ok()) return run.status().WithPrefix(c.id + ": ");
      cr.measured_step_s.push_back(run->step_time_s);
      measured_ops[i].push_back(run->op_s);
      if (run->dropped_fraction >= 0 && cr.simulated_dropped_fraction >= 0) {  // MoE only
        const double n = static_cast<double>(rep - 1);
        cr.measured_dropped_fraction =
            n == 0 ? run->dropped_fraction
                   : (cr.measured_dropped_fraction * n + run->dropped_fraction) / (n + 1);
      }
    }
  }
  for (size_t i = 0; i < res.configs.size(); ++i) {
    ConfigResult& cr = res.configs[i];
    std::set<std::string> names;
    for (const auto& m : measured_ops[i]) {
      for (const auto& [n, s] : m) names.insert(n);
    }
    for (auto& op : cr.ops) names.erase(op.op);
    for (const std::string& n : names) cr.ops.push_back({n, 0, 0});
    for (auto& op : cr.ops) {
      std::vector<double> v;
      for (const auto& m : measured_ops[i]) {
        auto it = m.find(op.op);
        v.push_back(it == m.end() ? 0.0 : it->second);
      }
      op.measured_s = Median(v);
    }
    std::sort(cr.ops.begin(), cr.ops.end(), [](const OpComparison& a, const OpComparison& b) {
      return std::max(a.simulated_s, a.measured_s) > std::max(b.simulated_s, b.measured_s);
    });
  }
  return res;
}

}  // namespace moesim::calib
