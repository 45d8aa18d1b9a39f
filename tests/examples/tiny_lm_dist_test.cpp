// tiny_lm train --grad-accum K, and tiny_lm under mpirun: K processes give the bits of one process
// accumulating K micro-batches (losses.csv byte for byte, every checkpoint tensor and random stream),
// over shared memory and TCP; --resume under mpirun; refusal of another K; a rank killed mid-run.
// Every command runs under `timeout` so a hang fails the test instead of blocking the suite.
#include <signal.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "examples/tiny_lm/agreement.h"
#include "examples/tiny_lm/checkpointing.h"
#include "examples/tiny_lm/train.h"
#include "support/file_events.h"
#include "support/process_support.h"
#include "support/test_support.h"
#include "tapegrad/framework/io/checkpoint.h"
#include "tapegrad/optim/clip_grad.h"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

const std::string kBin = std::string(TAPEGRAD_BINARY_DIR) + "/examples/tiny_lm/tiny_lm";
// A small model with dropout (so every micro-batch's dropout stream matters), a few dozen iterations,
// evaluations (rank 0 alone) and checkpoints every 10.
const std::string kNet =
    "--n-layer 2 --n-head 2 --n-embd 64 --block-size 24 --batch-size 8 --warmup-iters 5 --lr-decay-iters 30 "
    "--eval-iters 2 --dropout 0.1 --threads 1 --no-progress ";
const std::string kModel = kNet + "--eval-interval 10 ";

using Run = tg::test::ProcessResult;   // status, exited, output (stdout and stderr together)

// `timeout 60 <command>` with stdout and stderr captured.
Run shell(const std::string& command) { return tg::test::run_shell("timeout -k 5 60 " + command); }

Run tiny_lm(const std::string& args) { return shell(kBin + " " + args); }

std::string file_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  REQUIRE(f.good());
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// The same losses.csv bytes and the same checkpoint: model, AdamW state, schedule, step, every random
// stream and the data section, bit for bit.
void require_same_run(const fs::path& a, const fs::path& b) {
  REQUIRE(file_text(a / "losses.csv") == file_text(b / "losses.csv"));
  const tg::io::CheckpointData ca = tg::io::read_checkpoint((a / "ckpt.h5").string());
  const tg::io::CheckpointData cb = tg::io::read_checkpoint((b / "ckpt.h5").string());
  REQUIRE(ca.model.has_value());
  REQUIRE(ca == cb);
}

tg::tiny_lm::TrainOptions small_options(int64_t batch_size, int64_t grad_accum) {
  tg::tiny_lm::TrainOptions o;
  o.n_layer = 1;
  o.n_head = 2;
  o.n_embd = 32;
  o.block_size = 16;
  o.batch_size = batch_size;
  o.grad_accum = grad_accum;
  o.grad_clip = 0.0;
  return o;
}

}  // namespace

TEST_CASE("BatchSampler: micro-batch m of draw_starts(K) is the (m+1)-th next() of the same stream", "[tiny_lm][grad_accum]") {
  std::vector<int64_t> data(500);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<int64_t>(i * 7 % 13);
  tg::tiny_lm::BatchSampler one(&data, 4, 10, 99), many(&data, 4, 10, 99);
  const std::vector<uint64_t> starts = many.draw_starts(3);
  REQUIRE(starts.size() == 12);
  for (int64_t m = 0; m < 3; ++m) {
    auto [x1, y1] = one.next();
    auto [xm, ym] = many.batch(starts, m);
    REQUIRE(xm.shape() == tg::Shape{4, 10});
    REQUIRE(x1.bit_equal(xm));
    REQUIRE(y1.bit_equal(ym));
    REQUIRE(ym.data<int64_t>()[0] == data[starts[static_cast<size_t>(m * 4)] + 1]);
  }
  REQUIRE(one.generator().state() == many.generator().state());
  REQUIRE_THROWS_WITH(many.batch(starts, 3), Contains("[BatchSampler] micro-batch 3 is outside the 12 drawn starts"));
  REQUIRE_THROWS_WITH(many.draw_starts(0), Contains("[BatchSampler] micro_batches must be positive"));
}

TEST_CASE("micro_batch_stream: a function of the iteration's start state and m, distinct for each", "[tiny_lm][grad_accum]") {
  const tg::GeneratorState s{1337, 40}, next{1337, 41};
  REQUIRE(tg::tiny_lm::micro_batch_stream(s, 1) == tg::tiny_lm::micro_batch_stream(s, 1));
  REQUIRE(tg::tiny_lm::micro_batch_stream(s, 1).offset == 0);
  REQUIRE(tg::tiny_lm::micro_batch_stream(s, 1).seed != tg::tiny_lm::micro_batch_stream(s, 2).seed);
  REQUIRE(tg::tiny_lm::micro_batch_stream(s, 1).seed != tg::tiny_lm::micro_batch_stream(next, 1).seed);
  REQUIRE(tg::tiny_lm::micro_batch_stream(s, 1).seed != s.seed);
}

TEST_CASE("train_iteration with K = 1 is the plain step (loss, backward, clip, AdamW), bit for bit, dropout included", "[tiny_lm][grad_accum]") {
  const tg::tiny_lm::Corpus corpus = tg::tiny_lm::arithmetic_corpus(0);
  auto o = small_options(4, 1);
  o.dropout = 0.2;
  tg::tiny_lm::TrainingState a(tg::tiny_lm::model_config(o, corpus.vocab.size()), o, corpus);
  tg::tiny_lm::TrainingState b(tg::tiny_lm::model_config(o, corpus.vocab.size()), o, corpus);
  for (int it = 0; it < 3; ++it) {
    const double la = a.train_iteration(1.0);
    auto [x, y] = b.train_batches.next();
    tg::Var loss = b.model.loss(x, y);
    b.optimizer.zero_grad();
    loss.backward();
    tg::optim::clip_grad_norm_(b.model.named_parameters(), 1.0);
    b.optimizer.step();
    b.scheduler.step();
    REQUIRE(la == loss.item());
  }
  REQUIRE(a.model_gen.state() == b.model_gen.state());
  REQUIRE(a.model_gen.state().offset > 0);   // the dropout masks were drawn
  const auto pa = a.model.named_parameters(), pb = b.model.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].first);
    REQUIRE(pa[i].second.value().bit_equal(pb[i].second.value()));
  }
}

TEST_CASE("train_iteration: 2 micro-batches of 4 give the loss and gradients of one batch of the same 8 windows", "[tiny_lm][grad_accum]") {
  // Without dropout the two compute the same mean over the same 8 windows, in another summation order.
  const tg::tiny_lm::Corpus corpus = tg::tiny_lm::arithmetic_corpus(0);
  const auto o8 = small_options(8, 1), o4 = small_options(4, 2);
  tg::tiny_lm::TrainingState one(tg::tiny_lm::model_config(o8, corpus.vocab.size()), o8, corpus);
  tg::tiny_lm::TrainingState two(tg::tiny_lm::model_config(o4, corpus.vocab.size()), o4, corpus);
  REQUIRE(two.micro_batches == 2);
  const double l1 = one.train_iteration(0.0), l2 = two.train_iteration(0.0);
  REQUIRE(l1 > 2.0);   // about ln(13) at initialisation
  REQUIRE(l2 == Approx(l1).epsilon(1e-6));
  const auto p1 = one.model.named_parameters(), p2 = two.model.named_parameters();
  REQUIRE(p1.size() == p2.size());
  for (size_t i = 0; i < p1.size(); ++i) {
    INFO(p1[i].first);
    tg::test::require_close(p2[i].second.grad(), p1[i].second.grad(), 1e-6, p1[i].first);
  }
  REQUIRE(one.train_batches.generator().state() == two.train_batches.generator().state());
}

TEST_CASE("tiny_lm train --grad-accum: range check, and a resume needs the checkpoint's micro-batch count", "[tiny_lm][grad_accum]") {
  const Run zero = tiny_lm("train --grad-accum 0 --out-dir " + tg::test::scratch_dir("ga_zero").string());
  REQUIRE(zero.status == 2);
  REQUIRE_THAT(zero.output, Contains("[tiny_lm train] --grad-accum must be in [1, 65536]; got --grad-accum=0"));
  const fs::path dir = tg::test::scratch_dir("ga_refuse");
  const Run first = tiny_lm("train " + kModel + "--max-iters 30 --grad-accum 2 --stop-at 3 --out-dir " + dir.string());
  INFO(first.output);
  REQUIRE(first.status == 0);
  const Run other = tiny_lm("train " + kModel + "--max-iters 30 --grad-accum 3 --resume --out-dir " + dir.string());
  REQUIRE(other.status == 1);
  REQUIRE_THAT(other.output, Contains("ckpt.h5: written by a run of 2 micro-batches per iteration (--grad-accum x "
                                      "processes) but this run has 3 (--grad-accum 3 x 1 process)"));
}

TEST_CASE("tiny_lm train --grad-accum 2: --stop-at then --resume equals the uninterrupted run, bit for bit", "[tiny_lm][grad_accum]") {
  const fs::path full = tg::test::scratch_dir("ga_full"), split = tg::test::scratch_dir("ga_split");
  const std::string args = "train " + kModel + "--max-iters 30 --grad-accum 2 --out-dir ";
  const Run a = tiny_lm(args + full.string());
  INFO(a.output);
  REQUIRE(a.status == 0);
  REQUIRE_THAT(a.output, Contains("2 micro-batches of 8 per iteration on 1 process"));
  REQUIRE(tiny_lm(args + split.string() + " --stop-at 15").status == 0);
  const Run b = tiny_lm(args + split.string() + " --resume");
  INFO(b.output);
  REQUIRE_THAT(b.output, Contains("resumed from"));
  require_same_run(full, split);
}

TEST_CASE("run_settings: every flag that changes the run, the corpus compared by content", "[tiny_lm][mpi]") {
  const tg::tiny_lm::Corpus arithmetic = tg::tiny_lm::arithmetic_corpus(0), other = tg::tiny_lm::arithmetic_corpus(1);
  tg::tiny_lm::Corpus renamed = arithmetic;
  renamed.name = "/elsewhere/the_same.txt";
  REQUIRE(tg::tiny_lm::corpus_digest(renamed) == tg::tiny_lm::corpus_digest(arithmetic));
  REQUIRE(tg::tiny_lm::corpus_digest(other) != tg::tiny_lm::corpus_digest(arithmetic));
  REQUIRE(tg::tiny_lm::corpus_digest(arithmetic).size() == 16);
  tg::tiny_lm::TrainOptions o;
  const auto settings = tg::tiny_lm::run_settings(o, arithmetic);
  std::string flags;
  for (const auto& st : settings) flags += st.flag + " ";
  REQUIRE(flags ==
          "--data --block-size --batch-size --grad-accum --n-layer --n-head --n-embd --dropout --max-iters "
          "--lr-decay-iters --warmup-iters --lr --min-lr --weight-decay --beta1 --beta2 --grad-clip --eval-interval "
          "--eval-iters --seed --tie-weights --resume --stop-at --precision ");
  REQUIRE(settings[0].value == tg::tiny_lm::corpus_digest(arithmetic));
  REQUIRE_THAT(settings[0].shown, Contains("built-in arithmetic (100000 bytes, digest "));
  o.lr = 0.1 + 0.2;   // exact text: 0.30000000000000004 is not 0.3
  REQUIRE(tg::tiny_lm::run_settings(o, arithmetic)[11].value == "0.30000000000000004");
  o.threads = 7;   // speed only: may differ per host
  o.out_dir = "elsewhere";
  o.lr = 1e-3;
  const auto elsewhere = tg::tiny_lm::run_settings(o, renamed);
  for (size_t i = 0; i < settings.size(); ++i) REQUIRE(elsewhere[i].value == settings[i].value);
  // Alone there is nothing to compare.
  REQUIRE_NOTHROW(tg::tiny_lm::require_same_run(o, other, tg::tiny_lm::Processes{}));
}

#if TAPEGRAD_TINY_LM_WITH_MPI

namespace {

// An MPMD launch of tiny_lm on 2 ranks (shared memory), each with its own arguments and working
// directory (as two hosts with their own file systems).
// `env` prefixes mpirun (e.g. "env TMPDIR=/x ").
Run two_hosts(const fs::path& dir0, const std::string& args0, const fs::path& dir1, const std::string& args1,
              const std::string& env = "") {
  const std::string launch = env + "mpirun --allow-run-as-root --oversubscribe --mca btl vader,self ";
  return shell(launch + "-np 1 --wdir " + dir0.string() + " " + kBin + " " + args0 + " : -np 1 --wdir " +
               dir1.string() + " " + kBin + " " + args1);
}

// Open MPI as root needs --allow-run-as-root; --oversubscribe starts 3 ranks on 2 cores.
std::string mpirun(int np, const std::string& btl) {
  return "mpirun --allow-run-as-root --oversubscribe --mca btl " + btl + " -np " + std::to_string(np) + " ";
}

// `mpirun -np K tiny_lm train` (batch B per rank) against `tiny_lm train --grad-accum K` (one process).
void require_bit_identical(int k, const std::string& btl) {
  const std::string name = "dist_" + std::to_string(k) + "_" + btl.substr(0, 3);
  const fs::path single = tg::test::scratch_dir(name + "_single"), many = tg::test::scratch_dir(name + "_mpi");
  const std::string args = "train " + kModel + "--max-iters 30 --out-dir ";
  const Run one = tiny_lm(args + single.string() + " --grad-accum " + std::to_string(k));
  INFO(one.output);
  REQUIRE(one.status == 0);
  const Run dist = shell(mpirun(k, btl) + kBin + " " + args + many.string());
  INFO(dist.output);
  REQUIRE(dist.status == 0);
  // Rank 0 alone prints: one final line, and the same one.
  const auto final_of = [](const std::string& out) {
    const size_t at = out.find("final iter");
    return out.substr(at, out.find(" wall_s", at) - at);
  };
  REQUIRE(dist.output.find("final iter") == dist.output.rfind("final iter"));
  REQUIRE(final_of(dist.output) == final_of(one.output));
  require_same_run(single, many);
}

// The pid of the tiny_lm process of rank `rank` whose command line names `out_dir`, or -1.
pid_t find_rank(int rank, const std::string& out_dir) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmd(e.path() / "cmdline", std::ios::binary), env(e.path() / "environ", std::ios::binary);
    std::string c((std::istreambuf_iterator<char>(cmd)), {}), v((std::istreambuf_iterator<char>(env)), {});
    if (c.find(out_dir) != std::string::npos && c.find("tiny_lm") != std::string::npos &&
        v.find(std::string("OMPI_COMM_WORLD_RANK=") + std::to_string(rank) + '\0') != std::string::npos)
      return static_cast<pid_t>(std::stol(pid));
  }
  return -1;
}

}  // namespace

TEST_CASE("mpirun -np 2 (shared memory) tiny_lm train equals --grad-accum 2, bit for bit", "[tiny_lm][mpi]") {
  require_bit_identical(2, "vader,self");
}

TEST_CASE("mpirun -np 2 over TCP tiny_lm train equals --grad-accum 2, bit for bit", "[tiny_lm][mpi]") {
  require_bit_identical(2, "tcp,self");
}

TEST_CASE("mpirun -np 3 (oversubscribed, TCP) tiny_lm train equals --grad-accum 3, bit for bit", "[tiny_lm][mpi]") {
  require_bit_identical(3, "tcp,self");
}

TEST_CASE("mpirun -np 2: --stop-at then --resume under mpirun equals one process, another K is refused", "[tiny_lm][mpi]") {
  const fs::path single = tg::test::scratch_dir("dist_resume_single"), many = tg::test::scratch_dir("dist_resume_mpi");
  const std::string args = "train " + kModel + "--max-iters 30 --out-dir ";
  REQUIRE(tiny_lm(args + single.string() + " --grad-accum 2").status == 0);
  const Run first = shell(mpirun(2, "vader,self") + kBin + " " + args + many.string() + " --stop-at 15");
  INFO(first.output);
  REQUIRE(first.status == 0);
  REQUIRE_THAT(first.output, Contains("stopped at iter 15"));
  const Run three = shell(mpirun(3, "vader,self") + kBin + " " + args + many.string() + " --resume");
  REQUIRE(three.status != 0);
  REQUIRE_THAT(three.output, Contains("written by a run of 2 micro-batches per iteration (--grad-accum x processes) "
                                      "but this run has 3 (--grad-accum 1 x 3 processes)"));
  const Run second = shell(mpirun(2, "vader,self") + kBin + " " + args + many.string() + " --resume");
  INFO(second.output);
  REQUIRE(second.status == 0);
  REQUIRE_THAT(second.output, Contains("resumed from"));
  require_same_run(single, many);
}

TEST_CASE("mpirun -np 2 with rank 1 SIGKILLed: mpirun fails within seconds, the checkpoint loads, --resume finishes the run", "[tiny_lm][mpi][faults]") {
  const fs::path single = tg::test::scratch_dir("dist_fault_single"), many = tg::test::scratch_dir("dist_fault_mpi");
  const std::string args = "train " + kNet + "--eval-interval 5 --out-dir ";
  REQUIRE(tiny_lm(args + single.string() + " --max-iters 30 --grad-accum 2").status == 0);
  // A long run (400 iterations), killed as soon as its first checkpoint exists.
  const std::string log = (many / "mpirun.log").string();
  const std::string command = "exec timeout -k 5 60 " + mpirun(2, "vader,self") + kBin + " " + args + many.string() +
                              " --max-iters 400 > " + log + " 2>&1";
  const pid_t launcher = fork();
  REQUIRE(launcher >= 0);
  if (launcher == 0) {
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const fs::path ckpt = many / "ckpt.h5";
  for (int i = 0; i < 1200 && !fs::exists(ckpt); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  REQUIRE(fs::exists(ckpt));
  const pid_t victim = find_rank(1, many.string());
  REQUIRE(victim > 0);
  REQUIRE(kill(victim, SIGKILL) == 0);
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  REQUIRE(waitpid(launcher, &status, 0) == launcher);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(file_text(log));
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) != 0);
  REQUIRE(WEXITSTATUS(status) != 124);   // not ended by the timeout guard
  REQUIRE(seconds < 30.0);
  REQUIRE_THAT(file_text(log), Contains("rank 1"));
  const tg::io::CheckpointData c = tg::io::read_checkpoint(ckpt.string());
  REQUIRE(c.step >= 5);
  REQUIRE(c.step < 30);   // the resume below has iterations left to run
  const Run resumed = shell(mpirun(2, "vader,self") + kBin + " " + args + many.string() + " --max-iters 30 --resume");
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  REQUIRE_THAT(resumed.output, Contains("resumed from " + ckpt.string() + " at iter " + std::to_string(c.step)));
  require_same_run(single, many);
}

TEST_CASE("mpirun with ranks given other flags: every rank refuses before training, naming the flag and both values",
          "[tiny_lm][mpi]") {
  // These once hung in a collective (--max-iters, --grad-accum, --eval-interval) or trained a run no
  // single process would (--batch-size).
  const fs::path a = tg::test::scratch_dir("dist_disagree_a"), b = tg::test::scratch_dir("dist_disagree_b");
  std::string net = kNet;
  net.erase(net.find("--batch-size 8 "), 15);
  const std::string args = "train " + net + "--out-dir out ";
  const std::pair<std::string, std::string> cases[] = {{"--max-iters", "30 40"},
                                                       {"--grad-accum", "1 2"},
                                                       {"--eval-interval", "10 5"},
                                                       {"--batch-size", "8 4"}};
  for (const auto& [flag, values] : cases) {
    const std::string v0 = values.substr(0, values.find(' ')), v1 = values.substr(values.find(' ') + 1);
    const std::string iters = std::string(flag == "--max-iters" ? "" : "--max-iters 30 ") +
                              (flag == "--eval-interval" ? "" : "--eval-interval 10 ") +
                              (flag == "--batch-size" ? "" : "--batch-size 8 ");
    const Run r = two_hosts(a, args + iters + flag + " " + v0, b, args + iters + flag + " " + v1);
    INFO(r.output);
    REQUIRE(r.status == 2);
    REQUIRE_THAT(r.output, Contains("[tiny_lm train] the processes of this launch disagree on " + flag + "; got " +
                                    flag + "=" + v0 + " on rank 0, " + flag + "=" + v1 + " on rank 1"));
    REQUIRE(r.output.find("iter 1") == std::string::npos);
    REQUIRE_FALSE(fs::exists(a / "out"));   // refused before rank 0 created anything
  }
}

TEST_CASE("mpirun with another data file on rank 1's host: every rank refuses, the same text at another path trains",
          "[tiny_lm][mpi]") {
  const fs::path a = tg::test::scratch_dir("dist_corpus_a"), b = tg::test::scratch_dir("dist_corpus_b");
  std::string text;
  for (int i = 0; i < 300; ++i) text += "line " + std::to_string(i * 7919 % 1000) + " of the corpus\n";
  std::ofstream(a / "data.txt", std::ios::binary) << text;
  std::ofstream(b / "copy.txt", std::ios::binary) << text;
  text[100] = text[100] == 'x' ? 'y' : 'x';
  std::ofstream(b / "data.txt", std::ios::binary) << text;
  const std::string args = "train " + kModel + "--max-iters 2 --out-dir out --data ";
  const Run r = two_hosts(a, args + "data.txt", b, args + "data.txt");
  INFO(r.output);
  REQUIRE(r.status == 1);
  REQUIRE_THAT(r.output, Contains("[tiny_lm train] the corpus differs across ranks (--data): rank 0 has data.txt ("));
  REQUIRE_THAT(r.output, Contains("), rank 1 has data.txt ("));
  REQUIRE(r.output.find("iter 1") == std::string::npos);
  const Run same = two_hosts(a, args + "data.txt", b, args + "copy.txt");
  INFO(same.output);
  REQUIRE(same.status == 0);
  REQUIRE_THAT(same.output, Contains("final iter 2"));
}

TEST_CASE("mpirun --resume with the out-dir on rank 0's host only: rank 1 never reads its own out-dir",
          "[tiny_lm][mpi]") {
  // Rank 0 runs in host0/, rank 1 in host1/, with a relative --out-dir: rank 1's host has no checkpoint,
  // then another run's checkpoint at the same step (once silently restored by rank 1).
  const fs::path single = tg::test::scratch_dir("dist_hosts_single"), host0 = tg::test::scratch_dir("dist_hosts_0"),
                 host1 = tg::test::scratch_dir("dist_hosts_1");
  const std::string args = "train " + kModel + "--max-iters 30 --out-dir ";
  REQUIRE(tiny_lm(args + single.string() + " --grad-accum 2").status == 0);
  const Run first = two_hosts(host0, args + "out --stop-at 10", host1, args + "out --stop-at 10");
  INFO(first.output);
  REQUIRE(first.status == 0);
  REQUIRE_FALSE(fs::exists(host1 / "out"));
  const Run second = two_hosts(host0, args + "out --stop-at 20 --resume", host1, args + "out --stop-at 20 --resume");
  INFO(second.output);
  REQUIRE(second.status == 0);
  REQUIRE_THAT(second.output, Contains("resumed from out/ckpt.h5 at iter 10"));
  REQUIRE_FALSE(fs::exists(host1 / "out"));
  // A stale checkpoint of another run (another seed) at the same step on rank 1's host.
  REQUIRE(tiny_lm(args + (host1 / "out").string() + " --grad-accum 2 --seed 7 --stop-at 20").status == 0);
  const Run third = two_hosts(host0, args + "out --resume", host1, args + "out --resume");
  INFO(third.output);
  REQUIRE(third.status == 0);
  REQUIRE_THAT(third.output, Contains("resumed from out/ckpt.h5 at iter 20"));
  require_same_run(single, host0 / "out");
  // Without a checkpoint on rank 0's host every rank fails with rank 0's reason, status 1, no hang.
  fs::remove_all(host0 / "out");
  const Run none = two_hosts(host0, args + "out --resume", host1, args + "out --resume");
  INFO(none.output);
  REQUIRE(none.status == 1);
  REQUIRE_THAT(none.output, Contains("out/ckpt.h5"));
}


TEST_CASE("mpirun --resume: rank 0 reads ckpt.h5 once and every rank, rank 0 included, restores those bytes",
          "[tiny_lm][mpi]") {
  // Rank 0 once loaded ckpt.h5 and then read the file again to send it: a checkpoint saved in between
  // (another run's, renamed over it) started the ranks from different states.
  const fs::path single = tg::test::scratch_dir("dist_once_single"), host0 = tg::test::scratch_dir("dist_once_0"),
                 host1 = tg::test::scratch_dir("dist_once_1"), tmp = tg::test::scratch_dir("dist_once_tmp");
  const std::string args = "train " + kModel + "--max-iters 20 --out-dir ";
  REQUIRE(tiny_lm(args + single.string() + " --grad-accum 2").status == 0);
  REQUIRE(two_hosts(host0, args + "out --stop-at 10", host1, args + "out --stop-at 10").status == 0);
  tg::test::FileEvents events;
  const int out = events.watch(host0 / "out", IN_OPEN | IN_CLOSE_NOWRITE | IN_CLOSE_WRITE);
  const int temp = events.watch(tmp, IN_CREATE);
  const std::string env = "env TMPDIR=" + tmp.string() + " ";   // where the ranks put their copies
  const Run resumed = two_hosts(host0, args + "out --resume", host1, args + "out --resume", env);
  const std::vector<tg::test::FileEvents::Event> seen = events.read_all();   // before this process opens the files
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  REQUIRE_THAT(resumed.output, Contains("resumed from out/ckpt.h5 at iter 10"));
  require_same_run(single, host0 / "out");
  int64_t reads = 0, copies = 0;   // a save's HDF5 opens ckpt.h5 read-write: IN_CLOSE_WRITE
  for (const tg::test::FileEvents::Event& e : seen) {
    reads += e.wd == out && (e.mask & IN_CLOSE_NOWRITE) && e.name == "ckpt.h5";
    copies += e.wd == temp && e.name.starts_with("tiny_lm_resume_");
  }
  CHECK(reads == 1);    // once read three times: load's check and restore, then the bytes to send
  CHECK(copies == 2);   // a private copy of those bytes per rank, rank 0's too
  for (const auto& e : fs::directory_iterator(tmp))   // and removed again
    CHECK_FALSE(e.path().filename().string().starts_with("tiny_lm_resume_"));
}

TEST_CASE("mpirun -np 2 with a bad flag: rank 0 alone prints the usage error, a rank-specific one is still printed",
          "[tiny_lm][mpi]") {
  const fs::path a = tg::test::scratch_dir("dist_usage_a"), b = tg::test::scratch_dir("dist_usage_b");
  const std::string message = "[tiny_lm train] --eval-interval must be >= 1; got --eval-interval=0";
  const Run both = shell(mpirun(2, "vader,self") + kBin + " train --eval-interval 0 --out-dir " + a.string());
  INFO(both.output);
  REQUIRE(both.status == 2);
  REQUIRE(both.output.find(message) != std::string::npos);
  REQUIRE(both.output.find(message) == both.output.rfind(message));   // once, not interleaved with copies
  REQUIRE(both.output.find("tiny_lmtiny_lm") == std::string::npos);
  // Only rank 1's command line is bad: rank 1 must say so itself.
  const Run one =
      two_hosts(a, "train " + kModel + "--out-dir out", b, "train " + kNet + "--eval-interval 0 --out-dir out");
  INFO(one.output);
  REQUIRE(one.status == 2);
  REQUIRE_THAT(one.output, Contains(message));
}

#endif
