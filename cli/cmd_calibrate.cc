// `moesim calibrate BENCH.json [BENCH.json ...] [--base PROFILE] --out PROFILE.textproto
// [--json FILE|-]`: fits a hardware profile to `moesim-real bench` output (calib/fit.h) and
// prints every fitted parameter, each fit's RMS relative residual and its worst points. Give
// one bench file per rank count (1, 2, 4 ranks) so the collectives are fitted over group
// sizes. --base: a built-in chip or a profile file (default: "cpu" for a CPU bench).
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>

#include "calib/bench_data.h"
#include "calib/fit.h"
#include "calib/profile_io.h"
#include "calib/validation.h"
#include "cli/command.h"

namespace moesim::cli {
namespace {

// The built-in chip of a GPU bench, from the device name the bench wrote.
std::string ChipOfDevice(const std::string& device) {
  for (auto [key, chip] : {std::pair{"H200", "h200-sxm"},
                           {"H100", "h100-sxm"},
                           {"A100", "a100-sxm"},
                           {"B200", "b200"},
                           {"GB200", "gb200"}}) {
    if (device.find(key) != std::string::npos) return chip;
  }
  return "";
}

void Print(const calib::FitReport& r) {
  std::printf("\n%s%s\n  model: %s\n", r.name.c_str(), r.fitted ? "" : "  (not fitted)",
              r.model.c_str());
  for (const auto& p : r.params) {
    std::printf("  %-22s %.6g%s%s\n", p.name.c_str(), p.value, p.unit.empty() ? "" : " ",
                p.unit.c_str());
  }
  for (const auto& n : r.notes) std::printf("  note: %s\n", n.c_str());
  if (r.points.empty()) return;
  std::printf("  residual: RMS %.1f%% over %zu points; worst:\n", 100 * r.RmsRelError(),
              r.points.size());
  for (const auto& w : r.Worst(3)) {
    std::printf("    %+7.1f%%  measured %.4g s, model %.4g s  %s\n", 100 * w.RelError(),
                w.measured_s, w.model_s, w.label.c_str());
  }
}

nlohmann::json ToJson(const calib::Calibration& c) {
  nlohmann::json fits = nlohmann::json::array();
  for (const auto& r : c.reports) {
    nlohmann::json params = nlohmann::json::object();
    for (const auto& p : r.params) params[p.name] = p.value;
    nlohmann::json points = nlohmann::json::array();
    for (const auto& p : r.points) {
      points.push_back({{"label", p.label},
                        {"measured_s", p.measured_s},
                        {"model_s", p.model_s},
                        {"rel_error", p.RelError()}});
    }
    fits.push_back({{"name", r.name},
                    {"fitted", r.fitted},
                    {"model", r.model},
                    {"params", params},
                    {"notes", r.notes},
                    {"rms_rel_error", r.RmsRelError()},
                    {"points", points}});
  }
  return {{"chip", c.profile.chip}, {"fits", fits}};
}

RunFn Setup(CLI::App* sub) {
  struct Args {
    std::vector<std::string> bench;
    std::string base, out, json;
    int64_t cores = 0;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("bench", a->bench, "moesim-real bench --json output(s), one per rank count")
      ->required();
  sub->add_option("--base", a->base,
                  "Built-in chip or profile file the fit starts from (peak FLOP/s, memory "
                  "bandwidth); default: cpu for a CPU bench, the GPU's chip for a CUDA one");
  sub->add_option("--out", a->out, "Calibrated profile (Hardware message, text format)")
      ->required();
  sub->add_option("--json", a->json, "Also write every fit and residual as JSON (FILE or -)");
  sub->add_option("--cores", a->cores,
                  "Cores of the host the bench ran on: collectives on more ranks than this are "
                  "fitted as their own (time-shared) group kind (default: this machine's)")
      ->check(CLI::PositiveNumber);
  return [a]() -> Status {
    calib::BenchData bench;
    for (const std::string& f : a->bench) {
      Expected<calib::BenchData> b = calib::ReadBenchJson(f);
      if (!b.ok()) return b.status();
      MOESIM_RETURN_IF_ERROR(calib::MergeBench(std::move(*b), &bench));
    }
    std::string base = a->base;
    if (base.empty()) {
      base = bench.backend == "cpu" ? "cpu" : ChipOfDevice(bench.device);
      if (base.empty()) {
        return Status::InvalidInput("calibrate: no built-in profile for device \"" + bench.device +
                                    "\"; give --base");
      }
    }
    Expected<pb::Hardware> base_msg = calib::ReadProfileMessage(base);
    if (!base_msg.ok()) return base_msg.status();
    Expected<HardwareProfile> base_hw = calib::ResolveProfile(*base_msg);
    if (!base_hw.ok()) return base_hw.status().WithPrefix("--base " + base + ": ");
    const int64_t cores = a->cores > 0 ? a->cores : calib::DetectMachine(".").cores;
    Expected<calib::Calibration> cal = calib::Calibrate(bench, *base_hw, cores);
    if (!cal.ok()) return cal.status();

    std::printf(
        "calibrated %s from %zu bench file(s): %zu GEMM, %zu memory, %zu grouped GEMM, "
        "%zu collective points\n",
        cal->profile.chip.c_str(), bench.files.size(), bench.gemm.size(), bench.memory.size(),
        bench.grouped_gemm.size(), bench.collectives.size());
    for (const auto& n : bench.notes) std::printf("note: %s\n", n.c_str());
    for (const auto& r : cal->reports) Print(r);

    std::string header = "moesim calibrate: " + cal->profile.chip + " fitted to";
    for (const auto& f : bench.files) header += " " + f;
    header += "\nbase: " + base + "; fit residuals (RMS relative):";
    for (const auto& r : cal->reports) {
      if (!r.points.empty()) {
        char buf[96];
        std::snprintf(buf, sizeof(buf), " %s %.1f%%", r.name.c_str(), 100 * r.RmsRelError());
        header += buf;
      }
    }
    const std::string text = calib::ProfileText(calib::ProfileMessage(*cal), header);
    std::ofstream out(a->out, std::ios::binary);
    if (!out) return Status::InvalidInput(a->out + ": cannot open for writing");
    out << text;
    out.close();
    if (!out) return Status::InvalidInput(a->out + ": write failed");
    std::printf("\nprofile: %s\n", a->out.c_str());
    if (!a->json.empty()) return WriteJson(ToJson(*cal), a->json);
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("calibrate",
                        "Fit a hardware profile to moesim-real bench output (Eigen least squares)",
                        60, Setup);

}  // namespace moesim::cli
