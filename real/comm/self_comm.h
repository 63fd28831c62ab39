// self_comm.h
//
// SelfComm: the Comm of a single rank that needs no MPI (library users, tests, and the
// reference runs the multi-rank tests compare against). Every group has one member: reductions
// leave data as it is, all-to-all copies the send buffer to the receive buffer on the device.
// Thread safety: one thread.
#pragma once

#include <string>
#include <vector>

#include "real/comm/comm.h"
#include "real/device.h"

namespace moesim::real {

class SelfComm final : public Comm {
 public:
  explicit SelfComm(DeviceBase* dev) : dev_(dev) {}

  int rank() const override { return 0; }
  int size() const override { return 1; }
  int expert_size() const override { return 1; }
  std::string Name() const override { return "self (one rank)"; }

  Status AllReduceSum(float*, int64_t, Group) override { return Status::Ok(); }
  Status AllReduceSum(double*, int64_t, Group) override { return Status::Ok(); }
  Status AllToAllV(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                   const std::vector<int64_t>& recv_counts, Group g) override {
    return Copy(send, send_counts, recv, recv_counts, g, sizeof(float));
  }
  Status AllToAllV(const double* send, const std::vector<int64_t>& send_counts, double* recv,
                   const std::vector<int64_t>& recv_counts, Group g) override {
    return Copy(send, send_counts, recv, recv_counts, g, sizeof(double));
  }
  Status AllReduceHost(double*, int64_t, Group) override { return Status::Ok(); }
  Status AllToAllHost(const std::vector<int64_t>& send, std::vector<int64_t>* recv, int64_t,
                      Group) override {
    *recv = send;
    return Status::Ok();
  }
  Status GatherStrings(const std::string& mine, std::vector<std::string>* all) override {
    *all = {mine};
    return Status::Ok();
  }
  Status Barrier() override { return Status::Ok(); }
  Status DebugFailingCall() override {
    return Status::Internal("SelfComm: injected communication failure (testing)");
  }

 private:
  Status Copy(const void* send, const std::vector<int64_t>& sc, void* recv,
              const std::vector<int64_t>& rc, Group g, size_t elem) {
    if (sc.size() != 1 || rc.size() != 1 || sc[0] != rc[0]) {
      return Status::Internal(std::string("SelfComm all-to-all (") + GroupName(g) +
                              " group): counts do not match one rank");
    }
    if (sc[0] > 0) dev_->CopyBytes(send, recv, sc[0] * static_cast<int64_t>(elem));
    return Status::Ok();
  }
  DeviceBase* dev_;
};

}  // namespace moesim::real
