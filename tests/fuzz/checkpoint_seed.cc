// checkpoint_seed OUT_DIR: writes seeds for the checkpoint harness: real checkpoints
// (SaveCheckpoint) of the layout in checkpoint_layout.h, fp32 and fp64, each as one input
// (meta.json, the marker line, rank-00000.bin). scripts/fuzz.sh runs it before fuzzing.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "real/train/checkpoint.h"
#include "tests/fuzz/checkpoint_layout.h"

namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename T>
bool WriteSeed(const fs::path& out_dir, const std::string& name) {
  moesim::fuzz::CheckpointParams<T> p;
  const fs::path dir = out_dir / (name + ".dir");
  moesim::real::CheckpointMeta meta;
  meta.step = 3;
  meta.schedule_steps = 10;
  meta.seed = 7;
  meta.data = {0x0123456789ABCDEFULL, 24};
  meta.notes = "fuzz seed";
  const moesim::Status st = moesim::real::SaveCheckpoint(dir.string(), meta, p.params, nullptr);
  if (!st.ok()) {
    std::fprintf(stderr, "checkpoint_seed: %s\n", st.message().c_str());
    return false;
  }
  std::ofstream out(out_dir / name, std::ios::binary | std::ios::trunc);
  out << Slurp(dir / "meta.json") << moesim::fuzz::kRankFileMarker << Slurp(dir / "rank-00000.bin");
  fs::remove_all(dir);
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: checkpoint_seed OUT_DIR\n");
    return 2;
  }
  const fs::path out_dir = argv[1];
  fs::create_directories(out_dir);
  const bool ok = WriteSeed<float>(out_dir, "fp32.ckpt") && WriteSeed<double>(out_dir, "fp64.ckpt");
  return ok ? 0 : 1;
}
