// module.cc: the `moesim._core` Python extension (pybind11). The public API is the `moesim`
// package (python/moesim/__init__.py, docs/python.md), which re-exports what is defined here.
//
// Every result comes from the same libraries and the same writers (schema/report_schema.h) as
// the `moesim` command, so simulate(...).to_dict() equals `moesim simulate --json` and sweep rows
// equal `moesim sweep --csv` for the same inputs. The GIL is released while a scenario loads,
// simulates or a sweep runs. Bad input (Status kInvalidInput) raises moesim.ScenarioError, built
// by the Python side from the Status message (moesim/_errors.py parses it); internal errors raise
// RuntimeError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proto/hf_import.h"
#include "proto/megatron_args.h"
#include "proto/scenario_loader.h"
#include "schema/report_schema.h"
#include "sim/planner/budget.h"
#include "sim/planner/megatron_space.h"
#include "sim/planner/planner.h"
#include "sim/step/simulate.h"
#include "topologies/analysis.h"
#include "topologies/placement.h"
#include "topologies/topology.h"

namespace py = pybind11;

namespace moesim::python {
namespace {

// A non-OK Status on its way to Python (translated in PYBIND11_MODULE below).
struct StatusError {
  Status status;
};

void Check(const Status& s) {
  if (!s.ok()) throw StatusError{s};
}
template <typename T>
T Take(Expected<T> e) {
  Check(e.status());
  return std::move(e).value();
}

// nlohmann::json (sorted keys) or ordered_json (keys as written) -> Python objects.
template <typename Json>
py::object ToPython(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return py::none();
    case Json::value_t::boolean:
      return py::bool_(j.template get<bool>());
    case Json::value_t::number_integer:
      return py::int_(j.template get<int64_t>());
    case Json::value_t::number_unsigned:
      return py::int_(j.template get<uint64_t>());
    case Json::value_t::number_float:
      return py::float_(j.template get<double>());
    case Json::value_t::string:
      return py::str(j.template get_ref<const std::string&>());
    case Json::value_t::array: {
      py::list out;
      for (const auto& v : j) out.append(ToPython(v));
      return out;
    }
    case Json::value_t::object: {
      py::dict out;
      for (auto it = j.begin(); it != j.end(); ++it) out[py::str(it.key())] = ToPython(it.value());
      return out;
    }
    default:
      return py::none();
  }
}

// A Python value as `--set` text: booleans as true/false, everything else by str().
std::string ValueText(const py::handle& v) {
  if (py::isinstance<py::bool_>(v)) return v.cast<bool>() ? "true" : "false";
  if (v.is_none()) return "";
  return py::str(v).cast<std::string>();
}

NetworkLevel ParseNetwork(const std::string& n) {
  if (n == "analytical") return NetworkLevel::kAnalytical;
  if (n == "flow") return NetworkLevel::kFlow;
  throw py::value_error("network must be \"analytical\" or \"flow\", not \"" + n + "\"");
}

int DefaultJobs() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// A base scenario (file, text or the built-in default) and `--set` overrides, applied in order
// when it is loaded. Cheap to copy; loading validates.
class PyScenario {
 public:
  ScenarioText base;
  std::vector<std::string> overrides;

  static PyScenario FromFile(const std::string& path) {
    PyScenario s;
    s.base = Take(ReadScenarioText(path));
    return s;
  }
  static PyScenario FromText(const std::string& text, const std::string& name,
                             const std::string& base_dir) {
    PyScenario s;
    s.base = ScenarioText{text, name, base_dir};
    return s;
  }
  static PyScenario Default() { return FromFile(""); }

  // The loaded scenario (GIL released while it loads).
  Scenario Load(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> all = overrides;
    all.insert(all.end(), extra.begin(), extra.end());
    Expected<Scenario> sc = Status::Internal("not loaded");
    {
      py::gil_scoped_release release;
      sc = LoadScenarioFromText(base.text, base.source_name, all, base.base_dir);
    }
    return Take(std::move(sc));
  }
};

// One simulated step. The op-by-op timeline needs the full step program (keep_program), built
// only when .ops or write_trace() asks for it (or simulate(..., keep_ops=True)).
class PyResult {
 public:
  PyResult(Scenario sc, SimReport r, SimulateOptions opts)
      : sc_(std::move(sc)), r_(std::move(r)), opts_(std::move(opts)) {}

  const SimReport& report() const { return r_; }
  py::object ToDict() const { return ToPython(StepReportJson(sc_, r_)); }

  py::list Ops() {
    const SimReport& full = WithProgram();
    py::list out;
    for (const OpRecord& o : StepOps(sc_, full)) {
      py::dict d;
      d["name"] = o.name;
      d["program"] = o.program;
      d["stream"] = o.stream_name;
      d["stream_id"] = o.stream;
      d["phase"] = o.phase;
      d["micro_batch"] = o.micro_batch;
      d["start_s"] = o.start_s;
      d["end_s"] = o.end_s;
      d["duration_s"] = o.end_s - o.start_s;
      d["kind"] = o.is_collective ? "collective" : "compute";
      d["collective"] = o.is_collective ? py::object(py::str(o.collective)) : py::none();
      d["axes"] = o.is_collective ? py::object(py::str(o.axes)) : py::none();
      d["kernel_class"] = o.is_collective ? py::none() : py::object(py::str(o.kernel_class));
      d["flops"] = o.flops;
      d["bytes"] = o.bytes;
      d["fraction_of_peak"] =
          o.fraction_of_peak >= 0 ? py::object(py::float_(o.fraction_of_peak)) : py::none();
      d["fp8"] = o.fp8;
      out.append(std::move(d));
    }
    return out;
  }

  void WriteTrace(const std::string& path) {
    const SimReport& full = WithProgram();
    Check(StepTrace(sc_, full).Write(path));
  }

  const Scenario& scenario() const { return sc_; }

 private:
  // The report with the full program: this one, or the step simulated again with keep_program
  // (once, whichever thread asks first; the GIL is released while it runs).
  const SimReport& WithProgram() {
    if (r_.program != nullptr) return r_;
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(lazy_->mu);
    if (lazy_->full == nullptr) {
      SimulateOptions opts = opts_;
      opts.keep_program = true;
      Expected<SimReport> r = SimulateScenario(sc_, opts);
      if (!r.ok()) throw StatusError{r.status()};
      lazy_->full = std::make_shared<const SimReport>(std::move(*r));
    }
    return *lazy_->full;
  }

  struct Lazy {
    std::mutex mu;
    std::shared_ptr<const SimReport> full;
  };
  Scenario sc_;
  SimReport r_;
  SimulateOptions opts_;
  std::shared_ptr<Lazy> lazy_ = std::make_shared<Lazy>();
};

PyResult Simulate(const PyScenario& s, const std::string& network, bool keep_ops,
                  double max_memory_bytes) {
  SimulateOptions opts;
  opts.network = ParseNetwork(network);
  opts.keep_program = keep_ops;
  opts.max_memory_bytes = max_memory_bytes;
  Scenario sc = s.Load();
  Expected<SimReport> r = Status::Internal("not simulated");
  {
    py::gil_scoped_release release;
    r = SimulateScenario(sc, opts);
  }
  SimReport report = Take(std::move(r));
  return PyResult(std::move(sc), std::move(report), opts);
}

py::object Cost(const PyScenario& s) {
  const Scenario sc = s.Load();
  CostReport c;
  {
    py::gil_scoped_release release;
    c = ComputeCostReport(sc);
  }
  return ToPython(CostReportJson(sc, c));
}

// Runs the points (GIL released) with the given options.
std::vector<PointResult> Run(const PyScenario& s,
                             const std::vector<std::vector<std::string>>& points,
                             const RunOptions& opts) {
  std::vector<PointResult> results;
  py::gil_scoped_release release;
  results = RunPoints(s.base, points, opts);
  return results;
}

RunOptions MakeRunOptions(int jobs, const std::string& network, double max_memory_bytes) {
  if (jobs < 1) throw py::value_error("jobs must be at least 1");
  RunOptions opts;
  opts.jobs = jobs;
  opts.network = ParseNetwork(network);
  opts.max_memory_bytes = max_memory_bytes;
  opts.keep_details = false;  // rows need the figures only
  return opts;
}

py::list Sweep(const PyScenario& s, const py::dict& vary, int jobs, const std::string& network,
               double max_memory_bytes) {
  if (vary.empty()) throw py::value_error("vary: give at least one {\"path\": [values]}");
  std::vector<std::string> specs, columns;
  for (auto item : vary) {
    const std::string path = py::str(item.first).cast<std::string>();
    std::string spec = path + "=";
    bool first = true;
    py::iterable values = py::reinterpret_borrow<py::iterable>(item.second);
    if (py::isinstance<py::str>(item.second)) {
      throw py::value_error("vary[\"" + path + "\"]: give a list of values, not a string");
    }
    for (auto v : values) {
      const std::string text = ValueText(v);
      if (text.find(',') != std::string::npos) {
        throw py::value_error("vary[\"" + path + "\"]: a value may not contain ',': " + text);
      }
      spec += (first ? "" : ",") + text;
      first = false;
    }
    specs.push_back(spec);
    columns.push_back(path);
  }
  auto points = Take(GridPoints(s.overrides, specs));
  const auto results = Run(s, points, MakeRunOptions(jobs, network, max_memory_bytes));
  py::list rows;
  for (const PointResult& p : results)
    rows.append(ToPython(SweepRowJson(MakeSweepRow(p, columns), columns)));
  return rows;
}

// `moesim plan` (step_time): the feasible configurations, fastest first, as sweep rows with a
// "configuration" column; the legacy space, or Megatron-LM's for a scenario in that form.
py::list PlanBudget(const PyScenario& s, const Scenario& sc, const SearchSpace& space,
                    const RunOptions& opts, int top);

py::list Plan(const PyScenario& s, const std::string& objective, int top, int jobs,
              int64_t max_pipeline, const std::vector<std::string>& strategies,
              const std::vector<int64_t>& experts, const std::string& space_kind,
              double max_memory_bytes) {
  if (objective != "step_time" && objective != "tokens_in_budget") {
    throw py::value_error("objective must be \"step_time\" or \"tokens_in_budget\"");
  }
  if (top < 1) throw py::value_error("top must be at least 1");
  if (space_kind != "auto" && space_kind != "legacy" && space_kind != "megatron") {
    throw py::value_error("space must be \"auto\", \"legacy\" or \"megatron\"");
  }
  Expected<Scenario> loaded = Status::Internal("not loaded");
  {
    py::gil_scoped_release release;
    loaded = LoadScenarioFromText(s.base.text, s.base.source_name, s.overrides, s.base.base_dir);
    if (!loaded.ok()) {
      // As the CLI: the search replaces the mesh, so a base whose mesh no longer fits its
      // cluster is still a model and a cluster to plan for.
      auto relaxed = s.overrides;
      for (const char* o :
           {"sharding.mesh.data=0", "sharding.mesh.expert=0", "sharding.mesh.model=0",
            "sharding.mesh.pipeline=0", "training.micro_batch_size=0"}) {
        relaxed.push_back(o);
      }
      auto retry = LoadScenarioFromText(s.base.text, s.base.source_name, relaxed, s.base.base_dir);
      if (retry.ok()) loaded = std::move(retry);
    }
  }
  const Scenario sc = Take(std::move(loaded));
  RunOptions opts = MakeRunOptions(jobs, "analytical", max_memory_bytes);
  opts.simulate_unfit = false;
  const bool megatron = space_kind == "megatron" || (space_kind == "auto" && UsesMegatronForm(sc));
  if (megatron && objective != "step_time") {
    Check(Status::InvalidInput("space=\"megatron\" searches for objective=\"step_time\" only"));
  }
  if (objective == "tokens_in_budget") {
    SearchSpace space;
    space.max_pipeline = max_pipeline;
    if (!strategies.empty()) space.strategies = strategies;
    if (!experts.empty()) space.experts = experts;
    return PlanBudget(s, sc, space, opts, top);
  }
  if (megatron && !UsesMegatronForm(sc)) {
    Check(Status::InvalidInput(s.base.source_name +
                               ": space=\"megatron\" needs a scenario in the megatron form "
                               "(sharding.megatron { ... })"));
  }
  std::vector<std::vector<std::string>> points;
  if (megatron) {
    MegatronSpace space;
    space.max_pipeline = max_pipeline;
    points = EnumerateMegatronPoints(sc, space, s.overrides).points;
  } else {
    SearchSpace space;
    space.max_pipeline = max_pipeline;
    if (!strategies.empty()) space.strategies = strategies;
    points = ShardingPoints(sc, space, s.overrides);
  }
  const auto results = Run(s, points, opts);
  std::vector<const PointResult*> ok;
  for (const auto& p : results) {
    if (p.outcome == PointResult::Outcome::kOk) ok.push_back(&p);
  }
  std::stable_sort(ok.begin(), ok.end(), [](const PointResult* x, const PointResult* y) {
    return x->report.step_time_s < y->report.step_time_s;
  });
  py::list rows;
  for (size_t i = 0; i < ok.size() && i < static_cast<size_t>(top); ++i) {
    nlohmann::ordered_json j;
    j["rank"] = i + 1;
    j["configuration"] =
        megatron ? DescribeMegatronPoint(ok[i]->overrides) : DescribeSharding(ok[i]->overrides);
    const nlohmann::ordered_json figures = SweepRowJson(MakeSweepRow(*ok[i], {}), {});
    for (auto it = figures.begin(); it != figures.end(); ++it) j[it.key()] = it.value();
    py::dict row = ToPython(j);
    py::list overrides;
    for (size_t k = s.overrides.size(); k < ok[i]->overrides.size(); ++k) {
      overrides.append(ok[i]->overrides[k]);
    }
    row["overrides"] = overrides;
    rows.append(std::move(row));
  }
  return rows;
}

// tokens_in_budget: the MoE candidates that train on the most tokens in the dense scenario's
// Chinchilla wall-clock budget, most first, the first `top` of them as schema/'s budget rows
// (BudgetRowJson: the same rows as `moesim plan --objective tokens_in_budget --json`).
py::list PlanBudget(const PyScenario& s, const Scenario& sc, const SearchSpace& space,
                    const RunOptions& opts, int top) {
  Expected<BudgetPlan> plan = Status::Internal("not planned");
  {
    py::gil_scoped_release release;
    plan = PlanTokensInBudget(s.base, s.overrides, sc, space, opts);
  }
  const BudgetPlan p = Take(std::move(plan));
  py::list rows;
  for (const BudgetRow& row : MakeBudgetRows(p, static_cast<size_t>(std::max(top, 0)))) {
    rows.append(ToPython(BudgetRowJson(row)));
  }
  return rows;
}

py::object TopologyInfo(const std::string& name, const std::string& placement_spec) {
  nlohmann::json j;
  {
    py::gil_scoped_release release;
    const HardwareProfile hw = [&] {
      auto h = DefaultHardwareFor(name);
      if (!h.ok()) throw StatusError{h.status()};
      return *h;
    }();
    auto topo_or = BuildTopology(name, hw);
    if (!topo_or.ok()) throw StatusError{topo_or.status()};
    const Topology& topo = **topo_or;
    std::unique_ptr<MeshPlacement> placement;
    std::vector<AxisRing> rings;
    if (!placement_spec.empty()) {
      std::vector<std::string> names;
      std::vector<int64_t> sizes;
      const Status st = ParseMeshSpec(placement_spec, &names, &sizes);
      if (!st.ok()) throw StatusError{st};
      auto p = PlaceMesh(topo, names, sizes);
      if (!p.ok()) throw StatusError{p.status()};
      placement = std::make_unique<MeshPlacement>(std::move(*p));
      rings = AxisRings(topo, *placement);
    }
    j = TopologyJson(topo, Summarize(topo), rings, placement.get());
  }
  return ToPython(j);
}

}  // namespace
}  // namespace moesim::python

PYBIND11_MODULE(_core, m) {
  using namespace moesim;
  using namespace moesim::python;
  m.doc() = "moesim's C++ core; use the `moesim` package (docs/python.md).";
  m.attr("SCHEMA_VERSION") = kSchemaVersion;

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      if (e.status.code() == Status::Code::kInvalidInput) {
        py::object cls = py::module_::import("moesim._errors").attr("ScenarioError");
        py::object err = cls(e.status.message());
        PyErr_SetObject(cls.ptr(), err.ptr());
      } else {
        PyErr_SetString(PyExc_RuntimeError, e.status.message().c_str());
      }
    }
  });

  py::class_<PyScenario>(m, "Scenario")
      .def(py::init(&PyScenario::Default))
      .def_static("from_file", &PyScenario::FromFile, py::arg("path"))
      .def_static("from_text", &PyScenario::FromText, py::arg("text"), py::arg("name") = "<text>",
                  py::arg("base_dir") = ".")
      .def(
          "set",
          [](PyScenario& s, const std::string& path, const py::object& value) -> PyScenario& {
            const std::string assignment = path + "=" + ValueText(value);
            Check(CheckOverride(assignment));
            s.overrides.push_back(assignment);
            return s;
          },
          py::arg("path"), py::arg("value"), py::return_value_policy::reference_internal)
      .def("copy", [](const PyScenario& s) { return PyScenario(s); })
      .def("validate", [](const PyScenario& s) { s.Load(); })
      .def("resolved_text", [](const PyScenario& s) { return s.Load().resolved_text; })
      .def_property_readonly("overrides", [](const PyScenario& s) { return s.overrides; })
      .def_property_readonly("source", [](const PyScenario& s) { return s.base.source_name; })
      .def_property_readonly("text", [](const PyScenario& s) { return s.base.text; })
      .def("__repr__", [](const PyScenario& s) {
        return "<moesim.Scenario " + s.base.source_name + " with " +
               std::to_string(s.overrides.size()) + " overrides>";
      });

  // A Hugging Face config.json's import (proto/hf_import.h): the scenario text and what was
  // mapped, not mapped and ignored, as `moesim import hf` prints them.
  m.def(
      "import_hf",
      [](const std::string& path, int64_t seq_len) {
        std::string text;
        {
          py::gil_scoped_release release;
          std::ifstream in(path, std::ios::binary);
          if (!in) Check(Status::InvalidInput(path + ": cannot open config file"));
          std::stringstream buf;
          buf << in.rdbuf();
          text = buf.str();
        }
        HfImportOptions options;
        options.seq_len = seq_len;
        const HfImport imp = Take(ImportHfConfig(text, path, options));
        py::dict out;
        out["family"] = imp.family;
        out["scenario_text"] = imp.scenario_text;
        py::list mapped, not_mapped, ignored;
        for (const HfMappedKey& k : imp.mapped) {
          mapped.append(py::dict(py::arg("key") = k.key, py::arg("field") = k.field,
                                 py::arg("value") = k.value));
        }
        for (const HfUnmappedKey& k : imp.not_mapped) {
          not_mapped.append(py::dict(py::arg("key") = k.key, py::arg("reason") = k.reason));
        }
        for (const HfUnmappedKey& k : imp.ignored) {
          ignored.append(py::dict(py::arg("key") = k.key, py::arg("reason") = k.reason));
        }
        out["mapped"] = mapped;
        out["not_mapped"] = not_mapped;
        out["ignored"] = ignored;
        out["notes"] = imp.notes;
        return out;
      },
      py::arg("path"), py::arg("seq_len") = 0);

  py::class_<PyResult>(m, "Result")
      .def_property_readonly("step_time_s",
                             [](const PyResult& r) { return r.report().step_time_s; })
      .def_property_readonly("mfu", [](const PyResult& r) { return r.report().mfu; })
      .def_property_readonly("tokens_per_s",
                             [](const PyResult& r) { return r.report().tokens_per_s; })
      .def_property_readonly("tflops_per_device",
                             [](const PyResult& r) { return r.report().tflops_per_device; })
      .def_property_readonly("peak_bytes_per_device",
                             [](const PyResult& r) { return r.report().memory.peak_bytes; })
      .def_property_readonly("fits", [](const PyResult& r) { return r.report().memory.fits; })
      .def_property_readonly("network", [](const PyResult& r) { return r.report().network; })
      .def_property_readonly("breakdown_s",
                             [](const PyResult& r) { return r.ToDict()["breakdown_s"]; })
      .def_property_readonly("ops", &PyResult::Ops)
      .def("to_dict", &PyResult::ToDict)
      .def("write_trace", &PyResult::WriteTrace, py::arg("path"))
      .def("__repr__", [](const PyResult& r) {
        return "<moesim.Result step_time_s=" + std::to_string(r.report().step_time_s) +
               " mfu=" + std::to_string(r.report().mfu) + ">";
      });

  m.def("simulate", &Simulate, py::arg("scenario"), py::arg("network") = "analytical",
        py::arg("keep_ops") = false, py::arg("max_memory_bytes") = 0.0);
  m.def("cost", &Cost, py::arg("scenario"));
  m.def("sweep", &Sweep, py::arg("scenario"), py::arg("vary"), py::arg("jobs") = DefaultJobs(),
        py::arg("network") = "analytical", py::arg("max_memory_bytes") = 0.0);
  m.def("plan", &Plan, py::arg("scenario"), py::arg("objective") = "step_time", py::arg("top") = 10,
        py::arg("jobs") = DefaultJobs(), py::arg("max_pipeline") = 8,
        py::arg("strategies") = std::vector<std::string>{},
        py::arg("experts") = std::vector<int64_t>{}, py::arg("space") = "auto",
        py::arg("max_memory_bytes") = 0.0);
  m.def("topology", &TopologyInfo, py::arg("name"), py::arg("placement") = "");
}
