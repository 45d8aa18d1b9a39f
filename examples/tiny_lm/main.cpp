// tiny_lm: train, sample from and evaluate a character-level transformer language model.
//   tiny_lm train  [--data FILE] [--out-dir DIR] [...]      (tiny_lm train --help for every flag)
//   tiny_lm sample [--out-dir DIR] [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S] [--no-cache]
//   tiny_lm eval   --data FILE [--out-dir DIR] [--max-batches N]
//   tiny_lm plot   [--out-dir DIR] [--compare DIR2 ...] [--output FILE]
//   tiny_lm attend --prompt TEXT [--out-dir DIR] [--output-dir DIR]
// Under mpirun every process runs `train` on its share of each iteration's micro-batches (README); a
// bad command line given to every rank is reported by rank 0 alone.
// Exit status: 0 success; 2 a bad command line (unknown command or flag, a value of the wrong type,
// out of range or not finite, a prompt outside the checkpoint's vocabulary), reported before anything
// is built; 1 any other failure (a file, a checkpoint, the data, a write). Never a signal.
#include <boost/program_options.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "examples/common/cli.h"
#include "examples/common/plot_command.h"
#include "examples/common/readable_default.h"
#include "examples/tiny_lm/attention_maps.h"
#include "examples/tiny_lm/checkpointing.h"
#include "examples/tiny_lm/generate.h"
#include "examples/tiny_lm/limits.h"
#include "examples/tiny_lm/processes.h"
#include "examples/tiny_lm/train.h"
#include "tapegrad/framework/ops/loss.h"
#include "tapegrad/framework/runtime.h"

namespace po = boost::program_options;
using namespace tg::tiny_lm;
using tg::examples::expand_newlines;
using tg::examples::parse;
using tg::examples::readable_default;

namespace {

constexpr const char* kUsage =
    "usage: tiny_lm <command> [options]\n"
    "commands:\n"
    "  train    train a model (built-in arithmetic corpus unless --data), checkpointing to --out-dir\n"
    "  sample   generate text from a checkpoint\n"
    "  eval     report a checkpoint's loss on a text file\n"
    "  plot     draw losses.csv of one run, or several overlaid, as a PNG\n"
    "  attend   draw what each attention head looks at, for a prompt (PNG, SVG and CSV per layer)\n"
    "run 'tiny_lm <command> --help' for the options of a command\n";

int run_train(int argc, char** argv) {
  TrainOptions o;
  std::string seed, precision;
  po::options_description d("tiny_lm train options");
  d.add_options()
      ("data", po::value(&o.data), "text file to train on (default: the built-in arithmetic corpus)")
      ("out-dir", po::value(&o.out_dir)->default_value(o.out_dir), "folder for ckpt.h5 and losses.csv")
      ("block-size", po::value(&o.block_size)->default_value(o.block_size), "context length")
      ("batch-size", po::value(&o.batch_size)->default_value(o.batch_size), "sequences per micro-batch")
      ("grad-accum", po::value(&o.grad_accum)->default_value(o.grad_accum),
       "micro-batches per iteration and process (under mpirun -np N: N x this many per iteration)")
      ("n-layer", po::value(&o.n_layer)->default_value(o.n_layer), "transformer layers")
      ("n-head", po::value(&o.n_head)->default_value(o.n_head), "attention heads")
      ("n-embd", po::value(&o.n_embd)->default_value(o.n_embd), "embedding width (feed-forward is 4x)")
      ("dropout", readable_default(&o.dropout), "dropout probability")
      ("max-iters", po::value(&o.max_iters)->default_value(o.max_iters), "training iterations")
      ("lr-decay-iters", po::value(&o.lr_decay_iters)->default_value(o.lr_decay_iters), "end of the cosine decay")
      ("lr", readable_default(&o.lr), "peak learning rate")
      ("min-lr", readable_default(&o.min_lr), "learning rate floor")
      ("warmup-iters", po::value(&o.warmup_iters)->default_value(o.warmup_iters), "linear warmup iterations")
      ("weight-decay", readable_default(&o.weight_decay), "AdamW weight decay (matrices only)")
      ("beta1", readable_default(&o.beta1), "AdamW beta1")
      ("beta2", readable_default(&o.beta2), "AdamW beta2")
      ("grad-clip", readable_default(&o.grad_clip), "clip the global grad norm (0: off)")
      ("eval-interval", po::value(&o.eval_interval)->default_value(o.eval_interval), "iterations between evaluations")
      ("eval-iters", po::value(&o.eval_iters)->default_value(o.eval_iters), "batches per evaluation")
      ("seed", po::value(&seed)->default_value(std::to_string(o.seed)), "seed of every random stream")
      ("threads", po::value(&o.threads)->default_value(o.threads), "worker threads")
      ("tie-weights", po::value(&o.tie_weights)->default_value(o.tie_weights), "head shares tok_emb's weight (1/0)")
      ("resume", po::bool_switch(&o.resume), "continue from <out-dir>/ckpt.h5 (--lr, --min-lr, --warmup-iters, "
       "--lr-decay-iters, --weight-decay, --beta1, --beta2 and --grad-clip must be the checkpoint's)")
      ("stop-at", po::value(&o.stop_at)->default_value(o.stop_at), "save and exit after this many iterations")
      ("precision", po::value(&precision)->default_value("f32"),
       "f32, or bf16: matmuls, linear layers and attention products take bf16 inputs (autocast; float32 "
       "on a CPU whose bf16 is missing or slower than its float32, as runtime_info says, unless "
       "TAPEGRAD_BF16=native or emulate)")
      ("no-progress", "plain log lines even on a terminal");
  po::variables_map vm;
  if (!parse(argc, argv, d, vm, "usage: tiny_lm train [options]")) return 0;
  if (vm.count("no-progress")) o.progress = false;
  require_flag(!vm.count("data") || !o.data.empty(), "tiny_lm train", "--data", "a file name", "''");
  o.seed = parse_seed(seed, "tiny_lm train", "--seed");
  require_flag(precision == "f32" || precision == "bf16", "tiny_lm train", "--precision", "f32 or bf16", precision);
  o.precision = tg::parse_precision(precision);
  o.validate();
  train(o, std::cout, Processes::current());
  return 0;
}

// The flags of `tiny_lm sample`.
struct SampleOptions {
  std::string out_dir = "out-tiny-lm", prompt = "\n";
  int64_t tokens = 500, top_k = 200;
  double temperature = 0.8;
  uint64_t seed = 1337;
  int threads = 2;
  bool use_cache = true;   // --no-cache: recompute the last block_size tokens every step

  void validate() const {
    const char* cmd = "tiny_lm sample";
    require_flag(!out_dir.empty(), cmd, "--out-dir", "a folder name", "''");
    require_flag(!prompt.empty(), cmd, "--prompt", "at least one character", "''");
    require_in_range(cmd, "--tokens", tokens, 0, kMaxSampleTokens);
    require_flag(std::isfinite(temperature) && temperature > 0, cmd, "--temperature", "finite and positive", temperature);
    require_in_range(cmd, "--top-k", top_k, 0, kMaxVocabSize);
    require_in_range(cmd, "--threads", threads, 1, kMaxThreads);
  }
};

int run_sample(int argc, char** argv) {
  SampleOptions o;
  std::string seed;
  po::options_description d("tiny_lm sample options");
  d.add_options()
      ("out-dir", po::value(&o.out_dir)->default_value(o.out_dir), "folder holding ckpt.h5")
      ("prompt", po::value(&o.prompt)->default_value("\\n"), "text to continue (\\n is a newline)")
      ("tokens", po::value(&o.tokens)->default_value(o.tokens), "characters to generate")
      ("temperature", readable_default(&o.temperature), "softmax temperature (> 0)")
      ("top-k", po::value(&o.top_k)->default_value(o.top_k), "sample among the k most likely (0: all)")
      ("seed", po::value(&seed)->default_value(std::to_string(o.seed)), "seed of the sampling stream")
      ("threads", po::value(&o.threads)->default_value(o.threads), "worker threads")
      ("no-cache", "recompute the context every step instead of decoding with the KV cache");
  po::variables_map vm;
  if (!parse(argc, argv, d, vm, "usage: tiny_lm sample [options]")) return 0;
  o.use_cache = !vm.count("no-cache");
  o.prompt = expand_newlines(o.prompt);
  o.seed = parse_seed(seed, "tiny_lm sample", "--seed");
  o.validate();
  tg::set_num_threads(o.threads);
  Vocabulary vocab;
  auto model = load_model(o.out_dir + "/ckpt.h5", &vocab);
  std::vector<int64_t> prompt;
  try {
    prompt = vocab.encode(o.prompt);
  } catch (const std::invalid_argument& e) {
    throw UsageError("[tiny_lm sample] --prompt must use the checkpoint's characters; " + std::string(e.what()));
  }
  tg::Generator gen(o.seed);
  auto out = sample_tokens(*model, prompt, o.tokens, o.temperature, o.top_k, gen, o.use_cache);
  std::cout << o.prompt << vocab.decode(out) << std::endl;
  return 0;
}

// The flags of `tiny_lm eval`.
struct EvalOptions {
  std::string out_dir = "out-tiny-lm", data;
  int64_t batch_size = 12, max_batches = 0;
  int threads = 2;

  void validate() const {
    const char* cmd = "tiny_lm eval";
    require_flag(!data.empty(), cmd, "--data", "a file name", "''");
    require_flag(!out_dir.empty(), cmd, "--out-dir", "a folder name", "''");
    require_in_range(cmd, "--batch-size", batch_size, 1, kMaxBatchSize);
    require_in_range(cmd, "--max-batches", max_batches, 0, std::numeric_limits<int64_t>::max());
    require_in_range(cmd, "--threads", threads, 1, kMaxThreads);
  }
};

int run_eval(int argc, char** argv) {
  EvalOptions o;
  po::options_description d("tiny_lm eval options");
  d.add_options()
      ("data", po::value(&o.data)->required(), "text file to evaluate on (every character must be in the vocabulary)")
      ("out-dir", po::value(&o.out_dir)->default_value(o.out_dir), "folder holding ckpt.h5")
      ("batch-size", po::value(&o.batch_size)->default_value(o.batch_size), "sequences per batch")
      ("max-batches", po::value(&o.max_batches)->default_value(o.max_batches), "stop after this many batches (0: whole file)")
      ("threads", po::value(&o.threads)->default_value(o.threads), "worker threads");
  po::variables_map vm;
  if (!parse(argc, argv, d, vm, "usage: tiny_lm eval --data FILE [options]")) return 0;
  o.validate();
  tg::set_num_threads(o.threads);
  Vocabulary vocab;
  auto model = load_model(o.out_dir + "/ckpt.h5", &vocab);
  auto [loss, tokens] = evaluate_file(*model, vocab, o.data, o.batch_size, o.max_batches);
  std::printf("eval loss %.6f over %lld tokens of %s\n", loss, static_cast<long long>(tokens), o.data.c_str());
  return 0;
}

int run_plot(int argc, char** argv) { return tg::examples::run_plot_command("tiny_lm", "out-tiny-lm", argc, argv); }

int run_attend(int argc, char** argv) {
  std::string out_dir = "out-tiny-lm", output_dir, prompt;
  int threads = 2;
  po::options_description d("tiny_lm attend options");
  d.add_options()
      ("prompt", po::value(&prompt)->required(), "text to look at (\\n is a newline), at most block_size characters")
      ("out-dir", po::value(&out_dir)->default_value(out_dir), "folder holding ckpt.h5")
      ("output-dir", po::value(&output_dir), "folder for attn_layer<L>.{png,svg,csv} (default: --out-dir)")
      ("threads", po::value(&threads)->default_value(threads), "worker threads");
  po::variables_map vm;
  if (!parse(argc, argv, d, vm, "usage: tiny_lm attend --prompt TEXT [options]")) return 0;
  prompt = expand_newlines(prompt);
  const char* cmd = "tiny_lm attend";
  require_flag(!prompt.empty(), cmd, "--prompt", "at least one character", "''");
  require_flag(!out_dir.empty(), cmd, "--out-dir", "a folder name", "''");
  require_flag(!vm.count("output-dir") || !output_dir.empty(), cmd, "--output-dir", "a folder name", "''");
  require_in_range(cmd, "--threads", threads, 1, kMaxThreads);
  tg::set_num_threads(threads);
  Vocabulary vocab;
  auto model = load_model(out_dir + "/ckpt.h5", &vocab);
  const int64_t block = model->config().block_size;
  require_flag(static_cast<int64_t>(prompt.size()) <= block, cmd, "--prompt",
               "at most the checkpoint's block_size=" + std::to_string(block) + " characters",
               std::to_string(prompt.size()) + " characters");
  try {
    vocab.encode(prompt);
  } catch (const std::invalid_argument& e) {
    throw UsageError("[tiny_lm attend] --prompt must use the checkpoint's characters; " + std::string(e.what()));
  }
  const auto files = write_attention_maps(*model, vocab, prompt, output_dir.empty() ? out_dir : output_dir);
  for (const auto& f : files.written) std::cout << "wrote " << f << "\n";
  if (!files.pictures) {
    std::cerr << "tiny_lm attend: no pictures written: gnuplot is not on PATH (install gnuplot-nox)\n";
    return 1;
  }
  return 0;
}

// Under mpirun: whether every rank was given rank 0's command line. Then a bad command line fails alike on
// every rank, and rank 0 alone reports it.
bool same_command_line(int argc, char** argv, const Processes& processes) {
  std::string mine;
  for (int i = 1; i < argc; ++i) mine += std::string(argv[i]) + '\0';
  std::vector<char> bytes(mine.begin(), mine.end());
  processes.broadcast_bytes(bytes, 0);
  const bool same = std::string(bytes.begin(), bytes.end()) == mine;
  for (double v : processes.all_gather(same ? 1.0 : 0.0))
    if (v == 0.0) return false;
  return true;
}

// Runs a command; under mpirun with one command line on every rank, the other ranks keep a usage error
// (status 2) to themselves instead of interleaving rank 0's message with copies of it.
int run_command(int argc, char** argv, const MpiScope& mpi) {
  const std::vector<tg::examples::Command> commands{
      {"train", run_train}, {"sample", run_sample}, {"eval", run_eval}, {"plot", run_plot}, {"attend", run_attend}};
  const Processes processes = mpi.active() ? Processes::current() : Processes{};
  if (processes.size() == 1 || !same_command_line(argc, argv, processes) || processes.is_root())
    return tg::examples::run_commands("tiny_lm", kUsage, argc, argv, commands);
  std::ostringstream errors;
  std::streambuf* const stderr_buf = std::cerr.rdbuf(errors.rdbuf());
  int code = 1;
  try {
    code = tg::examples::run_commands("tiny_lm", kUsage, argc, argv, commands);
  } catch (...) {
    std::cerr.rdbuf(stderr_buf);
    std::cerr << errors.str();
    throw;
  }
  std::cerr.rdbuf(stderr_buf);
  if (code != 2) std::cerr << errors.str();
  return code;
}

}  // namespace

// Under mpirun (when built with MPI) every process runs the command inside an MPI environment; a failed
// process ends the whole launch (MpiScope::fail) instead of waiting for the others.
int main(int argc, char** argv) {
  try {
    MpiScope mpi(argc, argv);
    const int code = run_command(argc, argv, mpi);
    return code == 0 ? 0 : mpi.fail(code);
  } catch (const std::exception& e) {
    std::cerr << "tiny_lm: " << e.what() << "\n";
    return 1;
  }
}
