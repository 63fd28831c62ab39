#include "real/comm/mpi_comm.h"

#include <climits>

namespace moesim::real {
namespace {

Status Check(int rc, const std::string& what, Group g) {
  if (rc == MPI_SUCCESS) return Status::Ok();
  return Status::Internal(what + " (" + GroupName(g) + " group): " + MpiErrorText(rc));
}

// MPI counts are int: refuse what does not fit instead of wrapping.
Status ToInt(int64_t v, const std::string& what, int* out) {
  if (v < 0 || v > INT_MAX) {
    return Status::Internal(what + ": " + std::to_string(v) +
                            " elements do not fit an MPI count (int)");
  }
  *out = static_cast<int>(v);
  return Status::Ok();
}

}  // namespace

Status InitMpi(int* argc, char*** argv) {
  int done = 0;
  MPI_Initialized(&done);
  if (done) return Status::Ok();
  const int rc = MPI_Init(argc, argv);
  if (rc != MPI_SUCCESS) return Status::Internal("MPI_Init failed: " + MpiErrorText(rc));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return Status::Ok();
}

void FinalizeMpi() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Finalize();
}

bool MpiInitialized() {
  int init = 0;
  MPI_Initialized(&init);
  return init != 0;
}

std::string MpiErrorText(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) {
    return "MPI error " + std::to_string(code);
  }
  return std::string(text, static_cast<size_t>(len));
}

Expected<std::unique_ptr<MpiComm>> MpiComm::Create(int expert_size) {
  if (!MpiInitialized()) return Status::Internal("MpiComm: MPI is not initialized");
  std::unique_ptr<MpiComm> c(new MpiComm());
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &c->size_);
  if (expert_size <= 0 || c->size_ % expert_size != 0) {
    return Status::InvalidInput("expert parallelism " + std::to_string(expert_size) +
                                " does not divide the " + std::to_string(c->size_) + " ranks");
  }
  c->expert_size_ = expert_size;
  const Group w = Group::kWorld;
  MOESIM_RETURN_IF_ERROR(Check(MPI_Comm_dup(MPI_COMM_WORLD, &c->world_), "MPI_Comm_dup", w));
  MPI_Comm_set_errhandler(c->world_, MPI_ERRORS_RETURN);
  MOESIM_RETURN_IF_ERROR(
      Check(MPI_Comm_split(c->world_, c->expert_rank(), c->data_rank(), &c->data_),
            "MPI_Comm_split", Group::kData));
  MOESIM_RETURN_IF_ERROR(
      Check(MPI_Comm_split(c->world_, c->data_rank(), c->expert_rank(), &c->expert_),
            "MPI_Comm_split", Group::kExpert));
  MPI_Comm_set_errhandler(c->data_, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(c->expert_, MPI_ERRORS_RETURN);
  return c;
}

MpiComm::~MpiComm() {
  if (!MpiInitialized()) return;
  int fin = 0;
  MPI_Finalized(&fin);
  if (fin) return;
  for (MPI_Comm* c : {&data_, &expert_, &world_}) {
    if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
  }
}

std::string MpiComm::Name() const {
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);
  std::string v(version, static_cast<size_t>(len));
  const size_t comma = v.find(',');
  if (comma != std::string::npos) v = v.substr(0, comma);
  return "mpi (" + v + ")";
}

MPI_Comm MpiComm::Handle(Group g) const {
  return g == Group::kWorld ? world_ : g == Group::kData ? data_ : expert_;
}

Status MpiComm::AllReduce(void* x, int64_t n, MPI_Datatype type, Group g) {
  if (GroupSize(g) == 1 || n == 0) return Status::Ok();
  int count = 0;
  MOESIM_RETURN_IF_ERROR(ToInt(n, "MPI_Allreduce", &count));
  return Check(MPI_Allreduce(MPI_IN_PLACE, x, count, type, MPI_SUM, Handle(g)), "MPI_Allreduce", g);
}

Status MpiComm::AllReduceSum(float* x, int64_t n, Group g) { return AllReduce(x, n, MPI_FLOAT, g); }
Status MpiComm::AllReduceSum(double* x, int64_t n, Group g) {
  return AllReduce(x, n, MPI_DOUBLE, g);
}
Status MpiComm::AllReduceHost(double* x, int64_t n, Group g) {
  return AllReduce(x, n, MPI_DOUBLE, g);
}

Status MpiComm::AllToAllVImpl(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                              const std::vector<int64_t>& recv_counts, MPI_Datatype type, Group g) {
  const int peers = GroupSize(g);
  if (static_cast<int>(send_counts.size()) != peers ||
      static_cast<int>(recv_counts.size()) != peers) {
    return Status::Internal("MPI_Alltoallv: " + std::to_string(send_counts.size()) +
                            " counts for a group of " + std::to_string(peers));
  }
  std::vector<int> sc(static_cast<size_t>(peers)), sd(static_cast<size_t>(peers)),
      rc(static_cast<size_t>(peers)), rd(static_cast<size_t>(peers));
  int64_t so = 0, ro = 0;
  for (size_t p = 0; p < sc.size(); ++p) {
    MOESIM_RETURN_IF_ERROR(ToInt(send_counts[p], "MPI_Alltoallv send", &sc[p]));
    MOESIM_RETURN_IF_ERROR(ToInt(recv_counts[p], "MPI_Alltoallv recv", &rc[p]));
    MOESIM_RETURN_IF_ERROR(ToInt(so, "MPI_Alltoallv send offset", &sd[p]));
    MOESIM_RETURN_IF_ERROR(ToInt(ro, "MPI_Alltoallv recv offset", &rd[p]));
    so += send_counts[p];
    ro += recv_counts[p];
  }
  return Check(
      MPI_Alltoallv(send, sc.data(), sd.data(), type, recv, rc.data(), rd.data(), type, Handle(g)),
      "MPI_Alltoallv", g);
}

Status MpiComm::AllToAllV(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                          const std::vector<int64_t>& recv_counts, Group g) {
  return AllToAllVImpl(send, send_counts, recv, recv_counts, MPI_FLOAT, g);
}
Status MpiComm::AllToAllV(const double* send, const std::vector<int64_t>& send_counts, double* recv,
                          const std::vector<int64_t>& recv_counts, Group g) {
  return AllToAllVImpl(send, send_counts, recv, recv_counts, MPI_DOUBLE, g);
}

Status MpiComm::AllToAllHost(const std::vector<int64_t>& send, std::vector<int64_t>* recv,
                             int64_t per_peer, Group g) {
  const int peers = GroupSize(g);
  if (static_cast<int64_t>(send.size()) != per_peer * peers) {
    return Status::Internal("MPI_Alltoall: " + std::to_string(send.size()) + " values for " +
                            std::to_string(peers) + " peers x " + std::to_string(per_peer));
  }
  recv->assign(send.size(), 0);
  int count = 0;
  MOESIM_RETURN_IF_ERROR(ToInt(per_peer, "MPI_Alltoall", &count));
  return Check(
      MPI_Alltoall(send.data(), count, MPI_INT64_T, recv->data(), count, MPI_INT64_T, Handle(g)),
      "MPI_Alltoall", g);
}

Status MpiComm::GatherStrings(const std::string& mine, std::vector<std::string>* all) {
  all->clear();
  int len = 0;
  MOESIM_RETURN_IF_ERROR(ToInt(static_cast<int64_t>(mine.size()), "MPI_Gather", &len));
  std::vector<int> lens(static_cast<size_t>(size_));
  MOESIM_RETURN_IF_ERROR(Check(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, world_),
                               "MPI_Gather", Group::kWorld));
  std::vector<int> displs(static_cast<size_t>(size_), 0);
  int64_t total = 0;
  for (size_t r = 0; r < lens.size(); ++r) {
    MOESIM_RETURN_IF_ERROR(ToInt(total, "MPI_Gatherv offset", &displs[r]));
    total += rank_ == 0 ? lens[r] : 0;
  }
  std::string buf(static_cast<size_t>(rank_ == 0 ? total : 0), '\0');
  MOESIM_RETURN_IF_ERROR(Check(MPI_Gatherv(mine.data(), len, MPI_CHAR, buf.data(), lens.data(),
                                           displs.data(), MPI_CHAR, 0, world_),
                               "MPI_Gatherv", Group::kWorld));
  if (rank_ == 0) {
    for (size_t r = 0; r < lens.size(); ++r) {
      all->push_back(buf.substr(static_cast<size_t>(displs[r]), static_cast<size_t>(lens[r])));
    }
  }
  return Status::Ok();
}

int MpiComm::LocalRank() const {
  MPI_Comm node = MPI_COMM_NULL;
  if (MPI_Comm_split_type(world_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node) !=
      MPI_SUCCESS) {
    return 0;
  }
  int local = 0;
  MPI_Comm_rank(node, &local);
  MPI_Comm_free(&node);
  return local;
}

Status MpiComm::DebugFailingCall() {
  // A negative count: MPI's own argument check rejects it (MPI_ERR_COUNT) under
  // MPI_ERRORS_RETURN. Only this rank calls it; the others are left waiting, as after a real
  // failure.
  double x = 0;
  return Check(MPI_Allreduce(MPI_IN_PLACE, &x, -1, MPI_DOUBLE, MPI_SUM, world_), "MPI_Allreduce",
               Group::kWorld);
}

Status MpiComm::Barrier() { return Check(MPI_Barrier(world_), "MPI_Barrier", Group::kWorld); }

}  // namespace moesim::real
