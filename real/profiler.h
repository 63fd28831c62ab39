// profiler.h
//
// Profiler times every op of a training step on the device's own clock (steady_clock on the
// CPU, CUDA events on a GPU: DeviceBase::RecordTimestamp) and turns the timings into trace
// events. Op names are the simulator's (costmodel/layers.h einsum names such as "attn.q",
// "attn.scores", "ffn.w1", "moe.w1", "head.logits"), plus names for the ops the cost model
// folds into others ("attn.norm", "attn.rope", "attn.softmax", "moe.route", "moe.all_to_all",
// "grad.all_reduce", "optimizer.adamw" ...). The backward of a matmul einsum is one event with
// the einsum's name (its two GEMMs, dX and dW) and pass "backward".
//
// Usage: BeginStep(); { ScopedOp op(prof, "attn.q", Pass::kForward, layer, flops); ... } ...
// EndStep(). Recording is off (ops cost one branch) unless enabled for the step.
// WriteChromeTrace() writes Chrome trace JSON (ph "X" events, ts/dur in microseconds, pid =
// rank, tid 0 = compute, tid 1 = communication) that Perfetto and `moesim` read.
// Thread safety: one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "real/device.h"

namespace moesim::real {

enum class Pass { kForward, kBackward, kOptimizer };
const char* PassName(Pass p);  // "forward", "backward", "optimizer"

struct TraceEvent {
  std::string name;  // simulator op name, e.g. "attn.q"
  Pass pass = Pass::kForward;
  bool comm = false;   // a collective (tid 1)
  int64_t layer = -1;  // transformer layer, -1 outside the layers
  int64_t step = 0;    // training step
  double start_s = 0;  // from the start of the run's first traced step
  double dur_s = 0;
  double flops = 0;  // matmul FLOPs of the op (0 for others)
  double bytes = 0;  // bytes moved by a collective or a memory-bound op (0 if unknown)
};

class Profiler {
 public:
  explicit Profiler(DeviceBase* dev) : dev_(dev) {}

  // Starts a step; events are recorded only if `record`. `host_offset_s` places the step on
  // the trace's time axis (seconds since the first traced step began).
  void BeginStep(int64_t step, bool record, double host_offset_s);
  bool recording() const { return recording_; }
  // Returns an op id for End(); -1 when not recording.
  int64_t Begin(const char* name, Pass pass, int64_t layer, bool comm, double flops, double bytes);
  void End(int64_t id);
  // Waits for the device, converts timestamps into events (appended to events()).
  Status EndStep();

  const std::vector<TraceEvent>& events() const { return events_; }

 private:
  struct Open {
    TraceEvent ev;
    int64_t begin_slot = 0;
    int64_t end_slot = -1;
  };
  DeviceBase* dev_;
  bool recording_ = false;
  int64_t step_ = 0;
  double offset_s_ = 0;
  int64_t next_slot_ = 0;
  std::vector<Open> open_;
  std::vector<TraceEvent> events_;
};

// Times one op when `prof` is non-null and recording.
class ScopedOp {
 public:
  ScopedOp(Profiler* prof, const char* name, Pass pass, int64_t layer = -1, double flops = 0,
           double bytes = 0, bool comm = false)
      : prof_(prof != nullptr && prof->recording() ? prof : nullptr),
        id_(prof_ != nullptr ? prof_->Begin(name, pass, layer, comm, flops, bytes) : -1) {}
  ~ScopedOp() {
    if (prof_ != nullptr) prof_->End(id_);
  }
  ScopedOp(const ScopedOp&) = delete;
  ScopedOp& operator=(const ScopedOp&) = delete;

 private:
  Profiler* prof_;
  int64_t id_;
};

// Serializes events to one JSON line per event (for gathering across ranks) and back.
std::string EncodeEvents(const std::vector<TraceEvent>& events);
Expected<std::vector<TraceEvent>> DecodeEvents(const std::string& text);

// Chrome trace JSON: per_rank[r] are rank r's events. `metadata` goes to "otherData".
Status WriteChromeTrace(const std::string& path,
                        const std::vector<std::vector<TraceEvent>>& per_rank,
                        const std::vector<std::pair<std::string, std::string>>& metadata);

}  // namespace moesim::real
