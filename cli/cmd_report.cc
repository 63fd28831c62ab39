// `moesim report RESULTS.json [--calibration CALIB.json] [--out DIR]`: a Markdown report with
// PNG plots (Qt6 Charts, offscreen) of a validate-real run and, given `moesim calibrate --json`
// output, of the calibration residuals; or, given `moesim validate --json` output, of a
// validation set (report/report.h). Built only with Qt6 Charts.
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "report/report.h"

namespace moesim::cli {
namespace {

RunFn Setup(CLI::App* sub) {
  auto in = std::make_shared<report::ReportInputs>();
  sub->add_option("results", in->results_json,
                  "validate-real results.json, or moesim validate --json output")
      ->required();
  sub->add_option("--calibration", in->calibration_json, "moesim calibrate --json output");
  sub->add_option("--out", in->out_dir, "Output directory (default: the results' directory)");
  return [in]() -> Status {
    report::ReportInputs r = *in;
    if (r.out_dir.empty()) {
      r.out_dir = std::filesystem::path(r.results_json).parent_path().string();
      if (r.out_dir.empty()) r.out_dir = ".";
    }
    Expected<std::string> path = report::WriteReport(r);
    if (!path.ok()) return path.status();
    std::cout << "report: " << *path << "\n";
    return Status::Ok();
  };
}

}  // namespace

MOESIM_REGISTER_COMMAND("report",
                        "Markdown report with plots of a validate-real run or a validation set", 62,
                        Setup);

}  // namespace moesim::cli
