#include "real/comm/nccl_comm.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

namespace moesim::real {

struct NcclComm::Impl {
  ncclComm_t comms[3] = {nullptr, nullptr, nullptr};  // world, data, expert
  cudaStream_t stream = nullptr;
  ncclComm_t& Get(Group g) { return comms[static_cast<int>(g)]; }
};

namespace {

Status Check(ncclResult_t r, const std::string& what, Group g, ncclComm_t comm) {
  if (r == ncclSuccess) return Status::Ok();
  std::string detail = ncclGetErrorString(r);
  if (comm != nullptr) {
    const char* last = ncclGetLastError(comm);
    if (last != nullptr && last[0] != '\0') detail += ": " + std::string(last);
  }
  return Status::Internal(what + " (" + GroupName(g) + " group): " + detail);
}

ncclDataType_t Type(float*) { return ncclFloat; }
ncclDataType_t Type(double*) { return ncclDouble; }

}  // namespace

NcclComm::NcclComm(std::unique_ptr<MpiComm> mpi, CudaDevice* dev)
    : mpi_(std::move(mpi)), dev_(dev), impl_(std::make_unique<Impl>()) {
  impl_->stream = static_cast<cudaStream_t>(dev->stream());
}

Expected<std::unique_ptr<NcclComm>> NcclComm::Create(std::unique_ptr<MpiComm> mpi,
                                                     CudaDevice* dev) {
  std::unique_ptr<NcclComm> c(new NcclComm(std::move(mpi), dev));
  for (Group g : {Group::kWorld, Group::kData, Group::kExpert}) {
    ncclUniqueId id{};
    if (c->mpi_->GroupRank(g) == 0) {
      MOESIM_RETURN_IF_ERROR(Check(ncclGetUniqueId(&id), "ncclGetUniqueId", g, nullptr));
    }
    const int rc = MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, c->mpi_->Handle(g));
    if (rc != MPI_SUCCESS) {
      return Status::Internal(std::string("MPI_Bcast of the NCCL id (") + GroupName(g) +
                              " group): " + MpiErrorText(rc));
    }
    MOESIM_RETURN_IF_ERROR(
        Check(ncclCommInitRank(&c->impl_->Get(g), c->mpi_->GroupSize(g), id, c->mpi_->GroupRank(g)),
              "ncclCommInitRank", g, nullptr));
  }
  return c;
}

NcclComm::~NcclComm() {
  if (impl_->stream != nullptr) cudaStreamSynchronize(impl_->stream);
  for (ncclComm_t& comm : impl_->comms) {
    if (comm != nullptr) ncclCommDestroy(comm);
  }
}

std::string NcclComm::Name() const {
  int v = 0;
  ncclGetVersion(&v);
  return "nccl " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100) + " over " + mpi_->Name();
}

template <typename V>
static Status AllReduceImpl(NcclComm::Impl* impl, V* x, int64_t n, Group g) {
  if (n == 0) return Status::Ok();
  return Check(
      ncclAllReduce(x, x, static_cast<size_t>(n), Type(x), ncclSum, impl->Get(g), impl->stream),
      "ncclAllReduce", g, impl->Get(g));
}

Status NcclComm::AllReduceSum(float* x, int64_t n, Group g) {
  return AllReduceImpl(impl_.get(), x, n, g);
}
Status NcclComm::AllReduceSum(double* x, int64_t n, Group g) {
  return AllReduceImpl(impl_.get(), x, n, g);
}

template <typename V>
static Status AllToAllImpl(NcclComm::Impl* impl, int peers, const V* send,
                           const std::vector<int64_t>& sc, V* recv, const std::vector<int64_t>& rc,
                           Group g) {
  if (static_cast<int>(sc.size()) != peers || static_cast<int>(rc.size()) != peers) {
    return Status::Internal("NCCL all-to-all: counts for " + std::to_string(sc.size()) +
                            " peers, group of " + std::to_string(peers));
  }
  ncclComm_t comm = impl->Get(g);
  MOESIM_RETURN_IF_ERROR(Check(ncclGroupStart(), "ncclGroupStart", g, comm));
  int64_t so = 0, ro = 0;
  Status st;
  for (int p = 0; p < peers && st.ok(); ++p) {
    const auto u = static_cast<size_t>(p);
    if (sc[u] > 0) {
      st = Check(ncclSend(send + so, static_cast<size_t>(sc[u]), Type(recv), p, comm, impl->stream),
                 "ncclSend", g, comm);
    }
    if (st.ok() && rc[u] > 0) {
      st = Check(ncclRecv(recv + ro, static_cast<size_t>(rc[u]), Type(recv), p, comm, impl->stream),
                 "ncclRecv", g, comm);
    }
    so += sc[u];
    ro += rc[u];
  }
  const Status end = Check(ncclGroupEnd(), "ncclGroupEnd", g, comm);
  return st.ok() ? end : st;
}

Status NcclComm::AllToAllV(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                           const std::vector<int64_t>& recv_counts, Group g) {
  return AllToAllImpl(impl_.get(), GroupSize(g), send, send_counts, recv, recv_counts, g);
}
Status NcclComm::AllToAllV(const double* send, const std::vector<int64_t>& send_counts,
                           double* recv, const std::vector<int64_t>& recv_counts, Group g) {
  return AllToAllImpl(impl_.get(), GroupSize(g), send, send_counts, recv, recv_counts, g);
}

Status NcclComm::Barrier() {
  // Surface asynchronous NCCL failures here rather than hanging later.
  for (Group g : {Group::kWorld, Group::kData, Group::kExpert}) {
    ncclResult_t async = ncclSuccess;
    MOESIM_RETURN_IF_ERROR(
        Check(ncclCommGetAsyncError(impl_->Get(g), &async), "ncclCommGetAsyncError", g, nullptr));
    MOESIM_RETURN_IF_ERROR(Check(async, "NCCL asynchronous error", g, impl_->Get(g)));
  }
  return mpi_->Barrier();
}

Status NcclComm::DebugFailingCall() {
  // A data type past the last one: NCCL's argument check rejects it (ncclInvalidArgument).
  float* none = nullptr;
  return Check(
      ncclAllReduce(none, none, 1, ncclNumTypes, ncclSum, impl_->Get(Group::kWorld), impl_->stream),
      "ncclAllReduce", Group::kWorld, impl_->Get(Group::kWorld));
}

}  // namespace moesim::real
