#include "sim/planner/point_share.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>

namespace moesim {

ChunkSchedule GuidedChunks(size_t points, int processes) {
  ChunkSchedule s;
  const size_t parts = 8 * static_cast<size_t>(std::max(processes, 1));
  for (size_t at = 0; at < points;) {
    at += std::max<size_t>(1, (points - at + parts - 1) / parts);
    s.ends.push_back(at);
  }
  return s;
}

std::optional<size_t> ChunkHandout::Next() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (next_ < end_) return next_++;
    if (exhausted_) return std::nullopt;
    asked_ = true;
    asked_cv_.notify_one();
    served_cv_.wait(lock);
  }
}

bool ChunkHandout::Serve(std::chrono::milliseconds wait, const std::function<uint64_t()>& draw) {
  std::unique_lock<std::mutex> lock(mu_);
  asked_cv_.wait_for(lock, wait, [&]() { return asked_ || woken_; });
  woken_ = false;
  if (!asked_) return false;
  lock.unlock();
  const uint64_t k = draw();
  lock.lock();
  if (k < schedule_.chunks()) {
    drawn_.push_back(static_cast<size_t>(k));
    next_ = schedule_.begin(static_cast<size_t>(k));
    end_ = schedule_.ends[static_cast<size_t>(k)];
  } else {
    exhausted_ = true;
  }
  asked_ = false;
  served_cv_.notify_all();
  return true;
}

void ChunkHandout::Wake() {
  std::lock_guard<std::mutex> lock(mu_);
  woken_ = true;
  asked_cv_.notify_one();
}

std::vector<size_t> ChunkHandout::Taken() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<size_t> taken;
  for (size_t k : drawn_) {
    for (size_t i = schedule_.begin(k); i < schedule_.ends[k]; ++i) taken.push_back(i);
  }
  return taken;
}

namespace {

class Writer {
 public:
  void U64(uint64_t v) { Raw(&v, sizeof(v)); }
  void I64(int64_t v) { Raw(&v, sizeof(v)); }
  void F64(double v) { Raw(&v, sizeof(v)); }
  void Str(const std::string& s) {
    U64(s.size());
    out_.append(s);
  }
  void Map(const std::map<std::string, double>& m) {
    U64(m.size());
    for (const auto& [k, v] : m) {
      Str(k);
      F64(v);
    }
  }
  uint64_t Count(uint64_t n, size_t) { return n; }
  bool ok() const { return true; }
  std::string Take() { return std::move(out_); }

 private:
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(const std::string& in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return pos_ == in_.size(); }
  uint64_t U64() { return Pod<uint64_t>(); }
  int64_t I64() { return Pod<int64_t>(); }
  double F64() { return Pod<double>(); }
  std::string Str() {
    const uint64_t n = U64();
    if (!ok_ || n > in_.size() - pos_) return Fail<std::string>();
    std::string s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  // n elements of at least `each` bytes still to read, or 0 and failed when fewer bytes remain.
  uint64_t Count(uint64_t n, size_t each) {
    if (!ok_ || n > (in_.size() - pos_) / each) return Fail<uint64_t>();
    return n;
  }
  std::map<std::string, double> Map() {
    std::map<std::string, double> m;
    const uint64_t n = Count(U64(), 16);  // a key's length and a value, at least
    for (uint64_t i = 0; ok_ && i < n; ++i) {
      std::string k = Str();
      m[std::move(k)] = F64();
    }
    return m;
  }

 private:
  template <typename T>
  T Fail() {
    ok_ = false;
    pos_ = in_.size();
    return T{};
  }
  template <typename T>
  T Pod() {
    if (!ok_ || in_.size() - pos_ < sizeof(T)) return Fail<T>();
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  const std::string& in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// The figures carried, one list for both directions (a Writer reads them, a Reader sets them).
template <typename IO, typename R>
void Fields(IO& io, R& r) {
  auto f64 = [&io](auto& v) {
    if constexpr (std::is_same_v<IO, Writer>) {
      io.F64(v);
    } else {
      v = io.F64();
    }
  };
  auto i64 = [&io](auto& v) {
    if constexpr (std::is_same_v<IO, Writer>) {
      io.I64(static_cast<int64_t>(v));
    } else {
      v = static_cast<std::remove_reference_t<decltype(v)>>(io.I64());
    }
  };
  auto str = [&io](std::string& v) {
    if constexpr (std::is_same_v<IO, Writer>) {
      io.Str(v);
    } else {
      v = io.Str();
    }
  };
  auto map = [&io](std::map<std::string, double>& v) {
    if constexpr (std::is_same_v<IO, Writer>) {
      io.Map(v);
    } else {
      v = io.Map();
    }
  };
  SimReport& s = r.report;
  str(r.message);
  str(s.network);
  f64(s.step_time_s);
  Breakdown& b = s.breakdown;
  f64(b.compute_s);
  map(b.compute_by_class);
  f64(b.exposed_comm_s);
  f64(b.comm_total_s);
  f64(b.bubble_s);
  f64(b.idle_s);
  map(b.exposed_by_collective);
  for (double* v : {&s.mfu, &s.tokens_per_s, &s.tflops_per_device, &s.model_flops_per_step,
                    &s.hardware_flops_per_step, &s.dropped_token_fraction}) {
    f64(*v);
  }
  ModelCost& c = s.cost;
  i64(c.num_layers);
  i64(c.num_moe_layers);
  ParamCount& p = c.params;
  for (double* v : {&p.total, &p.activated, &p.embedding, &p.per_dense_layer, &p.per_moe_layer,
                    &p.per_expert, &p.mtp, &c.flops_per_token.forward, &c.flops_per_token.model,
                    &c.flops_per_token.hardware}) {
    f64(*v);
  }
  map(c.flops_per_token.forward_by_op);
  MemoryReport& m = s.memory;
  for (double* v :
       {&m.weights_bytes, &m.grads_bytes, &m.optimizer_bytes, &m.activations_bytes, &m.logits_bytes,
        &m.moe_dispatch_bytes, &m.peak_bytes, &m.micro_batches_in_flight}) {
    f64(*v);
  }
  i64(m.capacity_bytes);
  i64(m.fits);
  i64(m.stage);
  i64(m.layers_on_stage);
  uint64_t n = m.stage_peak_bytes.size();
  i64(n);
  m.stage_peak_bytes.resize(io.Count(n, 8));
  for (double& v : m.stage_peak_bytes) f64(v);
  n = s.axes.size();
  i64(n);
  s.axes.resize(io.Count(n, 32));
  for (AxisReport& a : s.axes) {
    str(a.name);
    i64(a.size);
    str(a.span);
    f64(a.ring_bytes_per_s);
  }
  i64(s.num_ops);
  i64(s.critical_program);
  FlowStats& fl = s.flow;
  for (int64_t* v :
       {&fl.collectives, &fl.flow_runs, &fl.replayed, &fl.flows, &fl.bundles, &fl.events,
        &fl.symmetric_steps, &fl.split_steps, &fl.isolated_runs, &fl.isolated_reused}) {
    i64(*v);
  }
}

}  // namespace

std::string EncodePointResults(const std::vector<PointResult>& results,
                               const std::vector<size_t>& indices) {
  Writer w;
  w.U64(indices.size());
  for (size_t i : indices) {
    // Fields takes non-const references for both directions; the Writer only reads them.
    PointResult& r = const_cast<PointResult&>(results[i]);
    w.U64(i);
    w.I64(static_cast<int64_t>(r.outcome));
    w.I64(r.cancelled ? 1 : 0);
    Fields(w, r);
  }
  return w.Take();
}

Status DecodePointResults(const std::string& bytes, std::vector<PointResult>* results,
                          std::vector<size_t>* indices) {
  Reader rd(bytes);
  // Each point takes at least its index, outcome and cancelled flag.
  const uint64_t n = rd.Count(rd.U64(), 24);
  if (!rd.ok()) return Status::Internal("point results: bad count");
  for (uint64_t k = 0; k < n; ++k) {
    const uint64_t i = rd.U64();
    if (!rd.ok() || i >= results->size()) {
      return Status::Internal("point results: index out of range");
    }
    PointResult& r = (*results)[i];
    const int64_t outcome = rd.I64();
    if (outcome < 0 || outcome > static_cast<int64_t>(PointResult::Outcome::kDoesNotFit)) {
      return Status::Internal("point results: bad outcome");
    }
    r.outcome = static_cast<PointResult::Outcome>(outcome);
    r.cancelled = rd.I64() != 0;
    Fields(rd, r);
    if (!rd.ok()) return Status::Internal("point results: truncated");
    if (indices != nullptr) indices->push_back(static_cast<size_t>(i));
  }
  if (!rd.done()) return Status::Internal("point results: trailing bytes");
  return Status::Ok();
}

}  // namespace moesim
