#include "support/attention_csv_support.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <tuple>

#include "support/process_support.h"

namespace tg::test {
namespace {

using Cells = std::map<std::tuple<int64_t, int64_t, int64_t>, std::string>;

// {head, query, key} -> the weight as printed, after REQUIRing the header and the layer of every row.
Cells read_cells(const std::string& csv, int64_t layer) {
  std::istringstream in(read_file(csv));
  std::string line;
  std::getline(in, line);
  REQUIRE(line == "layer,head,query,key,weight");
  Cells cells;
  while (std::getline(in, line)) {
    long long L, h, q, k;
    char weight[64];
    REQUIRE(std::sscanf(line.c_str(), "%lld,%lld,%lld,%lld,%63s", &L, &h, &q, &k, weight) == 5);
    REQUIRE(L == layer);
    cells[{h, q, k}] = weight;
  }
  return cells;
}

}  // namespace

void require_attention_csv_equals(const std::string& csv, int64_t layer, const Tensor& w, bool causal) {
  REQUIRE(w.dim() >= 3);
  const int64_t H = w.size(w.dim() - 3), R = w.size(w.dim() - 2), C = w.size(w.dim() - 1);
  REQUIRE(w.numel() == H * R * C);
  const Cells cells = read_cells(csv, layer);
  const float* v = w.data<float>();   // weights MultiheadAttention returned: a fresh contiguous tensor
  int64_t expected_cells = 0;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t q = 0; q < R; ++q) {
      double row = 0;
      for (int64_t k = 0; k < C; ++k) {
        const float x = v[(h * R + q) * C + k];
        row += x;
        INFO(csv << " head " << h << " query " << q << " key " << k);
        if (causal && k > q) {
          REQUIRE(x == 0.0f);
          REQUIRE(cells.count({h, q, k}) == 0);
          continue;
        }
        char text[64];
        std::snprintf(text, sizeof text, "%.9g", static_cast<double>(x));
        REQUIRE(cells.at({h, q, k}) == text);
        REQUIRE(static_cast<float>(std::strtod(text, nullptr)) == x);
        ++expected_cells;
      }
      REQUIRE(std::abs(row - 1.0) < 1e-5);
    }
  REQUIRE(static_cast<int64_t>(cells.size()) == expected_cells);
}

}  // namespace tg::test
