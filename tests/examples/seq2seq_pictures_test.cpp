// The pictures of the seq2seq example: readable --help defaults, losses.png during training (and the run
// going on without gnuplot), `seq2seq plot`, and `seq2seq attend`, whose CSVs must hold exactly the
// weights MultiheadAttention returns for the model's own layer inputs.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <tuple>

#include "examples/seq2seq/attention_maps.h"
#include "examples/seq2seq/data.h"
#include "examples/seq2seq/decode.h"
#include "examples/seq2seq/train.h"
#include "support/attention_csv_support.h"
#include "support/process_support.h"
#include "support/test_support.h"
#include "tapegrad/framework/ops/elementwise.h"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using namespace tg;
using namespace tg::seq2seq;

namespace {

const std::string kBin = std::string(TAPEGRAD_BINARY_DIR) + "/examples/seq2seq/seq2seq";

using Run = tg::test::ProcessResult;   // status, exited, output (stdout and stderr together)

// Runs seq2seq with `args` (stdout and stderr together) in folder `cwd` (default: the test's); `env` (e.g.
// "PATH=/x") is set for the program only.
Run run(const std::string& args, const std::string& env = "", const fs::path& cwd = {}) {
  tg::test::ProcessOptions o;
  o.cwd = cwd;
  const Run r = tg::test::run_shell((env.empty() ? "" : "env " + env + " ") + kBin + " " + args, o);
  REQUIRE(r.exited);   // never a signal
  return r;
}

const std::string kRun =
    "--d-model 16 --nhead 2 --num-encoder-layers 2 --num-decoder-layers 2 --dim-feedforward 32 --batch-size 16 "
    "--max-iters 20 --warmup-iters 2 --eval-interval 10 --eval-examples 8 --log-interval 10 --threads 2 ";

// A small trained run in build/test_scratch/seq2seq_pictures_<name>/run_a. Each test case trains its own:
// ctest runs the cases as separate processes, in parallel.
fs::path trained_run(const std::string& name) {
  const fs::path dir = tg::test::scratch_dir("seq2seq_pictures_" + name) / "run_a";
  const Run r = run("train " + kRun + "--out-dir " + dir.string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  return dir;
}

MultiheadAttentionForwardOptions weights_options(const Var& key_padding_mask, bool is_causal) {
  return {.key_padding_mask = key_padding_mask, .need_weights = true, .average_attn_weights = false, .is_causal = is_causal};
}

// enc_attn_layer<L>.{png,svg,csv} in `out` against the encoder's self-attention weights, recomputed through
// each layer's self_attn on norm1(x) (pre-norm); the chain of layer inputs ends in Seq2Seq::encode's memory.
void require_encoder_csvs(Seq2Seq& model, const Batch& src, const fs::path& out) {
  const int64_t S = src.src.size(1);
  const Var pad(src.src_pad);
  Var x = model.src_emb->forward(src.src) + model.src_pos->forward(Tensor::arange(S));
  auto& enc = *model.transformer->encoder;
  for (size_t l = 0; l < enc.layers->size(); ++l) {
    auto layer = std::static_pointer_cast<TransformerEncoderLayer>((*enc.layers)[l]);
    const Var h = layer->norm1->forward(x);
    const Tensor w = layer->self_attn->forward(h, h, h, weights_options(pad, false)).attn_weights.value();
    REQUIRE(w.shape() == Shape{1, 2, S, S});
    const std::string stem = (out / ("enc_attn_layer" + std::to_string(l))).string();
    REQUIRE(tg::test::is_png(stem + ".png"));
    REQUIRE_THAT(tg::test::read_file(stem + ".svg"), Contains("<svg"));
    tg::test::require_attention_csv_equals(stem + ".csv", static_cast<int64_t>(l), w, false);
    x = layer->forward(x, {.src_key_padding_mask = pad});
  }
  REQUIRE(tg::test::max_abs_diff(enc.norm->forward(x).value(), model.encode(src.src, src.src_pad).value()) == 0.0);
}

}  // namespace

TEST_CASE("seq2seq --help: every default reads as a person writes it", "[seq2seq][help]") {
  const Run train = run("train --help");
  REQUIRE(train.status == 0);
  REQUIRE_THAT(train.output, Contains("--lr arg (=2e-3)") && Contains("--min-lr arg (=1e-4)") &&
                                 Contains("--beta2 arg (=0.98)") && Contains("--weight-decay arg (=0.01)") &&
                                 Contains("--grad-clip arg (=1)") && Contains("--dropout arg (=0)"));
  for (const char* cmd : {"train", "translate", "eval", "plot", "attend"}) {
    const Run help = run(std::string(cmd) + " --help");
    INFO(help.output);
    REQUIRE(help.status == 0);
    REQUIRE(help.output.find("0000000") == std::string::npos);
    REQUIRE(help.output.find("9999999") == std::string::npos);
  }
  REQUIRE_THAT(run("--help").output, Contains("plot ") && Contains("attend "));
}

TEST_CASE("seq2seq train: out-dir/losses.png is drawn, with no scratch files left behind", "[seq2seq][plot]") {
  const fs::path dir = trained_run("train");
  REQUIRE(tg::test::is_png(dir / "losses.png"));
  for (const auto& e : fs::directory_iterator(dir)) REQUIRE(e.path().filename().string().find("gnuplot") == std::string::npos);
}

TEST_CASE("seq2seq train without gnuplot: the run goes on and says once that no plot was written", "[seq2seq][plot]") {
  const fs::path dir = tg::test::scratch_dir("seq2seq_pictures_no_gnuplot");
  const Run r = run("train " + kRun + "--out-dir " + dir.string(), "PATH=" + dir.string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  REQUIRE(tg::test::count_occurrences(r.output, "no losses.png written: gnuplot is not on PATH (install gnuplot-nox)") == 1);
  REQUIRE(tg::test::count_occurrences(r.output, "eval iter ") == 2);   // both evaluations ran
  REQUIRE_THAT(r.output, Contains("final iter 20"));
  REQUIRE(fs::exists(dir / "losses.csv"));
  REQUIRE_FALSE(fs::exists(dir / "losses.png"));
}

TEST_CASE("seq2seq plot: one run, or several overlaid into one PNG", "[seq2seq][plot]") {
  const fs::path a = trained_run("plot");
  const fs::path b = a.parent_path() / "run_b";
  fs::remove_all(b);
  fs::create_directories(b);
  fs::copy_file(a / "losses.csv", b / "losses.csv");
  fs::remove(a / "losses.png");
  const Run one = run("plot --out-dir " + a.string());
  INFO(one.output);
  REQUIRE(one.status == 0);
  REQUIRE(tg::test::is_png(a / "losses.png"));
  const Run both = run("plot --out-dir " + a.string() + " --compare " + b.string());
  REQUIRE(both.status == 0);
  REQUIRE_THAT(both.output, Contains("wrote " + (a / "compare.png").string()));
  REQUIRE(tg::test::is_png(a / "compare.png"));
  const fs::path elsewhere = a.parent_path() / "overlay.png";
  REQUIRE(run("plot --out-dir " + a.string() + " --compare " + b.string() + " --output " + elsewhere.string()).status == 0);
  REQUIRE(tg::test::is_png(elsewhere));
  const Run missing = run("plot --out-dir " + (a.parent_path() / "nope").string());
  REQUIRE(missing.status == 1);
  REQUIRE_THAT(missing.output, Contains("nope/losses.csv: cannot read the losses log"));
  const Run no_gnuplot = run("plot --out-dir " + a.string(), "PATH=" + a.string());
  REQUIRE(no_gnuplot.status == 1);
  REQUIRE_THAT(no_gnuplot.output, Contains("seq2seq plot: no picture written: gnuplot is not on PATH"));
}

TEST_CASE("seq2seq attend: PNG, SVG and CSV per layer, the CSVs holding MultiheadAttention's weights, bit for bit",
          "[seq2seq][attention]") {
  const fs::path dir = trained_run("attend");
  const fs::path out = dir.parent_path() / "maps";
  const std::string input = "3rd of march 2021";
  const Run r = run("attend --out-dir " + dir.string() + " --output-dir " + out.string() + " --input '" + input + "'");
  INFO(r.output);
  REQUIRE(r.status == 0);
  auto model = load_model((dir / "ckpt.h5").string());
  const std::vector<int64_t> source = encode(input);
  const Batch src = make_source_batch({source});
  const Decoded d = greedy_decode(*model, src, model->config().max_tgt_len).front();
  REQUIRE_THAT(r.output, Contains(input + " -> " + decode(d.tokens) + "\n"));
  const Run translated = run("translate --out-dir " + dir.string() + " '" + input + "'");
  REQUIRE(translated.output == decode(d.tokens) + "\n");
  std::vector<int64_t> tgt_in{kBos};
  tgt_in.insert(tgt_in.end(), d.tokens.begin(), d.tokens.end());
  if (!d.finished) tgt_in.pop_back();
  const int64_t S = static_cast<int64_t>(source.size()), T = static_cast<int64_t>(tgt_in.size());
  const Tensor tgt = Tensor::from_vector(tgt_in, {1, T});
  NoGradGuard no_grad;
  const Var pad(src.src_pad);
  require_encoder_csvs(*model, src, out);
  const Var memory = model->encode(src.src, src.src_pad);
  // Decoder: self-attention on norm1(y), cross-attention on norm2(y + self-attention block).
  Var y = model->tgt_emb->forward(tgt) + model->tgt_pos->forward(Tensor::arange(T));
  auto& dec = *model->transformer->decoder;
  for (size_t l = 0; l < dec.layers->size(); ++l) {
    auto layer = std::static_pointer_cast<TransformerDecoderLayer>((*dec.layers)[l]);
    const Var h = layer->norm1->forward(y);
    const Tensor self = layer->self_attn->forward(h, h, h, weights_options(Var(), true)).attn_weights.value();
    const Var q = layer->norm2->forward(y + layer->self_attn->forward(h, h, h, {.need_weights = false, .is_causal = true}).attn_output);
    const Tensor cross = layer->multihead_attn->forward(q, memory, memory, weights_options(pad, false)).attn_weights.value();
    REQUIRE(cross.shape() == Shape{1, 2, T, S});
    for (const char* kind : {"cross_attn_layer", "dec_attn_layer"}) {
      const std::string stem = (out / (kind + std::to_string(l))).string();
      REQUIRE(tg::test::is_png(stem + ".png"));
      REQUIRE_THAT(tg::test::read_file(stem + ".svg"), Contains("<svg"));
    }
    const std::string n = std::to_string(l);
    const auto index = static_cast<int64_t>(l);
    tg::test::require_attention_csv_equals((out / ("cross_attn_layer" + n + ".csv")).string(), index, cross, false);
    tg::test::require_attention_csv_equals((out / ("dec_attn_layer" + n + ".csv")).string(), index, self, true);
    y = layer->forward(y, memory, {.memory_key_padding_mask = pad, .tgt_is_causal = true});
  }
  // The layer inputs used above are the model's own: the chain ends in Seq2Seq::decode's logits.
  const Tensor logits = model->head->forward(dec.norm->forward(y)).value();
  REQUIRE(tg::test::max_abs_diff(logits, model->decode(tgt, memory, src.src_pad).value()) == 0.0);
  // attention_weights, the API behind the command, returns the same weights.
  const AttentionWeights api = attention_weights(*model, source, tgt_in);
  REQUIRE(api.encoder.size() == 2);
  REQUIRE(api.cross.size() == 2);
  REQUIRE(api.decoder.size() == 2);
  REQUIRE(api.cross[1].shape() == Shape{2, T, S});
}

TEST_CASE("seq2seq attend: bad inputs are usage errors, and without gnuplot only the CSVs are written", "[seq2seq][attention]") {
  const fs::path dir = trained_run("attend_errors");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"attend --out-dir " + dir.string(), "seq2seq attend: the option '--input' is required but missing (see seq2seq attend --help)"},
      {"attend --out-dir " + dir.string() + " --input ''", "[seq2seq attend] --input must be at least one character; got --input=''"},
      {"attend --out-dir " + dir.string() + " --input 'March 3, 2021!'",
       "[seq2seq attend] character '!' (byte 0x21) at position 13 is outside the vocabulary; got text='March 3, 2021!'"},
      {"attend --out-dir " + dir.string() + " --input " + std::string(33, 'a'),
       "[seq2seq attend] --input must be at most the checkpoint's max_src_len=32 characters; got --input=33 characters"},
      {"attend --out-dir " + dir.string() + " --input x --threads 0", "[seq2seq attend] --threads must be in [1, 1024]; got --threads=0"},
      {"attend --out-dir " + dir.string() + " --input x --output-dir ''", "[seq2seq attend] --output-dir must be a folder name; got --output-dir=''"},
  };
  for (const auto& [args, message] : cases) {
    INFO(args);
    const Run r = run(args);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains(message));
  }
  // A relative --output-dir (gnuplot runs in a scratch folder inside it).
  const Run relative = run("attend --out-dir " + dir.string() + " --output-dir maps_relative --input 3/3/21", "", dir.parent_path());
  INFO(relative.output);
  REQUIRE(relative.status == 0);
  REQUIRE(tg::test::is_png(dir.parent_path() / "maps_relative" / "cross_attn_layer1.png"));
  const fs::path out = dir.parent_path() / "maps_no_gnuplot";
  const Run bare = run("attend --out-dir " + dir.string() + " --output-dir " + out.string() + " --input 3/3/21", "PATH=" + out.string());
  REQUIRE(bare.status == 1);
  REQUIRE_THAT(bare.output, Contains("seq2seq attend: no pictures written: gnuplot is not on PATH"));
  for (const char* kind : {"cross_attn_layer", "dec_attn_layer", "enc_attn_layer"}) {
    REQUIRE(fs::exists(out / (kind + std::string("0.csv"))));
    REQUIRE(fs::exists(out / (kind + std::string("1.csv"))));
    REQUIRE_FALSE(fs::exists(out / (kind + std::string("0.png"))));
  }
}

TEST_CASE("seq2seq attend: an untrained model (which rated PAD and BOS highest) and a one-character input",
          "[seq2seq][attention]") {
  // Seed 2 of this config once decoded held-out source 1 to PAD/BOS tokens, which decode() dropped: the
  // maps then had fewer row labels than rows ("[HeatmapGrid] panel 0 must hold rows x cols ...").
  const Seq2SeqConfig cfg{.vocab_size = vocab_size(), .max_src_len = 32, .max_tgt_len = 16, .d_model = 16,
                          .nhead = 2, .num_encoder_layers = 1, .num_decoder_layers = 1, .dim_feedforward = 32,
                          .dropout = 0.1, .norm_first = true};
  Seq2Seq model(cfg, Generator(2));
  const fs::path dir = tg::test::scratch_dir("seq2seq_pictures_untrained");
  for (const std::string& input : {held_out_examples(6, 11)[1].source, std::string("a")}) {
    INFO("input '" << input << "'");
    const Decoded d = greedy_decode(model, make_source_batch({encode(input)}), 16).front();
    const AttentionMapFiles files = write_attention_maps(model, input, dir.string());
    CHECK(files.output == decode(d.tokens));
    CHECK(files.output.size() == d.tokens.size());   // every token a character: nothing dropped
    REQUIRE(files.written.size() == 9);
    // Cross-attention: every (produced token, source character) cell of the 2 heads.
    const size_t rows = d.tokens.size() + (d.finished ? 1 : 0);
    const std::string csv = tg::test::read_file(dir / "cross_attn_layer0.csv");
    CHECK(static_cast<size_t>(std::count(csv.begin(), csv.end(), '\n')) == 1 + 2 * rows * input.size());
    REQUIRE(tg::test::is_png(dir / "dec_attn_layer0.png"));
  }
}
