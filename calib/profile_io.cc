#include "calib/profile_io.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "proto/field_locator.h"
#include "proto/hardware_profiles.h"

namespace moesim::calib {
namespace {

class Collector : public google::protobuf::io::ErrorCollector {
 public:
  explicit Collector(std::string file) : file_(std::move(file)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!text_.empty()) text_ += "\n";
    text_ +=
        file_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  const std::string& text() const { return text_; }

 private:
  std::string file_;
  std::string text_;
};

}  // namespace

Expected<pb::Hardware> ReadProfileMessage(const std::string& name_or_path) {
  pb::Hardware msg;
  if (BuiltinHardwareProfile(name_or_path).ok()) {
    msg.set_chip(name_or_path);
    return msg;
  }
  std::ifstream in(name_or_path, std::ios::binary);
  if (!in) {
    std::string names;
    for (const auto& n : BuiltinHardwareProfileNames()) names += (names.empty() ? "" : ", ") + n;
    return Status::InvalidInput("profile \"" + name_or_path + "\" is neither a built-in chip (" +
                                names + ") nor a readable file");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  google::protobuf::TextFormat::Parser parser;
  Collector errors(name_or_path);
  parser.RecordErrorsTo(&errors);
  auto tree = std::make_unique<google::protobuf::TextFormat::ParseInfoTree>();
  parser.WriteLocationsTo(tree.get());
  if (!parser.ParseFromString(ss.str(), &msg)) {
    return Status::InvalidInput(errors.text().empty() ? name_or_path + ": not a Hardware profile"
                                                      : errors.text());
  }
  if (msg.chip().empty()) {
    return Status::InvalidInput(name_or_path +
                                ": chip is missing (the built-in profile the "
                                "file's fields override)");
  }
  // Checked here, where lines are known, so that a bad value is named as file:line.
  const FieldLocator where(name_or_path, pb::Hardware::descriptor(), std::move(tree));
  MOESIM_RETURN_IF_ERROR(CheckEnumValues(msg, where));
  Expected<HardwareProfile> base = BuiltinHardwareProfile(msg.chip());
  if (!base.ok()) return base.status().WithPrefix(where.Where("chip") + ": chip: ");
  std::string bad;
  for (const HardwareFieldError& e : ApplyHardwareFields(msg, &*base)) {
    bad += (bad.empty() ? "" : "\n") + where.Where(e.field) + ": " + e.field + e.detail;
  }
  if (!bad.empty()) return Status::InvalidInput(bad);
  return msg;
}

Expected<HardwareProfile> ResolveProfile(const pb::Hardware& h) {
  Expected<HardwareProfile> base = BuiltinHardwareProfile(h.chip());
  if (!base.ok()) return base.status();
  HardwareProfile p = *base;
  const std::vector<HardwareFieldError> errors = ApplyHardwareFields(h, &p);
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors) msg += (msg.empty() ? "" : "; ") + e.field + e.detail;
    return Status::InvalidInput(msg);
  }
  return p;
}

pb::Hardware ProfileMessage(const Calibration& c) {
  const HardwareProfile& p = c.profile;
  pb::Hardware h;
  h.set_chip(p.chip);
  h.set_peak_flops_per_s(p.peak_flops_per_s);
  h.set_hbm_bytes(p.hbm_bytes);
  h.set_hbm_bytes_per_s(p.hbm_bytes_per_s);
  h.set_matmul_efficiency(p.matmul_efficiency);
  h.set_memory_efficiency(p.memory_efficiency);
  h.set_op_overhead_s(p.op_overhead_s);
  h.set_link_bytes_per_s(p.link_bytes_per_s);
  h.set_link_latency_s(p.link_latency_s);
  h.set_link_efficiency(p.link_efficiency);
  h.set_scaleout_bytes_per_s(p.scaleout_bytes_per_s);
  h.set_scaleout_latency_s(p.scaleout_latency_s);
  h.set_devices_per_host(p.devices_per_host);
  h.set_gemm_max_efficiency(p.gemm_max_efficiency);
  h.set_gemm_m_half(p.gemm_m_half);
  h.set_gemm_n_half(p.gemm_n_half);
  h.set_gemm_k_half(p.gemm_k_half);
  for (int i = 0; i < kNumMemoryKernels; ++i) {
    const double e = p.kernel_memory_efficiency[static_cast<size_t>(i)];
    if (e <= 0) continue;
    pb::KernelEfficiency* k = h.add_kernel_memory_efficiency();
    k->set_kernel(MemoryKernelName(static_cast<MemoryKernel>(i)));
    k->set_efficiency(e);
    k->set_rms_relative_residual(c.kernel_rms_rel[static_cast<size_t>(i)]);
  }
  for (const CollectiveFitRecord& r : c.collective_fits) {
    pb::CollectiveFit* f = h.add_collective_fits();
    f->set_op(r.op);
    f->set_group(r.group);
    f->set_alpha_s(r.fit.alpha_s);
    f->set_bytes_per_s(r.fit.bytes_per_s);
    f->set_rms_relative_residual(r.rms_rel);
    f->set_points(r.points);
  }
  return h;
}

std::string ProfileText(const pb::Hardware& message, const std::string& header) {
  std::string out;
  std::stringstream hs(header);
  std::string line;
  while (std::getline(hs, line)) out += "# " + line + "\n";
  std::string body;
  google::protobuf::TextFormat::Printer printer;
  printer.PrintToString(message, &body);
  return out + body;
}

}  // namespace moesim::calib
