#include "proto/validate.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/checked_math.h"
#include "common/limits.h"
#include "proto/checker.h"
#include "proto/hardware_profiles.h"
#include "proto/sharding_presets.h"
#include "proto/topology_file_reader.h"
#include "proto/topology_name.h"

namespace moesim {
namespace {

// routing HISTOGRAM: reads the file (moesim.proto Moe.routing_histogram_file) into
// moe->expert_load (the counts, or the first row's) and, for one row per MoE layer,
// moe->layer_expert_load (each row normalized). False after c.Fail.
bool ReadHistogramFile(const std::string& file, const std::string& base_dir, int64_t moe_layers,
                       Checker& c, MoeSpec* moe) {
  const char* kField = "model.moe.routing_histogram_file";
  const auto n = static_cast<size_t>(moe->num_experts);
  const size_t layers = static_cast<size_t>(std::max<int64_t>(moe_layers, 1));
  if (file.empty()) {
    c.Fail(kField, "model.moe.routing_histogram_file is missing (required with routing HISTOGRAM)");
    return false;
  }
  std::filesystem::path p(file);
  if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
  std::ifstream in(p);
  if (!in) {
    c.Fail(kField, "model.moe.routing_histogram_file=\"" + file + "\": cannot open " + p.string());
    return false;
  }
  const std::string experts = " experts (model.moe.num_experts)";
  std::vector<std::vector<double>> rows;  // the numbers of each line that has any
  std::vector<int> row_line;
  size_t count = 0;
  const std::string kRows =
      " (model.moe.routing_histogram_file holds one row, or one per MoE layer)";
  // A row of other than n counts in a file of more than one histogram: fails it.
  auto ShortRowFails = [&] {
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].size() == n) continue;
      c.Fail(kField, p.string() + ":" + std::to_string(row_line[i]) + ": " +
                         std::to_string(rows[i].size()) + " counts for " + std::to_string(n) +
                         experts + ": a file of one histogram per MoE layer holds one row of " +
                         std::to_string(n) + " counts per line");
      return true;
    }
    return false;
  };
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string at = p.string() + ":" + std::to_string(line_no) + ": ";
    line = line.substr(0, line.find('#'));
    for (char& ch : line) {
      if (ch == ',') ch = ' ';
    }
    std::istringstream words(line);
    std::string word;
    bool new_row = true;
    while (words >> word) {
      char* end = nullptr;
      const double v = std::strtod(word.c_str(), &end);
      if (end != word.c_str() + word.size() || !(v >= 0) || !std::isfinite(v)) {
        c.Fail(kField, at + "\"" + word + "\" is not a non-negative number");
        return false;
      }
      if ((!new_row && rows.back().size() == n) || count == n * layers) {
        // Read no further than the MoE layers' experts need; no line holds more than n.
        if (layers == 1 || (!new_row && rows.back().size() == n)) {
          c.Fail(kField, at + "more than " + std::to_string(n) + " counts for " +
                             std::to_string(n) + experts);
        } else if (!ShortRowFails()) {
          c.Fail(kField, at + "more than " + std::to_string(layers) + " rows of " +
                             std::to_string(n) + " counts for " + std::to_string(layers) +
                             " MoE layers" + kRows);
        }
        return false;
      }
      if (new_row) {
        rows.emplace_back();
        row_line.push_back(line_no);
        new_row = false;
      }
      rows.back().push_back(v);
      ++count;
    }
  }
  if (count <= n) {  // one histogram, over any number of lines
    if (count < n) {
      c.Fail(kField, p.string() + " has " + std::to_string(count) + " counts for " +
                         std::to_string(n) + experts);
      return false;
    }
    std::vector<double> all;
    for (const auto& r : rows) all.insert(all.end(), r.begin(), r.end());
    rows.assign(1, all);
  } else {
    // One row (line) of num_experts counts per MoE layer.
    if (ShortRowFails()) return false;
    if (rows.size() != layers) {
      c.Fail(kField, p.string() + ":" + std::to_string(row_line.back()) + ": " +
                         std::to_string(rows.size()) + " rows for " + std::to_string(layers) +
                         " MoE layers" + kRows);
      return false;
    }
  }
  moe->layer_expert_load.clear();
  for (size_t i = 0; i < rows.size(); ++i) {
    double total = 0;
    for (double v : rows[i]) total += v;
    if (total <= 0) {
      c.Fail(kField, rows.size() == 1 ? std::string("routing histogram sums to 0")
                                      : p.string() + ":" + std::to_string(row_line[i]) +
                                            ": routing histogram sums to 0");
      return false;
    }
    if (rows.size() > 1) {
      moe->layer_expert_load.emplace_back();
      for (double v : rows[i]) moe->layer_expert_load.back().push_back(v / total);
    }
  }
  moe->expert_load = rows[0];  // normalized by the caller
  return true;
}

// Fills moe->expert_load from the routing fields (and moe->layer_expert_load from a per-layer
// histogram file). REQUIRES: moe->num_experts > 0; moe_layers: the model's MoE layers.
void ResolveRouting(const pb::Moe& e, const std::string& base_dir, int64_t moe_layers, Checker& c,
                    MoeSpec* moe) {
  const auto n = static_cast<size_t>(moe->num_experts);
  std::vector<double> w(n, 1.0);
  if (e.routing() == pb::Moe::LOGNORMAL) {
    const double sigma = e.routing_lognormal_sigma();
    if (!(sigma >= 0 && sigma <= limits::kMaxLogNormalSigma)) {  // NaN too
      c.Fail("model.moe.routing_lognormal_sigma",
             "model.moe.routing_lognormal_sigma=" + Num(sigma) + " must be in [0, " +
                 Num(limits::kMaxLogNormalSigma) + "]");
      return;
    }
    if (!e.dropless()) {
      c.Fail("model.moe.routing",
             "model.moe.routing=LOGNORMAL describes the load of dropless "
             "routing: set model.moe.dropless: true");
      return;
    }
    moe->rank_load_sigma = sigma;
  } else if (e.routing_lognormal_sigma() != 0) {
    c.Fail("model.moe.routing_lognormal_sigma",
           "model.moe.routing_lognormal_sigma is for model.moe.routing=LOGNORMAL only");
    return;
  }
  if (e.routing() == pb::Moe::ZIPF) {
    if (!(e.routing_zipf_exponent() >= 0) || !std::isfinite(e.routing_zipf_exponent())) {
      c.Fail("model.moe.routing_zipf_exponent",
             "model.moe.routing_zipf_exponent=" + Num(e.routing_zipf_exponent()) + " must be >= 0");
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      w[i] = std::pow(static_cast<double>(i + 1), -e.routing_zipf_exponent());
    }
  } else if (e.routing() == pb::Moe::HISTOGRAM) {
    if (!ReadHistogramFile(e.routing_histogram_file(), base_dir, moe_layers, c, moe)) return;
    w = moe->expert_load;
  }
  double total = 0;
  for (double v : w) total += v;
  if (total <= 0) {
    c.Fail("model.moe.routing_histogram_file", "routing histogram sums to 0");
    return;
  }
  moe->expert_load.clear();
  for (double v : w) moe->expert_load.push_back(v / total);
}

// model.moe.token_dispatcher and group-limited routing. REQUIRES moe->num_experts > 0.
void ValidateTokenDispatch(const pb::Moe& e, Checker& c, MoeSpec* moe) {
  switch (e.token_dispatcher()) {
    case pb::Moe::ALLGATHER:
      moe->token_dispatcher = TokenDispatcherKind::kAllGather;
      break;
    case pb::Moe::DEEPEP:
      moe->token_dispatcher = TokenDispatcherKind::kDeepEp;
      break;
    case pb::Moe::HYBRIDEP:
      moe->token_dispatcher = TokenDispatcherKind::kHybridEp;
      break;
    case pb::Moe::RAGGED_ALL_TO_ALL:
      moe->token_dispatcher = TokenDispatcherKind::kRaggedAllToAll;
      break;
    default:
      moe->token_dispatcher = TokenDispatcherKind::kAllToAll;
  }
  if (moe->token_dispatcher != TokenDispatcherKind::kAllToAll && e.dispatch() != pb::Moe::PERMUTE) {
    c.Fail("model.moe.token_dispatcher",
           "model.moe.token_dispatcher=" + pb::Moe::TokenDispatcher_Name(e.token_dispatcher()) +
               " exchanges permuted tokens: it needs model.moe.dispatch: PERMUTE");
  }
  const bool ragged = moe->token_dispatcher == TokenDispatcherKind::kRaggedAllToAll;
  if (ragged && !e.dropless()) {
    c.Fail("model.moe.token_dispatcher",
           "model.moe.token_dispatcher=RAGGED_ALL_TO_ALL is MaxText's sparse-matmul path, which "
           "has no expert capacity (its capacity_factor drops only in the dense_matmul path): set "
           "model.moe.dropless: true (ragged_buffer_factor bounds the receive buffer)");
  }
  const double f = e.ragged_buffer_factor();
  if (!(f >= 0 && f <= limits::kMaxCapacityFactor)) {  // NaN too
    c.Fail("model.moe.ragged_buffer_factor",
           "model.moe.ragged_buffer_factor=" + Num(f) + " must be in [0, " +
               Num(limits::kMaxCapacityFactor) + "] (0 = MaxText's default -1, the worst case)");
  } else if (f > 0 && !ragged) {
    c.Fail("model.moe.ragged_buffer_factor",
           "model.moe.ragged_buffer_factor sizes the receive buffer of "
           "model.moe.token_dispatcher=RAGGED_ALL_TO_ALL only");
  }
  moe->ragged_buffer_factor = std::max(0.0, f);
  c.NonNegative("model.moe.router_num_groups", e.router_num_groups());
  c.NonNegative("model.moe.router_group_topk", e.router_group_topk());
  const int64_t groups = e.router_num_groups(), topk = e.router_group_topk();
  if (groups == 0 && topk != 0) {
    c.Fail("model.moe.router_group_topk",
           "model.moe.router_group_topk=" + Num(topk) + " needs model.moe.router_num_groups");
  } else if (groups > 0) {
    if (e.num_experts() % groups != 0) {
      c.Fail("model.moe.router_num_groups",
             "model.moe.router_num_groups=" + Num(groups) +
                 " must divide model.moe.num_experts=" + Num(e.num_experts()));
    } else if (topk < 1 || topk > groups) {
      c.Fail("model.moe.router_group_topk",
             "model.moe.router_group_topk=" + Num(topk) +
                 " must be in [1, model.moe.router_num_groups=" + Num(groups) + "]");
    } else if (e.top_k() > topk * (e.num_experts() / groups)) {
      c.Fail("model.moe.top_k", "model.moe.top_k=" + Num(e.top_k()) + " exceeds the " +
                                    Num(topk * (e.num_experts() / groups)) +
                                    " experts of model.moe.router_group_topk groups");
    }
  }
  moe->router_num_groups = std::max<int64_t>(groups, 0);
  moe->router_group_topk = std::max<int64_t>(topk, 0);
}

// model.moe.capacity_convention: the stacks' conventions come with their own dispatch and
// capacity group (moesim.proto Moe.CapacityConvention). REQUIRES moe->num_experts > 0.
void ValidateCapacityConvention(const pb::Moe& e, Checker& c, MoeSpec* moe) {
  const pb::Moe::CapacityConvention cc = e.capacity_convention();
  switch (cc) {
    case pb::Moe::PER_TOKEN:
      moe->capacity_convention = CapacityConvention::kPerToken;
      break;
    case pb::Moe::MEGATRON:
      moe->capacity_convention = CapacityConvention::kMegatron;
      break;
    case pb::Moe::MAXTEXT:
      moe->capacity_convention = CapacityConvention::kMaxText;
      break;
    case pb::Moe::AXLEARN:
      moe->capacity_convention = CapacityConvention::kAxLearn;
      break;
    default:
      moe->capacity_convention = CapacityConvention::kPerRoutedToken;
  }
  // Whether the capacity counts the top_k copies of a token (moesim-real reads this).
  moe->capacity_per_routed_token = cc != pb::Moe::PER_TOKEN && cc != pb::Moe::AXLEARN;
  const std::string path = "model.moe.capacity_convention";
  const std::string name = "model.moe.capacity_convention=" + pb::Moe::CapacityConvention_Name(cc);
  const bool stack = cc == pb::Moe::MEGATRON || cc == pb::Moe::MAXTEXT || cc == pb::Moe::AXLEARN;
  if (stack && e.dropless()) {
    c.Fail(path, name +
                     " sizes an expert capacity, and model.moe.dropless has none: remove one of "
                     "them");
    return;
  }
  moe->pad_to_capacity = e.pad_expert_input_to_capacity();
  if (e.pad_expert_input_to_capacity() &&
      (cc != pb::Moe::MEGATRON || moe->token_dispatcher != TokenDispatcherKind::kAllToAll)) {
    c.Fail("model.moe.pad_expert_input_to_capacity",
           "model.moe.pad_expert_input_to_capacity pads Megatron-Core's all-to-all to its "
           "capacity: it needs model.moe.capacity_convention: MEGATRON and "
           "model.moe.token_dispatcher: ALLTOALL");
  }
  if (cc == pb::Moe::MEGATRON) {
    if (e.dispatch() != pb::Moe::PERMUTE) {
      c.Fail(path, name +
                       " drops on the sending rank before Megatron-Core's permuting "
                       "dispatch: it needs model.moe.dispatch: PERMUTE");
    }
    if (e.group_size_tokens() > 0 || e.num_groups() > 0) {
      c.Fail(e.num_groups() > 0 ? "model.moe.num_groups" : "model.moe.group_size_tokens",
             name +
                 ": the capacity group is the tokens of one rank; leave "
                 "model.moe.group_size_tokens and model.moe.num_groups unset");
    }
  } else if (cc == pb::Moe::MAXTEXT) {
    if (e.dispatch() == pb::Moe::PERMUTE) {
      c.Fail(path, name +
                       " is MaxText's dropping path (sparse_matmul: false), which dispatches "
                       "with einsums: it needs model.moe.dispatch: EINSUM (sparse_matmul: "
                       "true is model.moe.token_dispatcher: RAGGED_ALL_TO_ALL, dropless)");
    }
    if (e.group_size_tokens() > 0 || e.num_groups() > 0) {
      c.Fail(e.num_groups() > 0 ? "model.moe.num_groups" : "model.moe.group_size_tokens",
             name +
                 ": the capacity group is one sequence (model.seq_len); leave "
                 "model.moe.group_size_tokens and model.moe.num_groups unset");
    }
  }
}

// model.mla (moesim.proto Mla): with it, num_kv_heads and head_dim are implied by the MLA sizes.
void ValidateMla(const pb::Model& m, Checker& c, ModelSpec* out) {
  const pb::Mla& a = m.mla();
  const size_t before = c.count();
  c.NonNegative("model.mla.q_lora_rank", a.q_lora_rank());
  c.Positive("model.mla.kv_lora_rank", a.kv_lora_rank());
  c.Positive("model.mla.qk_rope_head_dim", a.qk_rope_head_dim());
  c.Positive("model.mla.qk_nope_head_dim", a.qk_nope_head_dim());
  c.Positive("model.mla.v_head_dim", a.v_head_dim());
  c.AtMost("model.mla.q_lora_rank", a.q_lora_rank(), limits::kMaxWidth);
  c.AtMost("model.mla.kv_lora_rank", a.kv_lora_rank(), limits::kMaxWidth);
  c.AtMost("model.mla.qk_rope_head_dim", a.qk_rope_head_dim(), limits::kMaxWidth);
  c.AtMost("model.mla.qk_nope_head_dim", a.qk_nope_head_dim(), limits::kMaxWidth);
  c.AtMost("model.mla.v_head_dim", a.v_head_dim(), limits::kMaxWidth);
  if (c.count() > before) return;
  if (a.qk_rope_head_dim() % 2 != 0) {
    c.Fail("model.mla.qk_rope_head_dim", "model.mla.qk_rope_head_dim=" + Num(a.qk_rope_head_dim()) +
                                             " must be even for RoPE (it rotates pairs)");
  }
  const int64_t qk = a.qk_nope_head_dim() + a.qk_rope_head_dim();  // both <= kMaxWidth
  if (m.num_kv_heads() != 0 && m.num_kv_heads() != m.num_heads()) {
    c.Fail("model.num_kv_heads", "model.num_kv_heads=" + Num(m.num_kv_heads()) +
                                     " must be 0 or model.num_heads=" + Num(m.num_heads()) +
                                     " with model.mla (every head's keys and values come from "
                                     "the shared latent)");
  }
  if (m.head_dim() != 0 && m.head_dim() != qk) {
    c.Fail("model.head_dim", "model.head_dim=" + Num(m.head_dim()) +
                                 " must be 0 or model.mla.qk_nope_head_dim + qk_rope_head_dim = " +
                                 Num(qk) + " with model.mla");
  }
  if (out->position_kind != PositionKind::kRope) {
    c.Fail("model.position_kind",
           "model.position_kind=LEARNED is not supported with model.mla (its decoupled key is "
           "rotary)");
  }
  MlaSpec& mla = out->mla;
  mla.enabled = true;
  mla.q_lora_rank = a.q_lora_rank();
  mla.kv_lora_rank = a.kv_lora_rank();
  mla.qk_rope_head_dim = a.qk_rope_head_dim();
  mla.qk_nope_head_dim = a.qk_nope_head_dim();
  mla.v_head_dim = a.v_head_dim();
  out->num_kv_heads = m.num_heads();
  out->head_dim = qk;
}

void ValidateModel(const pb::Model& m, const std::string& base_dir, Checker& c, ModelSpec* out) {
  out->name = m.name();
  c.Positive("model.num_layers", m.num_layers());
  c.Positive("model.d_model", m.d_model());
  c.Positive("model.num_heads", m.num_heads());
  c.NonNegative("model.num_kv_heads", m.num_kv_heads());
  c.NonNegative("model.head_dim", m.head_dim());
  c.Positive("model.d_ff", m.d_ff());
  c.Positive("model.vocab_size", m.vocab_size());
  c.Positive("model.seq_len", m.seq_len());
  // Limits first: nothing below is sized from a value past one.
  const size_t errors_before_limits = c.count();
  c.AtMost("model.num_layers", m.num_layers(), limits::kMaxLayers);
  c.AtMost("model.d_model", m.d_model(), limits::kMaxWidth);
  c.AtMost("model.num_heads", m.num_heads(), limits::kMaxHeads);
  c.AtMost("model.num_kv_heads", m.num_kv_heads(), limits::kMaxHeads);
  c.AtMost("model.head_dim", m.head_dim(), limits::kMaxWidth);
  c.AtMost("model.d_ff", m.d_ff(), limits::kMaxWidth);
  c.AtMost("model.vocab_size", m.vocab_size(), limits::kMaxVocab);
  c.AtMost("model.seq_len", m.seq_len(), limits::kMaxSeqLen);
  c.NonNegative("model.mtp_depth", m.mtp_depth());
  c.AtMost("model.mtp_depth", m.mtp_depth(), limits::kMaxLayers);
  const pb::Moe& limits_moe = m.moe();
  c.AtMost("model.moe.num_experts", limits_moe.num_experts(), limits::kMaxExperts);
  c.AtMost("model.moe.top_k", limits_moe.top_k(), limits::kMaxExperts);
  c.AtMost("model.moe.expert_d_ff", limits_moe.expert_d_ff(), limits::kMaxWidth);
  c.AtMost("model.moe.num_shared_experts", limits_moe.num_shared_experts(),
           limits::kMaxSharedExperts);
  c.AtMost("model.moe.placement_k", limits_moe.placement_k(), limits::kMaxLayers);
  c.AtMost("model.moe.group_size_tokens", limits_moe.group_size_tokens(),
           limits::kMaxGlobalBatchTokens);
  c.AtMost("model.moe.outer_batch", limits_moe.outer_batch(), limits::kMaxGlobalBatchTokens);
  c.AtMost("model.moe.num_groups", limits_moe.num_groups(), limits::kMaxGlobalBatchTokens);
  if (c.count() > errors_before_limits) return;
  if (m.ffn_kind() == pb::Model::FFN_KIND_UNSPECIFIED) {
    c.Fail("model.ffn_kind", "model.ffn_kind is missing (GELU or SWIGLU)");
  }
  out->num_layers = m.num_layers();
  out->d_model = m.d_model();
  out->num_heads = m.num_heads();
  out->d_ff = m.d_ff();
  out->vocab_size = m.vocab_size();
  out->seq_len = m.seq_len();
  out->ffn_kind = m.ffn_kind() == pb::Model::GELU ? FfnKind::kGelu : FfnKind::kSwiglu;
  const bool gpt = out->ffn_kind == FfnKind::kGelu;
  out->norm_kind =
      m.norm_kind() == pb::Model::NORM_KIND_UNSPECIFIED
          ? (gpt ? NormKind::kLayerNorm : NormKind::kRmsNorm)
          : (m.norm_kind() == pb::Model::LAYERNORM ? NormKind::kLayerNorm : NormKind::kRmsNorm);
  out->position_kind = m.position_kind() == pb::Model::POSITION_KIND_UNSPECIFIED
                           ? (gpt ? PositionKind::kLearned : PositionKind::kRope)
                           : (m.position_kind() == pb::Model::LEARNED ? PositionKind::kLearned
                                                                      : PositionKind::kRope);
  out->linear_bias = m.has_linear_bias() ? m.linear_bias() : gpt;
  out->tie_embeddings = m.tie_embeddings();
  out->mtp_depth = m.mtp_depth();

  if (m.num_heads() > 0 && m.num_kv_heads() > 0 && m.num_heads() % m.num_kv_heads() != 0) {
    c.Fail("model.num_kv_heads", "model.num_kv_heads=" + Num(m.num_kv_heads()) +
                                     " does not divide model.num_heads=" + Num(m.num_heads()));
  }
  out->num_kv_heads = m.num_kv_heads() > 0 ? m.num_kv_heads() : m.num_heads();
  if (m.has_mla()) {
    ValidateMla(m, c, out);
  } else if (m.head_dim() > 0) {
    out->head_dim = m.head_dim();
  } else if (m.num_heads() > 0 && m.d_model() > 0) {
    if (m.d_model() % m.num_heads() != 0) {
      c.Fail("model.num_heads", "model.num_heads=" + Num(m.num_heads()) +
                                    " does not divide model.d_model=" + Num(m.d_model()) +
                                    " (set model.head_dim to use other head sizes)");
    } else {
      out->head_dim = m.d_model() / m.num_heads();
    }
  }
  if (!m.has_mla() && out->position_kind == PositionKind::kRope && out->head_dim % 2 != 0) {
    // RoPE rotates pairs of dimensions; moesim-real refuses the model too.
    const bool given = m.head_dim() > 0;
    c.Fail(given ? "model.head_dim" : "model.num_heads",
           "model.head_dim=" + Num(out->head_dim) +
               (given ? "" : " (model.d_model / model.num_heads)") + " must be even for RoPE");
  }

  const pb::Moe& e = m.moe();
  MoeSpec& moe = out->moe;
  c.NonNegative("model.moe.num_experts", e.num_experts());
  moe.num_experts = std::max<int64_t>(e.num_experts(), 0);
  if (moe.num_experts == 0) return;
  c.Positive("model.moe.top_k", e.top_k());
  if (e.top_k() > e.num_experts()) {
    c.Fail("model.moe.top_k", "model.moe.top_k=" + Num(e.top_k()) +
                                  " exceeds model.moe.num_experts=" + Num(e.num_experts()));
  }
  moe.dropless = e.dropless();
  moe.fp8_dispatch = e.dispatch_precision() == pb::Moe::FP8;
  moe.shared_expert_overlap = e.shared_expert_overlap();
  ValidateTokenDispatch(e, c, &moe);
  if (e.shared_expert_overlap() && e.num_shared_experts() == 0) {
    c.Fail("model.moe.shared_expert_overlap",
           "model.moe.shared_expert_overlap overlaps the shared experts with the dispatch, and "
           "model.moe.num_shared_experts is 0");
  }
  if (e.dropless()) {
    if (e.dispatch() != pb::Moe::PERMUTE) {
      c.Fail("model.moe.dropless",
             "model.moe.dropless needs model.moe.dispatch: PERMUTE (einsum "
             "dispatch pads every expert to a capacity)");
    }
    if (e.capacity_factor() != 0) {
      c.Fail("model.moe.capacity_factor",
             "model.moe.capacity_factor=" + Num(e.capacity_factor()) +
                 " with model.moe.dropless: dropless routing has no capacity; leave it unset");
    }
  } else if (!(e.capacity_factor() <= limits::kMaxCapacityFactor)) {  // NaN too
    c.Fail("model.moe.capacity_factor", "model.moe.capacity_factor=" + Num(e.capacity_factor()) +
                                            " exceeds the limit of " +
                                            Num(limits::kMaxCapacityFactor) + " (docs/limits.md)");
  } else if (!e.dropless() && e.capacity_factor() <= 0) {
    c.Fail("model.moe.capacity_factor",
           e.capacity_factor() == 0 && !c.WasWritten("model.moe.capacity_factor")
               ? std::string("model.moe.capacity_factor is missing (must be > 0)")
               : "model.moe.capacity_factor=" + Num(e.capacity_factor()) + " must be > 0");
  }
  c.NonNegative("model.moe.expert_d_ff", e.expert_d_ff());
  c.NonNegative("model.moe.num_shared_experts", e.num_shared_experts());
  c.NonNegative("model.moe.group_size_tokens", e.group_size_tokens());
  c.NonNegative("model.moe.outer_batch", e.outer_batch());
  c.NonNegative("model.moe.num_groups", e.num_groups());
  moe.top_k = e.top_k();
  moe.capacity_factor = e.capacity_factor();
  moe.placement = e.placement() == pb::Moe::LAST_K          ? MoePlacement::kLastK
                  : e.placement() == pb::Moe::FIRST_K_DENSE ? MoePlacement::kFirstKDense
                                                            : MoePlacement::kEveryK;
  if (e.placement() == pb::Moe::PLACEMENT_UNSPECIFIED && e.placement_k() == 0) {
    moe.placement_k = 1;  // every layer is MoE
  } else {
    // FIRST_K_DENSE with 0 dense layers is every layer MoE; the other placements need K > 0.
    if (e.placement() == pb::Moe::FIRST_K_DENSE) {
      c.NonNegative("model.moe.placement_k", e.placement_k());
    } else {
      c.Positive("model.moe.placement_k", e.placement_k());
    }
    moe.placement_k = e.placement_k();
    if (m.num_layers() > 0 && e.placement_k() > m.num_layers()) {
      c.Fail("model.moe.placement_k", "model.moe.placement_k=" + Num(e.placement_k()) +
                                          " exceeds model.num_layers=" + Num(m.num_layers()));
    }
  }
  moe.expert_d_ff = e.expert_d_ff() > 0 ? e.expert_d_ff() : m.d_ff();
  moe.num_shared_experts = e.num_shared_experts();
  moe.omit_router_flops = e.omit_router_flops();
  moe.dispatch = e.dispatch() == pb::Moe::PERMUTE ? MoeDispatch::kPermute : MoeDispatch::kEinsum;
  moe.group_size_tokens = e.group_size_tokens() > 0 ? e.group_size_tokens() : m.seq_len();
  ValidateCapacityConvention(e, c, &moe);
  moe.num_groups_given = e.num_groups();
  // The MoE layers, as the placement above puts them; none while the placement or the layer
  // count is invalid (their errors are already reported).
  int64_t moe_layers = 0;
  const bool placement_ok =
      moe.placement == MoePlacement::kEveryK ? moe.placement_k > 0 : moe.placement_k >= 0;
  if (placement_ok && m.num_layers() > 0 && m.num_layers() <= limits::kMaxLayers) {
    ModelSpec placed;
    placed.num_layers = m.num_layers();
    placed.moe = moe;
    moe_layers = placed.NumMoeLayers();
  }
  ResolveRouting(e, base_dir, moe_layers, c, &moe);
}

void ValidateHardware(const pb::Hardware& h, const std::string& default_chip, Checker& c,
                      HardwareProfile* out) {
  const std::string chip = h.chip().empty() ? default_chip : h.chip();
  auto profile = BuiltinHardwareProfile(chip);
  if (!profile.ok()) {
    c.Fail("hardware.chip", "hardware.chip=\"" + chip + "\": " + profile.status().message());
  } else {
    *out = *profile;
  }
  for (const HardwareFieldError& e : ApplyHardwareFields(h, out)) {
    c.Fail("hardware." + e.field, "hardware." + e.field + e.detail);
  }
}

// Returns the chip of the topology, or "" after reporting an error.
std::string ValidateCluster(const pb::Cluster& cl, const std::string& base_dir, Checker& c,
                            ClusterSpec* out) {
  c.NonNegative("cluster.num_devices", cl.num_devices());
  c.AtMost("cluster.num_devices", cl.num_devices(), limits::kMaxDevices);
  if (static_cast<int64_t>(cl.topology().size()) > limits::kMaxPathLength) {
    c.Fail("cluster.topology", "cluster.topology is " + Num(int64_t(cl.topology().size())) +
                                   " characters long, past the limit of " +
                                   Num(limits::kMaxPathLength) + " (docs/limits.md)");
    return "";
  }
  if (cl.topology().empty()) {
    c.Fail("cluster.topology",
           std::string("cluster.topology is missing (") + TopologyNameForms() + ")");
    return "";
  }
  if (cl.topology().find(':') == std::string::npos) {
    // A file: resolved here, read by topologies/. The device count must then be given.
    std::filesystem::path p(cl.topology());
    if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
    std::error_code ec;  // a name too long for the file system is a name that is not a file
    if (!std::filesystem::exists(p, ec)) {
      c.Fail("cluster.topology", "cluster.topology=\"" + cl.topology() +
                                     "\" is neither a known topology name (" + TopologyNameForms() +
                                     ") nor an existing file");
      return "";
    }
    out->topology = p.lexically_normal().string();
    // The file says how many devices it has (and usually its chip): cluster.num_devices may be
    // left out, and must agree when given.
    auto file = ReadTopologyFile(out->topology);
    if (!file.ok()) {
      c.Fail("cluster.topology",
             "cluster.topology=\"" + cl.topology() + "\": " + file.status().message());
      return "";
    }
    auto devices = TopologyFileDevices(*file);
    if (!devices.ok()) {
      c.Fail("cluster.topology",
             "cluster.topology=\"" + cl.topology() + "\": " + devices.status().message());
      return "";
    }
    out->num_devices = *devices;
    if (cl.num_devices() > 0 && cl.num_devices() != *devices) {
      c.Fail("cluster.num_devices", "cluster.num_devices=" + Num(cl.num_devices()) +
                                        " does not match the " + Num(*devices) +
                                        " devices of cluster.topology=\"" + cl.topology() + "\"");
    }
    if (!file->file.chip().empty() || !file->file.base().empty()) {
      auto chip = TopologyFileChip(*file);
      if (!chip.ok()) {
        c.Fail("cluster.topology",
               "cluster.topology=\"" + cl.topology() + "\": " + chip.status().message());
        return "";
      }
      return *chip;
    }
    return "";
  }
  auto name = ParseTopologyName(cl.topology());
  if (!name.ok()) {
    c.Fail("cluster.topology",
           "cluster.topology=\"" + cl.topology() +
               "\": " + name.status().message().substr(name.status().message().find(": ") + 2));
    return "";
  }
  out->topology = cl.topology();
  out->num_devices = name->num_devices();
  if (cl.num_devices() > 0 && cl.num_devices() != name->num_devices()) {
    c.Fail("cluster.num_devices", "cluster.num_devices=" + Num(cl.num_devices()) +
                                      " does not match the " + Num(name->num_devices()) +
                                      " devices of cluster.topology=\"" + cl.topology() + "\"");
  }
  return name->chip;
}

// Weight tensors and a micro-batch's activations stay within limits::kMaxTensorElements, so
// that the cost model's products of sizes fit in int64 (checked here, with the sizes resolved).
void CheckTensorSizes(const ModelSpec& m, Checker& c) {
  const int64_t kMax = limits::kMaxTensorElements;
  auto check = [&](const char* path, std::initializer_list<int64_t> dims, const char* what) {
    if (ProductWithin(dims, kMax)) return;
    c.Fail(path, std::string(what) + " exceeds the limit of " + Num(kMax) +
                     " elements per tensor (docs/limits.md)");
  };
  check("model.d_model", {m.d_model, m.num_heads, m.head_dim},
        "the attention projection (model.d_model x model.num_heads x model.head_dim)");
  check("model.d_ff", {m.d_model, m.d_ff}, "the FFN weight (model.d_model x model.d_ff)");
  if (m.mla.enabled) {
    const MlaSpec& a = m.mla;
    check("model.mla.q_lora_rank", {a.q_lora_rank, m.num_heads, a.qk_head_dim()},
          "the MLA query up-projection (model.mla.q_lora_rank x model.num_heads x "
          "(qk_nope_head_dim + qk_rope_head_dim))");
    check("model.mla.kv_lora_rank",
          {a.kv_lora_rank, m.num_heads, a.qk_nope_head_dim + a.v_head_dim},
          "the MLA key/value up-projection (model.mla.kv_lora_rank x model.num_heads x "
          "(qk_nope_head_dim + v_head_dim))");
    check("model.mla.v_head_dim", {m.num_heads, a.v_head_dim, m.d_model},
          "the MLA output projection (model.num_heads x model.mla.v_head_dim x model.d_model)");
  }
  check("model.vocab_size", {m.d_model, m.vocab_size},
        "the embedding (model.d_model x model.vocab_size)");
  if (m.is_moe()) {
    check("model.moe.num_experts",
          {m.moe.num_experts + m.moe.num_shared_experts, m.d_model, m.moe.expert_d_ff},
          "one layer's experts ((model.moe.num_experts + num_shared_experts) x model.d_model x "
          "model.moe.expert_d_ff)");
  }
}

}  // namespace

// Defined in validate_sharding.cc. REQUIRES: out->model and out->cluster filled.
void ValidateShardingAndTraining(const pb::Scenario& in, Checker& c, Scenario* out);

Expected<Scenario> ValidateScenario(const pb::Scenario& in, const FieldLocator& locator,
                                    const std::string& base_dir) {
  Checker c(locator);
  Scenario out;
  out.name = in.name();
  out.description = in.description();
  out.source = locator.source();
  ValidateModel(in.model(), base_dir, c, &out.model);
  if (c.count() == 0) CheckTensorSizes(out.model, c);
  const std::string chip = ValidateCluster(in.cluster(), base_dir, c, &out.cluster);
  if (!chip.empty() || !in.hardware().chip().empty()) {
    ValidateHardware(in.hardware(), chip, c, &out.hardware);
  } else if (c.count() == 0) {
    // Located at the topology file that makes it necessary: the scenario has no chip line.
    c.Fail("cluster.topology",
           "hardware.chip is missing (required with a topology file that names no chip)");
  }
  // Sharding and training checks divide by model sizes: only run them on a sound model.
  if (c.count() == 0) ValidateShardingAndTraining(in, c, &out);
  if (c.count() > 0) return c.ToStatus();
  return out;
}

}  // namespace moesim
