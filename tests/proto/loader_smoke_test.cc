#include <gtest/gtest.h>

#include "proto/scenario_loader.h"

namespace moesim {
namespace {

TEST(DefaultScenario, LoadsAsApple2024Moe) {
  auto sc = LoadScenario({});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  EXPECT_EQ(sc->model.moe.num_experts, 64);
  EXPECT_EQ(sc->cluster.num_devices, 256);
  EXPECT_EQ(sc->sharding.mesh[MeshAxis::kExpert], 64);
}

}  // namespace
}  // namespace moesim
