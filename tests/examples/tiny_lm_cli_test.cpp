// End-to-end tests of the tiny_lm program: exact resume, learning on the built-in corpus, sample,
// eval, and its error handling (the table of bad flags is in tiny_lm_bad_flags_test.cpp): resume of a
// finished run, losses.csv write failures.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "support/file_events.h"
#include "support/process_support.h"
#include "support/test_support.h"
#include "support/tiny_lm_cli_support.h"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

const std::string kBin = std::string(TAPEGRAD_BINARY_DIR) + "/examples/tiny_lm/tiny_lm";

using Run = tg::test::ProcessResult;   // status, exited, output (stdout and stderr together)
using tg::test::final_line;
using tg::test::fresh_run_dir;

Run run(const std::string& args) { return tg::test::run_shell(kBin + " " + args); }

double field(const std::string& out, const std::string& name) {
  std::smatch m;
  REQUIRE(std::regex_search(out, m, std::regex(name + " ([0-9.]+)")));
  return std::stod(m[1].str());
}

const std::string kModel =
    "--n-layer 2 --n-head 2 --block-size 24 --batch-size 8 --warmup-iters 10 --eval-interval 20 --eval-iters 4 "
    "--dropout 0.1 --threads 2 --no-progress ";
const std::string kSmall = kModel + "--n-embd 32 --max-iters 60 --lr-decay-iters 60";

}  // namespace

TEST_CASE("tiny_lm: --stop-at then --resume gives the same final line, bit for bit, as an uninterrupted run", "[e2e][resume]") {
  const std::string a = fresh_run_dir("resume_a"), b = fresh_run_dir("resume_b");
  Run full = run("train " + kSmall + " --out-dir " + a);
  INFO(full.output);
  REQUIRE(full.status == 0);
  Run first = run("train " + kSmall + " --out-dir " + b + " --stop-at 30");
  INFO(first.output);
  REQUIRE(first.status == 0);
  REQUIRE_THAT(first.output, Contains("stopped at iter 30"));
  REQUIRE(first.output.find("final iter") == std::string::npos);
  Run second = run("train " + kSmall + " --out-dir " + b + " --resume");
  INFO(second.output);
  REQUIRE(second.status == 0);
  REQUIRE_THAT(second.output, Contains("resumed from"));
  REQUIRE(final_line(second.output) == final_line(full.output));
  // Beyond the printed digits: the final checkpoints hold identical parameters.
  Run e1 = run("eval --out-dir " + a + " --data " + std::string(TAPEGRAD_SOURCE_DIR) + "/README.md --max-batches 2");
  Run e2 = run("eval --out-dir " + b + " --data " + std::string(TAPEGRAD_SOURCE_DIR) + "/README.md --max-batches 2");
  // README.md has characters outside the arithmetic vocabulary: eval must say so, naming the byte.
  REQUIRE(e1.status == 1);
  REQUIRE_THAT(e1.output, Contains("outside the vocabulary"));
  Run s1 = run("sample --out-dir " + a + " --tokens 200 --seed 7 --prompt 12+");
  Run s2 = run("sample --out-dir " + b + " --tokens 200 --seed 7 --prompt 12+");
  REQUIRE(s1.status == 0);
  REQUIRE(s1.output == s2.output);
  (void)e2;
}

TEST_CASE("tiny_lm: the model learns the built-in arithmetic corpus in 500 iterations", "[e2e]") {
  const std::string dir = fresh_run_dir("learn");
  Run r = run("train --n-layer 2 --n-head 4 --n-embd 64 --block-size 32 --batch-size 16 --max-iters 500 "
              "--lr-decay-iters 500 --warmup-iters 50 --lr 3e-3 --eval-interval 250 --eval-iters 10 --threads 2 "
              "--no-progress --out-dir " + dir);
  INFO(r.output);
  REQUIRE(r.status == 0);
  // A line "07+45=052\n" has 4 random operand digits (ln 10 nats each) and 6 determined characters, so a
  // perfect model scores 0.4 * ln 10 = 0.92 nats per character; a model that only learned the character
  // frequencies scores about 2.2. Learning the format and part of the sums brings the loss well below that.
  REQUIRE(field(r.output, "val_loss") < 1.5);
  REQUIRE(field(r.output, "exact_match") > 0.0);
  Run s = run("sample --out-dir " + dir + " --tokens 40 --seed 3 --prompt 12+");
  REQUIRE(s.status == 0);
  REQUIRE(std::regex_search(s.output, std::regex("\\d\\d\\+\\d\\d=\\d\\d\\d")));   // it writes facts
  // Within block_size (3 + 25 <= 32) the cached and the --no-cache decoding see the same contexts.
  Run c = run("sample --out-dir " + dir + " --tokens 25 --seed 4 --prompt 12+");
  Run u = run("sample --out-dir " + dir + " --tokens 25 --seed 4 --prompt 12+ --no-cache");
  REQUIRE((c.status == 0 && u.status == 0));
  REQUIRE(c.output == u.output);
}

TEST_CASE("tiny_lm: eval reports a checkpoint's loss on a file", "[e2e]") {
  const std::string dir = fresh_run_dir("eval");
  REQUIRE(run("train " + kModel + "--n-embd 32 --max-iters 20 --lr-decay-iters 20 --out-dir " + dir).status == 0);
  const std::string text = dir + "/facts.txt";
  {
    FILE* f = fopen(text.c_str(), "w");
    for (int i = 0; i < 200; ++i) fprintf(f, "%02d+%02d=%03d\n", i % 100, (i * 7) % 100, i % 100 + (i * 7) % 100);
    fclose(f);
  }
  Run e = run("eval --out-dir " + dir + " --data " + text);
  INFO(e.output);
  REQUIRE(e.status == 0);
  REQUIRE_THAT(e.output, Contains("eval loss"));
  REQUIRE(field(e.output, "eval loss") > 0.0);
}

TEST_CASE("tiny_lm: bad usage and mismatched checkpoints give clear errors", "[e2e][errors]") {
  Run none = run("");
  REQUIRE(none.status == 2);
  REQUIRE_THAT(none.output, Contains("usage: tiny_lm <command>"));
  REQUIRE(run("fly").status == 2);
  Run bad = run("train --max-iters abc");
  REQUIRE(bad.status == 2);
  REQUIRE_THAT(bad.output, Contains("max-iters"));
  REQUIRE_THAT(run("train --help").output, Contains("--stop-at"));
  REQUIRE_THAT(run("sample --help").output, Contains("--top-k"));
  REQUIRE_THAT(run("eval --help").output, Contains("--data"));
  const std::string dir = fresh_run_dir("mismatch");
  REQUIRE(run("train " + kModel + "--n-embd 32 --max-iters 10 --lr-decay-iters 20 --out-dir " + dir).status == 0);
  Run other = run("train " + kModel + "--n-embd 16 --max-iters 10 --lr-decay-iters 20 --out-dir " + dir + " --resume");
  REQUIRE(other.status == 1);
  REQUIRE_THAT(other.output, Contains("ckpt.h5: /metadata config"));
  Run missing = run("sample --out-dir " + fresh_run_dir("nothing"));
  REQUIRE(missing.status == 1);
  REQUIRE_THAT(missing.output, Contains("ckpt.h5"));
}

namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a shell command line (for ulimit and traps), stdout and stderr together.
Run run_shell(const std::string& line) { return tg::test::run_shell(line); }

const std::string kTiny =
    "--n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --batch-size 4 --warmup-iters 2 --eval-iters 2 --no-progress ";

}  // namespace

TEST_CASE("tiny_lm: --resume reads ckpt.h5 once, so the checkpoint it checked is the one restored", "[e2e][resume]") {
  // It was read twice (the check that it is this run's, then the restore): a checkpoint renamed over it in
  // between (another run's) passed the check of the first and was restored.
  const std::string dir = fresh_run_dir("resume_once");
  REQUIRE(run("train " + kSmall + " --out-dir " + dir + " --stop-at 30").status == 0);
  tg::test::FileEvents events;   // opens and closes alternate, so the kernel merges no repeated event
  const int wd = events.watch(dir, IN_OPEN | IN_CLOSE_NOWRITE | IN_CLOSE_WRITE);
  const Run resumed = run("train " + kSmall + " --out-dir " + dir + " --resume");
  const std::vector<tg::test::FileEvents::Event> seen = events.read_all();
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  REQUIRE_THAT(resumed.output, Contains("resumed from"));
  CHECK(tg::test::FileEvents::count(seen, wd, IN_CLOSE_NOWRITE, "ckpt.h5") == 1);
  CHECK(tg::test::FileEvents::count(seen, wd, IN_OPEN, "ckpt.h5") == 1);   // the saves never open it (9a10bea)
}

TEST_CASE("tiny_lm: --resume of a finished run says so and changes nothing", "[e2e][resume]") {
  const std::string dir = fresh_run_dir("resume_finished");
  const std::string args = "train " + kTiny + "--max-iters 12 --lr-decay-iters 12 --eval-interval 5 --out-dir " + dir;
  Run full = run(args);
  INFO(full.output);
  REQUIRE(full.status == 0);
  const std::string ckpt = file_bytes(dir + "/ckpt.h5"), csv = file_bytes(dir + "/losses.csv");
  // 12 training rows and the evaluations at 5, 10 and the final one at 12, after the header.
  REQUIRE(std::count(csv.begin(), csv.end(), '\n') == 1 + 12 + 3);
  REQUIRE(csv.substr(csv.rfind('\n', csv.size() - 2) + 1).starts_with("12,"));
  REQUIRE(csv.ends_with(",val\n"));
  const auto stamp = fs::last_write_time(dir + "/ckpt.h5");
  Run again = run(args + " --resume");
  INFO(again.output);
  REQUIRE(again.status == 0);
  REQUIRE_THAT(again.output, Contains("nothing to do: " + dir + "/ckpt.h5 already finished at iter 12"));
  REQUIRE(again.output.find("final iter") == std::string::npos);
  REQUIRE(again.output.find("train_loss") == std::string::npos);   // no re-evaluation
  REQUIRE(file_bytes(dir + "/ckpt.h5") == ckpt);
  REQUIRE(file_bytes(dir + "/losses.csv") == csv);
  REQUIRE(fs::last_write_time(dir + "/ckpt.h5") == stamp);
  // A smaller --max-iters than the checkpoint's step is finished too.
  Run lower = run("train " + kTiny + "--max-iters 8 --lr-decay-iters 12 --eval-interval 5 --out-dir " + dir + " --resume");
  REQUIRE(lower.status == 0);
  REQUIRE_THAT(lower.output, Contains("already finished at iter 12"));
  REQUIRE(file_bytes(dir + "/losses.csv") == csv);
}

TEST_CASE("tiny_lm: --resume keeps the losses rows before the checkpoint and appends the rest", "[e2e][resume]") {
  const std::string a = fresh_run_dir("csv_full"), b = fresh_run_dir("csv_resumed");
  const std::string args = "train " + kTiny + "--max-iters 12 --lr-decay-iters 12 --eval-interval 5 --out-dir ";
  REQUIRE(run(args + a).status == 0);
  REQUIRE(run(args + b + " --stop-at 7").status == 0);
  REQUIRE(run(args + b + " --resume").status == 0);
  REQUIRE(file_bytes(b + "/losses.csv") == file_bytes(a + "/losses.csv"));
}

TEST_CASE("tiny_lm: losses.csv write failures stop the run with the OS's reason naming the file", "[e2e][errors]") {
  const std::string args = "train " + kTiny + "--max-iters 300 --lr-decay-iters 300 --eval-interval 1000 --out-dir ";
  SECTION("a full device (losses.csv -> /dev/full)") {
    const std::string dir = fresh_run_dir("csv_dev_full");
    fs::create_directories(dir);
    fs::create_symlink("/dev/full", dir + "/losses.csv");
    Run r = run(args + dir);
    INFO(r.output);
    REQUIRE(r.status == 1);
    REQUIRE_THAT(r.output, Contains(dir + "/losses.csv: cannot write the losses log: No space left on device"));
    REQUIRE(r.output.find("final iter") == std::string::npos);
  }
  SECTION("a directory where losses.csv should be") {
    const std::string dir = fresh_run_dir("csv_is_dir");
    fs::create_directories(dir + "/losses.csv");
    Run r = run(args + dir);
    INFO(r.output);
    REQUIRE(r.status == 1);
    REQUIRE_THAT(r.output, Contains(dir + "/losses.csv: cannot create the losses log: Is a directory"));
  }
  SECTION("the file size limit reached in the middle of the run (EFBIG)") {
    const std::string dir = fresh_run_dir("csv_fsize");
    // ulimit -f counts 512-byte blocks: the log fills 1 KiB after a few dozen rows; no checkpoint is due
    // before the end. SIGXFSZ ignored, the write fails with EFBIG instead of killing the process.
    Run r = run_shell("ulimit -f 2; trap '' XFSZ; exec " + kBin + " " + args + dir);
    INFO(r.output);
    REQUIRE(r.status == 1);
    REQUIRE_THAT(r.output, Contains(dir + "/losses.csv: cannot write the losses log: File too large"));
    REQUIRE_THAT(r.output, Contains("iter 30/300"));   // it failed while training, not at the start
    REQUIRE(r.output.find("final iter") == std::string::npos);
  }
  SECTION("--resume onto a losses.csv that is not a regular file") {
    const std::string dir = fresh_run_dir("csv_resume_dev");
    REQUIRE(run("train " + kTiny + "--max-iters 10 --lr-decay-iters 10 --eval-interval 5 --stop-at 5 --out-dir " + dir)
                .status == 0);
    fs::remove(dir + "/losses.csv");
    fs::create_symlink("/dev/zero", dir + "/losses.csv");
    Run r = run("train " + kTiny + "--max-iters 10 --lr-decay-iters 10 --eval-interval 5 --out-dir " + dir + " --resume");
    INFO(r.output);
    REQUIRE(r.status == 1);
    REQUIRE_THAT(r.output, Contains(dir + "/losses.csv: cannot read the losses log: not a regular file"));
  }
  SECTION("--resume onto a losses.csv with a row that is not iter,...") {
    const std::string dir = fresh_run_dir("csv_resume_garbled");
    REQUIRE(run("train " + kTiny + "--max-iters 10 --lr-decay-iters 10 --eval-interval 5 --stop-at 5 --out-dir " + dir)
                .status == 0);
    { std::ofstream(dir + "/losses.csv", std::ios::app) << "garbage row\n"; }
    Run r = run("train " + kTiny + "--max-iters 10 --lr-decay-iters 10 --eval-interval 5 --out-dir " + dir + " --resume");
    INFO(r.output);
    REQUIRE(r.status == 1);
    REQUIRE_THAT(r.output, Contains(dir + "/losses.csv:8: not a losses row"));
  }
}

TEST_CASE("tiny_lm train: --resume refuses a changed --lr, --min-lr or --grad-clip, naming the flag and both values",
          "[e2e][cli]") {
  const std::string dir = fresh_run_dir("resume_settings");
  const std::string base = "train " + kTiny + "--max-iters 6 --lr-decay-iters 6 --eval-interval 3 --out-dir " + dir;
  REQUIRE(run(base + " --stop-at 3").status == 0);
  // The optimizer and schedule restored the checkpoint's --lr / --min-lr silently; --grad-clip was applied.
  const Run lr = run(base + " --resume --lr 0.002 --min-lr 0.0002");
  CHECK(lr.status == 1);
  CHECK_THAT(lr.output, Contains(dir + "/ckpt.h5: the checkpoint was trained with --lr 0.001 (this run: 0.002), "
                                       "--min-lr 0.0001 (this run: 0.0002); a resumed run keeps the checkpoint's "
                                       "optimizer, schedule and clipping"));
  const Run clip = run(base + " --resume --grad-clip 0.5");
  CHECK(clip.status == 1);
  CHECK_THAT(clip.output, Contains("trained with --grad-clip 1.0 (this run: 0.5)"));
  const Run same = run(base + " --resume");
  INFO(same.output);
  CHECK(same.status == 0);
  CHECK_THAT(same.output, Contains("resumed from " + dir + "/ckpt.h5 at iter 3"));
}

TEST_CASE("tiny_lm sample: a backslash-n in --prompt is a newline, as in attend", "[e2e][cli]") {
  const std::string dir = fresh_run_dir("sample_newline");
  REQUIRE(run("train " + kTiny + "--max-iters 3 --lr-decay-iters 3 --eval-interval 3 --out-dir " + dir).status == 0);
  // The arithmetic vocabulary has the newline but no backslash: the prompt is "12+", a newline, "34".
  const Run escaped = run("sample --out-dir " + dir + " --tokens 0 --prompt '12+\\n34'");
  INFO(escaped.output);
  REQUIRE(escaped.status == 0);
  REQUIRE(escaped.output == "12+\n34\n");
  const Run typed = run("sample --out-dir " + dir + " --tokens 20 --seed 5 --prompt '12+\n34'");   // a real newline
  const Run written = run("sample --out-dir " + dir + " --tokens 20 --seed 5 --prompt '12+\\n34'");
  REQUIRE(typed.status == 0);
  REQUIRE(written.output == typed.output);
  REQUIRE_THAT(run("sample --help").output, Contains("text to continue (\\n is a newline)"));
}
