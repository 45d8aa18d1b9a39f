// seq2seq: train, run and evaluate a character-level encoder-decoder transformer that rewrites written
// dates in ISO form ("3rd of march 2021" -> "2021-03-03").
//   seq2seq train     [--out-dir DIR] [...]                 (seq2seq train --help for every flag)
//   seq2seq translate [--out-dir DIR] [--beam N] [TEXT ...] (no TEXT: one input per line of stdin)
//   seq2seq eval      [--out-dir DIR] [--examples N] [--beam N]
//   seq2seq plot      [--out-dir DIR] [--compare DIR2 ...] [--output FILE]
//   seq2seq attend    --input TEXT [--out-dir DIR] [--output-dir DIR]
// Exit status: 0 success; 2 a bad command line (unknown command or flag, a value of the wrong type or
// out of range, an input with characters outside the vocabulary), reported before anything is built
// (an input longer than the checkpoint's max_src_len: once the checkpoint is read, before decoding);
// 1 any other failure (a checkpoint, a write). Never a signal.
#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "examples/common/cli.h"
#include "examples/common/plot_command.h"
#include "examples/common/readable_default.h"
#include "examples/seq2seq/attention_maps.h"
#include "examples/seq2seq/train.h"
#include "tapegrad/framework/runtime.h"

namespace po = boost::program_options;
using namespace tg::seq2seq;
using tg::examples::parse;
using tg::examples::parse_seed;
using tg::examples::readable_default;
using tg::examples::require_flag;
using tg::examples::require_in_range;
using tg::examples::UsageError;

namespace {

constexpr const char* kUsage =
    "usage: seq2seq <command> [options]\n"
    "commands:\n"
    "  train      train the date -> ISO model, checkpointing to --out-dir\n"
    "  translate  rewrite dates given as arguments (or stdin lines) with a checkpoint\n"
    "  eval       exact-match accuracy of a checkpoint on held-out dates\n"
    "  plot       draw losses.csv of one run, or several overlaid, as a PNG\n"
    "  attend     draw what each attention head looks at, for one input (PNG, SVG and CSV per layer)\n"
    "run 'seq2seq <command> --help' for the options of a command\n";

int run_train(int argc, char** argv) {
  TrainOptions o;
  std::string seed;
  po::options_description d("seq2seq train options");
  d.add_options()
      ("out-dir", po::value(&o.out_dir)->default_value(o.out_dir), "folder for ckpt.h5 and losses.csv")
      ("d-model", po::value(&o.d_model)->default_value(o.d_model), "model width")
      ("nhead", po::value(&o.nhead)->default_value(o.nhead), "attention heads")
      ("num-encoder-layers", po::value(&o.num_encoder_layers)->default_value(o.num_encoder_layers), "encoder layers")
      ("num-decoder-layers", po::value(&o.num_decoder_layers)->default_value(o.num_decoder_layers), "decoder layers")
      ("dim-feedforward", po::value(&o.dim_feedforward)->default_value(o.dim_feedforward), "feed-forward width")
      ("dropout", readable_default(&o.dropout), "dropout probability")
      ("batch-size", po::value(&o.batch_size)->default_value(o.batch_size), "examples per iteration")
      ("max-iters", po::value(&o.max_iters)->default_value(o.max_iters), "training iterations (end of the cosine decay)")
      ("warmup-iters", po::value(&o.warmup_iters)->default_value(o.warmup_iters), "linear warmup iterations")
      ("lr", readable_default(&o.lr), "peak learning rate")
      ("min-lr", readable_default(&o.min_lr), "learning rate at the end of the decay")
      ("weight-decay", readable_default(&o.weight_decay), "AdamW weight decay (matrices only)")
      ("beta1", readable_default(&o.beta1), "AdamW beta1")
      ("beta2", readable_default(&o.beta2), "AdamW beta2")
      ("grad-clip", readable_default(&o.grad_clip), "clip the global grad norm (0: off)")
      ("label-smoothing", readable_default(&o.label_smoothing), "cross_entropy label_smoothing")
      ("eval-interval", po::value(&o.eval_interval)->default_value(o.eval_interval), "iterations between evaluations")
      ("eval-examples", po::value(&o.eval_examples)->default_value(o.eval_examples), "held-out examples per evaluation")
      ("log-interval", po::value(&o.log_interval)->default_value(o.log_interval), "iterations between loss lines")
      ("seed", po::value(&seed)->default_value(std::to_string(o.seed)), "seed of every random stream")
      ("threads", po::value(&o.threads)->default_value(o.threads), "worker threads")
      ("resume", po::bool_switch(&o.resume), "continue from <out-dir>/ckpt.h5 (--lr, --min-lr, --warmup-iters, "
       "--weight-decay, --beta1, --beta2 and --grad-clip must be the checkpoint's; a larger --max-iters extends the "
       "run at --min-lr: the decay keeps the checkpoint's length)")
      ("stop-at", po::value(&o.stop_at)->default_value(o.stop_at), "save and exit after this many iterations");
  po::variables_map vm;
  if (!parse(argc, argv, d, vm, "usage: seq2seq train [options]")) return 0;
  o.seed = parse_seed(seed, "seq2seq train", "--seed");
  o.validate();
  train(o, std::cout);
  return 0;
}

// The flags shared by translate and eval.
struct DecodeFlags {
  std::string out_dir = "out-seq2seq";
  int64_t beam = 1, batch_size = 256;
  bool length_norm = false;
  int threads = 2;

  void add(po::options_description& d) {
    d.add_options()
        ("out-dir", po::value(&out_dir)->default_value(out_dir), "folder holding ckpt.h5")
        ("beam", po::value(&beam)->default_value(beam), "beam size (1: greedy decoding with the KV cache)")
        ("length-norm", po::bool_switch(&length_norm), "rank beams by log-prob per token (default: total log-prob)")
        ("batch-size", po::value(&batch_size)->default_value(batch_size), "inputs decoded together (greedy)")
        ("threads", po::value(&threads)->default_value(threads), "worker threads");
  }
  void validate(const char* cmd) const {
    require_flag(!out_dir.empty(), cmd, "--out-dir", "a folder name", "''");
    require_in_range(cmd, "--beam", beam, 1, 64);
    require_in_range(cmd, "--batch-size", batch_size, 1, 65536);
    require_in_range(cmd, "--threads", threads, 1, 1024);
  }
};

// Throws UsageError "[<cmd>] <what encode says>" when text has characters outside the vocabulary.
void require_encodable(const char* cmd, const std::string& text) {
  try {
    encode(text);
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what(), prefix = "[seq2seq] ";   // the data layer's prefix, replaced by the command's
    throw UsageError("[" + std::string(cmd) + "] " + (what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what));
  }
}

// Throws UsageError naming `name` when text is longer than the checkpoint's max_src_len (known only once
// the checkpoint is read).
void require_fits_source(const char* cmd, const std::string& name, const std::string& text, const Seq2Seq& model) {
  const int64_t max_src = model.config().max_src_len;
  require_flag(static_cast<int64_t>(text.size()) <= max_src, cmd, name.c_str(),
               "at most the checkpoint's max_src_len=" + std::to_string(max_src) + " characters",
               std::to_string(text.size()) + " characters");
}

int run_translate(int argc, char** argv) {
  const char* cmd = "seq2seq translate";
  DecodeFlags f;
  std::vector<std::string> inputs;
  po::options_description d("seq2seq translate options");
  f.add(d);
  d.add_options()("input", po::value(&inputs)->composing(), "dates to rewrite (positional; none: read stdin lines)");
  po::positional_options_description pos;
  pos.add("input", -1);
  po::variables_map vm;
  if (!parse(argc, argv, d, vm, "usage: seq2seq translate [options] [TEXT ...]", &pos)) return 0;
  f.validate(cmd);
  const bool from_stdin = inputs.empty();
  if (from_stdin)   // read before anything is built, so that a bad line is a usage error too
    for (std::string line; std::getline(std::cin, line);) inputs.push_back(line);
  for (const std::string& s : inputs) {
    require_flag(!s.empty(), cmd, "TEXT", "non-empty", "''");
    require_encodable(cmd, s);
  }
  tg::set_num_threads(f.threads);
  auto model = load_model(f.out_dir + "/ckpt.h5");
  // The length limit is the checkpoint's: checked once it is read, before anything is decoded. A stdin
  // line that is too long fails the whole command (exit 2, naming the line), like a bad character.
  for (size_t i = 0; i < inputs.size(); ++i)
    require_fits_source(cmd, from_stdin ? "stdin line " + std::to_string(i + 1) : "TEXT", inputs[i], *model);
  const BeamOptions beam{.beam_size = f.beam, .max_len = model->config().max_tgt_len, .length_norm = f.length_norm};
  for (const std::string& s : translate(*model, inputs, beam, f.batch_size)) std::cout << s << "\n";
  return 0;
}

int run_eval(int argc, char** argv) {
  const char* cmd = "seq2seq eval";
  DecodeFlags f;
  int64_t examples = 1000;
  std::string seed;
  po::options_description d("seq2seq eval options");
  f.add(d);
  d.add_options()("examples", po::value(&examples)->default_value(examples), "held-out examples to score")
      ("seed", po::value(&seed)->default_value("1337"), "seed of the held-out sample (training's --seed: its eval set)");
  po::variables_map vm;
  if (!parse(argc, argv, d, vm, "usage: seq2seq eval [options]")) return 0;
  f.validate(cmd);
  require_in_range(cmd, "--examples", examples, 1, 1000000);
  const uint64_t s = parse_seed(seed, cmd, "--seed");
  tg::set_num_threads(f.threads);
  auto model = load_model(f.out_dir + "/ckpt.h5");
  const BeamOptions beam{.beam_size = f.beam, .max_len = model->config().max_tgt_len, .length_norm = f.length_norm};
  const Evaluation e = evaluate(*model, eval_examples_for(s, examples), beam, f.batch_size);
  std::printf("eval %lld held-out examples: exact_match %.2f%% val_loss %.6f (beam %lld)\n",
              static_cast<long long>(examples), 100 * e.exact_match, e.val_loss, static_cast<long long>(f.beam));
  return 0;
}

int run_plot(int argc, char** argv) { return tg::examples::run_plot_command("seq2seq", "out-seq2seq", argc, argv); }

int run_attend(int argc, char** argv) {
  const char* cmd = "seq2seq attend";
  std::string out_dir = "out-seq2seq", output_dir, input;
  int threads = 2;
  po::options_description d("seq2seq attend options");
  d.add_options()
      ("input", po::value(&input)->required(), "the date to decode and look at, e.g. \"3rd of march 2021\"")
      ("out-dir", po::value(&out_dir)->default_value(out_dir), "folder holding ckpt.h5")
      ("output-dir", po::value(&output_dir), "folder for {cross,dec,enc}_attn_layer<L>.{png,svg,csv} (default: --out-dir)")
      ("threads", po::value(&threads)->default_value(threads), "worker threads");
  po::variables_map vm;
  if (!parse(argc, argv, d, vm, "usage: seq2seq attend --input TEXT [options]")) return 0;
  require_flag(!input.empty(), cmd, "--input", "at least one character", "''");
  require_flag(!out_dir.empty(), cmd, "--out-dir", "a folder name", "''");
  require_flag(!vm.count("output-dir") || !output_dir.empty(), cmd, "--output-dir", "a folder name", "''");
  require_in_range(cmd, "--threads", threads, 1, 1024);
  require_encodable(cmd, input);
  tg::set_num_threads(threads);
  auto model = load_model(out_dir + "/ckpt.h5");
  require_fits_source(cmd, "--input", input, *model);
  const AttentionMapFiles files = write_attention_maps(*model, input, output_dir.empty() ? out_dir : output_dir);
  std::cout << input << " -> " << files.output << "\n";
  for (const auto& f : files.written) std::cout << "wrote " << f << "\n";
  if (!files.pictures) {
    std::cerr << "seq2seq attend: no pictures written: gnuplot is not on PATH (install gnuplot-nox)\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tg::examples::run_commands("seq2seq", kUsage, argc, argv,
                                    {{"train", run_train},
                                     {"translate", run_translate},
                                     {"eval", run_eval},
                                     {"plot", run_plot},
                                     {"attend", run_attend}});
}
