#include <gtest/gtest.h>

#include "costmodel/costmodel.h"

namespace moesim {
namespace {

TEST(Einsum, MatmulCostsTwoFlopsPerMultiplyAdd) {
  // [4,5] x [5,6]: 4*5*6 = 120 multiply-adds = 240 FLOPs.
  auto f = EinsumFlops("ab,bc->ac", {{'a', 4}, {'b', 5}, {'c', 6}});
  ASSERT_TRUE(f.ok());
  EXPECT_DOUBLE_EQ(*f, 240);
}

TEST(Einsum, GroupedQueryScoresCountEveryQueryHead) {
  // 2 kv heads x 4 query heads each = 8 heads, head_dim 16, 32 queries x 32 keys, batch 1:
  // 2 * 8 * 16 * 32 * 32 = 262,144.
  auto f = EinsumFlops("bskrd,btkd->bkrst",
                       {{'b', 1}, {'s', 32}, {'t', 32}, {'k', 2}, {'r', 4}, {'d', 16}});
  ASSERT_TRUE(f.ok());
  EXPECT_DOUBLE_EQ(*f, 262144);
}

TEST(Einsum, MalformedSpecsAreErrors) {
  EXPECT_EQ(EinsumFlops("ab,bc", {{'a', 1}, {'b', 1}, {'c', 1}}).status().message(),
            "einsum \"ab,bc\": missing \"->\"");
  EXPECT_EQ(EinsumFlops("ab->az", {{'a', 1}, {'b', 1}}).status().message(),
            "einsum \"ab->az\": output label 'z' is not in any input");
  EXPECT_EQ(EinsumFlops("ab->a", {{'a', 1}}).status().message(),
            "einsum \"ab->a\": no size for label 'b'");
}

TEST(Einsum, EveryCatalogueSpecIsWellFormed) {
  ModelSpec m;
  m.num_layers = 2;
  m.d_model = 8;
  m.num_heads = 4;
  m.num_kv_heads = 2;
  m.head_dim = 2;
  m.d_ff = 16;
  m.vocab_size = 10;
  m.seq_len = 4;
  m.moe.num_experts = 4;
  m.moe.top_k = 2;
  m.moe.expert_d_ff = 8;
  m.moe.num_shared_experts = 1;
  const DimSizes sizes = LabelSizes(m, 1, 4, 8);
  for (LayerKind kind : {LayerKind::kDense, LayerKind::kMoe}) {
    for (const Einsum& e : LayerForwardEinsums(m, kind)) {
      EXPECT_TRUE(EinsumFlops(e.spec, sizes).ok()) << e.name;
    }
  }
}

TEST(ModelCost, MoeCountsTopKExpertsPerToken) {
  // One MoE layer of 4 experts, top-2, SwiGLU expert hidden 8, d_model 8, router included:
  // per token forward = router 2*8*4 = 64 + top_k * 3 matrices * 2*8*8 = 2*384 = 768.
  ModelSpec m;
  m.num_layers = 1;
  m.d_model = 8;
  m.num_heads = 2;
  m.num_kv_heads = 2;
  m.head_dim = 4;
  m.d_ff = 8;
  m.vocab_size = 10;
  m.seq_len = 4;
  m.moe.num_experts = 4;
  m.moe.top_k = 2;
  m.moe.expert_d_ff = 8;
  m.moe.placement_k = 1;
  const ModelCost c = ComputeModelCost(m, TrainingSpec{});
  EXPECT_DOUBLE_EQ(c.flops_per_token.forward_by_op.at("moe.router"), 64);
  EXPECT_DOUBLE_EQ(c.flops_per_token.forward_by_op.at("moe.w1") +
                       c.flops_per_token.forward_by_op.at("moe.w2") +
                       c.flops_per_token.forward_by_op.at("moe.w3"),
                   768);
  // Parameters: 4 experts x 3*8*8 = 768 total; activated counts 2 of them (384).
  EXPECT_DOUBLE_EQ(c.params.per_expert, 192);
  EXPECT_DOUBLE_EQ(c.params.total - c.params.activated, 2 * 192);
}

}  // namespace
}  // namespace moesim
