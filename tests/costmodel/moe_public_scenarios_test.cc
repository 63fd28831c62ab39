// The Mixtral 8x22B and Qwen3-235B-A22B scenarios of scenarios/mixtral and scenarios/moe_public
// load and have the parameter totals their publishers report, within 1%: Mixtral 8x22B 141B
// total / 39B active (Mistral AI), Qwen3-235B-A22B 235B / 22B (Qwen). By hand for Mixtral: per
// layer attention 2 x 6144^2 + 2 x 6144 x 1024 = 88,080,384, experts 8 x 3 x 6144 x 16384 =
// 2,415,919,104, router 49,152, norms 12,288; x 56 layers + 2 x 32768 x 6144 embedding and head
// + 6144 final norm = 140,630,071,296; active: 2 experts instead of 8 -> 39,161,468,928.
#include <gtest/gtest.h>

#include "costmodel/costmodel.h"
#include "proto/scenario_loader.h"

namespace moesim {
namespace {

ParamCount Params(const std::string& rel) {
  auto sc = LoadScenario({std::string(MOESIM_SOURCE_DIR) + "/" + rel, {}});
  EXPECT_TRUE(sc.ok()) << sc.status().message();
  if (!sc.ok()) return {};
  return ComputeModelCost(sc->model, sc->training).params;
}

TEST(MoePublicScenarios, MixtralTotalsMatchPublished) {
  for (const char* f : {"scenarios/mixtral/mixtral-8x22b-v6e-256.textproto",
                        "scenarios/moe_public/mzoo-mixtral8x22b.textproto"}) {
    const ParamCount p = Params(f);
    EXPECT_DOUBLE_EQ(p.total, 140630071296.0) << f;
    EXPECT_DOUBLE_EQ(p.activated, 39161468928.0) << f;
    EXPECT_NEAR(p.total / 141e9, 1.0, 0.01) << f;
    EXPECT_NEAR(p.activated / 39e9, 1.0, 0.01) << f;
  }
}

TEST(MoePublicScenarios, Qwen3Gb200TotalsMatchPublished) {
  const ParamCount p = Params("scenarios/moe_public/mzoo-q3-gb200-4096-bf16.textproto");
  EXPECT_NEAR(p.total / 235e9, 1.0, 0.01);
  EXPECT_NEAR(p.activated / 22e9, 1.0, 0.01);
}

}  // namespace
}  // namespace moesim
