#pragma once
// Everything a tiny_lm training run holds, and its exact save/restore through an HDF5 checkpoint
// (framework/io/checkpoint.h): model, AdamW state, schedule, the step, and every random stream
// (model init/dropout, training batches, evaluation batches).
#include <memory>
#include <string>

#include "examples/tiny_lm/data.h"
#include "examples/tiny_lm/model.h"
#include "examples/tiny_lm/processes.h"
#include "tapegrad/framework/autocast.h"
#include "tapegrad/optim/adam.h"
#include "tapegrad/optim/lr_scheduler.h"

namespace tg::tiny_lm {

struct TrainOptions;

// The micro-batches of one iteration: K = options.grad_accum * processes.size(). Process r computes
// micro-batches m = j * size + r (j = 0 .. grad_accum - 1), so any layout with the same K trains the
// same bits as one process with --grad-accum K.
struct TrainingState {
  TrainingState(const TinyLMConfig& config, const TrainOptions& options, const Corpus& corpus,
                Processes processes = {});

  // One optimisation step over the K micro-batches of an iteration (train_step.cpp): the sampler draws
  // the windows of all K (train_batches.draw_starts); micro-batch 0 draws its dropout masks from
  // model_gen's stream as an unaccumulated step does, micro-batch m > 0 from a stream that is a function
  // of (model_gen's state at the start of the iteration, m) (micro_batch_stream). Gradients and losses
  // are summed in micro-batch order, g = ((g_0 + g_1) + g_2) + ... (exactly, across processes:
  // Processes::sum_in_rank_order), then divided by K; clip the global grad norm (when grad_clip > 0),
  // AdamW step, schedule step. Forward and backward run under AutocastGuard(precision). Returns the
  // mean loss ((l_0 + l_1) + ...) / K. With K = 1 this is loss, backward, clip, step: the bits of a run
  // without accumulation.
  double train_iteration(double grad_clip);
  // Bytes this process sends per iteration (0 alone): per micro-batch round, sum_in_rank_order of every
  // gradient (2 (N-1)/N of the float32 gradient bytes, plus 24 bytes to each other rank for its length
  // check) and the all-gather of the loss (8 bytes to each other rank).
  double bytes_sent_per_iteration() const;

  // Writes path atomically (call it on rank 0 only). Load throws std::runtime_error naming the file and
  // the dataset when the checkpoint does not fit this run (another model configuration, precision,
  // vocabulary, data, number of micro-batches per iteration, or resume_settings) or is damaged. A checkpoint without a
  // stored precision is float32.
  void save(const std::string& path) const;
  void load(const std::string& path);

  TinyLMConfig config;
  Precision precision;            // autocast precision of train_iteration; /metadata tiny_lm.precision
  const Corpus& corpus;
  int64_t batch_size, block_size;
  Generator model_gen;            // initialisation and dropout masks
  TinyLM model;
  optim::AdamW optimizer;
  optim::WarmupCosine scheduler;
  BatchSampler train_batches, eval_train, eval_val;
  Processes processes;
  int64_t micro_batches;          // K per iteration, over all processes
  int64_t step = 0;               // completed iterations
  // The flags a resume must keep (JSON by flag name, /metadata tiny_lm.resume_settings): --lr, --min-lr,
  // --warmup-iters, --lr-decay-iters, --weight-decay, --beta1, --beta2, --grad-clip. load() refuses a
  // checkpoint trained with other values, naming each flag and both values.
  std::string resume_settings;
};

// The dropout stream of micro-batch m > 0 of an iteration that starts with model_gen at `start`.
GeneratorState micro_batch_stream(const GeneratorState& start, int64_t m);

// Rebuilds the model (in eval mode) and the vocabulary stored in a checkpoint, for sample and eval.
std::unique_ptr<TinyLM> load_model(const std::string& path, Vocabulary* vocab);

}  // namespace tg::tiny_lm
