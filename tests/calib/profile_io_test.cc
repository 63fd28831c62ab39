// Profile files: what `moesim calibrate --out` writes, `validate-real --profile` reads back,
// kernel efficiencies included, and a bad entry named.
#include "calib/profile_io.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "proto/hardware_profiles.h"

namespace moesim::calib {
namespace {

using ::testing::HasSubstr;

std::string Write(const std::string& name, const std::string& text) {
  const std::string path = (std::filesystem::path(::testing::TempDir()) / name).string();
  std::ofstream(path) << text;
  return path;
}

TEST(ProfileIo, KernelEfficienciesRoundTrip) {
  Calibration c;
  c.profile = *BuiltinHardwareProfile("cpu");
  c.profile.memory_efficiency = 0.1;
  c.profile.kernel_memory_efficiency[static_cast<size_t>(MemoryKernel::kSoftmax)] = 0.004;
  c.profile.kernel_memory_efficiency[static_cast<size_t>(MemoryKernel::kCopy)] = 0.25;
  c.kernel_rms_rel[static_cast<size_t>(MemoryKernel::kSoftmax)] = 0.07;
  const std::string path = Write("p.textproto", ProfileText(ProfileMessage(c), "fitted"));
  Expected<pb::Hardware> msg = ReadProfileMessage(path);
  ASSERT_TRUE(msg.ok()) << msg.status().message();
  ASSERT_EQ(msg->kernel_memory_efficiency_size(), 2);  // only the measured kernels
  EXPECT_EQ(msg->kernel_memory_efficiency(0).kernel(), "copy");
  EXPECT_EQ(msg->kernel_memory_efficiency(1).kernel(), "softmax");
  EXPECT_EQ(msg->kernel_memory_efficiency(1).rms_relative_residual(), 0.07);
  Expected<HardwareProfile> p = ResolveProfile(*msg);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->MemoryEfficiency(MemoryKernel::kSoftmax), 0.004);
  EXPECT_EQ(p->MemoryEfficiency(MemoryKernel::kCopy), 0.25);
  EXPECT_EQ(p->MemoryEfficiency(MemoryKernel::kRmsnorm), 0.1);  // not measured: the fallback
}

TEST(ProfileIo, BadEntriesAreNamedWithTheirLines) {
  const std::string path = Write("bad.textproto",
                                 "chip: \"cpu\"\n"
                                 "kernel_memory_efficiency { kernel: \"exp\" efficiency: 0.1 }\n"
                                 "kernel_memory_efficiency { kernel: \"copy\" efficiency: 0 }\n"
                                 "matmul_efficiency: 1.5\n"
                                 "link_latency_s: -1e-06\n"
                                 "memory_efficiency: nan\n");
  Expected<pb::Hardware> msg = ReadProfileMessage(path);
  ASSERT_FALSE(msg.ok());
  EXPECT_EQ(msg.status().message(),
            path + ":4: matmul_efficiency=1.5 must be in (0, 1]\n" +      //
                path + ":6: memory_efficiency=nan must be in (0, 1]\n" +  //
                path + ":5: link_latency_s=-1e-06 must be >= 0\n" +       //
                path +
                ":2: kernel_memory_efficiency[0].kernel=\"exp\" is not a kernel (copy, axpy, "
                "swiglu, rmsnorm, softmax, adamw, fp8_cast)\n" +
                path + ":3: kernel_memory_efficiency[1].efficiency=0 must be in (0, 1]");
}

TEST(ProfileIo, UnknownChipInAFileIsNamedWithItsLine) {
  const std::string path = Write("chip.textproto", "\nchip: \"tpu-v9\"\n");
  Expected<pb::Hardware> msg = ReadProfileMessage(path);
  ASSERT_FALSE(msg.ok());
  EXPECT_THAT(msg.status().message(), HasSubstr(path + ":2: chip: unknown chip \"tpu-v9\""));
}

// A message built in code (no file, no lines) gets the same checks from ResolveProfile.
TEST(ProfileIo, ResolveRefusesWhatAScenarioRefuses) {
  pb::Hardware h;
  h.set_chip("cpu");
  h.set_gemm_max_efficiency(0.9);
  h.set_gemm_m_half(-64);
  h.set_devices_per_host(-2);
  Expected<HardwareProfile> p = ResolveProfile(h);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "devices_per_host=-2 must be >= 0; gemm_m_half=-64 must be >= 0");
  h.set_gemm_m_half(64);
  h.set_devices_per_host(0);  // not given: the built-in value stays
  p = ResolveProfile(h);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->gemm_max_efficiency, 0.9);
  EXPECT_EQ(p->gemm_m_half, 64);
  EXPECT_EQ(p->devices_per_host, BuiltinHardwareProfile("cpu")->devices_per_host);
}

}  // namespace
}  // namespace moesim::calib
