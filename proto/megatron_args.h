// megatron_args.h
//
// Megatron-LM command-line arguments out of a scenario and back in, so that a configuration
// moesim found can be launched, and a launch command can be simulated.
//
// Flag names are Megatron-LM's megatron/training/arguments.py (NVIDIA/Megatron-LM, tag
// core_r0.14.0): --tensor-model-parallel-size, --context-parallel-size,
// --pipeline-model-parallel-size, --expert-model-parallel-size, --expert-tensor-parallel-size,
// --sequence-parallel, --tp-comm-overlap, --num-virtual-stages-per-pipeline-rank (or the older
// --num-layers-per-virtual-pipeline-stage), --pipeline-model-parallel-layout,
// --decoder-first-pipeline-num-layers, --decoder-last-pipeline-num-layers,
// --use-distributed-optimizer, --use-megatron-fsdp with --data-parallel-sharding-strategy
// optim_grads_params, --micro-batch-size, --global-batch-size (sequences), --seq-length,
// --recompute-granularity full|selective with --recompute-method uniform --recompute-num-layers 1,
// --bf16, --optimizer adam|sgd, and the model's --num-layers, --hidden-size, --ffn-hidden-size,
// --num-attention-heads, --group-query-attention --num-query-groups, --kv-channels,
// --max-position-embeddings, --vocab-size, --swiglu, --normalization RMSNorm,
// --position-embedding-type rope, --untie-embeddings-and-output-weights, --disable-bias-linear,
// --num-experts, --moe-router-topk, --moe-ffn-hidden-size, --moe-shared-expert-intermediate-size,
// --moe-layer-freq, --moe-token-dispatcher-type alltoall|allgather|flex with
// --moe-flex-dispatcher-backend deepep|hybridep (or the older --moe-enable-deepep),
// --moe-router-num-groups, --moe-router-group-topk, --moe-shared-expert-overlap,
// --moe-expert-capacity-factor (left out: dropless; given: model.moe.capacity_convention
// MEGATRON), --moe-pad-expert-input-to-capacity,
// --multi-latent-attention with --q-lora-rank, --kv-lora-rank, --qk-head-dim,
// --qk-pos-emb-head-dim, --v-head-dim, and --mtp-num-layers. Megatron-LM takes at most one of
// the layout, --num-virtual-stages-per-pipeline-rank and --num-layers-per-virtual-pipeline-stage
// (a layout implies its virtual stages).
//
// Invariant: for a scenario S in the megatron form with permutation dispatch, loading S's file with
// the overrides that ParseMegatronArgs returns for MegatronArgs(S) gives S again (same mesh, roles,
// micro-batch, recomputation, step); what has no Megatron-LM argument (routing shares, hardware,
// cluster) stays as the file has it. Thread safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "proto/scenario.h"

namespace moesim {

// The arguments of `scenario` (loaded from a scenario with sharding.megatron), one token per
// entry: {"--tensor-model-parallel-size", "2", "--sequence-parallel", ...}. Errors
// (kInvalidInput): the scenario is not in the megatron form; its pipeline schedule is GPIPE (not
// one of Megatron-LM's).
Expected<std::vector<std::string>> MegatronArgs(const Scenario& scenario);

// Whether `scenario` was written in the megatron form (sharding.megatron); *first_last (when not
// null) = whether it places layers with training.first_stage_layers / last_stage_layers.
bool UsesMegatronForm(const Scenario& scenario, bool* first_last = nullptr);

// The tokens as one line for a shell: tokens with characters a shell would read are single-quoted.
std::string JoinShellArgs(const std::vector<std::string>& tokens);

struct MegatronImport {
  std::vector<std::string> overrides;  // "sharding.megatron.tensor=2", ... in a fixed order
  std::vector<std::string> ignored;    // flags moesim does not model ("--lr 3e-4"), as written
  std::vector<std::string> notes;      // where moesim's model differs from what was asked
};

// Parses a Megatron-LM argument string (shell quoting, backslash-newline continuations, `--a=b`
// and `--a b` forms) into `--set` overrides. The parallel and training flags describe the whole
// configuration: a size left out is Megatron-LM's default (1; expert tensor = tensor), the
// distributed optimizer, FSDP and recomputation are off unless given. The model's flags are read
// when given (--num-layers or --hidden-size present: then --swiglu and the other switches left
// out are off, as in Megatron-LM). Errors (kInvalidInput) name the flag: a value that is not a
// number, a flag without its value, --global-batch-size without --seq-length,
// --num-layers-per-virtual-pipeline-stage without --num-layers and --pipeline-model-parallel-size,
// a layout that does not parse.
Expected<MegatronImport> ParseMegatronArgs(const std::string& text);

}  // namespace moesim
