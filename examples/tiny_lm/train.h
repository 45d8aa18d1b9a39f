#pragma once
// `tiny_lm train`: trains the tiny language model, evaluates, checkpoints and resumes exactly.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>

#include "examples/tiny_lm/data.h"
#include "examples/tiny_lm/model.h"
#include "examples/tiny_lm/processes.h"
#include "tapegrad/framework/autocast.h"

namespace tg::tiny_lm {

// The flags of `tiny_lm train`, field for field. Defaults are nanoGPT's CPU configuration (the "macbook"
// settings of its shakespeare_char config).
struct TrainOptions {
  std::string data;                 // empty: the built-in arithmetic corpus
  std::string out_dir = "out-tiny-lm";
  int64_t block_size = 64, batch_size = 12, n_layer = 4, n_head = 4, n_embd = 128;
  // Micro-batches of batch_size per iteration and process (gradient accumulation); under mpirun each
  // of the N processes computes grad_accum of the K = grad_accum * N micro-batches of an iteration.
  int64_t grad_accum = 1;
  double dropout = 0.0;
  int64_t max_iters = 2000, lr_decay_iters = 2000, warmup_iters = 100;
  double lr = 1e-3, min_lr = 1e-4, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.99, grad_clip = 1.0;
  int64_t eval_interval = 250, eval_iters = 20;
  uint64_t seed = 1337;
  int threads = 2;
  bool tie_weights = true;          // head.weight = tok_emb.weight, as nanoGPT
  bool resume = false;              // continue from out_dir/ckpt.h5
  int64_t stop_at = -1;             // save and exit after this many iterations (an interrupted run)
  bool progress = true;             // a live progress bar when stdout is a terminal
  Precision precision = Precision::f32;   // bf16: forward/backward and evaluations under autocast (float32
                                          // master weights and AdamW state); stored in the checkpoint

  // Checks every value for range and finiteness, and the model and the run against the limits of
  // limits.h (parameters, and the memory of this machine), before anything is built. Throws
  // UsageError naming the flag, e.g. "[tiny_lm train] --eval-interval must be in [1, ...]; got
  // --eval-interval=0".
  void validate() const;
};

struct TrainResult {
  int64_t iter = 0;
  double train_loss = 0, val_loss = 0, wall_s = 0;
  bool stopped = false;             // ended by stop_at (no final evaluation)
  bool already_finished = false;    // --resume of a finished run: nothing was done or written
};

// The model configuration `train` builds for these options and a vocabulary size.
TinyLMConfig model_config(const TrainOptions& options, int64_t vocab_size);

// The corpus `train` uses: options.data, or the built-in arithmetic corpus when it is empty.
Corpus training_corpus(const TrainOptions& options);

// Runs training, printing progress and, last, "final iter N train_loss X val_loss Y wall_s W".
// Writes out_dir/ckpt.h5 (at each evaluation and at the end) and out_dir/losses.csv. With several
// processes (mpirun), every process trains its micro-batches of each iteration (TrainingState); rank 0
// alone prints, evaluates, writes losses.csv and the checkpoint (the others wait at a barrier after each
// write) and returns the losses; the others return only `iter`. Before training the processes compare
// their settings and corpus (require_same_run, agreement.h) and all throw at a difference. A resume
// reads the checkpoint once, on rank 0 only, and restores those bytes on every rank (resume_from_root).
// A resume must have the checkpoint's K (= --grad-accum x processes); another K throws
// std::runtime_error naming both. Validates the options first (UsageError), and throws UsageError naming
// --block-size when the corpus is shorter than a block. A resume of a run that already reached
// max_iters prints "nothing to do: <ckpt> already finished at iter N" and writes nothing. A failed write
// of losses.csv throws std::runtime_error naming the file and the OS's reason.
TrainResult train(const TrainOptions& options, std::ostream& out, const Processes& processes = {});

// The mean loss over `iters` batches drawn by `sampler` (eval mode, no grad).
double estimate_loss(TinyLM& model, BatchSampler& sampler, int64_t iters);

// Exact-match accuracy of greedy completion on the first `n` validation facts of the arithmetic corpus
// (eval mode, no grad; the training flag is restored).
double arithmetic_accuracy(TinyLM& model, const Corpus& corpus, int64_t n);

// Mean next-token loss of `model` over consecutive windows of a text file (block_size + 1 tokens,
// stride block_size), batched; max_batches > 0 stops early. Returns {loss, tokens scored}. Throws
// std::invalid_argument for batch_size < 1 or max_batches < 0, and when a batch would need more
// memory than the machine has (naming batch_size); std::runtime_error when the file cannot be read.
std::pair<double, int64_t> evaluate_file(TinyLM& model, const Vocabulary& vocab, const std::string& path,
                                         int64_t batch_size, int64_t max_batches);

// The model configuration as stored in checkpoints (JSON) and back.
std::string config_to_json(const TinyLMConfig& c);
TinyLMConfig config_from_json(const std::string& json);

}  // namespace tg::tiny_lm
