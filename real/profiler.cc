#include "real/profiler.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "schema/chrome_trace.h"

namespace moesim::real {

void Profiler::BeginStep(int64_t step, bool record, double host_offset_s) {
  recording_ = record;
  step_ = step;
  micro_batch_ = -1;
  offset_s_ = host_offset_s;
  open_.clear();
  next_slot_ = 0;
  if (recording_) dev_->RecordTimestamp(next_slot_++);
}

int64_t Profiler::Begin(const char* name, Phase phase, int64_t layer, int32_t stream, double flops,
                        double bytes) {
  if (!recording_) return -1;
  Open o;
  o.ev.name = layer >= 0 ? "L" + std::to_string(layer) + "." + name : std::string(name);
  o.ev.phase = phase;
  o.ev.stream = stream;
  o.ev.layer = layer;
  o.ev.micro_batch = phase == Phase::kOptimizer ? -1 : micro_batch_;
  o.ev.step = step_;
  o.ev.flops = flops;
  o.ev.bytes = bytes;
  o.begin_slot = next_slot_;
  dev_->RecordTimestamp(next_slot_++);
  open_.push_back(std::move(o));
  return static_cast<int64_t>(open_.size()) - 1;
}

void Profiler::End(int64_t id) {
  if (!recording_ || id < 0) return;
  open_[static_cast<size_t>(id)].end_slot = next_slot_;
  dev_->RecordTimestamp(next_slot_++);
}

Status Profiler::EndStep() {
  if (!recording_) return Status::Ok();
  recording_ = false;
  Expected<std::vector<double>> t = dev_->ReadTimestamps(next_slot_);
  if (!t.ok()) return t.status();
  for (Open& o : open_) {
    if (o.end_slot < 0) continue;
    o.ev.start_s = offset_s_ + (*t)[static_cast<size_t>(o.begin_slot)];
    o.ev.dur_s = (*t)[static_cast<size_t>(o.end_slot)] - (*t)[static_cast<size_t>(o.begin_slot)];
    events_.push_back(std::move(o.ev));
  }
  open_.clear();
  return Status::Ok();
}

std::string EncodeEvents(const std::vector<TraceEvent>& events) {
  std::ostringstream out;
  for (const TraceEvent& e : events) {
    nlohmann::json j = {{"n", e.name},        {"p", static_cast<int>(e.phase)},
                        {"q", e.stream},      {"l", e.layer},
                        {"m", e.micro_batch}, {"s", e.step},
                        {"t", e.start_s},     {"d", e.dur_s},
                        {"f", e.flops},       {"b", e.bytes}};
    out << j.dump() << "\n";
  }
  return out.str();
}

Expected<std::vector<TraceEvent>> DecodeEvents(const std::string& text) {
  std::vector<TraceEvent> events;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Status::Internal("trace: cannot decode event: " + line);
    TraceEvent e;
    e.name = j.value("n", "");
    e.phase = static_cast<Phase>(j.value("p", 0));
    e.stream = j.value("q", int32_t{kComputeStream});
    e.layer = j.value("l", int64_t{-1});
    e.micro_batch = j.value("m", int64_t{-1});
    e.step = j.value("s", int64_t{0});
    e.start_s = j.value("t", 0.0);
    e.dur_s = j.value("d", 0.0);
    e.flops = j.value("f", 0.0);
    e.bytes = j.value("b", 0.0);
    events.push_back(std::move(e));
  }
  return events;
}

Status WriteChromeTrace(const std::string& path,
                        const std::vector<std::vector<TraceEvent>>& per_rank,
                        const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::vector<std::string> streams;
  for (int32_t s = 0; s < kNumStreams; ++s) streams.push_back(StreamName(s));
  ChromeTrace trace;
  for (size_t r = 0; r < per_rank.size(); ++r) {
    const auto pid = static_cast<int64_t>(r);
    trace.AddProcess(pid, "rank " + std::to_string(r) + " (measured)", streams);
    for (const TraceEvent& e : per_rank[r]) {
      nlohmann::json args = {
          {"phase", PhaseName(e.phase)}, {"micro_batch", e.micro_batch}, {"step", e.step}};
      if (e.layer >= 0) args["layer"] = e.layer;
      if (e.flops > 0) args["flops"] = e.flops;
      if (e.bytes > 0) args["bytes"] = e.bytes;
      trace.AddOp(e.name, e.stream == kComputeStream ? "compute" : "collective", pid, e.stream,
                  e.start_s, e.dur_s, std::move(args));
    }
  }
  trace.other_data()["generator"] = "moesim-real train";
  for (const auto& [k, v] : metadata) trace.other_data()[k] = v;
  return trace.Write(path);
}

Status WaitForGroup(Profiler* prof, Comm* comm, Group g, const char* name, Phase phase,
                    int64_t layer, int32_t stream) {
  if (prof == nullptr || !prof->recording() || comm == nullptr || comm->GroupSize(g) < 2) {
    return Status::Ok();
  }
  MOESIM_RETURN_IF_ERROR(prof->device()->Synchronize());
  const std::string wait = std::string(name) + ".wait";
  ScopedOp op(prof, wait.c_str(), phase, layer, 0, 0, stream);
  double token = 0;
  return comm->AllReduceHost(&token, 1, g);
}

}  // namespace moesim::real
