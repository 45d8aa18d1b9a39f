// The seq2seq program end to end: train, translate (arguments and stdin, greedy and beam) and eval on a
// tiny checkpoint, and its command-line errors (exit status 2 with the exact message, before anything
// is built; 1 for a missing checkpoint).
#include <string>

#include "support/process_support.h"
#include "support/test_support.h"

using Catch::Matchers::Contains;

namespace {

const std::string kBin = std::string(TAPEGRAD_BINARY_DIR) + "/examples/seq2seq/seq2seq";

using Run = tg::test::ProcessResult;   // status, exited, output (stdout and stderr together)

// Runs `seq2seq <args>` through the shell (stdout and stderr together); stdin_text is its stdin.
Run run(const std::string& args, const std::string& stdin_text = "") {
  tg::test::ProcessOptions o;
  o.stdin_text = stdin_text;
  const Run r = tg::test::run_shell(kBin + " " + args, o);
  REQUIRE(r.exited);   // never a signal
  return r;
}

size_t count_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST_CASE("seq2seq cli: bad command lines exit 2 with the exact message", "[seq2seq][cli]") {
  const std::string none = tg::test::scratch_dir("seq2seq_cli_none").string() + "/absent";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bogus", "seq2seq: unknown command 'bogus'"},
      {"train --batch-size 0", "[seq2seq train] --batch-size must be in [1, 65536]; got --batch-size=0 (see seq2seq train --help)"},
      {"train --d-model 30 --nhead 4", "[seq2seq train] --nhead must be a divisor of --d-model=30; got --nhead=4"},
      {"train --lr nan", "[seq2seq train] --lr must be finite and in [0, 10]; got --lr=nan"},
      {"train --lr 0", "[seq2seq train] --min-lr must be finite, >= 0 and <= --lr=0; got --min-lr=0.0001"},
      {"train --lr fast", "seq2seq train: the argument ('fast') for option '--lr' is invalid (see seq2seq train --help)"},
      {"train --no-such-flag", "seq2seq train: unrecognised option '--no-such-flag'"},
      {"train --max-iters 4 8", "seq2seq train: unexpected argument '8' (this command takes no positional arguments"},
      {"attend --input 3/3 /21", "seq2seq attend: unexpected argument '/21'"},
      {"train --seed -1", "[seq2seq train] --seed must be an integer in [0, 18446744073709551615]; got --seed='-1'"},
      {"translate --beam 0 x", "[seq2seq translate] --beam must be in [1, 64]; got --beam=0"},
      {"translate --out-dir " + none + " 'March 3, 2021!'",
       "[seq2seq translate] character '!' (byte 0x21) at position 13 is outside the vocabulary; got text='March 3, 2021!'"},
      {"eval --examples 0", "[seq2seq eval] --examples must be in [1, 1000000]; got --examples=0"},
      {"eval --threads 0", "[seq2seq eval] --threads must be in [1, 1024]; got --threads=0"},
  };
  for (const auto& [args, message] : cases) {
    INFO(args);
    const Run r = run(args);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains(message));
  }
  const Run empty = run("");
  CHECK(empty.status == 2);
  CHECK_THAT(empty.output, Contains("usage: seq2seq <command> [options]"));
  // A bad stdin line is refused before the (absent) checkpoint is opened.
  const Run bad_stdin = run("translate --out-dir " + none, "3.3.2021\n3rd of mai\177\n");
  CHECK(bad_stdin.status == 2);
  CHECK_THAT(bad_stdin.output, Contains("(byte 0x7f) at position 10 is outside the vocabulary"));
}

TEST_CASE("seq2seq cli: --help per command, and a missing checkpoint exits 1 naming the file", "[seq2seq][cli]") {
  for (const char* cmd : {"train", "translate", "eval"}) {
    const Run r = run(std::string(cmd) + " --help");
    CHECK(r.status == 0);
    CHECK_THAT(r.output, Contains(std::string("usage: seq2seq ") + cmd));
  }
  CHECK_THAT(run("train --help").output, Contains("--label-smoothing"));
  CHECK_THAT(run("translate --help").output, Contains("--length-norm"));
  const std::string none = tg::test::scratch_dir("seq2seq_cli_missing").string();
  const Run r = run("eval --out-dir " + none);
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Contains("seq2seq eval: ") && Contains(none + "/ckpt.h5"));
}

TEST_CASE("seq2seq cli: train, then translate (arguments, stdin, beam) and eval a checkpoint", "[seq2seq][cli]") {
  const std::string dir = tg::test::scratch_dir("seq2seq_cli_e2e").string();
  const Run t = run("train --out-dir " + dir + " --d-model 16 --nhead 2 --num-encoder-layers 1 --num-decoder-layers 1 "
                    "--dim-feedforward 32 --batch-size 16 --max-iters 10 --warmup-iters 2 --eval-interval 5 "
                    "--eval-examples 8 --threads 1");
  INFO(t.output);
  REQUIRE(t.status == 0);
  CHECK_THAT(t.output, Contains("eval iter 5 ") && Contains("final iter 10 "));
  const Run a = run("translate --out-dir " + dir + " '3rd of march 2021' 'Mar 3, 21' 03/03/2021");
  INFO(a.output);
  CHECK(a.status == 0);
  CHECK(count_lines(a.output) == 3);
  const Run s = run("translate --out-dir " + dir, "3rd of march 2021\nMar 3, 21\n03/03/2021\n");
  CHECK(s.status == 0);
  CHECK(s.output == a.output);   // stdin lines decode as the same arguments
  const Run b = run("translate --beam 1 --batch-size 1 --out-dir " + dir + " '3rd of march 2021' 'Mar 3, 21' 03/03/2021");
  CHECK(b.output == a.output);   // batch size does not change greedy results
  const Run b3 = run("translate --beam 3 --length-norm --out-dir " + dir + " '3rd of march 2021'");
  CHECK(b3.status == 0);
  CHECK(count_lines(b3.output) == 1);
  const Run e = run("eval --out-dir " + dir + " --examples 20 --beam 2");
  INFO(e.output);
  CHECK(e.status == 0);
  CHECK_THAT(e.output, Contains("eval 20 held-out examples: exact_match ") && Contains("(beam 2)"));
  const Run too_long = run("translate --out-dir " + dir + " 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'");
  CHECK(too_long.status == 2);   // a usage error naming the argument (was 1, from deep in the model)
  CHECK(too_long.output == "[seq2seq translate] TEXT must be at most the checkpoint's max_src_len=32 characters; "
                           "got TEXT=40 characters (see seq2seq translate --help)\n");
  // From stdin: the command fails naming the line, and translates nothing.
  const Run long_line = run("translate --out-dir " + dir, "3rd of march 2021\n" + std::string(33, '1') + "\n");
  CHECK(long_line.status == 2);
  CHECK(long_line.output == "[seq2seq translate] stdin line 2 must be at most the checkpoint's max_src_len=32 "
                            "characters; got stdin line 2=33 characters (see seq2seq translate --help)\n");
}
