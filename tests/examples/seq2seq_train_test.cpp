// The seq2seq example's training: a short run lowers the loss and writes losses.csv; an interrupted
// run (--stop-at between two evaluations) resumed with --resume ends with identical parameters,
// optimizer state and losses.csv rows; a checkpoint of another configuration is refused; load_model
// rebuilds the trained model for translation.
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "examples/common/cli.h"
#include "examples/seq2seq/train.h"
#include "support/file_events.h"
#include "support/test_support.h"
#include "tapegrad/framework/io/checkpoint.h"

using Catch::Matchers::Contains;
using namespace tg;
using namespace tg::seq2seq;

namespace {

TrainOptions tiny(const std::string& dir) {
  TrainOptions o;
  o.out_dir = dir;
  o.d_model = 16;
  o.nhead = 2;
  o.num_encoder_layers = 1;
  o.num_decoder_layers = 1;
  o.dim_feedforward = 32;
  o.dropout = 0.1;
  o.batch_size = 16;
  o.max_iters = 24;
  o.warmup_iters = 4;
  o.lr = 3e-3;
  o.eval_interval = 8;
  o.eval_examples = 16;
  o.log_interval = 1000;
  o.label_smoothing = 0.1;
  o.seed = 99;
  return o;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::vector<std::string>> csv_rows(const std::string& path) {
  std::istringstream in(read_text(path));
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::istringstream ls(line);
    for (std::string c; std::getline(ls, c, ',');) cells.push_back(c);
    rows.push_back(cells);
  }
  return rows;
}

}  // namespace

TEST_CASE("seq2seq train: a short run lowers the loss and logs one losses.csv row per evaluation", "[seq2seq][train]") {
  const std::string dir = tg::test::scratch_dir("seq2seq_learn").string();
  TrainOptions o = tiny(dir);
  o.d_model = 32;
  o.dim_feedforward = 64;
  o.dropout = 0.0;
  o.label_smoothing = 0.0;
  o.batch_size = 32;
  o.max_iters = 60;
  o.eval_interval = 20;
  std::ostringstream log;
  const TrainResult r = train(o, log);
  INFO(log.str());
  CHECK(r.iter == 60);
  CHECK_FALSE(r.stopped);
  const auto rows = csv_rows(dir + "/losses.csv");
  REQUIRE(rows.size() == 4);
  CHECK(rows[0] == std::vector<std::string>{"iter", "train_loss", "val_loss", "exact_match", "lr"});
  CHECK(rows[1][0] == "20");
  CHECK(rows[3][0] == "60");
  const double first = std::stod(rows[1][1]), last = std::stod(rows[3][1]);
  CHECK(first < std::log(70.0) + 0.5);
  CHECK(last < 0.6 * first);              // the mean training loss of iterations 41..60 vs 1..20
  CHECK(std::stod(rows[3][2]) < 1.5);     // val loss well below uniform guessing (ln 70 = 4.25)
  CHECK(std::stod(rows[3][2]) == Approx(r.val_loss).margin(1e-6));
  CHECK_THAT(log.str(), Contains("final iter 60 val_loss"));
}

TEST_CASE("seq2seq train: --stop-at then --resume equals an uninterrupted run bit for bit", "[seq2seq][train][resume]") {
  const std::string a = tg::test::scratch_dir("seq2seq_resume_a").string();
  const std::string b = tg::test::scratch_dir("seq2seq_resume_b").string();
  std::ostringstream sink;
  train(tiny(a), sink);
  TrainOptions first = tiny(b);
  first.stop_at = 12;   // between the evaluations at 8 and 16: the loss accumulator must be restored too
  const TrainResult stopped = train(first, sink);
  CHECK(stopped.stopped);
  CHECK(stopped.iter == 12);
  CHECK(csv_rows(b + "/losses.csv").size() == 2);
  TrainOptions second = tiny(b);
  second.resume = true;
  std::ostringstream resumed_log;
  tg::test::FileEvents events;   // opens and closes alternate, so the kernel merges no repeated event
  const int wd = events.watch(b, IN_OPEN | IN_CLOSE_NOWRITE | IN_CLOSE_WRITE);
  const TrainResult resumed = train(second, resumed_log);
  // ckpt.h5 read once: the checkpoint whose settings were checked is the one restored (it was read twice,
  // the metadata and then the restore, and the saves read it whole before 9a10bea).
  const std::vector<tg::test::FileEvents::Event> seen = events.read_all();
  CHECK(tg::test::FileEvents::count(seen, wd, IN_CLOSE_NOWRITE, "ckpt.h5") == 1);
  CHECK(tg::test::FileEvents::count(seen, wd, IN_OPEN, "ckpt.h5") == 1);
  CHECK_THAT(resumed_log.str(), Contains("resumed from " + b + "/ckpt.h5 at iter 12"));
  CHECK(resumed.iter == 24);
  CHECK(read_text(a + "/losses.csv") == read_text(b + "/losses.csv"));
  CHECK(csv_rows(a + "/losses.csv").size() == 4);
  const io::CheckpointData ca = io::read_checkpoint(a + "/ckpt.h5"), cb = io::read_checkpoint(b + "/ckpt.h5");
  REQUIRE(ca.model.has_value());
  CHECK(ca.step == 24);
  CHECK(ca == cb);   // model, optimizer, scheduler, generators, metadata, step and extra, bit for bit
  // A finished run is not continued.
  std::ostringstream again;
  CHECK(train(second, again).already_finished);
  CHECK_THAT(again.str(), Contains("nothing to do: " + b + "/ckpt.h5 already finished at iter 24"));
}

TEST_CASE("seq2seq train: a checkpoint of another configuration is refused on --resume", "[seq2seq][train][resume]") {
  const std::string dir = tg::test::scratch_dir("seq2seq_mismatch").string();
  TrainOptions o = tiny(dir);
  o.stop_at = 2;
  std::ostringstream sink;
  train(o, sink);
  o.d_model = 32;
  o.resume = true;
  o.stop_at = -1;
  REQUIRE_THROWS_WITH(train(o, sink), Contains(dir + "/ckpt.h5: /metadata") && Contains("differs from this run's"));
  o = tiny(dir);
  o.batch_size = 8;
  o.resume = true;
  REQUIRE_THROWS_WITH(train(o, sink), Contains("(another model configuration or run settings)"));
}

TEST_CASE("seq2seq train: --resume keeps the losses.csv rows up to the checkpoint and refuses a damaged log", "[seq2seq][train][resume]") {
  const std::string dir = tg::test::scratch_dir("seq2seq_csv").string();
  TrainOptions o = tiny(dir);
  o.stop_at = 8;
  std::ostringstream sink;
  train(o, sink);
  const std::string csv = dir + "/losses.csv";
  const std::string rows = read_text(csv);
  {
    std::ofstream extra(csv, std::ios::app);
    extra << "16,9,9,0,0.001\n";   // a row written after the checkpoint (a run killed later): dropped
  }
  o.stop_at = 9;
  o.resume = true;
  train(o, sink);
  CHECK(read_text(csv) == rows);
  {
    std::ofstream bad(csv, std::ios::app);
    bad << "x,1,2,3,4\n";
  }
  o.stop_at = 10;
  REQUIRE_THROWS_WITH(train(o, sink), csv + ": line 3 is not '<iter>,...'; got 'x,1,2,3,4'");
}

TEST_CASE("seq2seq train: load_model rebuilds the trained model, and evaluate and translate run on it", "[seq2seq][train]") {
  const std::string dir = tg::test::scratch_dir("seq2seq_load").string();
  TrainOptions o = tiny(dir);
  o.max_iters = 8;
  std::ostringstream sink;
  const TrainResult r = train(o, sink);
  auto model = load_model(dir + "/ckpt.h5");
  CHECK_FALSE(model->is_training());
  const Evaluation e = evaluate(*model, eval_examples_for(o.seed, o.eval_examples), {.beam_size = 1, .max_len = 16});
  CHECK(e.val_loss == Approx(r.val_loss).margin(1e-9));
  const auto out = translate(*model, {"3rd of march 2021", "3/3/21"}, {.beam_size = 1, .max_len = 16});
  CHECK(out.size() == 2);
  REQUIRE_THROWS_WITH(load_model(dir + "/missing.h5"), Contains("missing.h5"));
}

TEST_CASE("seq2seq train: options are validated naming the flag", "[seq2seq][train]") {
  TrainOptions o = tiny("x");
  o.batch_size = 0;
  REQUIRE_THROWS_WITH(o.validate(), "[seq2seq train] --batch-size must be in [1, 65536]; got --batch-size=0");
  o = tiny("x");
  o.nhead = 3;
  REQUIRE_THROWS_WITH(o.validate(), "[seq2seq train] --nhead must be a divisor of --d-model=16; got --nhead=3");
  o = tiny("x");
  o.warmup_iters = 24;
  REQUIRE_THROWS_WITH(o.validate(), "[seq2seq train] --warmup-iters must be in [0, 23]; got --warmup-iters=24");
  o = tiny("x");
  o.label_smoothing = 1.0;
  REQUIRE_THROWS_WITH(o.validate(), "[seq2seq train] --label-smoothing must be finite and in [0, 1); got --label-smoothing=1");
  o = tiny("x");
  o.lr = std::nan("");
  REQUIRE_THROWS_AS(o.validate(), tg::examples::UsageError);
}

// The default configuration reaches >= 99% held-out exact match (several minutes on 2 cores): hidden
// from the normal run; CTest runs it as examples/seq2seq_default_config_reaches_99_percent under
// `ctest --test-dir build -C long -L long`.
TEST_CASE("seq2seq train: the default configuration reaches 99% held-out exact match", "[.][long][seq2seq]") {
  TrainOptions o;
  o.out_dir = tg::test::scratch_dir("seq2seq_default").string();
  o.log_interval = 100;
  std::ostringstream log;
  const TrainResult r = train(o, log);
  INFO(log.str());
  CHECK(r.exact_match >= 0.99);
  auto model = load_model(o.out_dir + "/ckpt.h5");
  const Evaluation e = evaluate(*model, held_out_examples(2000, 7), {.beam_size = 1, .max_len = 16});
  CHECK(e.exact_match >= 0.99);
}

TEST_CASE("seq2seq train: --resume refuses a changed --lr, --min-lr or --grad-clip, naming the flag and both values",
          "[seq2seq][train][resume]") {
  const std::string dir = tg::test::scratch_dir("seq2seq_resume_settings").string();
  TrainOptions o = tiny(dir);
  o.stop_at = 2;
  std::ostringstream sink;
  train(o, sink);
  TrainOptions lr = tiny(dir);
  lr.resume = true;
  lr.lr = o.lr * 2;
  lr.min_lr = o.min_lr / 2;
  // The optimizer and the schedule would restore the checkpoint's lr silently; --grad-clip was applied.
  REQUIRE_THROWS_WITH(train(lr, sink), Contains(dir + "/ckpt.h5: the checkpoint was trained with --lr " +
                                                nlohmann::json(o.lr).dump() + " (this run: " +
                                                nlohmann::json(lr.lr).dump() + "), --min-lr " +
                                                nlohmann::json(o.min_lr).dump() + " (this run: " +
                                                nlohmann::json(lr.min_lr).dump() + "); a resumed run keeps"));
  TrainOptions clip = tiny(dir);
  clip.resume = true;
  clip.grad_clip = 0;
  REQUIRE_THROWS_WITH(train(clip, sink), Contains("--grad-clip " + nlohmann::json(o.grad_clip).dump() +
                                                  " (this run: 0.0)"));
  TrainOptions same = tiny(dir);
  same.resume = true;
  REQUIRE(train(same, sink).iter == same.max_iters);
}
