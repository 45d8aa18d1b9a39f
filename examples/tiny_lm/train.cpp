#include "examples/tiny_lm/train.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <ostream>
#include <sstream>

#include "examples/common/loss_plot.h"
#include "examples/tiny_lm/agreement.h"
#include "examples/tiny_lm/checkpointing.h"
#include "examples/tiny_lm/generate.h"
#include "examples/tiny_lm/limits.h"
#include "examples/tiny_lm/progress.h"
#include "examples/tiny_lm/resume.h"
#include "tapegrad/framework/check.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/optim/adam.h"
#include "tapegrad/optim/lr_scheduler.h"

namespace tg::tiny_lm {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

constexpr const char* kTrain = "tiny_lm train";

std::string megabytes(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f MB", bytes / 1e6);
  return buf;
}
constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max();
constexpr int64_t kMaxByteVocabulary = 256;   // a corpus has at most 256 distinct bytes
constexpr int64_t kMaxGradAccum = 1 << 16;     // micro-batches per iteration and process

void validate_model(const TrainOptions& o) {
  require_in_range(kTrain, "--block-size", o.block_size, 1, kMaxWidth);
  require_in_range(kTrain, "--batch-size", o.batch_size, 1, kMaxBatchSize);
  require_in_range(kTrain, "--grad-accum", o.grad_accum, 1, kMaxGradAccum);
  require_in_range(kTrain, "--n-layer", o.n_layer, 1, kMaxLayers);
  require_in_range(kTrain, "--n-embd", o.n_embd, 1, kMaxWidth);
  require_in_range(kTrain, "--n-head", o.n_head, 1, o.n_embd);
  require_flag(o.n_embd % o.n_head == 0, kTrain, "--n-embd", "a multiple of --n-head=" + std::to_string(o.n_head), o.n_embd);
  require_flag(o.dropout >= 0.0 && o.dropout < 1.0, kTrain, "--dropout", "in [0, 1)", o.dropout);
}

void validate_optimization(const TrainOptions& o) {
  require_in_range(kTrain, "--max-iters", o.max_iters, 1, kMaxCount);
  require_in_range(kTrain, "--warmup-iters", o.warmup_iters, 0, kMaxCount - 1);
  require_in_range(kTrain, "--lr-decay-iters", o.lr_decay_iters, o.warmup_iters + 1, kMaxCount);
  require_flag(std::isfinite(o.lr) && o.lr > 0, kTrain, "--lr", "finite and positive", o.lr);
  require_min_lr(kTrain, o.min_lr, o.lr);
  require_flag(std::isfinite(o.weight_decay) && o.weight_decay >= 0, kTrain, "--weight-decay", "finite and >= 0",
               o.weight_decay);
  require_flag(o.beta1 >= 0 && o.beta1 < 1, kTrain, "--beta1", "in [0, 1)", o.beta1);
  require_flag(o.beta2 >= 0 && o.beta2 < 1, kTrain, "--beta2", "in [0, 1)", o.beta2);
  require_flag(std::isfinite(o.grad_clip) && o.grad_clip >= 0, kTrain, "--grad-clip", "finite and >= 0 (0: off)",
               o.grad_clip);
}

void validate_run(const TrainOptions& o) {
  require_flag(!o.out_dir.empty(), kTrain, "--out-dir", "a folder name", "''");
  require_in_range(kTrain, "--eval-interval", o.eval_interval, 1, kMaxCount);
  require_in_range(kTrain, "--eval-iters", o.eval_iters, 1, kMaxCount);
  require_in_range(kTrain, "--threads", o.threads, 1, kMaxThreads);
  require_flag(o.stop_at >= -1, kTrain, "--stop-at", "-1 (off) or >= 0", o.stop_at);
}

// The whole model and run of one of `processes` processes against the limits, with the largest vocabulary
// a corpus can have. Every process draws the window starts of all K = --grad-accum x processes
// micro-batches of an iteration (BatchSampler::draw_starts): K x --batch-size of 8 bytes each.
void validate_size(const TrainOptions& o, int processes) {
  const TinyLMConfig c = model_config(o, kMaxByteVocabulary);
  const std::string got = "; got --n-layer=" + std::to_string(o.n_layer) + ", --n-embd=" + std::to_string(o.n_embd) +
                          ", --block-size=" + std::to_string(o.block_size);
  const double params = parameter_count(c);
  if (params > static_cast<double>(kMaxParameters))
    throw UsageError("[" + std::string(kTrain) + "] the model would have " + format_count(params) +
                     " parameters, more than the limit of " + std::to_string(kMaxParameters) +
                     "; reduce --n-layer, --n-embd or --block-size" + got);
  const double starts = static_cast<double>(o.grad_accum) * processes * static_cast<double>(o.batch_size);
  const double need = training_bytes(c, o.batch_size) + starts * sizeof(uint64_t), have = memory_limit_bytes();
  if (need > have)
    throw UsageError("[" + std::string(kTrain) + "] the run would need about " + format_gib(need) +
                     " (weights, gradients, AdamW state, the activations of --batch-size=" +
                     std::to_string(o.batch_size) + " sequences and the window starts of --grad-accum=" +
                     std::to_string(o.grad_accum) + " x " + std::to_string(processes) +
                     (processes == 1 ? " process" : " processes") + " x --batch-size=" + std::to_string(o.batch_size) +
                     ") but this machine has " + format_gib(have) +
                     "; reduce --batch-size, --grad-accum, --block-size, --n-embd or --n-layer" + got);
}

// Both splits must hold a window of block_size + 1 tokens after a random start.
void check_corpus_fits(const TrainOptions& o, const Corpus& corpus) {
  const int64_t shortest = static_cast<int64_t>(std::min(corpus.train.size(), corpus.val.size()));
  require_flag(o.block_size + 2 <= shortest, kTrain, "--block-size",
               "at most " + std::to_string(shortest - 2) + " for " + corpus.name + " (its validation split has " +
                   std::to_string(corpus.val.size()) + " tokens)",
               o.block_size);
}

}  // namespace

void TrainOptions::validate() const {
  validate_model(*this);
  validate_optimization(*this);
  validate_run(*this);
  validate_size(*this, 1);
}

TinyLMConfig model_config(const TrainOptions& o, int64_t vocab_size) {
  return {.vocab_size = vocab_size, .block_size = o.block_size, .n_layer = o.n_layer, .n_head = o.n_head,
          .n_embd = o.n_embd, .dim_feedforward = 4 * o.n_embd, .dropout = o.dropout,
          .activation = Activation::gelu, .layer_norm_eps = 1e-5, .norm_first = true,
          .head_bias = !o.tie_weights, .tie_weights = o.tie_weights};
}

Corpus training_corpus(const TrainOptions& o) { return o.data.empty() ? arithmetic_corpus(0) : load_corpus(o.data); }

double estimate_loss(TinyLM& model, BatchSampler& sampler, int64_t iters) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  double total = 0;
  for (int64_t i = 0; i < iters; ++i) {
    auto [x, y] = sampler.next();
    total += model.loss(x, y).item();
  }
  model.train(was_training);
  return total / static_cast<double>(iters);
}

double arithmetic_accuracy(TinyLM& model, const Corpus& corpus, int64_t n) {
  // Validation facts start at line boundaries of the validation text.
  std::vector<std::vector<int64_t>> prompts;
  std::vector<std::string> answers;
  const auto& val = corpus.val;
  const int64_t newline = corpus.vocab.encode("\n")[0];
  size_t start = 0;
  while (start < val.size() && val[start] != newline) ++start;
  for (size_t i = start + 1; i + kFactWidth <= val.size() && static_cast<int64_t>(prompts.size()) < n; i += kFactWidth) {
    prompts.emplace_back(val.begin() + static_cast<std::ptrdiff_t>(i - 1), val.begin() + static_cast<std::ptrdiff_t>(i + kFactPrompt));
    answers.push_back(corpus.vocab.decode({val.begin() + static_cast<std::ptrdiff_t>(i + kFactPrompt),
                                           val.begin() + static_cast<std::ptrdiff_t>(i + kFactWidth - 1)}));
  }
  // Eval mode: no dropout masks, so the evaluation neither perturbs the answers nor draws from the
  // training's dropout stream (which every process of an mpirun launch must advance alike).
  const bool was_training = model.is_training();
  model.eval();
  std::vector<std::vector<int64_t>> done = greedy_complete(model, prompts, kFactWidth - 1 - kFactPrompt);
  model.train(was_training);
  int64_t right = 0;
  for (size_t i = 0; i < done.size(); ++i) right += corpus.vocab.decode(done[i]) == answers[i];
  return prompts.empty() ? 0.0 : static_cast<double>(right) / static_cast<double>(prompts.size());
}

std::pair<double, int64_t> evaluate_file(TinyLM& model, const Vocabulary& vocab, const std::string& path,
                                         int64_t batch_size, int64_t max_batches) {
  TG_CHECK(batch_size >= 1, "evaluate_file", "batch_size must be positive; got batch_size=", batch_size);
  TG_CHECK(max_batches >= 0, "evaluate_file", "max_batches must be >= 0 (0: the whole file); got max_batches=", max_batches);
  std::vector<int64_t> data;
  try {
    data = vocab.encode(read_text_file(path));
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  const int64_t T = model.config().block_size;
  const int64_t windows = (static_cast<int64_t>(data.size()) - 1) / T;
  if (windows < 1) throw std::runtime_error(path + ": shorter than one block of " + std::to_string(T + 1) + " characters");
  const double need = inference_bytes(model.config(), std::min(batch_size, windows)), have = memory_limit_bytes();
  TG_CHECK(need <= have, "evaluate_file", "a batch of ", std::min(batch_size, windows), " windows of ", T,
           " tokens would need about ", format_gib(need), " but this machine has ", format_gib(have),
           "; use a smaller batch_size (--batch-size); got batch_size=", batch_size);
  NoGradGuard no_grad;
  model.eval();
  double total = 0;
  int64_t scored = 0, batches = 0;
  for (int64_t w0 = 0; w0 < windows && (max_batches <= 0 || batches < max_batches); w0 += batch_size, ++batches) {
    const int64_t B = std::min(batch_size, windows - w0);
    Tensor x({B, T}, DType::Int64), y({B, T}, DType::Int64);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t* w = data.data() + (w0 + b) * T;
      std::copy(w, w + T, x.data<int64_t>() + b * T);
      std::copy(w + 1, w + 1 + T, y.data<int64_t>() + b * T);
    }
    total += model.loss(x, y).item() * static_cast<double>(B * T);
    scored += B * T;
  }
  return {total / static_cast<double>(scored), scored};
}

namespace {

// The loop: train from s.step to `end`, evaluating and checkpointing every eval_interval iterations.
// Rank 0 alone evaluates, logs and plots (log and plot are null elsewhere) and saves; every rank meets at
// the barrier after.
void run_iterations(TrainingState& s, const TrainOptions& o, const Corpus& corpus, int64_t end, LossLog* log,
                    Progress& progress, const std::string& ckpt, examples::LossPlot* plot) {
  while (s.step < end) {
    const double lr = s.optimizer.lr(0);
    const double l = s.train_iteration(o.grad_clip);
    if (log) log->row(s.step, l, lr, "train");
    ++s.step;   // completed iterations; what a checkpoint records
    progress.update(s.step, l, lr);
    if (s.step % o.eval_interval == 0 && s.step < o.max_iters) {
      if (s.processes.is_root()) {
        double tl = estimate_loss(s.model, s.eval_train, o.eval_iters), vl = estimate_loss(s.model, s.eval_val, o.eval_iters);
        std::ostringstream msg;
        msg << "iter " << s.step << " train_loss " << tl << " val_loss " << vl;
        if (o.data.empty()) msg << " exact_match " << 100.0 * arithmetic_accuracy(s.model, corpus, 200) << "%";
        progress.message(msg.str());
        log->row(s.step, vl, lr, "val");
        s.save(ckpt);
        plot->refresh();   // out_dir/losses.png
      }
      s.processes.barrier();
    }
  }
}

}  // namespace

namespace {

// After the last iteration (rank 0 prints and writes; every rank meets at the barrier after the write):
// a stopped run saves; a finished one evaluates, saves and prints the final line.
void finish(TrainingState& s, const TrainOptions& o, const Corpus& corpus, const std::string& ckpt, std::ostream& out,
            TrainResult& r) {
  r.iter = s.step;
  const bool root = s.processes.is_root();
  if (s.step < o.max_iters) {
    if (root) s.save(ckpt);
    s.processes.barrier();
    r.stopped = true;
    out << "stopped at iter " << s.step << "; checkpoint " << ckpt << " (continue with --resume)\n";
    return;
  }
  if (root) {
    r.train_loss = estimate_loss(s.model, s.eval_train, o.eval_iters);
    r.val_loss = estimate_loss(s.model, s.eval_val, o.eval_iters);
    s.save(ckpt);
  }
  s.processes.barrier();
  if (root && o.data.empty()) out << "exact_match " << 100.0 * arithmetic_accuracy(s.model, corpus, 200) << "%\n";
}

}  // namespace

TrainResult train(const TrainOptions& o, std::ostream& all_out, const Processes& processes) {
  o.validate();
  validate_size(o, processes.size());   // under mpirun each process draws the starts of every rank's micro-batches
  const auto t0 = Clock::now();
  std::ostream quiet(nullptr);   // ranks other than 0 print nothing
  std::ostream& out = processes.is_root() ? all_out : quiet;
  set_num_threads(o.threads);
  out << runtime_info() << "\n";
  const Corpus corpus = training_corpus(o);
  require_same_run(o, corpus, processes);   // the same flags and corpus on every rank, or an error on each
  check_corpus_fits(o, corpus);
  // A resume needs the folder's checkpoint (on rank 0's host); only rank 0 ever touches the folder.
  if (!o.resume && processes.is_root()) std::filesystem::create_directories(o.out_dir);
  const std::string ckpt = o.out_dir + "/ckpt.h5", csv = o.out_dir + "/losses.csv";

  TrainingState s(model_config(o, corpus.vocab.size()), o, corpus, processes);
  TrainResult r;
  if (o.resume) {
    resume_from_root(s, ckpt);   // rank 0 reads it once, every rank restores those bytes
    if (s.step >= o.max_iters) {   // a finished run: no evaluation, no write
      out << "nothing to do: " << ckpt << " already finished at iter " << s.step << "\n";
      r.iter = s.step;
      r.already_finished = true;
      return r;
    }
    out << "resumed from " << ckpt << " at iter " << s.step << "\n";
  }
  processes.broadcast_module(s.model);   // every rank starts from rank 0's parameters
  std::optional<LossLog> log;
  if (processes.is_root()) log.emplace(o.resume ? LossLog::resume(csv, s.step) : LossLog::create(csv));
  out << "data " << corpus.name << ": vocab " << corpus.vocab.size() << ", train " << corpus.train.size() << " tokens, val "
      << corpus.val.size() << " | model " << tg::parameter_count(s.model) << " parameters";
  if (s.micro_batches > 1)
    out << " | " << s.micro_batches << " micro-batches of " << o.batch_size << " per iteration on " << processes.size()
        << (processes.size() == 1 ? " process" : " processes");
  if (processes.size() > 1) out << " | sends " << megabytes(s.bytes_sent_per_iteration()) << " per iteration and process";
  out << "\n";
  Progress progress(out, o.progress && ::isatty(STDOUT_FILENO), o.max_iters, s.micro_batches * o.batch_size * o.block_size);
  if (o.precision == Precision::bf16) out << "precision bf16 (" << bf16_status() << ")\n";
  AutocastGuard autocast(o.precision);   // evaluations too; train_iteration sets it for its own forward/backward
  const int64_t end = o.stop_at >= 0 ? std::min(o.stop_at, o.max_iters) : o.max_iters;
  std::optional<examples::LossPlot> plot;
  if (processes.is_root()) plot.emplace(csv, o.out_dir + "/losses.png", [&](const std::string& m) { progress.message(m); });
  run_iterations(s, o, corpus, end, log ? &*log : nullptr, progress, ckpt, plot ? &*plot : nullptr);
  progress.finish();
  finish(s, o, corpus, ckpt, out, r);
  // The final evaluation is the last point of the validation curve (lr: what the schedule ends at).
  if (log && !r.stopped) log->row(s.step, r.val_loss, s.optimizer.lr(0), "val");
  if (log) log->close();
  if (plot) plot->refresh(true);   // the whole run, whatever the redraw budget skipped
  r.wall_s = seconds_since(t0);
  if (r.stopped) return r;
  char line[160];
  std::snprintf(line, sizeof line, "final iter %lld train_loss %.6f val_loss %.6f wall_s %.1f",
                static_cast<long long>(r.iter), r.train_loss, r.val_loss, r.wall_s);
  out << line << std::endl;
  return r;
}

}  // namespace tg::tiny_lm
