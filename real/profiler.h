// profiler.h
//
// Profiler times every op of a training step on the device's own clock (steady_clock on the
// CPU, CUDA events on a GPU: DeviceBase::RecordTimestamp) and writes them in the simulator's
// trace format, with the simulator's op names, so a measured step and a simulated one
// (`moesim simulate --trace`, costmodel/opgraph.h) compare op by op:
//   - names are layer-qualified: "L3.attn.q", "L1.moe.w1", and "embed.lookup", "final.norm",
//     "head.logits", "head.loss", "grads.all_reduce", "optimizer.step" outside the layers;
//   - a matmul's backward is two ops, "<op>.dgrad" and "<op>.wgrad" ("<op>.grad_a" and
//     "<op>.grad_b" for the activation-by-activation matmuls attn.scores and attn.context);
//     every other op's backward is "<op>.bwd";
//   - MoE ops are those of permutation dispatch: moe.router, moe.gate (softmax, top-k,
//     capacity), moe.permute, moe.dispatch_a2a, moe.w1/w3/act/w2, moe.combine_a2a,
//     moe.unpermute, moe.norm, moe.residual.
//   - ops the simulator folds away keep their own names: "attn.layout" (head-major copies);
//   - in recorded steps each collective is preceded by "<collective>.wait": a barrier over its
//     group (WaitForGroup), so the collective's own time is its transfer, and the time a rank
//     spends waiting for the group's slowest member (on shared cores, a descheduled rank) is
//     shown apart; the simulator, whose ranks run in lockstep, has no such op;
//   - two simulated ops have no measured counterpart: "head.loss.bwd" (the cross-entropy
//     gradient comes out of the forward "head.loss" pass) and "ffn.residual.bwd" /
//     "moe.residual.bwd" (the residual's gradient is the output gradient itself, in place).
// Events are Chrome trace "X" events: ts/dur in microseconds, pid = rank, tid = stream
// (kComputeStream; expert all-to-alls on kCommStream; gradient all-reduce on kGradStream), and
// args {phase, micro_batch, step, layer, flops, bytes}.
//
// Usage: BeginStep(); { ScopedOp op(prof, "attn.q", Phase::kForward, layer, flops); ... }
// EndStep(). Ops cost one branch when the profiler is null or not recording.
// Thread safety: one thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "costmodel/opgraph.h"
#include "real/comm/comm.h"
#include "real/device.h"

namespace moesim::real {

struct TraceEvent {
  std::string name;  // "L3.attn.q.dgrad"
  Phase phase = Phase::kForward;
  int32_t stream = kComputeStream;
  int64_t layer = -1;        // transformer layer, -1 outside the layers
  int64_t micro_batch = -1;  // -1 outside a micro-batch (optimizer, gradient all-reduce)
  int64_t step = 0;          // training step
  double start_s = 0;        // from the start of the run's first traced step
  double dur_s = 0;
  double flops = 0;  // matmul FLOPs of the op (0 for others)
  double bytes = 0;  // bytes a collective sends (0 for compute ops)
};

class Profiler {
 public:
  explicit Profiler(DeviceBase* dev) : dev_(dev) {}

  // Starts a step; events are recorded only if `record`. `host_offset_s` places the step on
  // the trace's time axis (seconds since the first traced step began).
  void BeginStep(int64_t step, bool record, double host_offset_s);
  void set_micro_batch(int64_t mb) { micro_batch_ = mb; }
  bool recording() const { return recording_; }
  DeviceBase* device() const { return dev_; }
  // Returns an op id for End(); -1 when not recording.
  int64_t Begin(const char* name, Phase phase, int64_t layer, int32_t stream, double flops,
                double bytes);
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
  int64_t step_ = 0, micro_batch_ = -1;
  double offset_s_ = 0;
  int64_t next_slot_ = 0;
  std::vector<Open> open_;
  std::vector<TraceEvent> events_;
};

// Times one op when `prof` is non-null and recording.
class ScopedOp {
 public:
  ScopedOp(Profiler* prof, const char* name, Phase phase, int64_t layer = -1, double flops = 0,
           double bytes = 0, int32_t stream = kComputeStream)
      : prof_(prof != nullptr && prof->recording() ? prof : nullptr),
        id_(prof_ != nullptr ? prof_->Begin(name, phase, layer, stream, flops, bytes) : -1) {}
  ~ScopedOp() {
    if (prof_ != nullptr) prof_->End(id_);
  }
  ScopedOp(const ScopedOp&) = delete;
  ScopedOp& operator=(const ScopedOp&) = delete;

 private:
  Profiler* prof_;
  int64_t id_;
};

// When `prof` is recording and the group has more than one member: waits for the device, then
// for every member of `g` (a one-value host all-reduce), timed as "<name>.wait". Otherwise does
// nothing, so untraced steps (the ones step time is measured on) run as before.
Status WaitForGroup(Profiler* prof, Comm* comm, Group g, const char* name, Phase phase,
                    int64_t layer, int32_t stream);

// Serializes events to one JSON line per event (for gathering across ranks) and back.
std::string EncodeEvents(const std::vector<TraceEvent>& events);
Expected<std::vector<TraceEvent>> DecodeEvents(const std::string& text);

// Chrome trace JSON (written by schema/chrome_trace.h, the writer `moesim simulate --trace`
// uses too): per_rank[r] are rank r's events. `metadata` goes to "otherData".
Status WriteChromeTrace(const std::string& path,
                        const std::vector<std::vector<TraceEvent>>& per_rank,
                        const std::vector<std::pair<std::string, std::string>>& metadata);

}  // namespace moesim::real
