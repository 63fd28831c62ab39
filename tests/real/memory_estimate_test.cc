// The memory estimate against what the CPU device really allocates, and the trainer's refusals
// before allocating: a model over the limit (num_layers=100000000 given to the library
// directly, past the scenario loader), a small max_memory_bytes, and options out of range.
#include "real/train/memory_estimate.h"

#include <gtest/gtest.h>

#include <chrono>

#include "proto/scenario_loader.h"
#include "real/comm/self_comm.h"
#include "real/kernels/cpu_device.h"
#include "real/layers/transformer.h"
#include "real/train/trainer.h"

namespace moesim::real {
namespace {

Scenario Tiny() {
  LoadOptions lo;
  lo.path = std::string(MOESIM_SOURCE_DIR) + "/tests/real/tiny-moe.textproto";
  Expected<Scenario> sc = LoadScenario(lo);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return *sc;
}

// Not below what Transformer::Create allocates on the device, and not far above it.
TEST(MemoryEstimate, CoversTheTinyModelsDeviceAllocationsWithin1Point6x) {
  const Scenario sc = Tiny();
  for (const int64_t micro : {1, 4, 16}) {
    for (const int64_t ep : {1, 2}) {
      CpuDevice<float> dev;
      Expected<ModelConfig> cfg = ModelConfigFromSpec(sc.model);
      ASSERT_TRUE(cfg.ok());
      Expected<std::unique_ptr<Transformer<float>>> model =
          Transformer<float>::Create(*cfg, micro, ep, 0, &dev);
      ASSERT_TRUE(model.ok()) << model.status().message();
      MemoryEstimateInput in;
      in.micro_batch_seqs = micro;
      in.local_seqs = 16;
      in.expert_parallel = ep;
      const MemoryEstimate e = EstimateTrainMemory(sc.model, in);
      const auto allocated = static_cast<double>(dev.allocated_bytes());
      EXPECT_GE(e.device_bytes(), allocated) << "micro " << micro << " ep " << ep;
      EXPECT_LE(e.device_bytes(), 1.6 * allocated) << "micro " << micro << " ep " << ep;
      EXPECT_EQ(e.total_params, static_cast<double>(cfg->NumParams()));
      const double params = static_cast<double>((*model)->params().total_count()) * 4;
      EXPECT_GE(e.params_bytes, params);
      EXPECT_LE(e.params_bytes, 1.2 * params);
    }
  }
}

TEST(MemoryEstimate, NumLayers100000000IsRefusedQuicklyWithTheEstimate) {
  Scenario sc = Tiny();
  sc.model.num_layers = 100000000;
  CpuDevice<float> dev;
  SelfComm self(&dev);
  TrainOptions o;
  o.steps = 1;
  const auto t0 = std::chrono::steady_clock::now();
  Expected<TrainResult> r = Train(sc, o, &dev, &self, nullptr);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidInput);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("model.num_layers=100000000"), std::string::npos) << m;
  EXPECT_NE(m.find("needs an estimated"), std::string::npos) << m;
  EXPECT_NE(m.find("TiB (parameters"), std::string::npos) << m;
  EXPECT_EQ(dev.allocated_bytes(), 0);
  EXPECT_LT(s, 5.0);
}

TEST(MemoryEstimate, MaxMemory1000RefusesTheTinyModelAndEnoughTrainsIt) {
  const Scenario sc = Tiny();
  CpuDevice<float> dev;
  SelfComm self(&dev);
  TrainOptions o;
  o.steps = 1;
  o.max_memory_bytes = 1000;
  Expected<TrainResult> r = Train(sc, o, &dev, &self, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidInput);
  EXPECT_NE(r.status().message().find("more than --max-memory 1000 (1000 B)"), std::string::npos)
      << r.status().message();
  o.max_memory_bytes = int64_t{1} << 30;
  r = Train(sc, o, &dev, &self, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->steps.size(), 1u);
}

TEST(TrainOptionsRange, LogEvery0AndOtherOutOfRangeOptionsAreBadInputInTheLibrary) {
  const Scenario sc = Tiny();
  CpuDevice<float> dev;
  SelfComm self(&dev);
  TrainOptions o;
  o.steps = 2;
  o.log_every = 0;
  Expected<TrainResult> r = Train(sc, o, &dev, &self, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidInput);
  EXPECT_EQ(r.status().message(), "--log-every 0: must be in [1, 1000000000000]");

  auto refused = [](TrainOptions t, const std::string& expected) {
    const Status st = ValidateTrainOptions(t);
    EXPECT_EQ(st.code(), Status::Code::kInvalidInput) << expected;
    EXPECT_EQ(st.message().rfind(expected, 0), 0u) << st.message();
  };
  TrainOptions t;
  EXPECT_TRUE(ValidateTrainOptions(t).ok());
  t.trace_warmup = INT64_MAX;
  refused(t, "--trace-warmup 9223372036854775807: must be in [0, 1000000000000]");
  t = TrainOptions();
  t.expert_parallel = int64_t{1} << 32;
  refused(t, "--expert-parallel 4294967296");
  t = TrainOptions();
  t.steps = 0;
  refused(t, "--steps 0");
  t = TrainOptions();
  t.micro_batch_seqs = -1;
  refused(t, "--micro-batch -1");
  t = TrainOptions();
  t.optimizer.beta2 = 1;
  refused(t, "--beta2 1: must be a number in [0, 1)");
}

}  // namespace
}  // namespace moesim::real
