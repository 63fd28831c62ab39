// `moesim simulate --maxtext "..."`: MaxText config overrides on the command line, the line of
// overrides `simulate` prints for a MaxText-form scenario, and bad keys exiting 2 with the key.
#include <gtest/gtest.h>

#include <string>

#include "tests/run_command.h"

namespace {

using moesim::test_cli::Moesim;
using moesim::test_cli::RunResult;

const std::string kMixtral =
    std::string(MOESIM_SOURCE_DIR) + "/scenarios/mixtral/mixtral-8x22b-v6e-256.textproto";

TEST(MaxTextCli, PrintedOverridesReadBackToTheSameLine) {
  const std::string line =
      "maxtext      ici_fsdp_parallelism=64 ici_expert_parallelism=4 dcn_data_parallelism=1 "
      "per_device_batch_size=8 max_target_length=4096 remat_policy=full\n";
  const RunResult plain = Moesim("simulate " + kMixtral);
  ASSERT_EQ(plain.exit_code, 0) << plain.out;
  EXPECT_NE(plain.out.find(line), std::string::npos) << plain.out;
  // Another layout through --maxtext: 32 x 8, 4 sequences per chip (1,024 per step).
  const RunResult other = Moesim("simulate " + kMixtral +
                                 " --maxtext 'ici_fsdp_parallelism=32 ici_expert_parallelism=8 "
                                 "per_device_batch_size=4'");
  ASSERT_EQ(other.exit_code, 0) << other.out;
  EXPECT_NE(other.out.find("CUSTOM mesh (fsdp 32, expert 8)"), std::string::npos) << other.out;
  EXPECT_NE(other.out.find("maxtext      ici_fsdp_parallelism=32 ici_expert_parallelism=8 "
                           "dcn_data_parallelism=1 per_device_batch_size=4 "),
            std::string::npos)
      << other.out;
}

TEST(MaxTextCli, BadKeysExitTwoNamingTheKey) {
  const RunResult unknown = Moesim("simulate " + kMixtral + " --maxtext 'steps=5' 2>&1");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.out.find("--maxtext steps=5: not a MaxText key moesim reads"),
            std::string::npos)
      << unknown.out;
  const RunResult product =
      Moesim("simulate " + kMixtral + " --maxtext 'ici_expert_parallelism=8' 2>&1");
  EXPECT_EQ(product.exit_code, 2);
  EXPECT_NE(product.out.find("ici_fsdp_parallelism=64 x ici_expert_parallelism=8 multiply to 512"),
            std::string::npos)
      << product.out;
}

}  // namespace
