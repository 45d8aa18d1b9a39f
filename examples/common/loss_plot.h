#pragma once
// Loss curves as a picture (gnuplot, examples/common/gnuplot.h): train and validation loss against the
// iteration, the learning rate in a panel below, and the exact-match accuracy in a third panel when the
// log has it. Several runs overlay in one picture, each in its own colour, named in the legend.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tg::examples {

// One run's curves; each series holds (iteration, value) pairs, in file order.
struct LossCurves {
  std::string label;   // the legend's name for the run
  std::vector<double> train_iter, train_loss, val_iter, val_loss, lr_iter, lr, match_iter, exact_match;
  int64_t infinite = 0;   // +-inf values (a diverged run) left out of the series above
  bool empty() const { return train_iter.empty() && val_iter.empty(); }
};

// Reads a losses.csv of either schema, told apart by the header:
//   tiny_lm:  iter,train_loss,lr,kind            one row per iteration (kind train) and per
//             evaluation (kind val, the validation loss in the train_loss column); lr from train rows
//   seq2seq:  iter,train_loss,val_loss,exact_match,lr   columns may be empty or nan where a row has
//             no such value; exact_match is a fraction in [0, 1] (0.95 for 95%)
// Empty and nan cells are no point; +-inf values are left out too and counted in `infinite`.
// `label` names the run (default: the name of the folder holding the file). Throws std::runtime_error
// "<path>: ..." when the file cannot be read, the header is neither schema, or a row is malformed
// ("<path>:<line>: ..."), e.g. an exact_match outside [0, 1] or infinite:
// "<path>:<line>: exact_match must be a fraction in [0, 1]; got '95'".
LossCurves read_losses_csv(const std::string& path, const std::string& label = "");

// "(left out: 3 infinite value(s) of run_a, ...)" for the runs with infinite values, else "".
std::string left_out_note(const std::vector<LossCurves>& runs);

// Draws the runs into png_path (atomically), the title followed by left_out_note(runs). A series of
// one point is drawn with a marker (a line through one point would be invisible). Returns false,
// writing nothing, when gnuplot is not on PATH. Throws std::invalid_argument "[plot_loss_runs] ..." when
// no run has a finite loss value (with left_out_note's words when they were infinite), and gnuplot's
// errors (run_gnuplot).
bool plot_loss_runs(const std::vector<LossCurves>& runs, const std::string& png_path, const std::string& title = "");

// plot_loss_runs({read_losses_csv(csv_path)}, png_path, <its label>): one run, titled with its folder's
// name; the picture a training run refreshes.
bool plot_losses(const std::string& csv_path, const std::string& png_path);

// The picture a training loop keeps up to date: refresh() redraws png_path from csv_path. A training run
// must go on when there is no picture: refresh() never throws; the first failure (gnuplot missing:
// "no losses.png written: gnuplot is not on PATH (install gnuplot-nox)"; or gnuplot's error) is passed to
// `say` once, later ones are silent.
// Each redraw reads and draws every row so far, so redrawing at every evaluation made long runs quadratic
// (20000 iterations, an evaluation every 250: 34.6 s instead of 13.5 s). refresh() therefore skips a
// redraw while drawing pictures has taken more than kDrawShare of the time since the LossPlot was made;
// the first call, and a call with force (the end of a run), always draw.
class LossPlot {
 public:
  static constexpr double kDrawShare = 0.05;

  LossPlot(std::string csv_path, std::string png_path, std::function<void(const std::string&)> say);
  bool refresh(bool force = false);   // true when the picture was written

 private:
  std::string csv_path_, png_path_;
  std::function<void(const std::string&)> say_;
  bool said_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double draw_seconds_ = 0;   // spent in refresh so far
  bool drew_ = false;         // refresh has drawn (or tried) at least once
};

}  // namespace tg::examples
