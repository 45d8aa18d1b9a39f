// examples/common: readable Program_options defaults, losses.csv of both schemas, gnuplot pictures
// (loss curves, attention heatmaps) and their CSV, and what happens without gnuplot.
#include <sys/wait.h>
#include <unistd.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "examples/common/cli.h"
#include "examples/common/gnuplot.h"
#include "examples/common/heatmaps.h"
#include "examples/common/loss_plot.h"
#include "examples/common/readable_default.h"
#include "support/process_support.h"
#include "support/test_support.h"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using namespace tg::examples;

namespace {

void write(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

// Sets PATH for the scope (to a folder without gnuplot), restoring it afterwards.
struct PathOverride {
  explicit PathOverride(const std::string& value) : old_(std::getenv("PATH") ? std::getenv("PATH") : "") {
    setenv("PATH", value.c_str(), 1);
  }
  ~PathOverride() { setenv("PATH", old_.c_str(), 1); }
  std::string old_;
};

// Files of a folder, names only.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

const std::string kTinyLmCsv =
    "iter,train_loss,lr,kind\n0,4.2,0,train\n1,4.1,1e-05,train\n2,3.9,2e-05,train\n2,3.95,2e-05,val\n3,3.7,3e-05,train\n";
const std::string kSeq2seqCsv =
    "iter,train_loss,val_loss,exact_match,lr\n0,3.5,,,0.001\n1,3.1,nan,nan,0.002\n2,2.8,2.9,0.25,0.003\n"
    "3,2.5,,,0.004\n4,2.2,2.4,0.75,0.005\n";

}  // namespace

TEST_CASE("readable_number: defaults print as a person writes them", "[examples][help]") {
  CHECK(readable_number(0.1) == "0.1");
  CHECK(readable_number(0.99) == "0.99");
  CHECK(readable_number(0.9) == "0.9");
  CHECK(readable_number(1e-3) == "1e-3");
  CHECK(readable_number(1e-4) == "1e-4");
  CHECK(readable_number(6e-4) == "6e-4");
  CHECK(readable_number(1e-8) == "1e-8");
  CHECK(readable_number(1337) == "1337");
  CHECK(readable_number(1.0) == "1");
  CHECK(readable_number(0.0) == "0");
  CHECK(readable_number(0.8) == "0.8");
  CHECK(readable_number(-2.5) == "-2.5");
  CHECK(readable_number(2.5e10) == "2.5e10");
  CHECK(readable_number(1e300) == "1e300");
  CHECK(readable_number(5e-324) == "5e-324");
  CHECK(readable_number(1.0 / 3.0) == "0.3333333333333333");
  CHECK(readable_number(std::numeric_limits<double>::infinity()) == "inf");
}

TEST_CASE("readable_number: the text reads back as exactly the same double", "[examples][help]") {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mantissa(-10.0, 10.0);
  std::uniform_int_distribution<int> exponent(-30, 30);
  for (int i = 0; i < 2000; ++i) {
    const double v = mantissa(rng) * std::pow(10.0, exponent(rng));
    const std::string text = readable_number(v);
    INFO(text);
    REQUIRE(std::strtod(text.c_str(), nullptr) == v);
  }
}

TEST_CASE("readable_default: --help shows the readable text and the value parses as before", "[examples][help]") {
  namespace po = boost::program_options;
  double lr = 1e-3, beta2 = 0.99;
  po::options_description d("t");
  d.add_options()("lr", readable_default(&lr), "lr")("beta2", readable_default(&beta2), "beta2");
  std::ostringstream help;
  help << d;
  REQUIRE_THAT(help.str(), Contains("(=1e-3)") && Contains("(=0.99)"));
  const char* argv[] = {"t", "--lr", "0.25"};
  po::variables_map vm;
  po::store(po::parse_command_line(3, argv, d), vm);
  po::notify(vm);
  REQUIRE(lr == 0.25);
  REQUIRE(beta2 == 0.99);
}

TEST_CASE("expand_newlines: each backslash-n of a prompt becomes a newline, nothing else changes", "[examples][cli]") {
  CHECK(expand_newlines("ROMEO:\\nBut soft") == "ROMEO:\nBut soft");
  CHECK(expand_newlines("\\n") == "\n");
  CHECK(expand_newlines("\\n\\n") == "\n\n");
  CHECK(expand_newlines("a\\\\nb") == "a\\\nb");   // a backslash before the pair stays
  CHECK(expand_newlines("tab\\t, end\\") == "tab\\t, end\\");
  CHECK(expand_newlines("plain\n") == "plain\n");
  CHECK(expand_newlines("").empty());
}

TEST_CASE("read_losses_csv: tiny_lm's schema (iter,train_loss,lr,kind)", "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_csv_tiny") / "run_a";
  fs::create_directories(dir);
  write(dir / "losses.csv", kTinyLmCsv);
  const LossCurves c = read_losses_csv((dir / "losses.csv").string());
  CHECK(c.label == "run_a");
  CHECK(c.train_iter == std::vector<double>{0, 1, 2, 3});
  CHECK(c.train_loss == std::vector<double>{4.2, 4.1, 3.9, 3.7});
  CHECK(c.val_iter == std::vector<double>{2});
  CHECK(c.val_loss == std::vector<double>{3.95});
  CHECK(c.lr == std::vector<double>{0, 1e-5, 2e-5, 3e-5});
  CHECK(c.exact_match.empty());
  CHECK(read_losses_csv((dir / "losses.csv").string(), "named").label == "named");
  // The same log with CRLF line ends (it said "kind must be train or val; got 'train\r'").
  std::string crlf;
  for (char ch : kTinyLmCsv) crlf += ch == '\n' ? std::string("\r\n") : std::string(1, ch);
  write(dir / "losses.csv", crlf);
  const LossCurves w = read_losses_csv((dir / "losses.csv").string());
  CHECK(w.train_loss == c.train_loss);
  CHECK(w.val_loss == c.val_loss);
  CHECK(w.lr == c.lr);
}

TEST_CASE("read_losses_csv: seq2seq's schema with empty and nan cells", "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_csv_seq2seq");
  write(dir / "losses.csv", kSeq2seqCsv);
  const LossCurves c = read_losses_csv((dir / "losses.csv").string());
  CHECK(c.train_loss == std::vector<double>{3.5, 3.1, 2.8, 2.5, 2.2});
  CHECK(c.val_iter == std::vector<double>{2, 4});
  CHECK(c.val_loss == std::vector<double>{2.9, 2.4});
  CHECK(c.match_iter == std::vector<double>{2, 4});
  CHECK(c.exact_match == std::vector<double>{0.25, 0.75});
  CHECK(c.lr.size() == 5);
}

TEST_CASE("read_losses_csv: exact_match is a fraction from 0 to 1, other values are refused naming file, line, value",
          "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_csv_fraction");
  const std::string p = (dir / "losses.csv").string(), head = "iter,train_loss,val_loss,exact_match,lr\n";
  write(p, head + "0,3,3,0,0.1\n1,2,2,0.005,0.1\n2,1,1,1,0.1\n");
  CHECK(read_losses_csv(p).exact_match == std::vector<double>{0, 0.005, 1});   // 0.005 is 0.5%, not 0.005%
  // Once read as percent because no value was below 1: a log in percent is refused, not guessed at.
  write(p, head + "0,3,3,50,0.1\n1,2,2,95,0.1\n");
  REQUIRE_THROWS_WITH(read_losses_csv(p), p + ":2: exact_match must be a fraction in [0, 1]; got '50'");
  write(p, head + "0,3,3,0.5,0.1\n1,2,2,1.0001,0.1\n");
  REQUIRE_THROWS_WITH(read_losses_csv(p), p + ":3: exact_match must be a fraction in [0, 1]; got '1.0001'");
  write(p, head + "0,3,3,-0.25,0.1\n");
  REQUIRE_THROWS_WITH(read_losses_csv(p), p + ":2: exact_match must be a fraction in [0, 1]; got '-0.25'");
  write(p, head + "0,3,3,,0.1\n1,2,2,inf,0.1\n");
  REQUIRE_THROWS_WITH(read_losses_csv(p), p + ":3: exact_match must be a fraction in [0, 1]; got 'inf'");
  write(p, head + "0,3,3,-inf,0.1\n");
  REQUIRE_THROWS_WITH(read_losses_csv(p), p + ":2: exact_match must be a fraction in [0, 1]; got '-inf'");
}

TEST_CASE("read_losses_csv: a file that is not a losses log is refused, naming file and line", "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_csv_bad");
  const std::string p = (dir / "losses.csv").string();
  REQUIRE_THROWS_WITH(read_losses_csv(p), Contains(p + ": cannot read the losses log"));
  write(p, "a,b,c\n1,2,3\n");
  REQUIRE_THROWS_WITH(read_losses_csv(p), Contains(p + ": not a losses log: header 'a,b,c'"));
  write(p, "iter,train_loss,lr,kind\n0,4.2,0,train\n1,4.1,0,test\n");
  REQUIRE_THROWS_WITH(read_losses_csv(p), Contains(p + ":3: kind must be train or val; got 'test'"));
  write(p, "iter,train_loss,lr,kind\n0,x4,0,train\n");
  REQUIRE_THROWS_WITH(read_losses_csv(p), Contains(p + ":2: train_loss is not a number: 'x4'"));
  write(p, "iter,train_loss,lr,kind\n0,4,0\n");
  REQUIRE_THROWS_WITH(read_losses_csv(p), Contains(p + ":2: 3 fields, the header has 4"));
  write(p, "");
  REQUIRE_THROWS_WITH(read_losses_csv(p), Contains(p + ": empty, not a losses log"));
}

TEST_CASE("plot_losses: a PNG, written atomically, no scratch files left", "[examples][plot]") {
  REQUIRE(!find_gnuplot().empty());   // setup.sh installs gnuplot-nox
  const fs::path dir = tg::test::scratch_dir("common_plot");
  write(dir / "losses.csv", kSeq2seqCsv);
  REQUIRE(plot_losses((dir / "losses.csv").string(), (dir / "losses.png").string()));
  REQUIRE(tg::test::is_png(dir / "losses.png"));
  REQUIRE(listing(dir) == std::vector<std::string>{"losses.csv", "losses.png"});
  // Several runs overlaid, in one picture.
  fs::create_directories(dir / "b");
  write(dir / "b" / "losses.csv", kTinyLmCsv);
  REQUIRE(plot_loss_runs({read_losses_csv((dir / "losses.csv").string()), read_losses_csv((dir / "b/losses.csv").string())},
                         (dir / "both.png").string(), "two runs"));
  REQUIRE(tg::test::is_png(dir / "both.png"));
  REQUIRE_THROWS_WITH(plot_loss_runs({LossCurves()}, (dir / "none.png").string()),
                      Contains("[plot_loss_runs] nothing to draw: no run has a loss row; got 1 run(s)"));
}

TEST_CASE("run_gnuplot: a failing script throws with gnuplot's status and message, and writes nothing", "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_gnuplot_fail");
  GnuplotJob job{.script = "plot 'no_such_file.dat'\n", .files = {}, .outputs = {{"picture.png", (dir / "x.png").string()}}};
  REQUIRE_THROWS_WITH(run_gnuplot(job), Contains((dir / "x.png").string() + ": gnuplot failed (exit status 1)") &&
                                            Contains("no_such_file.dat"));
  REQUIRE(listing(dir).empty());
  job.script = "print 1\n";   // exits 0 without the picture
  REQUIRE_THROWS_WITH(run_gnuplot(job), Contains("gnuplot exited 0 but wrote no picture.png"));
  job.outputs.emplace_back("other.png", "/elsewhere/other.png");
  REQUIRE_THROWS_WITH(run_gnuplot(job), Contains("[run_gnuplot] every output must be in one folder"));
  REQUIRE(gnuplot_quote("it's") == "'it''s'");
  REQUIRE(gnuplot_quote("a\nb\tc\x01\x7f") == "'a\\nb\\tc\\x01\\x7f'");   // a line break would end the line
}

TEST_CASE("without gnuplot on PATH nothing is drawn and LossPlot says so once", "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_no_gnuplot");
  write(dir / "losses.csv", kTinyLmCsv);
  PathOverride path(dir.string());
  REQUIRE(find_gnuplot().empty());
  REQUIRE_FALSE(plot_losses((dir / "losses.csv").string(), (dir / "losses.png").string()));
  std::vector<std::string> said;
  LossPlot plot((dir / "losses.csv").string(), (dir / "losses.png").string(), [&](const std::string& m) { said.push_back(m); });
  REQUIRE_FALSE(plot.refresh());
  REQUIRE_FALSE(plot.refresh());
  REQUIRE(said == std::vector<std::string>{"no losses.png written: gnuplot is not on PATH (install gnuplot-nox)"});
  REQUIRE(listing(dir) == std::vector<std::string>{"losses.csv"});
}

TEST_CASE("LossPlot: a broken log is reported once and never throws", "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_lossplot_bad");
  write(dir / "losses.csv", "nonsense\n");
  int said = 0;
  std::string last;
  LossPlot plot((dir / "losses.csv").string(), (dir / "losses.png").string(), [&](const std::string& m) { ++said, last = m; });
  REQUIRE_FALSE(plot.refresh());
  REQUIRE_FALSE(plot.refresh());
  REQUIRE(said == 1);
  REQUIRE_THAT(last, Contains("no losses.png written: ") && Contains("not a losses log"));
  write(dir / "losses.csv", kTinyLmCsv);
  REQUIRE(plot.refresh());
  REQUIRE(tg::test::is_png(dir / "losses.png"));
}

TEST_CASE("LossPlot: redraws within a share of the run's time, and always when forced", "[examples][plot]") {
  // Every redraw reads and draws every row: redrawing at each evaluation made long runs quadratic.
  REQUIRE(!find_gnuplot().empty());
  const fs::path dir = tg::test::scratch_dir("common_lossplot_budget");
  write(dir / "losses.csv", kTinyLmCsv);
  const fs::path png = dir / "losses.png";
  LossPlot plot((dir / "losses.csv").string(), png.string(), nullptr);
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(plot.refresh());   // the first call draws
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fs::remove(png);
  REQUIRE_FALSE(plot.refresh());   // drawing was nearly all of the time so far: skipped
  REQUIRE_FALSE(fs::exists(png));
  const auto t1 = std::chrono::steady_clock::now();
  REQUIRE(plot.refresh(true));     // the end of a run
  const double forced = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  REQUIRE(tg::test::is_png(png));
  fs::remove(png);
  // Two drawings so far, each timed here around the call (so at least as long as LossPlot counts them). After
  // twice their time over kDrawShare, drawing is a small enough share again, however slow either was (a fixed
  // multiple of the first alone failed on a loaded machine, whose second drawing took over 3x the first).
  std::this_thread::sleep_for(std::chrono::duration<double>(2 * (took + forced) / LossPlot::kDrawShare));
  REQUIRE(plot.refresh());
  REQUIRE(tg::test::is_png(png));
}

TEST_CASE("run_gnuplot: scratch folders a killed process of this host left behind go, the others stay",
          "[examples][plot]") {
  // SIGTERM or Ctrl-C during a redraw left '.losses.png.gnuplot-XXXXXX' folders in the out-dir for good.
  REQUIRE(!find_gnuplot().empty());
  const fs::path dir = tg::test::scratch_dir("common_scratch_leftovers");
  write(dir / "losses.csv", kTinyLmCsv);
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof host - 1) == 0);
  const pid_t gone = ::fork();   // a process that has exited: its id names nobody
  if (gone == 0) ::_exit(0);
  REQUIRE(gone > 0);
  REQUIRE(::waitpid(gone, nullptr, 0) == gone);
  const auto leftover = [&](const std::string& folder, const std::string& owner) {
    fs::create_directories(dir / folder);
    if (!owner.empty()) write(dir / folder / "owner", owner);
    write(dir / folder / "curves.dat", "0 1\n");
  };
  leftover(".losses.png.gnuplot-aaaaaa", std::string(host) + "\n" + std::to_string(gone) + "\n");       // killed
  leftover(".losses.png.gnuplot-bbbbbb", std::string(host) + "\n" + std::to_string(::getpid()) + "\n");  // alive
  leftover(".losses.png.gnuplot-cccccc", "another-host\n" + std::to_string(gone) + "\n");  // not ours to judge
  leftover(".losses.png.gnuplot-dddddd", "");                                               // no owner
  REQUIRE(plot_losses((dir / "losses.csv").string(), (dir / "losses.png").string()));
  REQUIRE(listing(dir) == std::vector<std::string>{".losses.png.gnuplot-bbbbbb", ".losses.png.gnuplot-cccccc",
                                                   ".losses.png.gnuplot-dddddd", "losses.csv", "losses.png"});
}

TEST_CASE("plot_losses: a run folder named with a newline, and a 250-byte picture name, get their pictures",
          "[examples][plot]") {
  // The folder's name is the picture's title: a raw newline ended the gnuplot script's line (exit 1). The
  // scratch folder beside a 250-byte picture name was longer than a file name may be.
  REQUIRE(!find_gnuplot().empty());
  const fs::path dir = tg::test::scratch_dir("common_odd_names") / "run\none";
  fs::create_directories(dir);
  write(dir / "losses.csv", kTinyLmCsv);
  REQUIRE(plot_losses((dir / "losses.csv").string(), (dir / "losses.png").string()));
  REQUIRE(tg::test::is_png(dir / "losses.png"));
  const std::string long_name = std::string(246, 'x') + ".png";
  REQUIRE(plot_losses((dir / "losses.csv").string(), (dir / long_name).string()));
  REQUIRE(tg::test::is_png(dir / long_name));
  REQUIRE(listing(dir) == std::vector<std::string>{"losses.csv", "losses.png", long_name});
}

TEST_CASE("visible_char: spaces, newlines and control bytes are labels one can see", "[examples][attention]") {
  CHECK(visible_char(' ') == "\u2423");
  CHECK(visible_char('\n') == "\\n");
  CHECK(visible_char('\t') == "\\t");
  CHECK(visible_char('\x01') == "\\x01");
  CHECK(visible_char('\xE9') == "\\xE9");
  CHECK(visible_char('a') == "a");
  CHECK(visible_char('\'') == "'");
  CHECK(visible_labels("a b\n") == std::vector<std::string>{"a", "\u2423", "b", "\\n"});
}

TEST_CASE("HeatmapGrid: bad grids are refused naming the sizes", "[examples][attention]") {
  HeatmapGrid g{.title = "t", .row_labels = {"a", "b"}, .col_labels = {"a", "b"}, .panels = {}};
  REQUIRE_THROWS_WITH(g.validate(), Contains("[HeatmapGrid] needs at least one panel; got panels=0"));
  g.panels = {{1, 0, 0.5}};
  REQUIRE_THROWS_WITH(g.validate(), Contains("[HeatmapGrid] panel 0 must hold rows x cols = 2 x 2 values; got 3"));
  g.panels = {{1}};
  g.row_labels.clear();
  REQUIRE_THROWS_WITH(g.validate(), Contains("[HeatmapGrid] needs row and column labels; got rows=0, cols=2"));
}

TEST_CASE("write_heatmaps / write_heatmap_csv: PNG, SVG and the numbers, masked cells absent", "[examples][attention]") {
  const fs::path dir = tg::test::scratch_dir("common_heatmaps");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Cross-attention shape: 2 queries ("x'", "y") against 3 keys; the labels need quoting in gnuplot.
  HeatmapGrid g{.title = "layer 1 it's", .row_labels = {"x'", "y"}, .col_labels = {"a", "\u2423", "\\n"},
                .panels = {{1, nan, nan, 0.25, 0.75, nan}, {0.5, 0.5, nan, 0.125, 0.125, 0.75}}};
  REQUIRE(write_heatmaps(g, (dir / "map.png").string(), (dir / "map.svg").string()));
  REQUIRE(tg::test::is_png(dir / "map.png"));
  REQUIRE_THAT(tg::test::read_file(dir / "map.svg"), Contains("<svg") && Contains("head 1"));
  write_heatmap_csv(g, 1, (dir / "map.csv").string());
  REQUIRE(tg::test::read_file(dir / "map.csv") ==
          "layer,head,query,key,weight\n1,0,0,0,1\n1,0,1,0,0.25\n1,0,1,1,0.75\n"
          "1,1,0,0,0.5\n1,1,0,1,0.5\n1,1,1,0,0.125\n1,1,1,1,0.125\n1,1,1,2,0.75\n");
  REQUIRE(listing(dir) == std::vector<std::string>{"map.csv", "map.png", "map.svg"});
  REQUIRE_THROWS_WITH(write_heatmap_csv(g, 1, (dir / "no/such/dir/map.csv").string()),
                      Contains("no/such/dir/map.csv: cannot write the attention weights"));
}

namespace {

// A fake gnuplot in `dir` that writes `png` as picture.png and `svg` as picture.svg and exits 0, as
// gnuplot does when the disk fills up mid-write.
void fake_gnuplot(const fs::path& dir, const std::string& png, const std::string& svg) {
  fs::create_directories(dir);
  write(dir / "gnuplot", "#!/bin/sh\nprintf '" + png + "' > picture.png\nprintf '" + svg + "' > picture.svg\nexit 0\n");
  fs::permissions(dir / "gnuplot", fs::perms::owner_all);
}

const std::string kPngHead = "\\211PNG\\r\\n\\032\\n", kPngEnd = "\\0\\0\\0\\0IEND\\256B`\\202";

}  // namespace

TEST_CASE("run_gnuplot: a truncated PNG or SVG (gnuplot exits 0 on a full disk) keeps the old pictures",
          "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_gnuplot_truncated");
  const fs::path bin = dir / "bin", out = dir / "out";
  fs::create_directories(out);
  write(out / "map.png", "old png");
  write(out / "map.svg", "old svg");
  HeatmapGrid g{.title = "t", .row_labels = {"a", "b"}, .col_labels = {"a", "b"}, .panels = {{1, 0, 0.5, 0.5}}};
  const std::string png = (out / "map.png").string(), svg = (out / "map.svg").string();
  PathOverride path(bin.string());
  SECTION("PNG cut short after its signature") {
    fake_gnuplot(bin, kPngHead + "IHDR", "<svg>\\n</svg>\\n");
    REQUIRE_THROWS_WITH(write_heatmaps(g, png, svg), Contains(png + ": gnuplot exited 0 but its picture.png is not a"
                                                              " whole picture (it does not end with a PNG IEND chunk"));
  }
  SECTION("PNG without a signature") {
    fake_gnuplot(bin, "GIF89a" + kPngEnd, "<svg>\\n</svg>\\n");
    REQUIRE_THROWS_WITH(write_heatmaps(g, png, svg),
                        Contains("picture.png is not a whole picture (it has no PNG signature"));
  }
  SECTION("SVG cut short") {
    fake_gnuplot(bin, kPngHead + "IHDR" + kPngEnd, "<svg>\\n<rect/>\\n</sv");
    REQUIRE_THROWS_WITH(write_heatmaps(g, png, svg), Contains(svg + ": gnuplot exited 0 but its picture.svg is not a"
                                                              " whole picture (it does not end with </svg>"));
  }
  REQUIRE(tg::test::read_file(out / "map.png") == "old png");
  REQUIRE(tg::test::read_file(out / "map.svg") == "old svg");
  REQUIRE(listing(out) == std::vector<std::string>{"map.png", "map.svg"});
}

TEST_CASE("run_gnuplot: whole pictures from the same fake gnuplot replace the old ones", "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_gnuplot_whole");
  const fs::path bin = dir / "bin", out = dir / "out";
  fs::create_directories(out);
  write(out / "map.png", "old png");
  fake_gnuplot(bin, kPngHead + "IHDR" + kPngEnd, "<svg>\\n</svg>\\n\\n");
  HeatmapGrid g{.title = "t", .row_labels = {"a", "b"}, .col_labels = {"a", "b"}, .panels = {{1, 0, 0.5, 0.5}}};
  PathOverride path(bin.string());
  REQUIRE(write_heatmaps(g, (out / "map.png").string(), (out / "map.svg").string()));
  REQUIRE(tg::test::read_file(out / "map.png") == std::string("\x89PNG\r\n\x1a\nIHDR\0\0\0\0IEND\xae\x42\x60\x82", 24));
  REQUIRE(tg::test::read_file(out / "map.svg") == "<svg>\n</svg>\n\n");
}

namespace {

// How many SVG polygons gnuplot filled with the palette's middle colour, 0.5 -> '#4a90c8'.
size_t mid_blue_polygons(const std::string& svg) {
  size_t n = 0;
  for (size_t at = svg.find("fill = 'rgb( 74, 144, 200)'"); at != std::string::npos;
       at = svg.find("fill = 'rgb( 74, 144, 200)'", at + 1))
    ++n;
  return n;
}

}  // namespace

TEST_CASE("write_heatmaps: every cell is drawn for one row, one column and one cell", "[examples][attention]") {
  const fs::path dir = tg::test::scratch_dir("common_heatmaps_thin");
  for (const auto& [rows, cols] : std::vector<std::pair<size_t, size_t>>{{1, 1}, {1, 4}, {5, 1}, {2, 3}}) {
    INFO(rows << " x " << cols);
    HeatmapGrid g{.title = "thin", .row_labels = std::vector<std::string>(rows, "q"),
                  .col_labels = std::vector<std::string>(cols, "k"), .panels = {std::vector<double>(rows * cols, 0.5)}};
    const fs::path png = dir / "map.png", svg = dir / "map.svg";
    REQUIRE(write_heatmaps(g, png.string(), svg.string()));
    REQUIRE(tg::test::is_png(png));
    // One filled box per cell, plus the colour bar's stripe of that colour; gnuplot's `matrix with
    // image` drew no cell below 2 x 2 (and an embedded image, no polygons, above).
    CHECK(mid_blue_polygons(tg::test::read_file(svg)) == rows * cols + 1);
  }
  // A masked cell is not drawn (the grey background shows): 3 of 4 cells.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  HeatmapGrid g{.title = "masked", .row_labels = {"q"}, .col_labels = {"a", "b", "c", "d"},
                .panels = {{0.5, nan, 0.5, 0.5}}};
  REQUIRE(write_heatmaps(g, (dir / "m.png").string(), (dir / "m.svg").string()));
  CHECK(mid_blue_polygons(tg::test::read_file(dir / "m.svg")) == 3 + 1);
}

TEST_CASE("write_heatmaps: a '%' in a label or the title is drawn as itself", "[examples][attention]") {
  const fs::path dir = tg::test::scratch_dir("common_heatmaps_percent");
  HeatmapGrid g{.title = "50% of %s", .row_labels = {"%", "d"}, .col_labels = {"1", "0%d", "%g%"},
                .panels = {{0.5, 0.5, 0.5, 0.5, 0.5, 0.5}}};
  REQUIRE(write_heatmaps(g, (dir / "map.png").string(), (dir / "map.svg").string()));
  const std::string svg = tg::test::read_file(dir / "map.svg");
  CHECK_THAT(svg, Contains(">%</text>") && Contains(">0%d</text>") && Contains(">%g%</text>") &&
                      Contains(">50% of %s</text>"));
}

namespace {

// A fake gnuplot in `bin` that keeps a copy of the script it was given as `bin`/script.gp and writes a
// small whole PNG: the test reads what would have been drawn.
void capturing_gnuplot(const fs::path& bin) {
  fs::create_directories(bin);
  write(bin / "gnuplot", "#!/bin/sh\n/bin/cat script.gp > '" + (bin / "script.gp").string() + "'\nprintf '" + kPngHead +
                             "IHDR" + kPngEnd + "' > picture.png\n");
  fs::permissions(bin / "gnuplot", fs::perms::owner_all);
}

}  // namespace

TEST_CASE("plot_losses: a series of one point is drawn with a marker", "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_plot_one_point");
  write(dir / "losses.csv", "iter,train_loss,lr,kind\n0,4.2,0.001,train\n");
  REQUIRE(plot_losses((dir / "losses.csv").string(), (dir / "real.png").string()));   // the real gnuplot
  REQUIRE(tg::test::is_png(dir / "real.png"));
  capturing_gnuplot(dir / "bin");
  {
    PathOverride path((dir / "bin").string());
    REQUIRE(plot_losses((dir / "losses.csv").string(), (dir / "losses.png").string()));
  }
  const std::string script = tg::test::read_file(dir / "bin" / "script.gp");
  CHECK_THAT(script, Contains("'run0_train.dat' using 1:2 with linespoints pt 7 ps 0.7 lw 1 lc rgb '#801f77b4'") &&
                         Contains("'run0_lr.dat' using 1:2 with linespoints pt 7 ps 0.7 lw 2 lc rgb '#1f77b4'"));
  // Two points or more: lines, as before.
  write(dir / "losses.csv", "iter,train_loss,lr,kind\n0,4.2,0.001,train\n1,4.1,0.001,train\n");
  {
    PathOverride path((dir / "bin").string());
    REQUIRE(plot_losses((dir / "losses.csv").string(), (dir / "losses.png").string()));
  }
  CHECK_THAT(tg::test::read_file(dir / "bin" / "script.gp"), Contains("'run0_train.dat' using 1:2 with lines lw 1"));
}

TEST_CASE("read_losses_csv / plot_losses: infinite values are left out, counted and named in the title",
          "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_plot_inf") / "run_inf";
  fs::create_directories(dir);
  // A diverged run: every validation loss inf, one train loss -inf.
  write(dir / "losses.csv", "iter,train_loss,lr,kind\n0,4.2,0,train\n1,-inf,1e-05,train\n1,inf,1e-05,val\n"
                            "2,3.9,2e-05,train\n2,inf,2e-05,val\n");
  const LossCurves c = read_losses_csv((dir / "losses.csv").string());
  CHECK(c.train_iter == std::vector<double>{0, 2});
  CHECK(c.train_loss == std::vector<double>{4.2, 3.9});
  CHECK(c.val_iter.empty());
  CHECK(c.lr == std::vector<double>{0, 1e-5, 2e-5});
  CHECK(c.infinite == 3);
  CHECK(left_out_note({c}) == "(left out: 3 infinite value(s) of run_inf)");
  // The real gnuplot failed here ("all points y value undefined!") before.
  REQUIRE(plot_losses((dir / "losses.csv").string(), (dir / "losses.png").string()));
  REQUIRE(tg::test::is_png(dir / "losses.png"));
  capturing_gnuplot(dir.parent_path() / "bin");
  PathOverride path((dir.parent_path() / "bin").string());
  REQUIRE(plot_losses((dir / "losses.csv").string(), (dir / "losses.png").string()));
  CHECK_THAT(tg::test::read_file(dir.parent_path() / "bin" / "script.gp"),
             Contains("title 'run_inf (left out: 3 infinite value(s) of run_inf)'"));
}

TEST_CASE("plot_losses: a run whose every loss is infinite is refused naming what was left out, not by gnuplot",
          "[examples][plot]") {
  const fs::path dir = tg::test::scratch_dir("common_plot_inf_all") / "inf_all";
  fs::create_directories(dir);
  std::string csv = "iter,train_loss,lr,kind\n";
  for (int i = 0; i < 10; ++i) csv += std::to_string(i) + ",inf,0.001,train\n";
  write(dir / "losses.csv", csv);
  // Before: gnuplot's "all points y value undefined!" (exit status 1).
  REQUIRE_THROWS_WITH(plot_losses((dir / "losses.csv").string(), (dir / "losses.png").string()),
                      Contains("[plot_loss_runs] nothing to draw: no run has a loss row") &&
                          Contains("(left out: 10 infinite value(s) of inf_all)"));
  // Beside a run with finite losses it is left out of the picture, which is drawn.
  fs::create_directories(dir.parent_path() / "ok");
  write(dir.parent_path() / "ok" / "losses.csv", kTinyLmCsv);
  REQUIRE(plot_loss_runs({read_losses_csv((dir / "losses.csv").string()),
                          read_losses_csv((dir.parent_path() / "ok" / "losses.csv").string())},
                         (dir / "both.png").string(), "two"));
  REQUIRE(tg::test::is_png(dir / "both.png"));
}
