// fp8.h (internal to costmodel/)
//
// FP8 training as Transformer Engine runs it under Megatron-Core (moesim.proto
// Training.fp8_recipe; NVIDIA Transformer Engine docs, "Using FP8 with Transformer Engine"):
// which GEMMs of a layer run in FP8, what the quantization kernels around them cost, and the
// bytes FP8 saves or adds in memory. One owner for all three.
//
// Invariants: with Fp8Recipe::kNone every function here is the identity (returns 0 or leaves
// the ops untouched), so a BF16 scenario is unaffected. Units: bytes, bytes per element.
#pragma once

#include <string>
#include <vector>

#include "proto/scenario.h"

namespace moesim {

struct OpDesc;  // step_plan.h

// Bytes one cast kernel moves per element of the tensor it quantizes: it reads BF16 (2) and
// writes two FP8 copies, row-wise for the forward/input-gradient GEMM and column-wise for the
// weight-gradient GEMM (1 + 1; Hopper's FP8 GEMMs take only the TN layout, MXFP8's scales run
// along one direction); TENSORWISE (current scaling) first reads the tensor for its amax (+2);
// BLOCKWISE adds one fp32 scale per 128 elements per copy and MXFP8 one E8M0 byte per 32 per
// copy (+1/16 each). 0 for kNone.
double Fp8CastBytesPerElement(Fp8Recipe recipe);

// The forward cast of a GEMM input a norm has just written, per element: what Transformer
// Engine's norm kernels leave to a separate quantize (TransformerEngine
// transformer_engine/pytorch/csrc/extensions/normalization.cpp, its choice of Impl): DELAYED
// writes FP8 from the norm (fully fused: 0); TENSORWISE (current scaling) computes the amax in
// the norm and quantizes after (the cast without its amax pass: 4); BLOCKWISE (a block
// quantizer) and MXFP8 (fused only with cuDNN under NVTE_NORM_FWD_USE_CUDNN, off by default)
// norm in BF16, then quantize (the whole cast). 0 for kNone.
double Fp8CastAfterNormBytesPerElement(Fp8Recipe recipe);

// A GEMM the recipe runs in FP8: a linear layer's (a matmul with a weight) other than the
// router, the output head and the MTP projection, which Megatron-Core builds outside Transformer
// Engine. Attention's core has no weight and stays BF16.
bool RunsInFp8(const OpDesc& d);

// Marks the FP8 GEMMs of one layer's forward ops (ComputeWork::fp8; operand bytes at 1 per
// element, output at 2) and inserts the cast kernels: before each run of FP8 GEMMs that share
// an input (q, k, v; w1, w3) one "<gemm>.fp8_cast" op quantizing that input (after a norm, at
// Fp8CastAfterNormBytesPerElement); its backward casts the output gradients of every GEMM of
// the run. Where the forward cast is fused into the norm (DELAYED), the output gradients' casts
// run as a backward-only op. `act_bytes` is the BF16 activation size (2).
void ApplyFp8(Fp8Recipe recipe, int64_t act_bytes, std::vector<OpDesc>* ops);

// Saved activations Transformer Engine keeps in FP8 for the weight gradient (1 byte instead of
// the activations' precision): the inputs of the FP8 GEMMs ("attn.normed", "ffn.normed",
// "ffn.act", "moe.expert_in", "moe.act", "moe.shared_act").
bool SavedInFp8(Fp8Recipe recipe, const std::string& tensor_name);

// The FP8 weight cache: each FP8 GEMM's weight quantized once per step (the first micro-batch)
// and kept, row- and column-wise: bytes per parameter of those weights (2; 0 for kNone).
double Fp8WeightCacheBytesPerParam(Fp8Recipe recipe);

}  // namespace moesim
