#include "examples/tiny_lm/train.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

#include "examples/tiny_lm/checkpointing.h"
#include "examples/tiny_lm/generate.h"
#include "examples/tiny_lm/progress.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/optim/adam.h"
#include "tapegrad/optim/lr_scheduler.h"

namespace tg::tiny_lm {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Keeps the losses CSV consistent with a checkpoint: rows of iterations >= step are dropped.
void truncate_csv(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  std::getline(in, line);
  kept = line + "\n";
  while (std::getline(in, line))
    if (std::stoll(line.substr(0, line.find(','))) < step) kept += line + "\n";
  in.close();
  std::ofstream(path, std::ios::trunc) << kept;
}

}  // namespace

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
  std::vector<std::vector<int64_t>> done = greedy_complete(model, prompts, kFactWidth - 1 - kFactPrompt);
  int64_t right = 0;
  for (size_t i = 0; i < done.size(); ++i) right += corpus.vocab.decode(done[i]) == answers[i];
  return prompts.empty() ? 0.0 : static_cast<double>(right) / static_cast<double>(prompts.size());
}

std::pair<double, int64_t> evaluate_file(TinyLM& model, const Vocabulary& vocab, const std::string& path,
                                         int64_t batch_size, int64_t max_batches) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open the data file");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::vector<int64_t> data = vocab.encode(ss.str());
  const int64_t T = model.config().block_size;
  const int64_t windows = (static_cast<int64_t>(data.size()) - 1) / T;
  if (windows < 1) throw std::runtime_error(path + ": shorter than one block of " + std::to_string(T + 1) + " characters");
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

TrainResult train(const TrainOptions& o, std::ostream& out) {
  const auto t0 = Clock::now();
  set_num_threads(o.threads);
  out << runtime_info() << "\n";
  const Corpus corpus = training_corpus(o);
  const bool arithmetic = o.data.empty();
  std::filesystem::create_directories(o.out_dir);
  const std::string ckpt = o.out_dir + "/ckpt.h5", csv = o.out_dir + "/losses.csv";

  TrainingState s(model_config(o, corpus.vocab.size()), o, corpus);
  if (o.resume) {
    s.load(ckpt);
    truncate_csv(csv, s.step);
    out << "resumed from " << ckpt << " at iter " << s.step << "\n";
  } else {
    std::ofstream(csv, std::ios::trunc) << "iter,train_loss,lr,kind\n";
  }
  out << "data " << corpus.name << ": vocab " << corpus.vocab.size() << ", train " << corpus.train.size() << " tokens, val "
      << corpus.val.size() << " | model " << parameter_count(s.model) << " parameters\n";
  std::ofstream log(csv, std::ios::app);
  Progress progress(out, o.progress && ::isatty(STDOUT_FILENO), o.max_iters, o.batch_size * o.block_size);
  const int64_t end = o.stop_at >= 0 ? std::min(o.stop_at, o.max_iters) : o.max_iters;
  while (s.step < end) {
    const double lr = s.optimizer.lr(0);
    auto [x, y] = s.train_batches.next();
    const double l = s.train_step(x, y, o.grad_clip);
    log << s.step << "," << l << "," << lr << ",train\n";
    ++s.step;   // completed iterations; what a checkpoint records
    progress.update(s.step, l, lr);
    if (s.step % o.eval_interval == 0 && s.step < o.max_iters) {
      double tl = estimate_loss(s.model, s.eval_train, o.eval_iters), vl = estimate_loss(s.model, s.eval_val, o.eval_iters);
      std::ostringstream msg;
      msg << "iter " << s.step << " train_loss " << tl << " val_loss " << vl;
      if (arithmetic) msg << " exact_match " << 100.0 * arithmetic_accuracy(s.model, corpus, 200) << "%";
      progress.message(msg.str());
      log << s.step << "," << vl << "," << lr << ",val\n";
      log.flush();
      s.save(ckpt);
    }
  }
  progress.finish();
  TrainResult r;
  r.iter = s.step;
  if (s.step < o.max_iters) {
    s.save(ckpt);
    r.stopped = true;
    r.wall_s = seconds_since(t0);
    out << "stopped at iter " << s.step << "; checkpoint " << ckpt << " (continue with --resume)\n";
    return r;
  }
  r.train_loss = estimate_loss(s.model, s.eval_train, o.eval_iters);
  r.val_loss = estimate_loss(s.model, s.eval_val, o.eval_iters);
  s.save(ckpt);
  if (arithmetic) out << "exact_match " << 100.0 * arithmetic_accuracy(s.model, corpus, 200) << "%\n";
  r.wall_s = seconds_since(t0);
  char line[160];
  std::snprintf(line, sizeof line, "final iter %lld train_loss %.6f val_loss %.6f wall_s %.1f",
                static_cast<long long>(r.iter), r.train_loss, r.val_loss, r.wall_s);
  out << line << std::endl;
  return r;
}

}  // namespace tg::tiny_lm
