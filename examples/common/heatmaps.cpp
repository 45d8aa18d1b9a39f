#include "examples/common/heatmaps.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "examples/common/gnuplot.h"

namespace tg::examples {
namespace {

// The panel's unmasked cells, one "key query weight" line each (column x, row y); masked (NaN) cells are
// left out so the grey background shows through. Cells are drawn as boxes, not `matrix with image`:
// gnuplot's image needs at least 2 x 2 values and draws nothing (only a warning) for one row or column.
std::string cells_file(const std::vector<double>& panel, size_t cols) {
  std::string out;
  char line[80];
  for (size_t i = 0; i < panel.size(); ++i) {
    if (std::isnan(panel[i])) continue;
    std::snprintf(line, sizeof line, "%zu %zu %.9g\n", i % cols, i / cols, panel[i]);
    out += line;
  }
  return out;
}

// A tic label for gnuplot: tic labels are printf formats there, so a '%' is written "%%".
std::string tic_label(const std::string& label) {
  std::string out;
  for (char c : label) out += c == '%' ? std::string("%%") : std::string(1, c);
  return gnuplot_quote(out);
}

std::string tics(const std::vector<std::string>& labels) {
  std::string out = "(";
  for (size_t i = 0; i < labels.size(); ++i) out += (i ? ", " : "") + tic_label(labels[i]) + " " + std::to_string(i);
  return out + ")";
}

// The commands that draw every panel into the current multiplot (run once per terminal).
std::string panels_script(const HeatmapGrid& g, int grid_rows, int grid_cols) {
  const size_t rows = g.row_labels.size(), cols = g.col_labels.size();
  const int font = std::clamp(static_cast<int>(420 / std::max(rows, cols)), 6, 11);
  std::ostringstream s;
  s << "set multiplot layout " << grid_rows << "," << grid_cols << " title " << gnuplot_quote(g.title) << "\n"
    << "set object 1 rectangle from graph 0,0 to graph 1,1 behind fillcolor rgb '#b0b0b0' fillstyle solid noborder\n"
    << "set palette defined (0 'white', 0.5 '#4a90c8', 1 '#08306b')\nset cbrange [0:1]\n"
    << "set xrange [-0.5:" << cols - 0.5 << "]\nset yrange [" << rows - 0.5 << ":-0.5]\n"
    << "set xtics " << tics(g.col_labels) << " scale 0 font '," << font << "'\n"
    << "set ytics " << tics(g.row_labels) << " scale 0 font '," << font << "'\n"
    << "set size ratio " << static_cast<double>(rows) / static_cast<double>(cols) << "\n"
    << "set xlabel 'key'\nset ylabel 'query'\n";
  for (size_t h = 0; h < g.panels.size(); ++h)
    s << "set title 'head " << h << "'\nplot 'head" << h << ".dat' using 1:2:(0.5):(0.5):3 with boxxyerror "
      << "fillstyle solid noborder fillcolor palette notitle\n";
  s << "unset multiplot\n";
  return s.str();
}

}  // namespace

void HeatmapGrid::validate() const {
  if (panels.empty()) throw std::invalid_argument("[HeatmapGrid] needs at least one panel; got panels=0");
  if (row_labels.empty() || col_labels.empty())
    throw std::invalid_argument("[HeatmapGrid] needs row and column labels; got rows=" +
                                std::to_string(row_labels.size()) + ", cols=" + std::to_string(col_labels.size()));
  for (size_t h = 0; h < panels.size(); ++h)
    if (panels[h].size() != row_labels.size() * col_labels.size())
      throw std::invalid_argument("[HeatmapGrid] panel " + std::to_string(h) + " must hold rows x cols = " +
                                  std::to_string(row_labels.size()) + " x " + std::to_string(col_labels.size()) +
                                  " values; got " + std::to_string(panels[h].size()));
}

std::string visible_char(char c) {
  switch (c) {
    case ' ': return "\u2423";
    case '\n': return "\\n";
    case '\t': return "\\t";
    case '\r': return "\\r";
    default: break;
  }
  const auto u = static_cast<unsigned char>(c);
  if (u < 0x20 || u >= 0x7f) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02X", u);
    return buf;
  }
  return std::string(1, c);
}

std::vector<std::string> visible_labels(const std::string& text) {
  std::vector<std::string> out;
  out.reserve(text.size());
  for (char c : text) out.push_back(visible_char(c));
  return out;
}

bool write_heatmaps(const HeatmapGrid& g, const std::string& png_path, const std::string& svg_path) {
  g.validate();
  const int heads = static_cast<int>(g.panels.size());
  const int grid_cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(heads))));
  const int grid_rows = (heads + grid_cols - 1) / grid_cols;
  const int cell = std::clamp(static_cast<int>(700 / std::max(g.row_labels.size(), g.col_labels.size())), 8, 24);
  const int panel = 150 + cell * static_cast<int>(std::max(g.row_labels.size(), g.col_labels.size()));
  const int width = grid_cols * panel, height = grid_rows * panel + 40;
  GnuplotJob job;
  for (int h = 0; h < heads; ++h)
    job.files.emplace_back("head" + std::to_string(h) + ".dat", cells_file(g.panels[h], g.col_labels.size()));
  job.files.emplace_back("panels.gp", panels_script(g, grid_rows, grid_cols));
  job.script = png_terminal(width, height) + "set output 'picture.png'\nload 'panels.gp'\nset output\n";
  job.outputs.emplace_back("picture.png", png_path);
  if (!svg_path.empty()) {
    job.script += "set terminal svg size " + std::to_string(width) + "," + std::to_string(height) +
                  " noenhanced font 'Sans,10'\nset output 'picture.svg'\nload 'panels.gp'\nset output\n";
    job.outputs.emplace_back("picture.svg", svg_path);
  }
  return run_gnuplot(job);
}

void write_heatmap_csv(const HeatmapGrid& g, int64_t layer, const std::string& csv_path) {
  g.validate();
  const std::string tmp = csv_path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) throw std::runtime_error(csv_path + ": cannot write the attention weights: " + std::strerror(errno));
  const size_t cols = g.col_labels.size();
  bool ok = std::fputs("layer,head,query,key,weight\n", f) >= 0;
  for (size_t h = 0; h < g.panels.size() && ok; ++h)
    for (size_t i = 0; i < g.panels[h].size() && ok; ++i)
      if (!std::isnan(g.panels[h][i]))
        ok = std::fprintf(f, "%lld,%zu,%zu,%zu,%.9g\n", static_cast<long long>(layer), h, i / cols, i % cols,
                          g.panels[h][i]) > 0;
  const int error = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), csv_path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error(csv_path + ": cannot write the attention weights: " + std::strerror(ok ? errno : error));
  }
}

}  // namespace tg::examples
