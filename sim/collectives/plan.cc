#include "sim/collectives/plan.h"

#include <algorithm>

namespace moesim::sim {
namespace {

struct OpName {
  CollectiveOp op;
  const char* name;
};
constexpr OpName kOpNames[] = {
    {CollectiveOp::kAllReduce, "all_reduce"},         {CollectiveOp::kAllGather, "all_gather"},
    {CollectiveOp::kReduceScatter, "reduce_scatter"}, {CollectiveOp::kAllToAll, "all_to_all"},
    {CollectiveOp::kAllToAllV, "all_to_all_v"},       {CollectiveOp::kBroadcast, "broadcast"},
    {CollectiveOp::kSendRecv, "send_recv"},
};

}  // namespace

const char* CollectiveOpName(CollectiveOp op) {
  for (const OpName& o : kOpNames) {
    if (o.op == op) return o.name;
  }
  return "?";
}

Expected<CollectiveOp> ParseCollectiveOp(const std::string& name) {
  std::string all;
  for (const OpName& o : kOpNames) {
    if (name == o.name) return o.op;
    all += (all.empty() ? "" : ", ") + std::string(o.name);
  }
  return Status::InvalidInput("unknown collective \"" + name + "\" (one of: " + all + ")");
}

double BusBandwidthFactor(CollectiveOp op, int64_t n) {
  const double nd = static_cast<double>(n);
  switch (op) {
    case CollectiveOp::kAllReduce:
      return 2.0 * (nd - 1) / nd;
    case CollectiveOp::kAllGather:
    case CollectiveOp::kReduceScatter:
    case CollectiveOp::kAllToAll:
    case CollectiveOp::kAllToAllV:
      return (nd - 1) / nd;
    case CollectiveOp::kBroadcast:
    case CollectiveOp::kSendRecv:
      return 1.0;
  }
  return 1.0;
}

double CollectivePlan::TotalBytes() const {
  double total = 0;
  for (const Stage& stage : stages) {
    for (const Stream& stream : stage.streams) {
      for (const Step& step : stream) {
        double b = 0;
        for (const Transfer& t : step.transfers) b += t.bytes;
        total += b * static_cast<double>(step.repeat);
      }
    }
  }
  return total;
}

int64_t CollectivePlan::TotalTransfers() const {
  int64_t total = 0;
  for (const Stage& stage : stages) {
    for (const Stream& stream : stage.streams) {
      for (const Step& step : stream) {
        total += static_cast<int64_t>(step.transfers.size()) * step.repeat;
      }
    }
  }
  return total;
}

namespace {

bool SameShape(const Stage& a, const Stage& b) {
  if (a.streams.size() != b.streams.size()) return false;
  for (size_t j = 0; j < a.streams.size(); ++j) {
    if (a.streams[j].size() != b.streams[j].size()) return false;
    for (size_t k = 0; k < a.streams[j].size(); ++k) {
      if (a.streams[j][k].repeat != b.streams[j][k].repeat) return false;
    }
  }
  return true;
}

}  // namespace

CollectivePlan MergeConcurrent(std::vector<CollectivePlan> plans) {
  CollectivePlan out;
  if (plans.empty()) return out;
  out.algorithm = plans[0].algorithm;
  size_t stages = 0;
  for (const CollectivePlan& p : plans) stages = std::max(stages, p.stages.size());
  out.stages.resize(stages);
  for (size_t i = 0; i < stages; ++i) {
    Stage& merged = out.stages[i];
    bool first = true, same = true;
    for (const CollectivePlan& p : plans) {
      if (i >= p.stages.size()) continue;
      if (first) {
        merged = p.stages[i];
        first = false;
      } else {
        same = same && SameShape(merged, p.stages[i]);
      }
    }
    if (same) {
      bool skip = true;  // the first contributing plan is already in
      for (CollectivePlan& p : plans) {
        if (i >= p.stages.size()) continue;
        if (skip) {
          skip = false;
          continue;
        }
        for (size_t j = 0; j < merged.streams.size(); ++j) {
          for (size_t k = 0; k < merged.streams[j].size(); ++k) {
            auto& to = merged.streams[j][k].transfers;
            auto& from = p.stages[i].streams[j][k].transfers;
            to.insert(to.end(), from.begin(), from.end());
          }
        }
      }
    } else {
      merged.streams.clear();
      for (CollectivePlan& p : plans) {
        if (i >= p.stages.size()) continue;
        for (Stream& s : p.stages[i].streams) merged.streams.push_back(std::move(s));
      }
    }
  }
  return out;
}

}  // namespace moesim::sim
