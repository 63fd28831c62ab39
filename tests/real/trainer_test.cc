// The training loop's parts on one rank: micro-batching (gradient accumulation) against one big
// batch, the data source (synthetic and text, slices independent of the rank layout), and
// checkpoints (exact round trip, corruption detected).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "proto/scenario_loader.h"
#include "real/comm/self_comm.h"
#include "real/kernels/cpu_device.h"
#include "real/train/checkpoint.h"
#include "real/train/data.h"
#include "real/train/trainer.h"

namespace moesim::real {
namespace {

namespace fs = std::filesystem;

Scenario Tiny() {
  LoadOptions lo;
  lo.path = std::string(MOESIM_SOURCE_DIR) + "/tests/real/tiny-moe.textproto";
  Expected<Scenario> sc = LoadScenario(lo);
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  return *sc;
}

TEST(Trainer, MicroBatchesAccumulateToTheWholeBatchsTrajectory) {
  const Scenario sc = Tiny();
  CpuDevice<float> dev;
  SelfComm self(&dev);
  TrainOptions o;
  o.steps = 6;
  Expected<TrainResult> whole = Train(sc, o, &dev, &self, nullptr);
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  o.micro_batch_seqs = 4;  // 16 sequences in 4 micro-batches
  Expected<TrainResult> micro = Train(sc, o, &dev, &self, nullptr);
  ASSERT_TRUE(micro.ok()) << micro.status().message();
  for (size_t i = 0; i < whole->steps.size(); ++i) {
    EXPECT_NEAR(micro->steps[i].loss, whole->steps[i].loss, 1e-5 * whole->steps[i].loss) << i;
  }
}

TEST(Trainer, BatchThatDoesNotSplitIsBadInput) {
  const Scenario sc = Tiny();
  CpuDevice<float> dev;
  SelfComm self(&dev);
  TrainOptions o;
  o.micro_batch_seqs = 5;
  Expected<TrainResult> r = Train(sc, o, &dev, &self, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidInput);
  EXPECT_EQ(r.status().message(), "--micro-batch 5 does not divide the 16 sequences per rank");
}

TEST(Data, SyntheticSlicesDoNotDependOnTheRankLayout) {
  auto a = DataSource::Create("", 7, 50, 6);
  auto b = DataSource::Create("", 7, 50, 6);
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<int32_t> ta, ga, tb, gb;
  a->NextBatch(8, 0, 8, &ta, &ga);
  b->NextBatch(8, 2, 3, &tb, &gb);  // sequences 2, 3, 4 only
  ASSERT_EQ(tb.size(), 18u);
  for (size_t i = 0; i < tb.size(); ++i) {
    EXPECT_EQ(tb[i], ta[12 + i]);
    EXPECT_EQ(gb[i], ga[12 + i]);
  }
  // Targets are the next tokens.
  for (int64_t s = 0; s < 8; ++s) {
    for (int64_t t = 0; t + 1 < 6; ++t)
      EXPECT_EQ(ga[static_cast<size_t>(s * 6 + t)], ta[static_cast<size_t>(s * 6 + t + 1)]);
  }
  EXPECT_EQ(a->state().sequences_drawn, 8);
  // The generator state is the position: a copy continues identically.
  auto c = DataSource::Create("", 7, 50, 6);
  ASSERT_TRUE(c.ok());
  c->set_state(a->state());
  std::vector<int32_t> t1, g1, t2, g2;
  a->NextBatch(4, 0, 4, &t1, &g1);
  c->NextBatch(4, 0, 4, &t2, &g2);
  EXPECT_EQ(t1, t2);
}

TEST(Data, TextIsReadAsBytes) {
  const fs::path p = fs::temp_directory_path() / "moesim_real_bytes.txt";
  {
    std::ofstream out(p, std::ios::binary);
    for (int i = 0; i < 200; ++i) out.put(static_cast<char>(i));  // bytes 0, 1, ..., 199
  }
  auto d = DataSource::Create(p.string(), 1, 256, 5);
  ASSERT_TRUE(d.ok()) << d.status().message();
  std::vector<int32_t> t, g;
  d->NextBatch(4, 0, 4, &t, &g);
  // Every sequence is a window of the file: consecutive bytes, and targets = tokens + 1.
  for (int64_t s = 0; s < 4; ++s) {
    for (int64_t i = 0; i < 5; ++i) {
      const size_t k = static_cast<size_t>(s * 5 + i);
      EXPECT_EQ(g[k], t[k] + 1);
      if (i > 0) {
        EXPECT_EQ(t[k], t[k - 1] + 1);
      }
    }
  }
  auto small = DataSource::Create(p.string(), 1, 100, 5);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("needs model.vocab_size >= 256 (got 100)"),
            std::string::npos);
}

TEST(Checkpoint, RoundTripIsExactAndCorruptionIsDetected) {
  CpuDevice<float> dev;
  ParamSet<float> ps;
  ParamEntry e;
  e.name = "w";
  e.count = 100;
  ps.Add(e);
  ASSERT_TRUE(ps.Allocate(&dev).ok());
  ps.Initialize(&dev, 3);
  for (int64_t i = 0; i < 100; ++i) {
    ps.moment1().data()[i] = static_cast<float>(i) * 0.5f;
    ps.moment2().data()[i] = static_cast<float>(i) * 0.25f;
  }
  const std::vector<float> p0 = ps.params().Download(), m0 = ps.moment1().Download(),
                           v0 = ps.moment2().Download();
  const std::string dir = (fs::temp_directory_path() / "moesim_real_ck_test").string();
  fs::remove_all(dir);
  CheckpointMeta meta;
  meta.step = 12;
  meta.schedule_steps = 40;
  meta.seed = 5;
  meta.data = {0xDEADBEEFCAFEF00DULL, 192};
  ASSERT_TRUE(SaveCheckpoint(dir, meta, ps, nullptr).ok());
  dev.Fill(ps.params().data(), ps.params().size(), 0.0f);
  dev.Fill(ps.moment1().data(), ps.moment1().size(), 0.0f);
  Expected<CheckpointMeta> back = LoadCheckpoint(dir, ps, nullptr);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->step, 12);
  EXPECT_EQ(back->schedule_steps, 40);
  EXPECT_EQ(back->data.rng_state, 0xDEADBEEFCAFEF00DULL);
  EXPECT_EQ(back->data.sequences_drawn, 192);
  EXPECT_EQ(ps.params().Download(), p0);
  EXPECT_EQ(ps.moment1().Download(), m0);
  EXPECT_EQ(ps.moment2().Download(), v0);
  {  // Flip one byte of the data.
    std::fstream f(dir + "/rank-00000.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-20, std::ios::end);
    f.put('\x7f');
  }
  Expected<CheckpointMeta> bad = LoadCheckpoint(dir, ps, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("checksum mismatch"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace moesim::real
