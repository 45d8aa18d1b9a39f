// The pictures of tiny_lm: readable --help defaults, losses.png during training (and the run going on
// without gnuplot), `tiny_lm plot` overlays, and `tiny_lm attend`, whose CSV must hold exactly the
// weights MultiheadAttention returns for the model's own layer inputs.
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <tuple>

#include "examples/tiny_lm/attention_maps.h"
#include "examples/tiny_lm/checkpointing.h"
#include "support/attention_csv_support.h"
#include "support/process_support.h"
#include "support/test_support.h"
#include "tapegrad/framework/ops/elementwise.h"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using namespace tg;
using tg::tiny_lm::load_model;
using tg::tiny_lm::Vocabulary;

namespace {

const std::string kBin = std::string(TAPEGRAD_BINARY_DIR) + "/examples/tiny_lm/tiny_lm";

using Run = tg::test::ProcessResult;   // status, exited, output (stdout and stderr together)

// Runs tiny_lm with `args`; `env` (e.g. "PATH=/x") is set for the program only.
Run run(const std::string& args, const std::string& env = "") {
  return tg::test::run_shell((env.empty() ? "" : "env " + env + " ") + kBin + " " + args);
}

const std::string kRun =
    "--n-layer 2 --n-head 2 --n-embd 32 --block-size 24 --batch-size 8 --warmup-iters 5 --max-iters 40 "
    "--lr-decay-iters 40 --eval-interval 10 --eval-iters 2 --threads 2 --no-progress ";

// A small trained run (built-in arithmetic corpus) in build/test_scratch/pictures_<name>/run_a. Each test
// case trains its own: ctest runs the cases as separate processes, in parallel.
fs::path trained_run(const std::string& name) {
  fs::path dir = tg::test::scratch_dir("pictures_" + name) / "run_a";
  Run r = run("train " + kRun + "--out-dir " + dir.string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  return dir;
}

}  // namespace

TEST_CASE("tiny_lm --help: every default reads as a person writes it", "[e2e][help]") {
  Run train = run("train --help");
  REQUIRE(train.status == 0);
  REQUIRE_THAT(train.output, Contains("--weight-decay arg (=0.1)") && Contains("--beta2 arg (=0.99)") &&
                                 Contains("--beta1 arg (=0.9)") && Contains("--seed arg (=1337)"));
  REQUIRE((train.output.find("(=0.001)") != std::string::npos || train.output.find("(=1e-3)") != std::string::npos));
  Run sample = run("sample --help");
  REQUIRE_THAT(sample.output, Contains("--temperature arg (=0.8)"));
  for (const char* cmd : {"train", "sample", "eval", "plot", "attend"}) {
    Run help = run(std::string(cmd) + " --help");
    INFO(help.output);
    REQUIRE(help.status == 0);
    REQUIRE(help.output.find("0000000") == std::string::npos);
    REQUIRE(help.output.find("9999999") == std::string::npos);
  }
}

TEST_CASE("tiny_lm train: out-dir/losses.png is drawn, with no scratch files left behind", "[e2e][plot]") {
  const fs::path dir = trained_run("train");
  REQUIRE(tg::test::is_png(dir / "losses.png"));
  for (const auto& e : fs::directory_iterator(dir)) REQUIRE(e.path().filename().string().find("gnuplot") == std::string::npos);
}

TEST_CASE("tiny_lm train without gnuplot: the run goes on and says once that no plot was written", "[e2e][plot]") {
  const fs::path dir = tg::test::scratch_dir("pictures_no_gnuplot");
  Run r = run("train " + kRun + "--out-dir " + dir.string(), "PATH=" + dir.string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  REQUIRE(tg::test::count_occurrences(r.output, "no losses.png written: gnuplot is not on PATH (install gnuplot-nox)") == 1);
  REQUIRE_THAT(r.output, Contains("final iter 40"));
  REQUIRE(fs::exists(dir / "losses.csv"));
  REQUIRE_FALSE(fs::exists(dir / "losses.png"));
}

TEST_CASE("tiny_lm plot: one run, or several overlaid into one PNG", "[e2e][plot]") {
  const fs::path a = trained_run("plot");
  const fs::path b = a.parent_path() / "run_b";
  Run second = run("train " + kRun + "--seed 7 --out-dir " + b.string());
  REQUIRE(second.status == 0);
  fs::remove(a / "losses.png");
  Run one = run("plot --out-dir " + a.string());
  INFO(one.output);
  REQUIRE(one.status == 0);
  REQUIRE(tg::test::is_png(a / "losses.png"));
  Run both = run("plot --out-dir " + a.string() + " --compare " + b.string());
  REQUIRE(both.status == 0);
  REQUIRE_THAT(both.output, Contains("wrote " + (a / "compare.png").string()));
  REQUIRE(tg::test::is_png(a / "compare.png"));
  const fs::path elsewhere = a.parent_path() / "overlay.png";
  REQUIRE(run("plot --out-dir " + a.string() + " --compare " + b.string() + " --output " + elsewhere.string()).status == 0);
  REQUIRE(tg::test::is_png(elsewhere));
  Run missing = run("plot --out-dir " + (a.parent_path() / "nope").string());
  REQUIRE(missing.status == 1);
  REQUIRE_THAT(missing.output, Contains("nope/losses.csv: cannot read the losses log"));
  Run no_gnuplot = run("plot --out-dir " + a.string(), "PATH=" + a.string());
  REQUIRE(no_gnuplot.status == 1);
  REQUIRE_THAT(no_gnuplot.output, Contains("no picture written: gnuplot is not on PATH"));
}

TEST_CASE("tiny_lm attend: PNG, SVG and CSV per layer, the CSV holding MultiheadAttention's weights, bit for bit",
          "[e2e][attention]") {
  const fs::path dir = trained_run("attend");
  const fs::path out = dir.parent_path() / "maps";
  const std::string prompt = "12+34=046\n5";
  Run r = run("attend --out-dir " + dir.string() + " --output-dir " + out.string() + " --prompt '12+34=046\\n5'");
  INFO(r.output);
  REQUIRE(r.status == 0);
  Vocabulary vocab;
  auto model = load_model((dir / "ckpt.h5").string(), &vocab);
  const int64_t T = static_cast<int64_t>(prompt.size()), H = model->config().n_head;
  Tensor tokens({1, T}, DType::Int64);
  const auto ids = vocab.encode(prompt);
  std::copy(ids.begin(), ids.end(), tokens.data<int64_t>());
  NoGradGuard no_grad;
  Var x = model->tok_emb->forward(tokens) + model->pos_emb->forward(Tensor::arange(T));
  std::vector<Tensor> returned;
  for (int64_t layer = 0; layer < model->config().n_layer; ++layer) {
    const std::string stem = (out / ("attn_layer" + std::to_string(layer))).string();
    REQUIRE(tg::test::is_png(stem + ".png"));
    REQUIRE_THAT(tg::test::read_file(stem + ".svg"), Contains("<svg"));
    auto l = std::static_pointer_cast<TransformerEncoderLayer>((*model->layers)[static_cast<size_t>(layer)]);
    Var h = l->norm1->forward(x);
    Tensor w = l->self_attn->forward(h, h, h, {.need_weights = true, .average_attn_weights = false, .is_causal = true})
                   .attn_weights.value();   // (1, H, T, T)
    REQUIRE(w.shape() == Shape{1, H, T, T});
    returned.push_back(w.reshape({H, T, T}));
    tg::test::require_attention_csv_equals(stem + ".csv", layer, w, true);
    x = l->forward(x, {.is_causal = true});
  }
  // The layer inputs used above are the model's own: the chain ends in TinyLM::forward's logits.
  Tensor logits = model->head->forward(model->ln_f->forward(x)).value();
  REQUIRE(tg::test::max_abs_diff(logits, model->forward(tokens).value()) == 0.0);
  // attention_weights, the API behind the command, returns the same (H, T, T) weights.
  const std::vector<Tensor> api = tiny_lm::attention_weights(*model, ids);
  REQUIRE(api.size() == returned.size());
  for (size_t l = 0; l < api.size(); ++l) REQUIRE(tg::test::max_abs_diff(api[l], returned[l]) == 0.0);
}

TEST_CASE("tiny_lm attend: bad prompts are usage errors, and without gnuplot only the CSVs are written", "[e2e][attention]") {
  const fs::path dir = trained_run("attend_errors");
  Run none = run("attend --out-dir " + dir.string());
  REQUIRE(none.status == 2);
  REQUIRE_THAT(none.output, Contains("the option '--prompt' is required"));
  Run foreign = run("attend --out-dir " + dir.string() + " --prompt 'ROMEO'");
  REQUIRE(foreign.status == 2);
  REQUIRE_THAT(foreign.output, Contains("[tiny_lm attend] --prompt must use the checkpoint's characters"));
  Run longer = run("attend --out-dir " + dir.string() + " --prompt 1234567890123456789012345");
  REQUIRE(longer.status == 2);
  REQUIRE_THAT(longer.output, Contains("[tiny_lm attend] --prompt must be at most the checkpoint's block_size=24 "
                                       "characters; got --prompt=25 characters"));
  const fs::path out = dir.parent_path() / "maps_no_gnuplot";
  Run bare = run("attend --out-dir " + dir.string() + " --output-dir " + out.string() + " --prompt 1+2=", "PATH=" + out.string());
  REQUIRE(bare.status == 1);
  REQUIRE_THAT(bare.output, Contains("no pictures written: gnuplot is not on PATH"));
  REQUIRE(fs::exists(out / "attn_layer0.csv"));
  REQUIRE(fs::exists(out / "attn_layer1.csv"));
  REQUIRE_FALSE(fs::exists(out / "attn_layer0.png"));
}
