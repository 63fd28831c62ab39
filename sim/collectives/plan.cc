#include "sim/collectives/plan.h"

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

}  // namespace moesim::sim
