// The limits and checks behind tiny_lm's command line, tested as a library: the parameter count and
// memory estimates, TinyLMConfig::validate (also what a checkpoint's /config goes through), the flag
// validation of TrainOptions, strict seeds, the checked losses log, and the argument checks of
// evaluate_file and sample_tokens.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "examples/tiny_lm/checkpointing.h"
#include "examples/tiny_lm/generate.h"
#include "examples/tiny_lm/limits.h"
#include "examples/tiny_lm/progress.h"
#include "examples/tiny_lm/train.h"
#include "support/test_support.h"
#include "tapegrad/framework/io/checkpoint.h"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using namespace tg;
using namespace tg::tiny_lm;

namespace {

TinyLMConfig small_config() {
  return {.vocab_size = 11, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 8, .dim_feedforward = 0,
          .dropout = 0.0, .activation = Activation::gelu, .layer_norm_eps = 1e-5, .norm_first = true,
          .head_bias = true, .tie_weights = false};
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string scratch_file(const std::string& name) {
  fs::path d = fs::path(TAPEGRAD_BINARY_DIR) / "test_scratch" / "limits";
  fs::create_directories(d);
  fs::remove_all(d / name);
  return (d / name).string();
}

}  // namespace

TEST_CASE("parameter_count equals the parameters TinyLM registers", "[tiny_lm][limits]") {
  for (bool tie : {false, true})
    for (bool head_bias : {false, true})
      for (int64_t ff : {0, 24}) {
        TinyLMConfig c = small_config();
        c.tie_weights = tie;
        c.head_bias = head_bias;
        c.dim_feedforward = ff;
        Generator gen(1);
        TinyLM model(c, gen);
        INFO("tie " << tie << " head_bias " << head_bias << " ff " << ff);
        REQUIRE(parameter_count(c) == static_cast<double>(tg::parameter_count(model)));
      }
  // tiny_lm train's defaults on the built-in corpus (13 characters): the figure its log prints.
  TrainOptions o;
  REQUIRE(parameter_count(model_config(o, 13)) == 4 * (12.0 * 128 * 128 + 13 * 128) + 64 * 128 + 13 * 128 + 2 * 128);
}

TEST_CASE("TinyLMConfig::validate bounds every size before anything is built", "[tiny_lm][limits][errors]") {
  auto with = [](auto edit) {
    TinyLMConfig c = small_config();
    edit(c);
    return c;
  };
  REQUIRE_NOTHROW(small_config().validate());
  REQUIRE_THROWS_WITH(with([](TinyLMConfig& c) { c.n_layer = 1000000; }).validate(),
                      Contains("[TinyLM] n_layer must be in [1, 1024]; got n_layer=1000000"));
  // The constructor validates first: a million layers are refused at once instead of being built.
  Generator gen(0);
  REQUIRE_THROWS_AS(TinyLM(with([](TinyLMConfig& c) { c.n_layer = 1000000; }), gen), std::invalid_argument);
  REQUIRE_THROWS_WITH(with([](TinyLMConfig& c) { c.n_embd = int64_t{1} << 62; }).validate(),
                      Contains("n_embd must be in [1, 65536]; got n_embd=4611686018427387904"));
  REQUIRE_THROWS_WITH(with([](TinyLMConfig& c) { c.block_size = 0; }).validate(), Contains("block_size must be in [1, 65536]"));
  REQUIRE_THROWS_WITH(with([](TinyLMConfig& c) { c.vocab_size = -3; }).validate(), Contains("got vocab_size=-3"));
  REQUIRE_THROWS_WITH(with([](TinyLMConfig& c) { c.n_head = 3; }).validate(),
                      Contains("n_embd must be a positive multiple of n_head; got n_embd=8, n_head=3"));
  REQUIRE_THROWS_WITH(with([](TinyLMConfig& c) { c.dim_feedforward = -1; }).validate(),
                      Contains("dim_feedforward must be in [0, 1048576]"));
  REQUIRE_THROWS_WITH(with([](TinyLMConfig& c) { c.dropout = std::nan(""); }).validate(), Contains("dropout must be in [0, 1)"));
  REQUIRE_THROWS_WITH(with([](TinyLMConfig& c) { c.layer_norm_eps = -1e-5; }).validate(),
                      Contains("layer_norm_eps must be finite and positive"));
  REQUIRE_THROWS_WITH(with([](TinyLMConfig& c) { c.layer_norm_eps = INFINITY; }).validate(),
                      Contains("layer_norm_eps must be finite and positive"));
  // Every size within its own bound, the whole model over 2^31 parameters: 4 * 65536^2 + 11 * 65536 + 1 per
  // layer, twice, plus 11 * 65536 (tok_emb), 8 * 65536 (pos_emb), 2 * 65536 (ln_f) and 11 * 65536 + 11 (head).
  REQUIRE_THROWS_WITH(with([](TinyLMConfig& c) {
                        c.n_embd = 65536;
                        c.dim_feedforward = 1;
                      }).validate(),
                      Contains("the model would have 34363277325 parameters, more than the limit of 2147483648"));
}

TEST_CASE("TrainOptions::validate names the flag of every bad value", "[tiny_lm][limits][errors]") {
  REQUIRE_NOTHROW(TrainOptions{}.validate());
  auto check = [](auto edit, const std::string& message) {
    TrainOptions o;
    edit(o);
    REQUIRE_THROWS_AS(o.validate(), UsageError);
    REQUIRE_THROWS_WITH(o.validate(), Contains(message));
  };
  check([](TrainOptions& o) { o.eval_interval = 0; }, "[tiny_lm train] --eval-interval must be >= 1; got --eval-interval=0");
  check([](TrainOptions& o) { o.batch_size = 0; }, "--batch-size must be in [1, 1048576]; got --batch-size=0");
  check([](TrainOptions& o) { o.grad_clip = NAN; }, "--grad-clip must be finite and >= 0 (0: off); got --grad-clip=nan");
  check([](TrainOptions& o) { o.lr = -1; }, "--lr must be finite and positive; got --lr=-1");
  check([](TrainOptions& o) { o.min_lr = 1; }, "--min-lr must be finite, >= 0 and <= --lr=0.001; got --min-lr=1");
  check([](TrainOptions& o) { o.dropout = 1.5; }, "--dropout must be in [0, 1); got --dropout=1.5");
  check([](TrainOptions& o) { o.threads = -1; }, "--threads must be in [1, 1024]; got --threads=-1");
  check([](TrainOptions& o) { o.stop_at = -7; }, "--stop-at must be -1 (off) or >= 0; got --stop-at=-7");
  check([](TrainOptions& o) { o.lr_decay_iters = 100; }, "--lr-decay-iters must be >= 101; got --lr-decay-iters=100");
  check([](TrainOptions& o) { o.out_dir.clear(); }, "--out-dir must be a folder name");
  check([](TrainOptions& o) { o.n_head = 3; }, "--n-embd must be a multiple of --n-head=3; got --n-embd=128");
  check(
      [](TrainOptions& o) {
        o.n_layer = 1000;
        o.n_embd = 2048;
      },
      "reduce --n-layer, --n-embd or --block-size; got --n-layer=1000, --n-embd=2048, --block-size=64");
  check(
      [](TrainOptions& o) {
        o.batch_size = kMaxBatchSize;
        o.block_size = kMaxWidth;
      },
      "but this machine has");
  // Every process draws the window starts of all K x B sequences of an iteration (8 bytes each): 512 GiB
  // here, while the activations of the batch need about 6 GB.
  check(
      [](TrainOptions& o) {
        o.n_layer = 1;
        o.n_head = 2;
        o.n_embd = 16;
        o.block_size = 1;
        o.grad_accum = 65536;
        o.batch_size = kMaxBatchSize;
      },
      "the window starts of --grad-accum=65536 x 1 process x --batch-size=1048576) but this machine has");
  TrainOptions small;
  small.n_layer = 1;
  small.n_head = 2;
  small.n_embd = 16;
  small.block_size = 1;
  small.batch_size = kMaxBatchSize;
  REQUIRE(training_bytes(model_config(small, 256), small.batch_size) < 6e9);
}

TEST_CASE("parse_seed takes decimal digits in the uint64 range only", "[tiny_lm][limits][errors]") {
  REQUIRE(parse_seed("0", "c", "--seed") == 0);
  REQUIRE(parse_seed("1337", "c", "--seed") == 1337);
  REQUIRE(parse_seed("18446744073709551615", "c", "--seed") == std::numeric_limits<uint64_t>::max());
  for (const char* bad : {"-1", "+1", " 1", "1 ", "", "0x10", "1e3", "18446744073709551616", "12abc"})
    REQUIRE_THROWS_WITH(parse_seed(bad, "c", "--seed"),
                        Contains("[c] --seed must be an integer in [0, 18446744073709551615]; got --seed='" +
                                 std::string(bad) + "'"));
}

TEST_CASE("memory estimates grow with the batch and count the optimizer state", "[tiny_lm][limits]") {
  const TinyLMConfig c = small_config();
  const double p = parameter_count(c);
  const double b1 = training_bytes(c, 1), b2 = training_bytes(c, 2), b3 = training_bytes(c, 3);
  REQUIRE(b1 > 16 * p);                 // weights, grads and two moments in float32, plus activations
  REQUIRE(b3 - b2 == Approx(b2 - b1));  // linear in the batch
  REQUIRE(inference_bytes(c, 2) < training_bytes(c, 2));
  REQUIRE(inference_bytes(c, 1) > 4 * p);
  const double limit = memory_limit_bytes();
  REQUIRE(std::isfinite(limit));
  REQUIRE(limit > 0);
  // The defaults fit any machine that runs the tests; a million sequences of 65536 tokens fit none.
  TrainOptions o;
  REQUIRE(training_bytes(model_config(o, 256), o.batch_size) < 1e9);
  REQUIRE(training_bytes(model_config(o, 256), kMaxBatchSize) > 1e12);
  REQUIRE(format_gib(1.5 * 1024 * 1024 * 1024) == "1.5 GiB");
  REQUIRE(format_count(2147483904.0) == "2147483904");
}

TEST_CASE("read_text_file reads regular files only, naming the file and the reason", "[tiny_lm][errors]") {
  const std::string path = scratch_file("bytes.txt");
  std::ofstream(path, std::ios::binary) << std::string("a\0b\n", 4);
  REQUIRE(read_text_file(path) == std::string("a\0b\n", 4));
  const std::string dir = scratch_file("a_dir");
  fs::create_directories(dir);
  REQUIRE_THROWS_WITH(read_text_file(dir), dir + ": cannot read the data file: Is a directory");
  REQUIRE_THROWS_WITH(load_corpus("/dev/zero"), "/dev/zero: cannot read the data file: not a regular file");
}

TEST_CASE("LossLog writes rows, keeps the rows before a checkpoint on resume, and reports failures",
          "[tiny_lm][errors]") {
  const std::string path = scratch_file("losses.csv");
  {
    LossLog log = LossLog::create(path);
    for (int64_t i = 0; i < 6; ++i) log.row(i, 2.5 - 0.125 * static_cast<double>(i), 1e-3, "train");
    log.row(5, 2.0, 1e-3, "val");
    log.close();
    log.close();   // closing twice is harmless
    REQUIRE_THROWS_AS(log.row(6, 1.0, 1e-3, "train"), std::logic_error);
  }
  REQUIRE(read_all(path) ==
          "iter,train_loss,lr,kind\n0,2.5,0.001,train\n1,2.375,0.001,train\n2,2.25,0.001,train\n3,2.125,0.001,train\n"
          "4,2,0.001,train\n5,1.875,0.001,train\n5,2,0.001,val\n");
  {
    LossLog log = LossLog::resume(path, 3);
    log.row(3, 9.0, 1e-4, "train");
    log.close();
  }
  REQUIRE(read_all(path) ==
          "iter,train_loss,lr,kind\n0,2.5,0.001,train\n1,2.375,0.001,train\n2,2.25,0.001,train\n3,9,0.0001,train\n");
  const std::string missing = scratch_file("missing.csv");
  LossLog::resume(missing, 10).close();
  REQUIRE(read_all(missing) == "iter,train_loss,lr,kind\n");
  const std::string full = scratch_file("full.csv");
  fs::create_symlink("/dev/full", full);
  REQUIRE_THROWS_WITH(LossLog::create(full), full + ": cannot write the losses log: No space left on device");
  const std::string dir = scratch_file("dir.csv");
  fs::create_directories(dir);
  REQUIRE_THROWS_WITH(LossLog::create(dir), dir + ": cannot create the losses log: Is a directory");
  REQUIRE_THROWS_WITH(LossLog::resume(dir, 1), dir + ": cannot read the losses log: not a regular file");
}

TEST_CASE("evaluate_file and sample_tokens refuse bad arguments, a tiny temperature samples greedily",
          "[tiny_lm][errors]") {
  Generator gen(3);
  TinyLMConfig c = small_config();
  TinyLM model(c, gen);
  model.eval();
  const std::string text_path = scratch_file("text.txt");
  std::string text;
  for (int i = 0; i < 64; ++i) text += static_cast<char>('a' + i % 11);
  std::ofstream(text_path) << text;
  const Vocabulary vocab = Vocabulary::from_text(text);
  REQUIRE(vocab.size() == 11);
  REQUIRE_THROWS_WITH(evaluate_file(model, vocab, text_path, 0, 0),
                      Contains("[evaluate_file] batch_size must be positive; got batch_size=0"));
  REQUIRE_THROWS_WITH(evaluate_file(model, vocab, text_path, 2, -1), Contains("max_batches must be >= 0"));
  auto [loss, scored] = evaluate_file(model, vocab, text_path, 3, 0);
  REQUIRE(scored == 7 * 8);   // (64 - 1) / 8 = 7 windows of 8 tokens
  REQUIRE(std::isfinite(loss));
  const std::string absent = scratch_file("absent.txt");
  REQUIRE_THROWS_WITH(evaluate_file(model, vocab, absent, 2, 0),
                      absent + ": cannot read the data file: No such file or directory");
  REQUIRE_THROWS_WITH(evaluate_file(model, vocab, "/dev/zero", 2, 0),
                      "/dev/zero: cannot read the data file: not a regular file");

  const std::vector<int64_t> prompt{1, 2, 3};
  Generator g(5);
  REQUIRE_THROWS_WITH(sample_tokens(model, prompt, 4, NAN, 0, g), Contains("temperature must be finite and positive"));
  REQUIRE_THROWS_WITH(sample_tokens(model, prompt, 4, INFINITY, 0, g), Contains("temperature must be finite and positive"));
  REQUIRE_THROWS_WITH(sample_tokens(model, prompt, -1, 1.0, 0, g), Contains("got n=-1"));
  REQUIRE_THROWS_WITH(sample_tokens(model, prompt, 4, 1.0, -2, g), Contains("top_k must be >= 0"));
  // logits / 1e-300 overflow to inf; the shifted form keeps them ordered, so sampling is the argmax.
  const auto greedy = greedy_complete(model, {prompt}, 12)[0];
  REQUIRE(sample_tokens(model, prompt, 12, 1e-300, 0, g) == greedy);
  REQUIRE(sample_tokens(model, prompt, 12, 1e-300, 3, g) == greedy);
}

TEST_CASE("load_model refuses a crafted /metadata before building the model it describes", "[tiny_lm][limits][errors]") {
  // A valid file (digests recomputed by the writer, as a hostile tool would) whose metadata describes
  // another model than the weights it holds: first beyond TinyLMConfig's bounds, then within them but
  // larger than the file. Neither may build anything: the error names the file and /metadata.
  Generator gen(5);
  TinyLM small(small_config(), gen);
  StateDict data{{"vocabulary", Tensor::from_vector(std::vector<int64_t>{48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 10},
                                                    {11})}};
  auto craft = [&](const std::string& name, const std::string& config_json) {
    const std::string path = scratch_file(name);
    io::save_checkpoint(path, {.model = &small, .metadata = R"({"tiny_lm": {"config": )" + config_json + "}}",
                               .extra = {{"data", data}}});
    return path;
  };
  TinyLMConfig huge = small_config();
  huge.n_layer = 1000000;
  const std::string beyond = craft("beyond.h5", config_to_json(huge));
  Vocabulary vocab;
  REQUIRE_THROWS_WITH(load_model(beyond, &vocab),
                      Contains(beyond + ": /metadata holds an invalid tiny_lm configuration: ") && Contains("n_layer"));
  TinyLMConfig larger = small_config();
  larger.n_layer = 64;
  larger.n_embd = 128;
  const std::string too_big = craft("larger.h5", config_to_json(larger));
  REQUIRE_THROWS_WITH(load_model(too_big, &vocab),
                      Contains(too_big + ": /metadata describes a model of 12693515 parameters but /model holds 2011 values"));
  // The honest file loads.
  const std::string honest = craft("honest.h5", config_to_json(small_config()));
  REQUIRE(load_model(honest, &vocab)->config().n_layer == 2);
}
