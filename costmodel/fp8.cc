#include "costmodel/fp8.h"

#include <algorithm>
#include <array>

#include "costmodel/step_plan.h"

namespace moesim {

double Fp8CastBytesPerElement(Fp8Recipe recipe) {
  constexpr double kRead = 2, kTwoCopies = 2, kAmaxPass = 2, kScales = 1.0 / 16;
  switch (recipe) {
    case Fp8Recipe::kNone:
      return 0;
    case Fp8Recipe::kDelayed:
      return kRead + kTwoCopies;
    case Fp8Recipe::kTensorwise:
      return kRead + kTwoCopies + kAmaxPass;
    case Fp8Recipe::kBlockwise:
    case Fp8Recipe::kMxfp8:
      return kRead + kTwoCopies + kScales;
  }
  return 0;
}

double Fp8CastAfterNormBytesPerElement(Fp8Recipe recipe) {
  constexpr double kAmaxPass = 2;
  switch (recipe) {
    case Fp8Recipe::kNone:
    case Fp8Recipe::kDelayed:
      return 0;
    case Fp8Recipe::kTensorwise:
      return Fp8CastBytesPerElement(recipe) - kAmaxPass;
    case Fp8Recipe::kBlockwise:
    case Fp8Recipe::kMxfp8:
      return Fp8CastBytesPerElement(recipe);
  }
  return 0;
}

bool RunsInFp8(const OpDesc& d) {
  if (d.is_collective || !d.compute.matmul || !d.matmul_with_weight) return false;
  const std::string& n = d.name;
  return n != "moe.router" && n.rfind("head.", 0) != 0 && n != "mtp.proj";
}

namespace {

// Elements of the GEMM's first operand (its input) and of its output, from the shape
// (step_plan.cc Matmul: batch labels folded into m, so the output is m x n).
double InputElements(const ComputeWork& w) {
  return static_cast<double>(w.m) * static_cast<double>(w.k);
}
double OutputElements(const ComputeWork& w) {
  return static_cast<double>(w.m) * static_cast<double>(w.n);
}

}  // namespace

void ApplyFp8(Fp8Recipe recipe, int64_t act_bytes, std::vector<OpDesc>* ops) {
  if (recipe == Fp8Recipe::kNone) return;
  const double cast = Fp8CastBytesPerElement(recipe);
  const double eb = static_cast<double>(act_bytes);
  std::vector<OpDesc> out;
  out.reserve(ops->size() * 2);
  const OpDesc* last_compute = nullptr;  // the compute op before, in `ops`
  for (size_t i = 0; i < ops->size();) {
    const OpDesc& d = (*ops)[i];
    if (!RunsInFp8(d)) {
      out.push_back(d);
      if (!d.is_collective && !d.ring) last_compute = &d;
      ++i;
      continue;
    }
    // A run of FP8 GEMMs on one input: same rows and inner size, one after the other.
    size_t j = i + 1;
    while (j < ops->size() && RunsInFp8((*ops)[j]) && (*ops)[j].compute.m == d.compute.m &&
           (*ops)[j].compute.k == d.compute.k) {
      ++j;
    }
    double grads = 0;
    for (size_t r = i; r < j; ++r) grads += OutputElements((*ops)[r].compute) * cast;
    const bool after_norm = last_compute != nullptr && last_compute->compute.kernel &&
                            *last_compute->compute.kernel == MemoryKernel::kRmsnorm;
    const double forward =
        InputElements(d.compute) * (after_norm ? Fp8CastAfterNormBytesPerElement(recipe) : cast);
    OpDesc c;
    c.name = d.name + ".fp8_cast";
    c.compute.kernel = MemoryKernel::kFp8Cast;
    if (forward == 0) {
      // The norm writes FP8; only the output gradients are cast, in backward (their bytes as
      // they are: not OpDesc's default backward factor of 2).
      c.compute.bytes = grads;
      c.backward_bytes_factor = 1;
      c.passes = Passes::kBackwardOnly;
    } else {
      c.compute.bytes = forward;
      c.backward_bytes_factor = grads / c.compute.bytes;
    }
    out.push_back(c);
    for (size_t r = i; r < j; ++r) {
      OpDesc g = (*ops)[r];
      ComputeWork& w = g.compute;
      // Operands in FP8 (1 byte), the output in BF16.
      const double operands = std::max(0.0, w.bytes / eb - OutputElements(w));
      w.bytes = operands + OutputElements(w) * eb;
      w.fp8 = true;
      w.fp8_block_scaled = recipe == Fp8Recipe::kBlockwise || recipe == Fp8Recipe::kMxfp8;
      out.push_back(std::move(g));
    }
    last_compute = nullptr;
    i = j;
  }
  *ops = std::move(out);
}

bool SavedInFp8(Fp8Recipe recipe, const std::string& tensor_name) {
  if (recipe == Fp8Recipe::kNone) return false;
  static const std::array<const char*, 6> kNames = {
      "attn.normed", "ffn.normed", "ffn.act", "moe.expert_in", "moe.act", "moe.shared_act"};
  return std::find(kNames.begin(), kNames.end(), tensor_name) != kNames.end();
}

double Fp8WeightCacheBytesPerParam(Fp8Recipe recipe) { return recipe == Fp8Recipe::kNone ? 0 : 2; }

}  // namespace moesim
