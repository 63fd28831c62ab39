// `moesim calibrate BENCH.json [BENCH.json ...] [--base PROFILE] --out PROFILE.textproto
// [--json FILE|-]`: fits a hardware profile to `moesim-real bench` output (calib/fit.h) and
// prints every fitted parameter, each fit's RMS relative residual and its worst points. Give
// one bench file per rank count (1, 2, 4 ranks) so the collectives are fitted over group
// sizes. --base: a built-in chip or a profile file (default: "cpu" for a CPU bench).
// `moesim calibrate --gemm-table validation/data/gemm/CHIP.csv [--base CHIP] [--folds 5]`: fits
// the GEMM kernel model (costmodel/gemm_model.h) to a measured GEMM table, per data type, and
// prints the fitted Hardware fields and the k-fold held-out error (calib/gemm_table.h), then
// the error of the base profile's own GEMM parameters on every row ("as built", text only).
// --json FILE|- (every mode): the fits as JSON, laid out by schema/calib_schema.h and documented
// in docs/schema.md; with -, stdout holds the JSON alone and the report goes to stderr.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>

#include "calib/bench_data.h"
#include "calib/fit.h"
#include "calib/gemm_table.h"
#include "calib/profile_io.h"
#include "calib/validation.h"
#include "cli/command.h"
#include "schema/calib_schema.h"
#include "sim/planner/profile_fit.h"

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

// The built-in chip of a GEMM table, from its file name (validation/data/gemm/h100.csv).
std::string ChipOfTable(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string stem = path.substr(slash == std::string::npos ? 0 : slash + 1);
  for (auto [key, chip] : {std::pair{"a100", "a100-sxm"},
                           {"h100", "h100-sxm"},
                           {"h200", "h200-sxm"},
                           {"gb200", "gb200"},
                           {"b200", "b200"}}) {
    if (stem.rfind(key, 0) == 0) return chip;
  }
  return "";
}

Status FitTable(const std::string& path, std::string base, int folds, const std::string& json) {
  Expected<calib::GemmTable> table = calib::ReadGemmTable(path);
  if (!table.ok()) return table.status();
  if (base.empty()) base = ChipOfTable(path);
  if (base.empty()) {
    return Status::InvalidInput("calibrate: no built-in chip for " + path + "; give --base");
  }
  Expected<pb::Hardware> base_msg = calib::ReadProfileMessage(base);
  if (!base_msg.ok()) return base_msg.status();
  Expected<HardwareProfile> hw = calib::ResolveProfile(*base_msg);
  if (!hw.ok()) return hw.status().WithPrefix("--base " + base + ": ");
  std::FILE* text = json == "-" ? stderr : stdout;  // stdout: the JSON alone
  GemmTableFitReport report;
  report.chip = hw->chip;
  report.table = path;
  report.source = table->source;
  report.rows = static_cast<int64_t>(table->rows.size());
  report.folds = folds;
  report.gemm_compute_units = hw->gemm_compute_units;
  report.hbm_bytes_per_s = hw->hbm_bytes_per_s;
  report.memory_efficiency = hw->memory_efficiency;
  std::fprintf(text, "GEMM kernel model of %s fitted to %s (%zu rows)\n  source:%s\n",
               hw->chip.c_str(), path.c_str(), table->rows.size(), table->source.c_str());
  std::fprintf(text, "  facts: %lld SMs, HBM %.4g B/s x memory_efficiency %.3g\n",
               static_cast<long long>(hw->gemm_compute_units), hw->hbm_bytes_per_s,
               hw->memory_efficiency);
  std::fprintf(text, "\n%-5s %6s %12s %12s %10s %12s %9s %9s %9s\n", "dtype", "rows", "peak_FLOP/s",
               "max_fraction", "k_half", "overhead_s", "rms_ln", "med|err|", "p90|err|");
  for (bool fp8 : {false, true}) {
    const std::vector<calib::GemmTableRow> rows = calib::RowsOf(table->rows, fp8);
    if (rows.empty()) continue;
    const GemmParams p = GemmParamsOf(*hw, fp8);
    GemmTableDtypeFit d;
    d.dtype = fp8 ? "fp8" : "bf16";
    d.rows = static_cast<int64_t>(rows.size());
    d.peak_flops_per_s = p.peak_flops_per_s;
    if (fp8 && hw->fp8_peak_flops_per_s <= 0) {
      std::fprintf(text, "%-5s %6zu  (the profile has no FP8 peak: not fitted)\n", "fp8",
                   rows.size());
      d.peak_flops_per_s = 0;
      report.dtypes.push_back(std::move(d));
      continue;
    }
    Expected<calib::GemmTableFit> fit = calib::FitGemmTable(rows, p);
    if (!fit.ok()) return fit.status();
    Expected<calib::HeldOutError> held = calib::KFoldGemmTable(rows, p, folds);
    if (!held.ok()) return held.status();
    std::fprintf(text, "%-5s %6zu %12.4g %12.4f %10.1f %12.3g %9.4f %8.1f%% %8.1f%%\n",
                 d.dtype.c_str(), rows.size(), p.peak_flops_per_s, fit->max_fraction, fit->k_half,
                 fit->overhead_s, fit->rms_log_error, 100 * held->median_abs_rel,
                 100 * held->p90_abs_rel);
    const calib::HeldOutError own = calib::GemmTableError(rows, p);
    std::fprintf(text, "%-5s %6zu %12s %12.4f %10.1f %12.3g %9s %8.1f%% %8.1f%%  (%s as built)\n",
                 "", rows.size(), "", p.max_fraction, p.k_half, p.overhead_s, "",
                 100 * own.median_abs_rel, 100 * own.p90_abs_rel, hw->chip.c_str());
    d.fitted = true;
    d.max_fraction = fit->max_fraction;
    d.k_half = fit->k_half;
    d.overhead_s = fit->overhead_s;
    d.rms_log_error = fit->rms_log_error;
    d.held_out_points = static_cast<int64_t>(held->points);
    d.held_out_median_abs_rel = held->median_abs_rel;
    d.held_out_p90_abs_rel = held->p90_abs_rel;
    report.dtypes.push_back(std::move(d));
  }
  std::fprintf(text,
               "\nmed|err|, p90|err|: |model / measured - 1| of each row predicted by the fit "
               "over the other folds (%d-fold, row i in fold i mod %d); on the \"as built\" line, "
               "of every row by the profile's own parameters (held out unless the profile was "
               "fitted to this table)\n",
               folds, folds);
  if (!json.empty()) return WriteJson(GemmTableFitJson(report), json);
  return Status::Ok();
}

void Print(std::FILE* out, const calib::FitReport& r) {
  std::fprintf(out, "\n%s%s\n  model: %s\n", r.name.c_str(), r.fitted ? "" : "  (not fitted)",
               r.model.c_str());
  for (const auto& p : r.params) {
    std::fprintf(out, "  %-22s %.6g%s%s\n", p.name.c_str(), p.value, p.unit.empty() ? "" : " ",
                 p.unit.c_str());
  }
  for (const auto& n : r.notes) std::fprintf(out, "  note: %s\n", n.c_str());
  if (r.points.empty()) return;
  std::fprintf(out, "  residual: RMS %.1f%% over %zu points; worst:\n", 100 * r.RmsRelError(),
               r.points.size());
  for (const auto& w : r.Worst(3)) {
    std::fprintf(out, "    %+7.1f%%  measured %.4g s, model %.4g s  %s\n", 100 * w.RelError(),
                 w.measured_s, w.model_s, w.label.c_str());
  }
}

// What `--json` writes (schema/calib_schema.h).
CalibrationReport ReportOf(const calib::Calibration& c) {
  CalibrationReport out;
  out.chip = c.profile.chip;
  for (const calib::FitReport& r : c.reports) {
    CalibrationFit f;
    f.name = r.name;
    f.fitted = r.fitted;
    f.model = r.model;
    for (const calib::FitParam& p : r.params) f.params[p.name] = p.value;
    f.notes = r.notes;
    f.rms_rel_error = r.RmsRelError();
    for (const auto& p : r.points)
      f.points.push_back({p.label, p.measured_s, p.model_s, p.RelError()});
    out.fits.push_back(std::move(f));
  }
  return out;
}

// "FIELD=v1,v2,..." into the scan of `o`.
Status ParseScan(const std::string& text, PublishedFitOptions* o) {
  const size_t eq = text.find('=');
  const auto bad = [&text](const std::string& why) {
    return Status::InvalidInput("--scan " + text + ": " + why);
  };
  if (eq == std::string::npos || eq == 0) return bad("expected FIELD=V1,V2,...");
  o->scan_param = text.substr(0, eq);
  std::string rest = text.substr(eq + 1);
  size_t at = 0;
  while (at <= rest.size()) {
    const size_t comma = std::min(rest.find(',', at), rest.size());
    const std::string item = rest.substr(at, comma - at);
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size() || !std::isfinite(v) || v <= 0) {
      return bad("\"" + item + "\" is not a positive number");
    }
    o->scan_values.push_back(v);
    if (o->scan_values.size() > 32) return bad("at most 32 values");
    at = comma + 1;
  }
  return Status::Ok();
}

// `--published`: the step-level fit over public rows (sim/planner/profile_fit.h), printed per
// chip with every row's in-sample and held-out error.
Status FitPublishedSets(const std::vector<std::string>& sets, const PublishedFitOptions& o,
                        const std::string& json) {
  size_t last = 0;
  auto progress = [&last](size_t done, size_t total) {
    const size_t pct = total > 0 ? 100 * done / total : 100;
    if (pct >= last + 10 || done == total) {
      std::fprintf(stderr, "calibrate: %zu/%zu simulations (%zu%%)\n", done, total, pct);
      last = pct;
    }
  };
  // With --json -, stdout holds the JSON alone and the table goes to stderr.
  std::FILE* text = json == "-" ? stderr : stdout;
  auto fits = FitPublished(sets, o, progress);
  if (!fits.ok()) return fits.status();
  std::vector<PublishedFitRecord> out;
  for (const ChipFit& f : *fits) {
    std::fprintf(
        text, "%s: hardware.%s = %.4f%s over %zu rows; in-sample MAPE %.1f%%, spread %.1f pp",
        f.chip.c_str(), o.param.c_str(), f.value, f.at_bound ? " (at the bound of the range)" : "",
        f.rows.size(), f.mape_in_pct, f.spread_in_pp);
    if (!o.scan_values.empty()) {
      std::fprintf(text, "; hardware.%s = %.4g", o.scan_param.c_str(), f.scan_value);
    }
    if (f.held_out_valid) {
      std::fprintf(text, "; %d-fold held-out MAPE %.1f%%\n", f.folds, f.mape_held_pct);
    } else {
      std::fprintf(text, "; one row: no held-out error\n");
    }
    PublishedFitRecord rec;
    rec.chip = f.chip;
    rec.param = o.param;
    rec.rule = o.rule == FitRule::kMedian ? "median" : "mean";
    rec.value = f.value;
    rec.at_bound = f.at_bound;
    rec.mape_in_pct = f.mape_in_pct;
    rec.spread_in_pp = f.spread_in_pp;
    rec.held_out_valid = f.held_out_valid;
    rec.folds = f.folds;
    rec.mape_held_out_pct = f.mape_held_pct;
    for (const PublishedFitRow& r : f.rows) {
      std::fprintf(text, "  %-40s %-18s measured %-10.4g in-sample %+6.1f%%  held out %+6.1f%%\n",
                   r.id.c_str(), r.metric.c_str(), r.measured, r.error_in_pct, r.error_held_pct);
      rec.rows.push_back({r.set, r.id, r.metric, r.measured, r.in_sample, r.held_out,
                          r.error_in_pct, r.error_held_pct, r.fold});
    }
    if (!o.scan_values.empty()) {
      std::fprintf(
          text, "  %s by %s:",
          o.rule == FitRule::kMedian ? "sum of |log residual|" : "sum of squared log residuals",
          o.scan_param.c_str());
      for (size_t v = 0; v < o.scan_values.size(); ++v) {
        if (std::isnan(f.scan_losses[v])) {
          std::fprintf(text, " %.4g: - (too few rows)", o.scan_values[v]);
        } else {
          std::fprintf(text, " %.4g: %.4f", o.scan_values[v], f.scan_losses[v]);
        }
      }
      std::fprintf(text, "\n");
      rec.scan = PublishedFitScan{o.scan_param, f.scan_value, o.scan_values, f.scan_losses};
    }
    out.push_back(std::move(rec));
  }
  if (!json.empty()) return WriteJson(PublishedFitJson(out), json);
  return Status::Ok();
}

RunFn Setup(CLI::App* sub) {
  struct Args {
    std::vector<std::string> published;
    PublishedFitOptions fit;
    std::vector<std::string> bench;
    std::string base, out, json;
    int64_t cores = 0;
    std::string gemm_table;
    int folds = 5;
    std::string scan;
    std::string rule = "mean";
  };
  auto a = std::make_shared<Args>();
  sub->add_option("bench", a->bench, "moesim-real bench --json output(s), one per rank count");
  sub->add_option("--gemm-table", a->gemm_table,
                  "Fit the GEMM kernel model to a measured GEMM table "
                  "(validation/data/gemm/CHIP.csv) instead, and print its k-fold error");
  sub->add_option("--folds", a->folds,
                  "--gemm-table, --published: folds of the held-out error (default 5)")
      ->check(CLI::Range(2, 100));
  sub->add_option("--published", a->published,
                  "Fit one step-level Hardware parameter per chip over every row of these "
                  "validation sets (validation/*.csv) and print its k-fold held-out error")
      ->type_name("SET.csv ...");
  sub->add_option("--param", a->fit.param,
                  "--published: the Hardware field fitted (default matmul_efficiency)");
  sub->add_option("--chip", a->fit.chips, "--published: fit only these built-in chips");
  sub->add_option("--scan-min-rows", a->fit.scan_min_rows,
                  "--scan: chips with fewer rows keep the first value (default 5)")
      ->check(CLI::Range(1, 1000000));
  sub->add_option("--rule", a->rule,
                  "--published: mean (geometric mean of simulated/measured speed is 1; "
                  "default) or median (robust to a few rows another part of the model misses)")
      ->check(CLI::IsMember({"mean", "median"}));
  sub->add_option("--scan", a->scan,
                  "--published: also fit a second Hardware field per chip over these values, "
                  "the prior first (e.g. elementwise_efficiency=1,0.7,0.5,0.35,0.25)")
      ->type_name("FIELD=V1,V2,...");
  sub->add_option("--lo", a->fit.lo, "--published: lower end of the range searched (default 0.2)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--hi", a->fit.hi, "--published: upper end of the range searched (default 1)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--grid", a->fit.grid,
                  "--published: values simulated per row across the range (default 15)")
      ->check(CLI::Range(2, 200));
  sub->add_option("--base", a->base,
                  "Built-in chip or profile file the fit starts from (peak FLOP/s, memory "
                  "bandwidth); default: cpu for a CPU bench, the GPU's chip for a CUDA one");
  sub->add_option("--out", a->out,
                  "Calibrated profile (Hardware message, text format); required with bench files");
  sub->add_option("--json", a->json,
                  "Also write every fit and residual as JSON (FILE, or - for stdout; the report "
                  "then goes to stderr)");
  sub->add_option("--cores", a->cores,
                  "Cores of the host the bench ran on: collectives on more ranks than this are "
                  "fitted as their own (time-shared) group kind (default: this machine's)")
      ->check(CLI::PositiveNumber);
  return [a]() -> Status {
    if (!a->gemm_table.empty()) return FitTable(a->gemm_table, a->base, a->folds, a->json);
    if (!a->published.empty()) {
      a->fit.folds = a->folds;
      if (!a->scan.empty()) MOESIM_RETURN_IF_ERROR(ParseScan(a->scan, &a->fit));
      a->fit.rule = a->rule == "median" ? FitRule::kMedian : FitRule::kGeometricMean;
      return FitPublishedSets(a->published, a->fit, a->json);
    }
    if (a->bench.empty())
      return Status::InvalidInput("calibrate: give bench files or --gemm-table");
    if (a->out.empty())
      return Status::InvalidInput("calibrate: --out is required with bench files");
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

    std::FILE* text = a->json == "-" ? stderr : stdout;  // stdout: the JSON alone
    std::fprintf(text,
                 "calibrated %s from %zu bench file(s): %zu GEMM, %zu memory, %zu grouped GEMM, "
                 "%zu collective points\n",
                 cal->profile.chip.c_str(), bench.files.size(), bench.gemm.size(),
                 bench.memory.size(), bench.grouped_gemm.size(), bench.collectives.size());
    for (const auto& n : bench.notes) std::fprintf(text, "note: %s\n", n.c_str());
    for (const auto& r : cal->reports) Print(text, r);

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
    const std::string profile_text = calib::ProfileText(calib::ProfileMessage(*cal), header);
    std::ofstream out(a->out, std::ios::binary);
    if (!out) return Status::InvalidInput(a->out + ": cannot open for writing");
    out << profile_text;
    out.close();
    if (!out) return Status::InvalidInput(a->out + ": write failed");
    std::fprintf(text, "\nprofile: %s\n", a->out.c_str());
    if (!a->json.empty()) return WriteJson(CalibrationJson(ReportOf(*cal)), a->json);
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("calibrate",
                        "Fit a hardware profile to moesim-real bench output (Eigen least squares)",
                        60, Setup);

}  // namespace moesim::cli
