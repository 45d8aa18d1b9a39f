#pragma once
// Attention maps as pictures (gnuplot, examples/common/gnuplot.h): a grid of heatmaps, one per head,
// queries down the side, keys along the top, both labelled with their characters; masked cells (NaN)
// grey. The numbers go to a CSV beside the picture. Generic over labels: self-attention (the same text
// on both axes) or cross-attention (output characters against source characters).
#include <cstdint>
#include <string>
#include <vector>

namespace tg::examples {

struct HeatmapGrid {
  std::string title;                          // e.g. "layer 0: self-attention"
  std::vector<std::string> row_labels;        // one per query (row), drawn top to bottom
  std::vector<std::string> col_labels;        // one per key (column), left to right
  std::vector<std::vector<double>> panels;    // one per head: rows x cols, row-major; NaN = masked
  // Throws std::invalid_argument "[HeatmapGrid] ..." when there is no panel, a label list is empty or a
  // panel's size is not rows x cols.
  void validate() const;
};

// A character as an axis label: ' ' -> "␣", '\n' -> "\n" (backslash, n), '\t' -> "\t", '\r' -> "\r",
// other control and non-ASCII bytes -> "\xNN"; anything else itself.
std::string visible_char(char c);
// visible_char of each byte of text.
std::vector<std::string> visible_labels(const std::string& text);

// Draws the grid (values 0..1 white to dark blue, masked cells grey, a colour bar) into png_path and,
// when svg_path is not empty, the same picture as SVG. Both must be in one folder. Returns false,
// writing nothing, when gnuplot is not on PATH; throws validate()'s and run_gnuplot's errors.
bool write_heatmaps(const HeatmapGrid& grid, const std::string& png_path, const std::string& svg_path = "");

// The numbers beside the picture: header "layer,head,query,key,weight", then one row per unmasked cell
// in head, query, key order, weights printed "%.9g" (exact for float32). Masked (NaN) cells are absent.
// Written atomically; throws std::runtime_error naming the file when it cannot be written.
void write_heatmap_csv(const HeatmapGrid& grid, int64_t layer, const std::string& csv_path);

}  // namespace tg::examples
