#pragma once
// Everything a tiny_lm training run holds, and its exact save/restore through an HDF5 checkpoint
// (framework/io/checkpoint.h): model, AdamW state, schedule, the step, and every random stream
// (model init/dropout, training batches, evaluation batches).
#include <memory>
#include <string>

#include "examples/tiny_lm/data.h"
#include "examples/tiny_lm/model.h"
#include "tapegrad/framework/autocast.h"
#include "tapegrad/optim/adam.h"
#include "tapegrad/optim/lr_scheduler.h"

namespace tg::tiny_lm {

struct TrainOptions;

struct TrainingState {
  TrainingState(const TinyLMConfig& config, const TrainOptions& options, const Corpus& corpus);

  // One optimisation step on a batch: loss, backward, clip the global grad norm (when grad_clip > 0),
  // AdamW step, schedule step. Forward and backward run under AutocastGuard(precision). Returns the batch's loss.
  double train_step(const Tensor& x, const Tensor& y, double grad_clip);

  // Writes path atomically. Load throws std::runtime_error naming the file and the dataset when the
  // checkpoint does not fit this run (another model configuration, precision, vocabulary or data) or is
  // damaged. A checkpoint without a stored precision is float32.
  void save(const std::string& path) const;
  void load(const std::string& path);

  TinyLMConfig config;
  Precision precision;            // autocast precision of train_step; /metadata tiny_lm.precision
  const Corpus& corpus;
  int64_t batch_size, block_size;
  Generator model_gen;            // initialisation and dropout masks
  TinyLM model;
  optim::AdamW optimizer;
  optim::WarmupCosine scheduler;
  BatchSampler train_batches, eval_train, eval_val;
  int64_t step = 0;               // completed iterations
};

// Rebuilds the model (in eval mode) and the vocabulary stored in a checkpoint, for sample and eval.
std::unique_ptr<TinyLM> load_model(const std::string& path, Vocabulary* vocab);

}  // namespace tg::tiny_lm
