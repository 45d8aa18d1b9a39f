#include "examples/seq2seq/train.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <ostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "examples/common/loss_plot.h"
#include "examples/common/cli.h"
#include "examples/seq2seq/training_state.h"
#include "tapegrad/framework/io/checkpoint.h"
#include "tapegrad/framework/runtime.h"

namespace tg::seq2seq {
namespace {

using tg::examples::require_flag;
using tg::examples::require_in_range;
using tg::examples::require_min_lr;

using Clock = std::chrono::steady_clock;
constexpr const char* kTrain = "seq2seq train";
constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max();
constexpr const char* kCsvHeader = "iter,train_loss,val_loss,exact_match,lr";

void require_real(const char* flag, double v, double lo, double hi, bool hi_open) {
  const bool ok = std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi);
  std::ostringstream rule;
  rule << "finite and in [" << lo << ", " << hi << (hi_open ? ")" : "]");
  require_flag(ok, kTrain, flag, rule.str(), v);
}

// losses.csv: a new file with the header, or (resume) the rows of iterations <= step kept.
std::string open_log(const std::string& path, bool resume, int64_t step) {
  std::string kept = std::string(kCsvHeader) + "\n";
  if (resume) {
    std::ifstream in(path);
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
      if (number == 1 || line.empty()) continue;   // the header
      int64_t iter = 0;
      const std::string head = line.substr(0, line.find(','));
      auto [end, ec] = std::from_chars(head.data(), head.data() + head.size(), iter);
      if (ec != std::errc() || end != head.data() + head.size())
        throw std::runtime_error(path + ": line " + std::to_string(number) + " is not '<iter>,...'; got '" + line + "'");
      if (iter <= step) kept += line + "\n";
    }
  }
  std::ofstream out(path, std::ios::trunc);
  out << kept;
  if (!out.flush()) throw std::runtime_error(path + ": cannot write losses.csv");
  return path;
}

void append_row(const std::string& path, int64_t iter, double train_loss, const Evaluation& e, double lr) {
  char line[200];
  std::snprintf(line, sizeof line, "%lld,%.6f,%.6f,%.4f,%.6g\n", static_cast<long long>(iter), train_loss, e.val_loss,
                e.exact_match, lr);
  std::ofstream out(path, std::ios::app);
  out << line;
  if (!out.flush()) throw std::runtime_error(path + ": cannot append to losses.csv");
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// An evaluation: held-out loss and exact match, a losses.csv row (resetting the loss accumulator) and a
// log line.
Evaluation evaluation_row(TrainingState& s, const std::vector<Example>& held, const BeamOptions& greedy,
                          const std::string& csv, double lr, std::ostream& out, Clock::time_point t0) {
  const Evaluation e = evaluate(s.model, held, greedy);
  const double train_loss = s.loss_sum / static_cast<double>(std::max<int64_t>(s.loss_count, 1));
  append_row(csv, s.step, train_loss, e, lr);
  s.loss_sum = 0;
  s.loss_count = 0;
  char line[200];
  std::snprintf(line, sizeof line, "eval iter %lld train_loss %.4f val_loss %.4f exact_match %.2f%% wall_s %.1f",
                static_cast<long long>(s.step), train_loss, e.val_loss, 100 * e.exact_match, seconds_since(t0));
  out << line << std::endl;
  return e;
}

}  // namespace

void TrainOptions::validate() const {
  require_flag(!out_dir.empty(), kTrain, "--out-dir", "a folder name", "''");
  require_in_range(kTrain, "--d-model", d_model, 1, 4096);
  require_in_range(kTrain, "--nhead", nhead, 1, d_model);
  require_flag(d_model % nhead == 0, kTrain, "--nhead", "a divisor of --d-model=" + std::to_string(d_model), nhead);
  require_in_range(kTrain, "--num-encoder-layers", num_encoder_layers, 1, 64);
  require_in_range(kTrain, "--num-decoder-layers", num_decoder_layers, 1, 64);
  require_in_range(kTrain, "--dim-feedforward", dim_feedforward, 1, 65536);
  require_real("--dropout", dropout, 0, 1, true);
  require_in_range(kTrain, "--batch-size", batch_size, 1, 65536);
  require_in_range(kTrain, "--max-iters", max_iters, 1, 1000000000);
  require_in_range(kTrain, "--warmup-iters", warmup_iters, 0, max_iters - 1);
  require_real("--lr", lr, 0, 10, false);
  require_min_lr(kTrain, min_lr, lr);
  require_real("--weight-decay", weight_decay, 0, 1e6, false);
  require_real("--beta1", beta1, 0, 1, true);
  require_real("--beta2", beta2, 0, 1, true);
  require_real("--grad-clip", grad_clip, 0, 1e12, false);
  require_real("--label-smoothing", label_smoothing, 0, 1, true);
  require_in_range(kTrain, "--eval-interval", eval_interval, 1, kMaxCount);
  require_in_range(kTrain, "--eval-examples", eval_examples, 1, 1000000);
  require_in_range(kTrain, "--log-interval", log_interval, 1, kMaxCount);
  require_in_range(kTrain, "--threads", threads, 1, 1024);
  require_in_range(kTrain, "--stop-at", stop_at, -1, kMaxCount);
}

Seq2SeqConfig TrainOptions::model_config() const {
  return {.vocab_size = vocab_size(), .max_src_len = 32, .max_tgt_len = 16, .d_model = d_model, .nhead = nhead,
          .num_encoder_layers = num_encoder_layers, .num_decoder_layers = num_decoder_layers,
          .dim_feedforward = dim_feedforward, .dropout = dropout, .norm_first = true};
}

std::vector<Example> eval_examples_for(uint64_t seed, int64_t n) { return held_out_examples(n, seed + 2); }

Evaluation evaluate(Seq2Seq& model, const std::vector<Example>& examples, const BeamOptions& beam, int64_t batch_size) {
  Evaluation e;
  if (examples.empty()) return e;
  const bool was_training = model.is_training();
  model.eval();
  double loss_total = 0;
  int64_t correct = 0;
  for (size_t first = 0; first < examples.size(); first += static_cast<size_t>(batch_size)) {
    const std::vector<Example> chunk(examples.begin() + static_cast<std::ptrdiff_t>(first),
                                     examples.begin() + static_cast<std::ptrdiff_t>(std::min(examples.size(), first + static_cast<size_t>(batch_size))));
    const Batch b = make_batch(chunk);
    {
      NoGradGuard no_grad;
      loss_total += model.loss(b.src, b.src_pad, b.tgt_in, b.tgt_out, b.tgt_pad).item() * static_cast<double>(chunk.size());
    }
    std::vector<std::string> sources;
    for (const Example& ex : chunk) sources.push_back(ex.source);
    const std::vector<std::string> got = translate(model, sources, beam, batch_size);
    for (size_t i = 0; i < chunk.size(); ++i) correct += got[i] == chunk[i].target ? 1 : 0;
  }
  model.train(was_training);
  e.val_loss = loss_total / static_cast<double>(examples.size());
  e.exact_match = static_cast<double>(correct) / static_cast<double>(examples.size());
  return e;
}

TrainResult train(const TrainOptions& o, std::ostream& out) {
  o.validate();
  const auto t0 = Clock::now();
  set_num_threads(o.threads);
  out << runtime_info() << "\n";
  if (!o.resume) std::filesystem::create_directories(o.out_dir);
  const std::string ckpt = o.out_dir + "/ckpt.h5", csv = o.out_dir + "/losses.csv";
  TrainingState s(o);
  TrainResult r;
  if (o.resume) {
    s.load(ckpt);
    if (s.step >= o.max_iters) {
      out << "nothing to do: " << ckpt << " already finished at iter " << s.step << "\n";
      r.iter = s.step;
      r.already_finished = true;
      return r;
    }
    out << "resumed from " << ckpt << " at iter " << s.step << "\n";
  }
  open_log(csv, o.resume, s.step);
  const std::vector<Example> held = eval_examples_for(o.seed, o.eval_examples);
  const BeamOptions greedy{.beam_size = 1, .max_len = s.config.max_tgt_len};
  out << "task dates -> ISO: " << kNumFormats << " formats, vocab " << vocab_size() << ", " << held.size()
      << " held-out examples | model " << parameter_count(s.model) << " parameters\n";
  const int64_t end = o.stop_at >= 0 ? std::min(o.stop_at, o.max_iters) : o.max_iters;
  // out_dir/losses.png, redrawn after every evaluation (the last one is at max_iters); without gnuplot
  // training goes on, having said so once.
  examples::LossPlot plot(csv, o.out_dir + "/losses.png", [&](const std::string& m) { out << m << std::endl; });
  Evaluation last;
  while (s.step < end) {
    const double lr = s.optimizer.lr(0);
    const double l = s.train_step();
    s.loss_sum += l;
    ++s.loss_count;
    ++s.step;
    if (s.step % o.log_interval == 0) out << "iter " << s.step << " loss " << l << " lr " << lr << std::endl;
    if (s.step % o.eval_interval == 0 || s.step == o.max_iters) {
      last = evaluation_row(s, held, greedy, csv, lr, out, t0);
      s.save(ckpt);
      plot.refresh(s.step == end);   // within the redraw budget (LossPlot), and always at the end
    }
  }
  r.iter = s.step;
  r.wall_s = seconds_since(t0);
  if (s.step < o.max_iters) {
    s.save(ckpt);
    r.stopped = true;
    out << "stopped at iter " << s.step << "; checkpoint " << ckpt << " (continue with --resume)\n";
    return r;
  }
  r.val_loss = last.val_loss;
  r.exact_match = last.exact_match;
  char line[200];
  std::snprintf(line, sizeof line, "final iter %lld val_loss %.6f exact_match %.2f%% wall_s %.1f",
                static_cast<long long>(r.iter), r.val_loss, 100 * r.exact_match, r.wall_s);
  out << line << std::endl;
  return r;
}

std::unique_ptr<Seq2Seq> load_model(const std::string& path) {
  const io::CheckpointData c = io::read_checkpoint(path);
  Seq2SeqConfig config;
  try {
    config = config_from_json(nlohmann::json::parse(c.metadata).at("seq2seq").at("config").dump());
    config.validate();
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": /metadata holds no valid seq2seq configuration: " + e.what());
  }
  if (config.vocab_size != vocab_size())
    throw std::runtime_error(path + ": /metadata vocab_size=" + std::to_string(config.vocab_size) +
                             " is not this task's vocabulary of " + std::to_string(vocab_size()));
  if (!c.model) throw std::runtime_error(path + ": missing /model");
  auto model = std::make_unique<Seq2Seq>(config, Generator(0));   // values overwritten below
  try {
    model->load_state_dict(*c.model);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  model->eval();
  return model;
}

}  // namespace tg::seq2seq
