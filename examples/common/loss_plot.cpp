#include "examples/common/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>

#include "examples/common/gnuplot.h"

namespace tg::examples {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSchemas = "expected iter,train_loss,lr,kind or iter,train_loss,val_loss,exact_match,lr";

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  std::istringstream s(line);
  for (std::string f; std::getline(s, f, ',');) fields.push_back(f);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

// A field's number; NaN for an empty/"nan" field (no value in this row). Throws on anything else.
double number(const std::string& field, const std::string& where, const std::string& column) {
  if (field.empty() || field == "nan" || field == "NaN" || field == "-nan") return std::nan("");
  char* end = nullptr;
  const double v = std::strtod(field.c_str(), &end);
  if (end != field.c_str() + field.size())
    throw std::runtime_error(where + ": " + column + " is not a number: '" + field + "'");
  return v;
}

// A point into a series; a missing (NaN) value is no point, an infinite one is left out and counted (a
// diverged run logs inf, and gnuplot cannot draw a series of them: "all points y value undefined!").
void add(std::vector<double>& xs, std::vector<double>& ys, double x, double y, int64_t& infinite) {
  if (std::isnan(x) || std::isnan(y)) return;
  if (std::isinf(x) || std::isinf(y)) {
    ++infinite;
    return;
  }
  xs.push_back(x);
  ys.push_back(y);
}

// One data row into `c`, by the header's column names.
void add_row(LossCurves& c, const std::map<std::string, size_t>& col, const std::vector<std::string>& f,
             const std::string& where) {
  auto value = [&](const char* name) {
    auto it = col.find(name);
    return it == col.end() ? std::nan("") : number(f[it->second], where, name);
  };
  const double iter = value("iter");
  if (std::isnan(iter)) throw std::runtime_error(where + ": the row has no iter");
  if (auto kind = col.find("kind"); kind != col.end()) {
    const std::string& k = f[kind->second];
    if (k == "train") {
      add(c.train_iter, c.train_loss, iter, value("train_loss"), c.infinite);
      add(c.lr_iter, c.lr, iter, value("lr"), c.infinite);
    } else if (k == "val") {
      add(c.val_iter, c.val_loss, iter, value("train_loss"), c.infinite);
    } else {
      throw std::runtime_error(where + ": kind must be train or val; got '" + k + "'");
    }
    return;
  }
  add(c.train_iter, c.train_loss, iter, value("train_loss"), c.infinite);
  add(c.val_iter, c.val_loss, iter, value("val_loss"), c.infinite);
  // A fraction, as seq2seq writes it: 95 or 0.5 meant as percent would be drawn 100x off, so refused.
  const double match = value("exact_match");
  if (!std::isnan(match) && !(match >= 0.0 && match <= 1.0))
    throw std::runtime_error(where + ": exact_match must be a fraction in [0, 1]; got '" + f[col.at("exact_match")] +
                             "'");
  add(c.match_iter, c.exact_match, iter, match, c.infinite);
  add(c.lr_iter, c.lr, iter, value("lr"), c.infinite);
}

std::string series_file(const std::vector<double>& xs, const std::vector<double>& ys) {
  std::string out;
  char line[80];
  for (size_t i = 0; i < xs.size(); ++i) {
    std::snprintf(line, sizeof line, "%.9g %.9g\n", xs[i], ys[i]);
    out += line;
  }
  return out;
}

constexpr const char* kColours[] = {"1f77b4", "d62728", "2ca02c", "9467bd", "ff7f0e", "8c564b", "e377c2", "17becf"};

// The plot command of one panel: for each run with data, `series(run, i)` gives {file, style, title} items.
struct Item {
  std::string file, style, title;
};

std::string plot_command(const std::vector<Item>& items) {
  std::string cmd = "plot ";
  for (size_t i = 0; i < items.size(); ++i)
    cmd += (i ? ", \\\n     " : "") + gnuplot_quote(items[i].file) + " using 1:2 " + items[i].style + " title " +
           gnuplot_quote(items[i].title);
  return cmd + "\n";
}

// Data files of every run's series and the items of the three panels.
struct Panels {
  std::vector<Item> loss, lr, match;
  double x_max = 0;
};

Panels collect(const std::vector<LossCurves>& runs, GnuplotJob& job) {
  Panels p;
  for (size_t r = 0; r < runs.size(); ++r) {
    const LossCurves& c = runs[r];
    const std::string colour = kColours[r % std::size(kColours)], id = "run" + std::to_string(r);
    const std::string name = runs.size() > 1 ? c.label + " " : "";
    auto series = [&](const std::vector<double>& xs, const std::vector<double>& ys, const std::string& suffix,
                      std::vector<Item>& panel, const std::string& style, const std::string& title) {
      if (xs.empty()) return;
      job.files.emplace_back(id + suffix, series_file(xs, ys));
      // A line through one point draws nothing: a one-point series gets a marker too.
      const bool lone = xs.size() == 1 && style.rfind("with lines ", 0) == 0;
      panel.push_back({id + suffix, lone ? "with linespoints pt 7 ps 0.7 " + style.substr(11) : style, title});
      p.x_max = std::max(p.x_max, *std::max_element(xs.begin(), xs.end()));
    };
    series(c.train_iter, c.train_loss, "_train.dat", p.loss, "with lines lw 1 lc rgb '#80" + colour + "'",
           name + "train");
    series(c.val_iter, c.val_loss, "_val.dat", p.loss, "with linespoints lw 2 pt 7 ps 0.7 lc rgb '#" + colour + "'",
           name + "val");
    series(c.lr_iter, c.lr, "_lr.dat", p.lr, "with lines lw 2 lc rgb '#" + colour + "'", runs.size() > 1 ? c.label : "lr");
    std::vector<double> percent = c.exact_match;   // fractions (read_losses_csv), drawn as percent
    for (double& v : percent) v *= 100.0;
    series(c.match_iter, percent, "_match.dat", p.match, "with linespoints lw 2 pt 7 ps 0.7 lc rgb '#" + colour + "'",
           runs.size() > 1 ? c.label : "exact match");
  }
  return p;
}

}  // namespace

std::string left_out_note(const std::vector<LossCurves>& runs) {
  std::string note;
  for (const LossCurves& c : runs)
    if (c.infinite > 0)
      note += (note.empty() ? "" : ", ") + std::to_string(c.infinite) + " infinite value(s) of " + c.label;
  return note.empty() ? note : "(left out: " + note + ")";
}

LossCurves read_losses_csv(const std::string& path, const std::string& label) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot read the losses log");
  LossCurves c;
  c.label = !label.empty() ? label : fs::absolute(path).lexically_normal().parent_path().filename().string();
  std::string line;
  if (!std::getline(f, line)) throw std::runtime_error(path + ": empty, not a losses log (" + kSchemas + ")");
  if (!line.empty() && line.back() == '\r') line.pop_back();   // a CRLF file (edited on Windows)
  std::map<std::string, size_t> col;
  const std::vector<std::string> header = split_fields(line);
  for (size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
  const bool tiny_lm = line == "iter,train_loss,lr,kind";
  const bool seq2seq = col.count("iter") && col.count("train_loss") && col.count("val_loss") && col.count("lr");
  if (!tiny_lm && !seq2seq)
    throw std::runtime_error(path + ": not a losses log: header '" + line.substr(0, 80) + "' (" + kSchemas + ")");
  for (int64_t line_no = 2; std::getline(f, line); ++line_no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    const std::vector<std::string> fields = split_fields(line);
    if (fields.size() != header.size())
      throw std::runtime_error(where + ": " + std::to_string(fields.size()) + " fields, the header has " +
                               std::to_string(header.size()) + ": '" + line.substr(0, 80) + "'");
    add_row(c, col, fields, where);
  }
  if (f.bad()) throw std::runtime_error(path + ": cannot read the losses log");
  return c;
}

bool plot_loss_runs(const std::vector<LossCurves>& runs, const std::string& png_path, const std::string& title) {
  const std::string note = left_out_note(runs);
  if (std::all_of(runs.begin(), runs.end(), [](const LossCurves& c) { return c.empty(); }))
    throw std::invalid_argument("[plot_loss_runs] nothing to draw: no run has a loss row; got " +
                                std::to_string(runs.size()) + " run(s) for " + png_path +
                                (note.empty() ? "" : " " + note));
  GnuplotJob job;
  const Panels p = collect(runs, job);
  std::string heading = title;
  if (!note.empty()) heading += (title.empty() ? "" : " ") + note;
  const int panels = 1 + !p.lr.empty() + !p.match.empty();
  std::ostringstream s;
  s << png_terminal(1000, 420 + 240 * (panels - 1)) << "set output 'picture.png'\n"
    << "set multiplot layout " << panels << ",1 title " << gnuplot_quote(heading) << "\n"
    << "set grid\nset key outside right top\nset lmargin 12\nset rmargin 24\n"
    << "set xrange [0:" << std::max(1.0, p.x_max) << "]\nset xlabel 'iteration'\n"
    << "set ylabel 'loss'\n" << plot_command(p.loss);
  if (!p.lr.empty()) s << "set ylabel 'learning rate'\nset format y '%g'\n" << plot_command(p.lr);
  if (!p.match.empty()) s << "set ylabel 'exact match (%)'\nset yrange [0:100]\n" << plot_command(p.match);
  s << "unset multiplot\nset output\n";
  job.script = s.str();
  job.outputs.emplace_back("picture.png", png_path);
  return run_gnuplot(job);
}

bool plot_losses(const std::string& csv_path, const std::string& png_path) {
  LossCurves run = read_losses_csv(csv_path);
  const std::string title = run.label;
  return plot_loss_runs({std::move(run)}, png_path, title);
}

LossPlot::LossPlot(std::string csv_path, std::string png_path, std::function<void(const std::string&)> say)
    : csv_path_(std::move(csv_path)), png_path_(std::move(png_path)), say_(std::move(say)) {}

bool LossPlot::refresh(bool force) {
  using clock = std::chrono::steady_clock;
  const clock::time_point t0 = clock::now();
  const double elapsed = std::chrono::duration<double>(t0 - start_).count();
  if (drew_ && !force && draw_seconds_ > kDrawShare * elapsed) return false;   // over budget: next time
  drew_ = true;
  std::string problem;
  try {
    if (plot_losses(csv_path_, png_path_)) {
      draw_seconds_ += std::chrono::duration<double>(clock::now() - t0).count();   // pictures drawn only
      return true;
    }
    problem = "gnuplot is not on PATH (install gnuplot-nox)";
  } catch (const std::exception& e) {
    problem = e.what();
  }
  if (!said_ && say_) say_("no " + fs::path(png_path_).filename().string() + " written: " + problem);
  said_ = true;
  return false;
}

}  // namespace tg::examples
