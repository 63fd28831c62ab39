#include "real/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "common/system_memory.h"
#include "real/layers/model_config.h"
#include "real/layers/transformer.h"
#include "real/limits.h"
#include "real/profiler.h"
#include "real/train/checkpoint.h"
#include "real/train/data.h"
#include "real/train/memory_estimate.h"

namespace moesim::real {
namespace {

using Clock = std::chrono::steady_clock;

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string Exact(double v) { return Fmt("%.17g", v); }

template <typename T>
void Poison(Transformer<T>& model) {
  for (const ParamEntry& e : model.params().entries()) {
    if (e.name != "final.norm") continue;
    const std::vector<T> nan(1, std::numeric_limits<T>::quiet_NaN());
    model.device()->UploadBytes(nan.data(), model.params().params().data() + e.offset,
                                static_cast<int64_t>(sizeof(T)));
  }
}

Status IntRange(const char* option, int64_t v, int64_t lo, int64_t hi) {
  if (v >= lo && v <= hi) return Status::Ok();
  return Status::InvalidInput(std::string(option) + " " + std::to_string(v) + ": must be in [" +
                              std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

// lo <= v (< hi when hi_open, else <= hi), and finite.
Status RealRange(const char* option, double v, double lo, double hi, bool hi_open = false) {
  if (std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi)) return Status::Ok();
  return Status::InvalidInput(std::string(option) + " " + Fmt("%g", v) + ": must be a number in [" +
                              Fmt("%g", lo) + ", " + Fmt("%g", hi) + (hi_open ? ")" : "]"));
}

// Refuses a run whose estimated memory exceeds the limit, before anything is allocated.
Status CheckMemory(const Scenario& sc, const TrainOptions& o, bool gpu, int64_t micro,
                   int64_t local_seqs, int64_t scalar_bytes) {
  MemoryEstimateInput in;
  in.micro_batch_seqs = micro;
  in.local_seqs = local_seqs;
  in.expert_parallel = o.expert_parallel;
  in.scalar_bytes = scalar_bytes;
  if (!o.data_path.empty()) {
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(o.data_path, ec);
    if (!ec) in.data_bytes = static_cast<int64_t>(std::min<uintmax_t>(size, INT64_MAX));
  }
  const MemoryEstimate e = EstimateTrainMemory(sc.model, in);
  const double needed = gpu ? e.host_bytes : e.total_bytes();
  if (o.max_memory_bytes > 0) {
    return CheckMemoryEstimate(e, needed, static_cast<double>(o.max_memory_bytes),
                               "--max-memory " + std::to_string(o.max_memory_bytes) + " (" +
                                   FormatBytes(static_cast<double>(o.max_memory_bytes)) + ")");
  }
  const double physical = PhysicalMemoryBytes();
  if (physical <= 0) return Status::Ok();
  return CheckMemoryEstimate(
      e, needed, physical,
      "the " + FormatBytes(physical) + " of physical memory" + (gpu ? " (host part)" : ""));
}

}  // namespace

Status ValidateTrainOptions(const TrainOptions& o) {
  MOESIM_RETURN_IF_ERROR(IntRange("--steps", o.steps, 1, kMaxSteps));
  MOESIM_RETURN_IF_ERROR(IntRange("--schedule-steps", o.schedule_steps, 0, kMaxSteps));
  MOESIM_RETURN_IF_ERROR(IntRange("--micro-batch", o.micro_batch_seqs, 0, kMaxMicroBatch));
  MOESIM_RETURN_IF_ERROR(IntRange("--expert-parallel", o.expert_parallel, 1, kMaxRanks));
  MOESIM_RETURN_IF_ERROR(IntRange("--trace-warmup", o.trace_warmup, 0, kMaxSteps));
  MOESIM_RETURN_IF_ERROR(IntRange("--trace-steps", o.trace_steps, 1, kMaxSteps));
  MOESIM_RETURN_IF_ERROR(IntRange("--checkpoint-every", o.checkpoint_every, 0, kMaxSteps));
  MOESIM_RETURN_IF_ERROR(IntRange("--log-every", o.log_every, 1, kMaxSteps));
  MOESIM_RETURN_IF_ERROR(IntRange("--warmup", o.optimizer.warmup_steps, 0, kMaxSteps));
  MOESIM_RETURN_IF_ERROR(IntRange("--max-memory", o.max_memory_bytes, 0, INT64_MAX));
  MOESIM_RETURN_IF_ERROR(IntRange("--debug-poison-step", o.poison_step, -1, kMaxSteps));
  MOESIM_RETURN_IF_ERROR(IntRange("--debug-comm-error-step", o.comm_error_step, -1, kMaxSteps));
  const double inf = std::numeric_limits<double>::max();
  MOESIM_RETURN_IF_ERROR(RealRange("--lr", o.optimizer.lr, 0, inf));
  MOESIM_RETURN_IF_ERROR(RealRange("--min-lr-ratio", o.optimizer.min_lr_ratio, 0, 1));
  MOESIM_RETURN_IF_ERROR(RealRange("--weight-decay", o.optimizer.weight_decay, 0, inf));
  MOESIM_RETURN_IF_ERROR(RealRange("--clip", o.optimizer.clip_norm, 0, inf));
  MOESIM_RETURN_IF_ERROR(RealRange("--beta1", o.optimizer.beta1, 0, 1, /*hi_open=*/true));
  MOESIM_RETURN_IF_ERROR(RealRange("--beta2", o.optimizer.beta2, 0, 1, /*hi_open=*/true));
  MOESIM_RETURN_IF_ERROR(RealRange("optimizer eps", o.optimizer.eps, 1e-300, inf));
  MOESIM_RETURN_IF_ERROR(RealRange("--aux-loss", o.aux_loss_coef, 0, inf));
  MOESIM_RETURN_IF_ERROR(RealRange("--z-loss", o.z_loss_coef, 0, inf));
  return Status::Ok();
}

template <typename T>
Expected<TrainResult> Train(const Scenario& scenario, const TrainOptions& o, Device<T>* dev,
                            Comm* comm, std::ostream* log) {
  const int rank = comm->rank(), world = comm->size();
  const bool chief = rank == 0;
  MOESIM_RETURN_IF_ERROR(ValidateTrainOptions(o));
  if (comm->expert_size() != o.expert_parallel) {
    return Status::Internal("communicator expert size differs from --expert-parallel");
  }
  const int64_t seq = scenario.model.seq_len;
  const int64_t gbt = scenario.training.global_batch_tokens;
  if (seq <= 0 || gbt <= 0) {
    return Status::InvalidInput("model.seq_len and training.global_batch_tokens must be > 0");
  }
  if (gbt % seq != 0) {
    return Status::InvalidInput("training.global_batch_tokens=" + std::to_string(gbt) +
                                " is not a multiple of model.seq_len=" + std::to_string(seq));
  }
  const int64_t global_seqs = gbt / seq;
  if (global_seqs % world != 0) {
    return Status::InvalidInput("the global batch of " + std::to_string(global_seqs) +
                                " sequences does not split over " + std::to_string(world) +
                                " ranks");
  }
  const int64_t local_seqs = global_seqs / world;
  const int64_t micro = o.micro_batch_seqs > 0 ? o.micro_batch_seqs : local_seqs;
  if (local_seqs % micro != 0) {
    return Status::InvalidInput("--micro-batch " + std::to_string(micro) + " does not divide the " +
                                std::to_string(local_seqs) + " sequences per rank");
  }
  const int64_t num_micro = local_seqs / micro;
  MOESIM_RETURN_IF_ERROR(
      CheckMemory(scenario, o, dev->IsGpu(), micro, local_seqs, static_cast<int64_t>(sizeof(T))));
  Expected<ModelConfig> cfg_or = ModelConfigFromSpec(scenario.model);
  if (!cfg_or.ok()) return cfg_or.status();
  ModelConfig cfg = *cfg_or;
  cfg.aux_loss_coef = o.aux_loss_coef;
  cfg.z_loss_coef = o.z_loss_coef;
  if (cfg.is_moe() && cfg.num_experts % o.expert_parallel != 0) {
    return Status::InvalidInput(
        "--expert-parallel " + std::to_string(o.expert_parallel) +
        " does not divide model.moe.num_experts=" + std::to_string(cfg.num_experts));
  }

  Expected<std::unique_ptr<Transformer<T>>> model_or =
      Transformer<T>::Create(cfg, micro, o.expert_parallel, comm->expert_rank(), dev);
  if (!model_or.ok()) return model_or.status();
  Transformer<T>& model = **model_or;
  model.Initialize(o.seed);

  Expected<DataSource> data_or = DataSource::Create(o.data_path, o.seed, cfg.vocab_size, seq);
  if (!data_or.ok()) return data_or.status();
  DataSource& data = *data_or;

  int64_t step = 0;
  OptimizerConfig opt = o.optimizer;
  opt.total_steps = o.schedule_steps > 0 ? o.schedule_steps : o.steps;
  if (!o.resume_dir.empty()) {
    Expected<CheckpointMeta> meta = LoadCheckpoint(o.resume_dir, model.params(), comm);
    if (!meta.ok()) return meta.status();
    step = meta->step;
    data.set_state(meta->data);
    if (o.schedule_steps == 0 && meta->schedule_steps > 0) opt.total_steps = meta->schedule_steps;
    if (chief && log) *log << "resumed from " << o.resume_dir << " at step " << step << "\n";
  }

  TrainResult result;
  result.params = cfg.NumParams();
  result.activated_params = cfg.NumActivatedParams();
  result.model_flops_per_token = cfg.TrainFlopsPerToken();
  result.device = dev->Name();
  result.comm = comm->Name();
  if (chief && log) {
    *log << "moesim-real: " << scenario.name << " (" << cfg.NumParams() << " parameters, "
         << cfg.NumActivatedParams() << " activated)\n"
         << "  device " << dev->Name() << ", " << world << " rank(s) via " << comm->Name()
         << ", expert parallel " << o.expert_parallel << "\n"
         << "  global batch " << global_seqs << " x " << seq << " tokens, " << local_seqs
         << " sequences per rank in " << num_micro << " micro-batch(es); data " << data.Describe()
         << "\n"
         << "  activations "
         << Fmt("%.1f", static_cast<double>(model.activation_bytes()) / (1 << 20))
         << " MiB per rank\n";
  }

  // Output paths that cannot work are refused before training, not after it.
  if (!o.trace_path.empty() && step + o.trace_warmup >= o.steps) {
    return Status::InvalidInput("--trace: no step would be traced (steps " + std::to_string(step) +
                                ".." + std::to_string(o.steps) + ", --trace-warmup " +
                                std::to_string(o.trace_warmup) + ")");
  }
  if (!o.checkpoint_dir.empty()) {
    std::error_code ec;
    if (std::filesystem::exists(o.checkpoint_dir, ec) &&
        !std::filesystem::is_directory(o.checkpoint_dir, ec)) {
      return Status::InvalidInput("--checkpoint " + o.checkpoint_dir + ": not a directory");
    }
  }
  std::ofstream metrics;
  if (chief && !o.metrics_path.empty()) {
    metrics.open(o.metrics_path, std::ios::trunc);
    if (!metrics) return Status::InvalidInput(o.metrics_path + ": cannot open for writing");
  }

  Profiler prof(dev);
  const bool tracing = !o.trace_path.empty();
  const int64_t first_step = step;
  const int64_t trace_begin = first_step + o.trace_warmup;
  const int64_t trace_end = trace_begin + o.trace_steps;
  Clock::time_point trace_origin{};
  bool trace_started = false;
  std::vector<int32_t> tokens, targets, mtok, mtgt;
  const int64_t mtokens = micro * seq;

  for (; step < o.steps; ++step) {
    const bool record = tracing && step >= trace_begin && step < trace_end;
    MOESIM_RETURN_IF_ERROR(dev->Synchronize());
    MOESIM_RETURN_IF_ERROR(comm->Barrier());
    const Clock::time_point t0 = Clock::now();
    if (record && !trace_started) {
      trace_origin = t0;
      trace_started = true;
    }
    prof.BeginStep(step, record, std::chrono::duration<double>(t0 - trace_origin).count());
    Profiler* p = record ? &prof : nullptr;
    if (step == o.poison_step) Poison(model);
    if (step == o.comm_error_step && rank == world - 1) {
      MOESIM_RETURN_IF_ERROR(comm->DebugFailingCall());
    }

    data.NextBatch(global_seqs, rank * local_seqs, local_seqs, &tokens, &targets);
    double parts[4] = {0, 0, 0, 0};  // ce, aux, lb, dropped fraction
    for (int64_t mb = 0; mb < num_micro; ++mb) {
      mtok.assign(tokens.begin() + mb * mtokens, tokens.begin() + (mb + 1) * mtokens);
      mtgt.assign(targets.begin() + mb * mtokens, targets.begin() + (mb + 1) * mtokens);
      prof.set_micro_batch(mb);
      Expected<LossParts> l =
          model.Forward(comm, p, mtok, mtgt, 1.0 / static_cast<double>(num_micro));
      if (!l.ok()) return l.status();
      parts[0] += l->cross_entropy;
      parts[1] += l->aux;
      parts[2] += l->load_balance;
      parts[3] += l->assignments > 0
                      ? static_cast<double>(l->dropped) / static_cast<double>(l->assignments)
                      : 0.0;
      MOESIM_RETURN_IF_ERROR(model.Backward(comm, p));
    }
    prof.set_micro_batch(-1);
    MOESIM_RETURN_IF_ERROR(AllReduceGradients(model.params(), comm, p));
    MOESIM_RETURN_IF_ERROR(comm->AllReduceHost(parts, 4, Group::kWorld));
    const double scale = 1.0 / static_cast<double>(num_micro * world);
    StepLog s;
    s.step = step + 1;
    s.cross_entropy = parts[0] * scale;
    s.aux = parts[1] * scale;
    s.load_balance = parts[2] * scale;
    s.dropped_fraction = parts[3] * scale;
    s.loss = s.cross_entropy + s.aux;
    if (!std::isfinite(s.loss)) {
      std::string kept = o.checkpoint_dir.empty()
                             ? "no checkpoint directory was given"
                             : "the last good checkpoint in " + o.checkpoint_dir + " is kept";
      return Status::Internal("step " + std::to_string(step + 1) + ": loss is " +
                              (std::isnan(s.loss) ? "NaN" : "infinite") +
                              "; stopping before the optimizer step (" + kept + ")");
    }
    Expected<OptimizerStats> st = OptimizerStep(model.params(), dev, comm, opt, step, p);
    if (!st.ok()) return st.status();
    MOESIM_RETURN_IF_ERROR(dev->Synchronize());
    const Clock::time_point t1 = Clock::now();
    MOESIM_RETURN_IF_ERROR(prof.EndStep());
    s.lr = st->lr;
    s.grad_norm = st->grad_norm;
    s.step_time_s = std::chrono::duration<double>(t1 - t0).count();
    s.tokens_per_s = static_cast<double>(gbt) / s.step_time_s;
    if (dev->PeakFlopsPerS() > 0) {
      s.mfu = s.tokens_per_s * result.model_flops_per_token / (dev->PeakFlopsPerS() * world);
    }
    result.steps.push_back(s);

    if (chief && log && (s.step % o.log_every == 0 || s.step == o.steps)) {
      *log << "step " << s.step << "/" << o.steps << "  loss " << Fmt("%.4f", s.loss) << " (ce "
           << Fmt("%.4f", s.cross_entropy) << " aux " << Fmt("%.4f", s.aux) << ")  lr "
           << Fmt("%.2e", s.lr) << "  grad_norm " << Fmt("%.3f", s.grad_norm) << "  "
           << Fmt("%.1f", s.step_time_s * 1e3) << " ms  " << Fmt("%.0f", s.tokens_per_s)
           << " tokens/s";
      if (s.mfu > 0) *log << "  MFU " << Fmt("%.1f", 100 * s.mfu) << "%";
      if (cfg.is_moe()) *log << "  dropped " << Fmt("%.1f", 100 * s.dropped_fraction) << "%";
      *log << "\n";
    }
    if (metrics.is_open()) {
      metrics << "{\"step\": " << s.step << ", \"loss\": " << Exact(s.loss)
              << ", \"cross_entropy\": " << Exact(s.cross_entropy) << ", \"aux\": " << Exact(s.aux)
              << ", \"load_balance\": " << Exact(s.load_balance)
              << ", \"dropped_fraction\": " << Exact(s.dropped_fraction)
              << ", \"lr\": " << Exact(s.lr) << ", \"grad_norm\": " << Exact(s.grad_norm)
              << ", \"step_time_s\": " << Exact(s.step_time_s)
              << ", \"tokens_per_s\": " << Exact(s.tokens_per_s) << ", \"mfu\": " << Exact(s.mfu)
              << "}\n";
      metrics.flush();
    }
    const bool last = s.step == o.steps;
    if (!o.checkpoint_dir.empty() &&
        (last || (o.checkpoint_every > 0 && s.step % o.checkpoint_every == 0))) {
      CheckpointMeta meta;
      meta.step = s.step;
      meta.schedule_steps = opt.total_steps;
      meta.world = world;
      meta.expert_parallel = static_cast<int>(o.expert_parallel);
      meta.seed = o.seed;
      meta.data = data.state();
      meta.notes = scenario.name;
      MOESIM_RETURN_IF_ERROR(SaveCheckpoint(o.checkpoint_dir, meta, model.params(), comm));
    }
  }

  if (tracing) {
    std::vector<std::string> all;
    MOESIM_RETURN_IF_ERROR(comm->GatherStrings(EncodeEvents(prof.events()), &all));
    if (chief) {
      std::vector<std::vector<TraceEvent>> per_rank;
      for (const std::string& text : all) {
        Expected<std::vector<TraceEvent>> ev = DecodeEvents(text);
        if (!ev.ok()) return ev.status();
        per_rank.push_back(std::move(*ev));
      }
      if (per_rank.empty() || per_rank[0].empty()) {
        return Status::InvalidInput("--trace: no step was traced (steps " +
                                    std::to_string(first_step) + ".." + std::to_string(o.steps) +
                                    ", warm-up " + std::to_string(o.trace_warmup) + ")");
      }
      MOESIM_RETURN_IF_ERROR(WriteChromeTrace(
          o.trace_path, per_rank,
          {{"scenario", scenario.name},
           {"device", dev->Name()},
           {"comm", comm->Name()},
           {"ranks", std::to_string(world)},
           {"expert_parallel", std::to_string(o.expert_parallel)},
           {"micro_batch_sequences", std::to_string(micro)},
           {"traced_steps", std::to_string(trace_begin) + ".." + std::to_string(trace_end - 1)}}));
      if (log) *log << "trace: " << o.trace_path << "\n";
    }
  }
  return result;
}

template Expected<TrainResult> Train<float>(const Scenario&, const TrainOptions&, Device<float>*,
                                            Comm*, std::ostream*);
template Expected<TrainResult> Train<double>(const Scenario&, const TrainOptions&, Device<double>*,
                                             Comm*, std::ostream*);

}  // namespace moesim::real
