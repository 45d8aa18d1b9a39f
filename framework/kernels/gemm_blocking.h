#pragma once
// Rules the two GEMM drivers share (kernels/sgemm.cpp, float32; kernels/sbgemm.cpp, bf16): how a tile's rows
// split into slivers, which k range and which columns a sliver needs under an attention tile's causal
// limits (kernels/sgemm.h, CausalLimits), and C for an empty sum.
#include <algorithm>
#include <cstdint>

#include "framework/kernels/sgemm.h"

namespace tg::kernels::gemm_blocking {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The slivers of the tile rows [m0, m1): mr rows each, except that the last full sliver and a remainder of
// r rows share their mr + r rows evenly (6-row kernel: 4 + 3, 4 + 4, 5 + 4, 5 + 5): a kernel of few rows is
// bound by the latency of its accumulators' chains. One integer division per tile (mr is known at run time
// only in the float32 driver, and four divisions per sliver were 10% of gpt-cpu's attention driver samples).
struct SliverSplit {
  int64_t m0, m1, mr, rem, count;
  bool shared;
  SliverSplit(int64_t m0_, int64_t m1_, int64_t mr_) : m0(m0_), m1(m1_), mr(mr_) {
    const int64_t rows = m1 - m0, full = rows / mr;
    rem = rows - full * mr;
    count = full + (rem != 0);
    shared = rows > mr && rem != 0;
  }
  int64_t start(int64_t is) const {
    return shared && is == count - 1 ? m0 + (is - 1) * mr + (mr + rem + 1) / 2 : m0 + is * mr;
  }
  int64_t end(int64_t is) const { return is + 1 < count ? start(is + 1) : m1; }
};

// The k range [begin, end) that the sliver of rows i.., m of them, sums over under the causal limits: the
// terms skipped are those whose op(A) element is zero for every row of the sliver. An empty range (begin ==
// end == 0) still writes alpha * 0 + beta * C.
struct KRange {
  int64_t begin, end;
};
inline KRange causal_k_range(const CausalLimits& c, int64_t i, int64_t m, int64_t K) {
  const int64_t q = c.first_query;
  switch (c.kind) {
    case CausalLimits::k_upto_row: return {0, std::clamp<int64_t>(q + i + m, 0, K)};
    case CausalLimits::k_from_row: {
      const int64_t b = std::clamp<int64_t>(i - q, 0, K);
      return b < K ? KRange{b, K} : KRange{0, 0};
    }
    default: return {0, K};
  }
}

// Whether the sliver of rows i.., m of them, needs the 16-column panel at column j (cols_upto_row: only up
// to its last query).
inline bool causal_wants_panel(const CausalLimits& c, int64_t i, int64_t m, int64_t j) {
  return c.kind != CausalLimits::cols_upto_row || j <= c.first_query + i + m - 1;
}

// K = 0: C = row_bias, or beta * C (0 when beta = 0, whatever C held).
inline void fill_no_k(int64_t M, int64_t N, float beta, float* C, int64_t ldc, const float* bias) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float& c = C[i * ldc + j];
      c = bias ? bias[j] : beta == 0.0f ? 0.0f : beta * c;
    }
}

}  // namespace tg::kernels::gemm_blocking
