#pragma once
// Everything a seq2seq training run holds — model, AdamW (decay on matrices only), warmup-cosine
// schedule, the random streams of initialisation/dropout and of the training examples, the step and the
// training-loss accumulator of losses.csv — and its exact save/restore through tg::io checkpoints.
#include <string>

#include "examples/seq2seq/model.h"
#include "examples/seq2seq/train.h"
#include "tapegrad/optim/adam.h"
#include "tapegrad/optim/lr_scheduler.h"

namespace tg::seq2seq {

struct TrainingState {
  explicit TrainingState(const TrainOptions& options);

  // One optimisation step on batch_size freshly drawn training examples: loss (with label smoothing),
  // backward, clip the global grad norm (when grad_clip > 0), AdamW step, schedule step. Returns the loss.
  double train_step();
  // The same step on a given batch.
  double train_step(const Batch& batch);

  // save writes path atomically: model, optimizer, scheduler, generators "model" and "train_data",
  // metadata {"seq2seq": {"task", "config", "train"}}, the step and /extra/log (the loss accumulator).
  // load throws std::runtime_error naming the file when the metadata differs from this run's (another
  // model configuration or batch size, label smoothing, seed, evaluation settings) or the file is damaged.
  void save(const std::string& path) const;
  void load(const std::string& path);

  TrainOptions options;
  Seq2SeqConfig config;
  Generator model_gen;   // initialisation and dropout masks
  Seq2Seq model;
  optim::AdamW optimizer;
  optim::WarmupCosine scheduler;
  Generator data_gen;    // training examples
  int64_t step = 0;      // completed iterations
  double loss_sum = 0;   // training losses since the last losses.csv row
  int64_t loss_count = 0;
};

}  // namespace tg::seq2seq
