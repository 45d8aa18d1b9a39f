// A table of bad tiny_lm command lines run against the real binary. Each must end within the time
// limit (a hang is killed and fails), exit with the documented status — 2 for a bad command line, 1
// for a failure that is not the command line's (a missing file) — never by a signal, name the flag (or
// the file) on stderr, and leave no trace (a rejected `train` creates no out-dir).

#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "support/process_support.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

const std::string kBin = std::string(TAPEGRAD_BINARY_DIR) + "/examples/tiny_lm/tiny_lm";
constexpr int kTimeoutSeconds = 20;

using Outcome = tg::test::ProcessResult;

// Runs tiny_lm with `args` (no shell) in `cwd`, stdout and stderr apart; kills it after the timeout.
Outcome run_tiny_lm(const std::vector<std::string>& args, const fs::path& cwd) {
  std::vector<std::string> argv{kBin};
  argv.insert(argv.end(), args.begin(), args.end());
  tg::test::ProcessOptions o;
  o.cwd = cwd;
  o.merge_stderr = false;
  o.timeout_seconds = kTimeoutSeconds;
  return tg::test::run_process(argv, o);
}

struct BadCall {
  std::vector<std::string> args;
  int code;              // expected exit status
  std::string names;     // what stderr must contain (the flag, or the file)
};

// train: ranges, finiteness and types of every numeric flag, sizes past the limits, parser errors.
std::vector<BadCall> train_calls() {
  return {
      {{"train", "--eval-interval", "0"}, 2, "--eval-interval"},
      {{"train", "--eval-interval", "-3"}, 2, "--eval-interval"},
      {{"train", "--batch-size", "0"}, 2, "--batch-size"},
      {{"train", "--batch-size", "-1"}, 2, "--batch-size"},
      {{"train", "--batch-size", "4611686018427387904"}, 2, "--batch-size"},
      {{"train", "--batch-size", "12abc"}, 2, "--batch-size"},
      {{"train", "--max-iters", "-5"}, 2, "--max-iters"},
      {{"train", "--max-iters", "0"}, 2, "--max-iters"},
      {{"train", "--eval-iters", "0"}, 2, "--eval-iters"},
      {{"train", "--grad-clip", "nan"}, 2, "--grad-clip"},
      {{"train", "--grad-clip", "-1"}, 2, "--grad-clip"},
      {{"train", "--grad-clip", "inf"}, 2, "--grad-clip"},
      {{"train", "--seed", "-1"}, 2, "--seed"},
      {{"train", "--seed", "1.5"}, 2, "--seed"},
      {{"train", "--seed", "18446744073709551616"}, 2, "--seed"},
      {{"train", "--threads", "-1"}, 2, "--threads"},
      {{"train", "--threads", "0"}, 2, "--threads"},
      // K x B window starts of 8 bytes (52 GB) once died with std::bad_alloc
      {{"train", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "12", "--max-iters", "1",
        "--grad-accum", "65536", "--batch-size", "100000"},
       2, "--grad-accum=65536"},
      {{"train", "--threads", "100000"}, 2, "--threads"},
      {{"train", "--n-embd", "4611686018427387904"}, 2, "--n-embd"},
      {{"train", "--n-embd", "0"}, 2, "--n-embd"},
      {{"train", "--n-layer", "100000000"}, 2, "--n-layer"},
      {{"train", "--n-layer", "0"}, 2, "--n-layer"},
      {{"train", "--n-head", "3"}, 2, "--n-head=3"},
      {{"train", "--n-head", "0"}, 2, "--n-head"},
      {{"train", "--block-size", "0"}, 2, "--block-size"},
      {{"train", "--block-size", "4611686018427387904"}, 2, "--block-size"},
      {{"train", "--block-size", "20000"}, 2, "--block-size"},   // longer than the built-in corpus' split
      {{"train", "--lr", "nan"}, 2, "--lr"},
      {{"train", "--lr", "-1e-3"}, 2, "--lr"},
      {{"train", "--lr", "0"}, 2, "--lr"},
      {{"train", "--min-lr", "0.1"}, 2, "--min-lr"},             // above --lr
      {{"train", "--dropout", "1.5"}, 2, "--dropout"},
      {{"train", "--dropout", "-0.1"}, 2, "--dropout"},
      {{"train", "--dropout", "nan"}, 2, "--dropout"},
      {{"train", "--beta1", "1"}, 2, "--beta1"},
      {{"train", "--beta2", "nan"}, 2, "--beta2"},
      {{"train", "--weight-decay", "-0.1"}, 2, "--weight-decay"},
      {{"train", "--warmup-iters", "-1"}, 2, "--warmup-iters"},
      {{"train", "--warmup-iters", "100", "--lr-decay-iters", "50"}, 2, "--lr-decay-iters"},
      {{"train", "--stop-at", "-2"}, 2, "--stop-at"},
      {{"train", "--n-layer", "1000", "--n-embd", "2048"}, 2, "--n-layer=1000"},              // 5e10 parameters
      {{"train", "--batch-size", "1048576", "--block-size", "65536"}, 2, "--batch-size=1048576"},   // memory
      {{"train", "--frobnicate", "1"}, 2, "--frobnicate"},
      {{"train", "--lr", "1", "--lr", "2"}, 2, "--lr"},
      {{"train", "--tie-weights", "maybe"}, 2, "--tie-weights"},
      {{"train", "--data", ""}, 2, "--data"},
      {{"train", "--out-dir", ""}, 2, "--out-dir"},
      {{"train", "--max-iters"}, 2, "--max-iters"},
      {{"train", "--max-iters", "4", "8"}, 2, "tiny_lm train: unexpected argument '8'"},   // was dropped silently
      {{"train", "--data", "/nonexistent/corpus.txt"}, 1, "/nonexistent/corpus.txt: cannot read the data file"},
      {{"train", "--data", "/dev/zero"}, 1, "/dev/zero: cannot read the data file: not a regular file"},   // endless
      {{"train", "--data", "/"}, 1, "/: cannot read the data file: Is a directory"},
  };
}

// sample and eval; ckpt_dir holds a checkpoint trained on the built-in corpus.
std::vector<BadCall> sample_eval_calls(const std::string& ckpt_dir) {
  return {
      {{"sample", "--temperature", "0"}, 2, "--temperature"},
      {{"sample", "--temperature", "-1"}, 2, "--temperature"},
      {{"sample", "--temperature", "nan"}, 2, "--temperature"},
      {{"sample", "--tokens", "-1"}, 2, "--tokens"},
      {{"sample", "--tokens", "4611686018427387904"}, 2, "--tokens"},
      {{"sample", "--top-k", "-1"}, 2, "--top-k"},
      {{"sample", "--seed", "-1"}, 2, "--seed"},
      {{"sample", "--prompt", ""}, 2, "--prompt"},
      {{"sample", "--threads", "0"}, 2, "--threads"},
      {{"sample", "--out-dir", "no-such-dir"}, 1, "no-such-dir/ckpt.h5"},
      {{"sample", "--out-dir", ckpt_dir, "--prompt", "hello"}, 2, "--prompt"},   // outside the vocabulary
      // eval
      {{"eval", "--data", "x.txt", "--batch-size", "0"}, 2, "--batch-size"},
      {{"eval", "--data", "x.txt", "--batch-size", "-4"}, 2, "--batch-size"},
      {{"eval", "--data", "x.txt", "--max-batches", "-1"}, 2, "--max-batches"},
      {{"eval", "--data", "x.txt", "--threads", "-1"}, 2, "--threads"},
      {{"eval", "--data", ""}, 2, "--data"},
      {{"eval"}, 2, "--data"},
      {{"eval", "--out-dir", ckpt_dir, "--data", "/nonexistent/text.txt"}, 1, "/nonexistent/text.txt"},
      {{"eval", "--out-dir", ckpt_dir, "--data", "/dev/zero"}, 1, "/dev/zero: cannot read the data file"},
      {{"sample", "--out-dir", ckpt_dir, "--prompt", "First", "Citizen"}, 2,
       "tiny_lm sample: unexpected argument 'Citizen'"},
      {{"eval", "--data", "x.txt", "y.txt"}, 2, "tiny_lm eval: unexpected argument 'y.txt'"},
      {{"plot", "--out-dir", ckpt_dir, "extra"}, 2, "tiny_lm plot: unexpected argument 'extra'"},
      {{"plot", "--out-dir", ckpt_dir, "--output", "x.svg"}, 2,
       "--output must be a .png file name (the picture is a PNG); got --output=x.svg"},
      // commands
      {{"fly"}, 2, "unknown command 'fly'"},
  };
}

}  // namespace

TEST_CASE("tiny_lm: every bad invocation of the table exits 2 (or 1) naming the flag, never crashes or hangs",
          "[e2e][errors]") {
  const fs::path dir = tg::test::scratch_dir("bad_flags");
  // A small trained checkpoint for the cases that need one.
  const std::string ckpt_dir = (dir / "trained").string();
  Outcome trained = run_tiny_lm({"train", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
                                 "--batch-size", "4", "--max-iters", "4", "--lr-decay-iters", "4", "--warmup-iters",
                                 "1", "--eval-iters", "1", "--no-progress", "--out-dir", ckpt_dir},
                                dir);
  INFO(trained.output << trained.errors);
  REQUIRE(trained.status == 0);
  auto table = train_calls();
  for (auto& c : sample_eval_calls(ckpt_dir)) table.push_back(std::move(c));
  REQUIRE(table.size() >= 40);
  int index = 0;
  for (const BadCall& c : table) {
    std::string line = "tiny_lm";
    for (const auto& a : c.args) line += " '" + a + "'";
    const fs::path cwd = tg::test::scratch_dir("bad_flags_case");
    std::vector<std::string> args = c.args;
    const bool is_train = c.args[0] == "train" && c.args.back() != "--max-iters";
    if (is_train) args.insert(args.end(), {"--no-progress", "--out-dir", "run"});
    Outcome r = run_tiny_lm(args, cwd);
    INFO("case " << index++ << ": " << line << "\nstdout: " << r.output << "\nstderr: " << r.errors);
    CHECK_FALSE(r.timed_out);
    CHECK(r.signal == 0);
    CHECK(r.exited);
    CHECK(r.status == c.code);
    CHECK_THAT(r.errors, Contains(c.names));
    CHECK(r.output.find("final iter") == std::string::npos);
    if (is_train) CHECK_FALSE(fs::exists(cwd / "run"));   // rejected before anything was created
  }
}

TEST_CASE("tiny_lm: a usage error prints the command's help hint and nothing on stdout", "[e2e][errors]") {
  const fs::path dir = tg::test::scratch_dir("bad_flags_hint");
  Outcome r = run_tiny_lm({"train", "--eval-interval", "0"}, dir);
  REQUIRE(r.status == 2);
  REQUIRE(r.errors == "[tiny_lm train] --eval-interval must be >= 1; got --eval-interval=0 (see tiny_lm train --help)\n");
  REQUIRE(r.output.empty());
  Outcome s = run_tiny_lm({"sample", "--seed", "-1"}, dir);
  REQUIRE(s.status == 2);
  REQUIRE(s.errors ==
          "[tiny_lm sample] --seed must be an integer in [0, 18446744073709551615]; got --seed='-1' "
          "(see tiny_lm sample --help)\n");
}

TEST_CASE("tiny_lm: a FIFO as --data is refused at once, not read forever", "[e2e][errors]") {
  const fs::path dir = tg::test::scratch_dir("bad_flags_fifo");
  const std::string fifo = (dir / "corpus.fifo").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const Outcome r = run_tiny_lm({"train", "--data", fifo, "--no-progress", "--out-dir", "run"}, dir);
  INFO(r.errors);   // opening the FIFO used to block until the time limit
  CHECK_FALSE(r.timed_out);
  CHECK(r.status == 1);
  CHECK_THAT(r.errors, Contains(fifo + ": cannot read the data file: not a regular file"));
}
