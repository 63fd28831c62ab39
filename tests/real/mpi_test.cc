// Multi-rank tests, run under `mpirun -n 2` (see CMakeLists.txt): MpiComm's collectives with
// hand-computed results and its error path; expert parallelism against the single-rank MoE
// layer; data and expert parallelism against one rank on the same global batch, for the
// gradients of one step and the loss trajectory of a training run.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>

#include "proto/scenario_loader.h"
#include "real/comm/mpi_comm.h"
#include "real/comm/self_comm.h"
#include "real/kernels/cpu_device.h"
#include "real/layers/moe.h"
#include "real/layers/transformer.h"
#include "real/train/optimizer.h"
#include "real/train/trainer.h"
#include "tests/real/grad_check.h"

namespace moesim::real {
namespace {

using testing::RandomVector;

int WorldSize() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

TEST(MpiComm, CollectivesOnHandComputedData) {
  ASSERT_EQ(WorldSize(), 2) << "run under mpirun -n 2";
  auto comm = MpiComm::Create(1);
  ASSERT_TRUE(comm.ok());
  MpiComm& c = **comm;
  const int r = c.rank();
  std::vector<float> x = {static_cast<float>(r + 1), 10.0f};
  ASSERT_TRUE(c.AllReduceSum(x.data(), 2, Group::kWorld).ok());
  EXPECT_EQ(x, (std::vector<float>{3.0f, 20.0f}));
  // Rank r sends (r + 1) (p + 1) values 100 r + p to peer p.
  // From peer p, this rank receives (p + 1) (r + 1) values 100 p + r.
  const std::vector<int64_t> send_counts = {r + 1, 2 * (r + 1)};
  const std::vector<int64_t> recv_counts = {1 * (r + 1), 2 * (r + 1)};
  std::vector<double> send;
  for (int p = 0; p < 2; ++p) {
    for (int64_t i = 0; i < send_counts[static_cast<size_t>(p)]; ++i) send.push_back(100.0 * r + p);
  }
  std::vector<double> recv(static_cast<size_t>(recv_counts[0] + recv_counts[1]));
  ASSERT_TRUE(c.AllToAllV(send.data(), send_counts, recv.data(), recv_counts, Group::kWorld).ok());
  for (int64_t i = 0; i < recv_counts[0]; ++i) EXPECT_EQ(recv[static_cast<size_t>(i)], 0.0 + r);
  for (int64_t i = 0; i < recv_counts[1]; ++i) {
    EXPECT_EQ(recv[static_cast<size_t>(recv_counts[0] + i)], 100.0 + r);
  }
  std::vector<int64_t> got;
  ASSERT_TRUE(c.AllToAllHost({10 * r + 0, 10 * r + 1}, &got, 1, Group::kWorld).ok());
  EXPECT_EQ(got, (std::vector<int64_t>{r, 10 + r}));
  std::vector<std::string> all;
  ASSERT_TRUE(c.GatherStrings("rank" + std::to_string(r), &all).ok());
  if (r == 0) {
    EXPECT_EQ(all, (std::vector<std::string>{"rank0", "rank1"}));
  }
}

TEST(MpiComm, GroupsFollowTheMesh) {
  auto comm = MpiComm::Create(2);  // 1 x 2 mesh: both ranks in one expert group
  ASSERT_TRUE(comm.ok());
  EXPECT_EQ((*comm)->GroupSize(Group::kExpert), 2);
  EXPECT_EQ((*comm)->GroupSize(Group::kData), 1);
  EXPECT_EQ((*comm)->expert_rank(), (*comm)->rank());
  EXPECT_FALSE(MpiComm::Create(3).ok());  // 3 does not divide 2 ranks
}

TEST(MpiComm, LibraryErrorsComeBackWithMpiText) {
  auto comm = MpiComm::Create(1);
  ASSERT_TRUE(comm.ok());
  const Status st = (*comm)->DebugFailingCall();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("MPI_Allreduce (world group): MPI_ERR_COUNT"), std::string::npos)
      << st.message();
}

MoeShape EpShape(int64_t tokens, int64_t ep, int64_t ep_rank) {
  MoeShape s;
  s.tokens = tokens;
  s.d_model = 6;
  s.num_experts = 4;
  s.top_k = 2;
  s.expert_hidden = 5;
  s.group_size = 6;
  s.capacity = 3;
  s.ep_size = ep;
  s.ep_rank = ep_rank;
  s.aux_coef = 0.3;
  s.z_coef = 0.2;
  return s;
}

TEST(ExpertParallel, MoeLayerMatchesTheSingleRankLayer) {
  auto comm = MpiComm::Create(2);
  ASSERT_TRUE(comm.ok());
  const int r = (*comm)->rank();
  const int64_t local = 12, global = 24, m = 6;
  const std::vector<double> x = RandomVector(global * m, 31), probe = RandomVector(global * m, 32);
  const std::vector<double> x_local(x.begin() + r * local * m, x.begin() + (r + 1) * local * m);
  const std::vector<double> probe_local(probe.begin() + r * local * m,
                                        probe.begin() + (r + 1) * local * m);
  CpuDevice<double> dev;
  // Reference: every expert, every token, one rank.
  ParamSet<double> ref_params;
  MoeLayer<double> ref(EpShape(global, 1, 0), "moe", 0, 0.5, 0.5, &ref_params);
  ASSERT_TRUE(ref_params.Allocate(&dev).ok());
  ref_params.Initialize(&dev, 9);
  ASSERT_TRUE(ref.AllocateActivations(&dev).ok());
  Workspace<double> ref_ws;
  ASSERT_TRUE(ref_ws.Allocate(&dev, ref.ScratchElems()).ok());
  Context<double> rc{&dev, nullptr, nullptr, &ref_ws};
  std::vector<double> ref_out(x.size()), ref_dx(x.size(), 0.0);
  ASSERT_TRUE(ref.Forward(rc, x.data(), ref_out.data()).ok());
  ASSERT_TRUE(ref.Backward(rc, probe.data(), ref_dx.data(), false).ok());
  ASSERT_GT(ref.routing().dropped, 0);
  // Expert parallel: half the tokens and half the experts here.
  ParamSet<double> params;
  MoeLayer<double> ep(EpShape(local, 2, r), "moe", 0, 0.5, 0.5, &params);
  ASSERT_TRUE(params.Allocate(&dev).ok());
  params.Initialize(&dev, 9);
  ASSERT_TRUE(ep.AllocateActivations(&dev).ok());
  Workspace<double> ws;
  ASSERT_TRUE(ws.Allocate(&dev, ep.ScratchElems()).ok());
  // The auxiliary losses are means over this rank's groups: half the global mean's gradient.
  Context<double> c{&dev, comm->get(), nullptr, &ws, 0.5};
  std::vector<double> out(x_local.size()), dx(x_local.size(), 0.0);
  ASSERT_TRUE(ep.Forward(c, x_local.data(), out.data()).ok());
  ASSERT_TRUE(ep.Backward(c, probe_local.data(), dx.data(), false).ok());
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_NEAR(out[i], ref_out[static_cast<size_t>(r * local * m) + i], 1e-13) << i;
    EXPECT_NEAR(dx[i], ref_dx[static_cast<size_t>(r * local * m) + i], 1e-13) << i;
  }
  // Router gradient: the sum over ranks equals the reference; experts: this rank's slice.
  for (size_t t = 0; t < params.entries().size(); ++t) {
    const ParamEntry& e = params.entries()[t];
    const ParamEntry& re = ref_params.entries()[t];
    ASSERT_EQ(e.name, re.name);
    std::vector<double> g(params.grad(static_cast<int>(t)),
                          params.grad(static_cast<int>(t)) + e.count);
    int64_t ref_off = 0;
    if (e.kind == ParamKind::kDense) {
      ASSERT_TRUE((*comm)->AllReduceSum(g.data(), e.count, Group::kWorld).ok());
    } else {
      ref_off = e.first_expert * (re.count / re.num_local_experts);
    }
    for (int64_t i = 0; i < e.count; ++i) {
      EXPECT_NEAR(g[static_cast<size_t>(i)], ref_params.grad(static_cast<int>(t))[ref_off + i],
                  1e-12)
          << e.name << " " << i;
    }
  }
}

ModelConfig SmallModel() {
  ModelConfig c;
  c.name = "small";
  c.num_layers = 2;
  c.d_model = 16;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  c.d_ff = 24;
  c.vocab_size = 40;
  c.seq_len = 8;
  c.moe_layer = {true, false};
  c.num_experts = 4;
  c.top_k = 2;
  c.expert_d_ff = 12;
  c.group_size = 8;
  c.capacity = 4;
  c.init_std = 0.1;
  return c;
}

double RelativeError(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

TEST(DataAndExpertParallel, OneStepGradientsMatchOneRankOnTheGlobalBatch) {
  const ModelConfig cfg = SmallModel();
  const int64_t local_seqs = 3, n_local = local_seqs * cfg.seq_len;
  std::vector<int32_t> tokens(static_cast<size_t>(2 * n_local)), targets(tokens.size());
  Rng rng(4);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>(rng.Below(40));
    targets[i] = static_cast<int32_t>(rng.Below(40));
  }
  CpuDevice<float> dev;
  auto ref = Transformer<float>::Create(cfg, 2 * local_seqs, 1, 0, &dev);
  ASSERT_TRUE(ref.ok());
  (*ref)->Initialize(17);
  Expected<LossParts> ref_loss = (*ref)->Forward(nullptr, nullptr, tokens, targets);
  ASSERT_TRUE(ref_loss.ok());
  ASSERT_TRUE((*ref)->Backward(nullptr, nullptr).ok());
  ParamSet<float>& rp = (*ref)->params();
  for (int ep : {1, 2}) {
    SCOPED_TRACE("expert parallel " + std::to_string(ep));
    auto comm = MpiComm::Create(ep);
    ASSERT_TRUE(comm.ok());
    const int r = (*comm)->rank();
    auto model = Transformer<float>::Create(cfg, local_seqs, ep, (*comm)->expert_rank(), &dev);
    ASSERT_TRUE(model.ok());
    (*model)->Initialize(17);
    const std::vector<int32_t> tl(tokens.begin() + r * n_local, tokens.begin() + (r + 1) * n_local),
        gl(targets.begin() + r * n_local, targets.begin() + (r + 1) * n_local);
    Expected<LossParts> loss = (*model)->Forward(comm->get(), nullptr, tl, gl);
    ASSERT_TRUE(loss.ok());
    ASSERT_TRUE((*model)->Backward(comm->get(), nullptr).ok());
    ParamSet<float>& p = (*model)->params();
    ASSERT_TRUE(AllReduceGradients(p, comm->get(), nullptr).ok());
    double total = loss->total();
    ASSERT_TRUE((*comm)->AllReduceHost(&total, 1, Group::kWorld).ok());
    EXPECT_NEAR(total / 2, ref_loss->total(), 1e-5 * ref_loss->total());
    for (size_t t = 0; t < p.entries().size(); ++t) {
      const ParamEntry& e = p.entries()[t];
      const ParamEntry& re = rp.entries()[t];
      ASSERT_EQ(e.name, re.name);
      std::vector<float> g(p.grad(static_cast<int>(t)), p.grad(static_cast<int>(t)) + e.count);
      for (float& v : g) v /= 2;  // mean over the two ranks' losses
      const int64_t off =
          e.kind == ParamKind::kExpert ? e.first_expert * (re.count / re.num_local_experts) : 0;
      EXPECT_LT(RelativeError(g.data(), rp.grad(static_cast<int>(t)) + off, e.count), 1e-5)
          << e.name;
    }
  }
}

TEST(DataAndExpertParallel, LossTrajectoryMatchesOneRank) {
  LoadOptions lo;
  lo.path = std::string(MOESIM_SOURCE_DIR) + "/tests/real/tiny-moe.textproto";
  Expected<Scenario> sc = LoadScenario(lo);
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  TrainOptions o;
  o.steps = 8;
  o.optimizer.warmup_steps = 2;
  CpuDevice<float> dev;
  SelfComm self(&dev);
  Expected<TrainResult> one = Train(*sc, o, &dev, &self, nullptr);
  ASSERT_TRUE(one.ok()) << one.status().message();
  for (int ep : {1, 2}) {
    SCOPED_TRACE("expert parallel " + std::to_string(ep));
    auto comm = MpiComm::Create(ep);
    ASSERT_TRUE(comm.ok());
    TrainOptions oe = o;
    oe.expert_parallel = ep;
    Expected<TrainResult> two = Train(*sc, oe, &dev, comm->get(), nullptr);
    ASSERT_TRUE(two.ok()) << two.status().message();
    ASSERT_EQ(two->steps.size(), one->steps.size());
    for (size_t i = 0; i < one->steps.size(); ++i) {
      EXPECT_NEAR(two->steps[i].loss, one->steps[i].loss, 1e-5 * one->steps[i].loss)
          << "step " << i + 1;
      EXPECT_NEAR(two->steps[i].grad_norm, one->steps[i].grad_norm, 1e-4 * one->steps[i].grad_norm);
    }
    EXPECT_LT(one->steps.back().loss, one->steps.front().loss);
  }
}

}  // namespace
}  // namespace moesim::real

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!moesim::real::InitMpi(&argc, &argv).ok()) return 1;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    // One rank prints progress; every rank reports its own failures.
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS();
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  moesim::real::FinalizeMpi();
  return failed;
}
