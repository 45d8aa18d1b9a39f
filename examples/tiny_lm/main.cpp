// tiny_lm: train, sample from and evaluate a character-level transformer language model.
//   tiny_lm train  [--data FILE] [--out-dir DIR] [...]      (tiny_lm train --help for every flag)
//   tiny_lm sample [--out-dir DIR] [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S]
//   tiny_lm eval   --data FILE [--out-dir DIR] [--max-batches N]
#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "examples/tiny_lm/checkpointing.h"
#include "examples/tiny_lm/generate.h"
#include "examples/tiny_lm/train.h"
#include "tapegrad/framework/ops/loss.h"
#include "tapegrad/framework/runtime.h"

namespace po = boost::program_options;
using namespace tg::tiny_lm;

namespace {

constexpr const char* kUsage =
    "usage: tiny_lm <command> [options]\n"
    "commands:\n"
    "  train    train a model (built-in arithmetic corpus unless --data), checkpointing to --out-dir\n"
    "  sample   generate text from a checkpoint\n"
    "  eval     report a checkpoint's loss on a text file\n"
    "run 'tiny_lm <command> --help' for the options of a command\n";

// Parses argv[2..]; returns false (after printing help) when --help was given.
bool parse(int argc, char** argv, po::options_description& desc, po::variables_map& vm, const char* usage) {
  desc.add_options()("help,h", "show this help");
  po::store(po::command_line_parser(argc - 1, argv + 1).options(desc).run(), vm);
  if (vm.count("help")) {
    std::cout << usage << "\n" << desc << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

int run_train(int argc, char** argv) {
  TrainOptions o;
  po::options_description d("tiny_lm train options");
  d.add_options()
      ("data", po::value(&o.data), "text file to train on (default: the built-in arithmetic corpus)")
      ("out-dir", po::value(&o.out_dir)->default_value(o.out_dir), "folder for ckpt.h5 and losses.csv")
      ("block-size", po::value(&o.block_size)->default_value(o.block_size), "context length")
      ("batch-size", po::value(&o.batch_size)->default_value(o.batch_size), "sequences per iteration")
      ("n-layer", po::value(&o.n_layer)->default_value(o.n_layer), "transformer layers")
      ("n-head", po::value(&o.n_head)->default_value(o.n_head), "attention heads")
      ("n-embd", po::value(&o.n_embd)->default_value(o.n_embd), "embedding width (feed-forward is 4x)")
      ("dropout", po::value(&o.dropout)->default_value(o.dropout), "dropout probability")
      ("max-iters", po::value(&o.max_iters)->default_value(o.max_iters), "training iterations")
      ("lr-decay-iters", po::value(&o.lr_decay_iters)->default_value(o.lr_decay_iters), "end of the cosine decay")
      ("lr", po::value(&o.lr)->default_value(o.lr), "peak learning rate")
      ("min-lr", po::value(&o.min_lr)->default_value(o.min_lr), "learning rate floor")
      ("warmup-iters", po::value(&o.warmup_iters)->default_value(o.warmup_iters), "linear warmup iterations")
      ("weight-decay", po::value(&o.weight_decay)->default_value(o.weight_decay), "AdamW weight decay (matrices only)")
      ("beta1", po::value(&o.beta1)->default_value(o.beta1), "AdamW beta1")
      ("beta2", po::value(&o.beta2)->default_value(o.beta2), "AdamW beta2")
      ("grad-clip", po::value(&o.grad_clip)->default_value(o.grad_clip), "clip the global grad norm (0: off)")
      ("eval-interval", po::value(&o.eval_interval)->default_value(o.eval_interval), "iterations between evaluations")
      ("eval-iters", po::value(&o.eval_iters)->default_value(o.eval_iters), "batches per evaluation")
      ("seed", po::value(&o.seed)->default_value(o.seed), "seed of every random stream")
      ("threads", po::value(&o.threads)->default_value(o.threads), "worker threads")
      ("tie-weights", po::value(&o.tie_weights)->default_value(o.tie_weights), "head shares tok_emb's weight (1/0)")
      ("resume", po::bool_switch(&o.resume), "continue from <out-dir>/ckpt.h5")
      ("stop-at", po::value(&o.stop_at)->default_value(o.stop_at), "save and exit after this many iterations")
      ("no-progress", "plain log lines even on a terminal");
  po::variables_map vm;
  if (!parse(argc, argv, d, vm, "usage: tiny_lm train [options]")) return 0;
  if (vm.count("no-progress")) o.progress = false;
  train(o, std::cout);
  return 0;
}

int run_sample(int argc, char** argv) {
  std::string out_dir = "out-tiny-lm", prompt = "\n";
  int64_t tokens = 500, top_k = 200;
  double temperature = 0.8;
  uint64_t seed = 1337;
  int threads = 2;
  po::options_description d("tiny_lm sample options");
  d.add_options()
      ("out-dir", po::value(&out_dir)->default_value(out_dir), "folder holding ckpt.h5")
      ("prompt", po::value(&prompt)->default_value("\\n"), "text to continue")
      ("tokens", po::value(&tokens)->default_value(tokens), "characters to generate")
      ("temperature", po::value(&temperature)->default_value(temperature), "softmax temperature (> 0)")
      ("top-k", po::value(&top_k)->default_value(top_k), "sample among the k most likely (0: all)")
      ("seed", po::value(&seed)->default_value(seed), "seed of the sampling stream")
      ("threads", po::value(&threads)->default_value(threads), "worker threads");
  po::variables_map vm;
  if (!parse(argc, argv, d, vm, "usage: tiny_lm sample [options]")) return 0;
  if (prompt == "\\n") prompt = "\n";
  tg::set_num_threads(threads);
  Vocabulary vocab;
  auto model = load_model(out_dir + "/ckpt.h5", &vocab);
  tg::Generator gen(seed);
  auto out = sample_tokens(*model, vocab.encode(prompt), tokens, temperature, top_k, gen);
  std::cout << prompt << vocab.decode(out) << std::endl;
  return 0;
}

int run_eval(int argc, char** argv) {
  std::string out_dir = "out-tiny-lm", data;
  int64_t batch_size = 12, max_batches = 0;
  int threads = 2;
  po::options_description d("tiny_lm eval options");
  d.add_options()
      ("data", po::value(&data)->required(), "text file to evaluate on (every character must be in the vocabulary)")
      ("out-dir", po::value(&out_dir)->default_value(out_dir), "folder holding ckpt.h5")
      ("batch-size", po::value(&batch_size)->default_value(batch_size), "sequences per batch")
      ("max-batches", po::value(&max_batches)->default_value(max_batches), "stop after this many batches (0: whole file)")
      ("threads", po::value(&threads)->default_value(threads), "worker threads");
  po::variables_map vm;
  if (!parse(argc, argv, d, vm, "usage: tiny_lm eval --data FILE [options]")) return 0;
  tg::set_num_threads(threads);
  Vocabulary vocab;
  auto model = load_model(out_dir + "/ckpt.h5", &vocab);
  auto [loss, tokens] = evaluate_file(*model, vocab, data, batch_size, max_batches);
  std::printf("eval loss %.6f over %lld tokens of %s\n", loss, static_cast<long long>(tokens), data.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "train") return run_train(argc, argv);
    if (cmd == "sample") return run_sample(argc, argv);
    if (cmd == "eval") return run_eval(argc, argv);
    std::cerr << "tiny_lm: unknown command '" << cmd << "'\n" << kUsage;
    return 2;
  } catch (const po::error& e) {
    std::cerr << "tiny_lm " << cmd << ": " << e.what() << " (see tiny_lm " << cmd << " --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tiny_lm " << cmd << ": " << e.what() << "\n";
    return 1;
  }
}
