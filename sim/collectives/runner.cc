#include "sim/collectives/runner.h"

#include <algorithm>
#include <utility>

namespace moesim::sim {

AnalyticalCollectiveTimer::AnalyticalCollectiveTimer(const std::vector<LinkSpec>* links,
                                                     RouteFn route)
    : route_(std::move(route)), timer_(links) {}

double AnalyticalCollectiveTimer::StepSeconds(const Step& step) {
  for (const Transfer& t : step.transfers) {
    if (t.src == t.dst) continue;
    timer_.Add(route_(t.src, t.dst), t.bytes);
  }
  return timer_.Finish();
}

double AnalyticalCollectiveTimer::Seconds(const CollectivePlan& plan) {
  double total = 0;
  for (const Stage& stage : plan.stages) {
    double slowest = 0;
    for (const Stream& stream : stage.streams) {
      double t = 0;
      for (const Step& step : stream) t += static_cast<double>(step.repeat) * StepSeconds(step);
      slowest = std::max(slowest, t);
    }
    total += slowest;
  }
  return total;
}

namespace {

// The state of one collective on a FlowNetwork. Its stuck reporter, registered with the Engine
// from Begin() until it has finished, owns it (so a stuck collective is freed with its Engine);
// the transfers' callbacks hold a plain pointer (16-byte captures fit std::function's inline
// storage: no allocation per transfer).
class Execution : public std::enable_shared_from_this<Execution> {
 public:
  Execution(FlowNetwork* net, std::shared_ptr<const CollectivePlan> plan, RouteFn route,
            std::function<void()> done, std::string label)
      : net_(net),
        plan_(std::move(plan)),
        route_(std::move(route)),
        done_(std::move(done)),
        label_(std::move(label)) {}

  void Begin() {
    Engine* engine = net_->engine();
    reporter_ = engine->AddPendingReporter(
        [self = shared_from_this()](std::vector<std::string>* waiting) { self->Report(waiting); });
    engine->ScheduleAt(engine->now(), [this] { StartStage(0); });
  }

 private:
  struct StreamState {
    size_t step = 0;
    int64_t rep = 0;
    int64_t outstanding = 0;
    bool finished = false;
  };

  void StartStage(size_t s) {
    stage_ = s;
    if (s >= plan_->stages.size()) {
      Finish();
      return;
    }
    const Stage& stage = plan_->stages[s];
    streams_.assign(stage.streams.size(), StreamState{});
    streams_left_ = static_cast<int64_t>(stage.streams.size());
    if (streams_left_ == 0) {
      StartStage(s + 1);
      return;
    }
    for (size_t k = 0; k < stage.streams.size() && stage_ == s; ++k) StartStep(k);
  }

  // Starts the current step of stream k, skipping empty steps; ends the stream after its last.
  void StartStep(size_t k) {
    const Stream& stream = plan_->stages[stage_].streams[k];
    StreamState& st = streams_[k];
    while (st.step < stream.size() && stream[st.step].transfers.empty()) ++st.step;
    if (st.step >= stream.size()) {
      st.finished = true;
      if (--streams_left_ == 0) StartStage(stage_ + 1);
      return;
    }
    const Step& step = stream[st.step];
    st.outstanding = static_cast<int64_t>(step.transfers.size());
    for (const Transfer& t : step.transfers) {
      std::span<const LinkId> route;
      if (t.src != t.dst) route = route_(t.src, t.dst);
      net_->Start(route, t.bytes, [this, k] { Delivered(k); });
    }
  }

  void Delivered(size_t k) {
    StreamState& st = streams_[k];
    if (--st.outstanding > 0) return;
    const Step& step = plan_->stages[stage_].streams[k][st.step];
    if (++st.rep >= step.repeat) {
      st.rep = 0;
      ++st.step;
    }
    StartStep(k);
  }

  void Finish() {
    Engine* engine = net_->engine();
    // Released by a later event, not here: callers up the stack still use *this.
    engine->ScheduleAt(engine->now(), [keep = shared_from_this()] {});
    engine->RemovePendingReporter(reporter_);
    auto done = std::move(done_);
    if (done) done();
  }

  void Report(std::vector<std::string>* waiting) const {
    if (stage_ >= plan_->stages.size()) return;
    for (size_t k = 0; k < streams_.size(); ++k) {
      const StreamState& st = streams_[k];
      if (st.finished) continue;
      const Step& step = plan_->stages[stage_].streams[k][st.step];
      waiting->push_back("collective " + label_ + " (" + plan_->algorithm + "): stage " +
                         std::to_string(stage_ + 1) + "/" + std::to_string(plan_->stages.size()) +
                         " stream " + std::to_string(k + 1) + " step " +
                         std::to_string(st.step + 1) + " (repeat " + std::to_string(st.rep + 1) +
                         "/" + std::to_string(step.repeat) + ") waits on " +
                         std::to_string(st.outstanding) + " transfer(s)");
    }
  }

  FlowNetwork* net_;
  std::shared_ptr<const CollectivePlan> plan_;
  RouteFn route_;
  std::function<void()> done_;
  std::string label_;
  int64_t reporter_ = -1;
  size_t stage_ = 0;
  std::vector<StreamState> streams_;
  int64_t streams_left_ = 0;
};

}  // namespace

void StartCollective(FlowNetwork* net, std::shared_ptr<const CollectivePlan> plan, RouteFn route,
                     std::function<void()> done, std::string label) {
  auto exec = std::make_shared<Execution>(net, std::move(plan), std::move(route), std::move(done),
                                          std::move(label));
  exec->Begin();
}

Expected<double> FlowCollectiveSeconds(const CollectivePlan& plan,
                                       const std::vector<LinkSpec>& links, const RouteFn& route) {
  Engine engine;
  FlowNetwork net(&engine, links);
  SimTime end;
  bool finished = false;
  StartCollective(
      &net, std::make_shared<const CollectivePlan>(plan), route,
      [&] {
        end = engine.now();
        finished = true;
      },
      plan.algorithm);
  MOESIM_RETURN_IF_ERROR(engine.Run());
  if (!finished) return Status::Internal("collective " + plan.algorithm + " did not finish");
  return end.seconds();
}

}  // namespace moesim::sim
