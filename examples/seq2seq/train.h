#pragma once
// `seq2seq train`: trains the date-normalisation model, evaluates held-out exact match, checkpoints
// through tg::io::save_checkpoint and resumes bit-exactly.
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "examples/seq2seq/data.h"
#include "examples/seq2seq/decode.h"
#include "examples/seq2seq/model.h"

namespace tg::seq2seq {

// The flags of `seq2seq train`, field for field (the defaults reach >= 99% held-out exact match in a
// few minutes on 2 cores; README "seq2seq example").
struct TrainOptions {
  std::string out_dir = "out-seq2seq";
  int64_t d_model = 64, nhead = 4, num_encoder_layers = 2, num_decoder_layers = 2, dim_feedforward = 256;
  double dropout = 0.0;
  int64_t batch_size = 64, max_iters = 1000, warmup_iters = 100;
  double lr = 2e-3, min_lr = 1e-4, weight_decay = 0.01, beta1 = 0.9, beta2 = 0.98, grad_clip = 1.0;
  double label_smoothing = 0.0;      // torch.nn.functional.cross_entropy's label_smoothing
  int64_t eval_interval = 100, eval_examples = 500, log_interval = 50;
  uint64_t seed = 1337;
  int threads = 2;
  bool resume = false;               // continue from out_dir/ckpt.h5
  int64_t stop_at = -1;              // save and exit after this many iterations (an interrupted run)

  // Throws UsageError naming the flag, e.g. "[seq2seq train] --batch-size must be in [1, 65536]; got
  // --batch-size=0".
  void validate() const;
  Seq2SeqConfig model_config() const;
};

struct TrainResult {
  int64_t iter = 0;
  double val_loss = 0, exact_match = 0, wall_s = 0;
  bool stopped = false;              // ended by stop_at
  bool already_finished = false;     // --resume of a finished run: nothing done or written
};

// Runs training. Prints a line per log_interval and per evaluation, and last
// "final iter N val_loss X exact_match Y% wall_s W". Writes out_dir/ckpt.h5 at each evaluation and at
// the end, and out_dir/losses.csv: header "iter,train_loss,val_loss,exact_match,lr", one row per
// evaluation (every eval_interval iterations and at max_iters); train_loss is the mean training loss
// since the previous row, val_loss the teacher-forced loss (no label smoothing) and exact_match the
// greedy (cached) exact-match fraction on eval_examples held-out examples, lr the last iteration's.
// After each row it redraws out_dir/losses.png (examples::LossPlot: losses, exact match, lr); without
// gnuplot it says once "no losses.png written: gnuplot is not on PATH (install gnuplot-nox)" and goes on.
// Throws std::runtime_error for IO errors and a checkpoint of another run.
TrainResult train(const TrainOptions& options, std::ostream& out);

struct Evaluation {
  double val_loss = 0, exact_match = 0;
};
// Teacher-forced mean loss (batches of batch_size) and exact match (greedy when beam_size == 1, else
// beam search) on `examples`.
Evaluation evaluate(Seq2Seq& model, const std::vector<Example>& examples, const BeamOptions& beam,
                    int64_t batch_size = 256);

// The held-out examples a training run with this seed evaluates on.
std::vector<Example> eval_examples_for(uint64_t seed, int64_t n);

// Rebuilds the model stored in a checkpoint (eval mode). Throws std::runtime_error naming the file
// for a missing or damaged checkpoint or one without a seq2seq configuration.
std::unique_ptr<Seq2Seq> load_model(const std::string& path);

}  // namespace tg::seq2seq
