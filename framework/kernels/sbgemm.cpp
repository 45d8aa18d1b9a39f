// Driver of tapegrad's bf16 GEMM (kernels/sbgemm.h): conversion of the operands to bf16 pairs, tiles of
// C. The vector code is in kernels/sbgemm_avx512.cpp.
#include "framework/kernels/sbgemm.h"

#include <algorithm>
#include <vector>

#include "framework/kernels/gemm_blocking.h"
#include "framework/kernels/parallel.h"
#include "framework/kernels/scratch.h"
#include "framework/kernels/sbgemm_kernel.h"

namespace tg::kernels {
namespace {

using sbgemm_detail::kMR;
using sbgemm_detail::kNR;

constexpr int64_t kMc = 96;    // rows of a task tile (8 slivers of 12)
constexpr int64_t kNc = 128;   // columns of a task tile (4 pairs of panels)
// Below this many multiply-adds a product runs on the calling thread: tasks would cost more.
constexpr int64_t kSplitWork = int64_t{1} << 20;
// A parallel product with fewer tiles than this gets narrower ones (64, then 32 columns).
constexpr int64_t kMinTasks = 4;
// Sums at least this long may compute a wide product as C^T (see run).
constexpr int64_t kSwapMinK = 256;
// A parallel product of at least this many tile rows converts op(A) per tile (see run). Zen 5, 2 threads, p10
// of alternated calls: the tiny LM's products 768 x N x K 4-20% faster than with op(A) converted up front by
// its own tasks, its weight gradients 10-30% (128 x 128 from 768 tokens: 86 -> 62 us).
constexpr int64_t kTileRowsPerTile = 2;
// Rows of op(A) (or pairs of its rows, transposed) per conversion task.
constexpr int64_t kPackRows = 32;
// Words between op(B)'s panels beyond their pairs * 16: the panels of a long sum are a multiple of 4 KiB
// apart without it, so that converting a pair of rows into all panels at once stores to a single L1 set
// (Zen 5, 768 x 384 from 768 pairs: 76 -> 19 us).
constexpr int64_t kPanelPad = 16;

// Words from one panel of op(B) to the next.
int64_t panel_stride(int64_t pairs) { return pairs * kNR + kPanelPad; }

using gemm_blocking::ceil_div;

// One product, its operands converted: op(A)'s pair (r, p) at a[r * rs + p * ps], op(B)'s panel q at
// b + q * panel_stride(pairs).
struct Problem {
  int64_t M, N, pairs;
  const uint32_t* a;
  int64_t rs, ps;
  const uint32_t* b;
  float alpha, beta;
  const float* bias;
  float* C;
  int64_t ldc;
  int64_t nc = kNc;   // columns of a task tile
  int64_t K = 0;
  // Set when each tile converts its own rows of op(A) (tiles then span all of C's columns): float32 op(A).
  const float* a_src = nullptr;
  int64_t lda = 0;
  bool trans_a = false;
  bool c_transposed = false;   // the product computed is C^T: element (i, j) stored at C[j * ldc + i]
  SgemmEpilogue epilogue = {};
  CausalLimits causal = {};
};

// The pairs [begin, end) that the sliver of rows i.., m of them, sums over under the causal limits: those
// holding its k range (kernels/gemm_blocking.h).
struct PairRange {
  int64_t begin, end;
};
PairRange sliver_pairs(const Problem& p, int64_t i, int64_t m) {
  const gemm_blocking::KRange r = gemm_blocking::causal_k_range(p.causal, i, m, p.K);
  return {r.begin / 2, (r.end + 1) / 2};
}

// The pairs of op(A)'s rows [m0, m1) for one tile: from the product's converted op(A), or converted now into
// this thread's buffer (p.a_src). Returns the first row's pairs and sets rs, ps (see Problem).
const uint32_t* tile_a(const Problem& p, int64_t m0, int64_t m1, int64_t& rs, int64_t& ps) {
  rs = p.rs;
  ps = p.ps;
  if (!p.a_src) return p.a + m0 * p.rs;
  thread_local std::vector<uint32_t> buf;
  const int64_t rows = m1 - m0;
  buf.resize(static_cast<size_t>(rows * p.pairs + 16));
  if (!p.trans_a) {
    for (int64_t r = 0; r < rows; ++r)
      sbgemm_detail::row_pairs(p.a_src + (m0 + r) * p.lda, p.K, buf.data() + r * p.pairs);
    rs = p.pairs;
    ps = 1;
    return buf.data();
  }
  for (int64_t q = 0; q < p.pairs; ++q) {
    const float* x0 = p.a_src + 2 * q * p.lda + m0;
    sbgemm_detail::interleave(x0, 2 * q + 1 < p.K ? x0 + p.lda : nullptr, rows, buf.data() + q * rows);
  }
  rs = 1;
  ps = rows;
  return buf.data();
}

// Conversion of op(A), task t of ceil(M or pairs / kPackRows): kPackRows rows of an untransposed A as rows
// of pairs (pairs words apart), or kPackRows pairs of rows of a transposed A (stored K x M) as M words each.
void convert_a(bool trans_a, const float* A, int64_t lda, int64_t M, int64_t K, int64_t pairs, int64_t t,
               uint32_t* a) {
  if (!trans_a) {
    for (int64_t r = t * kPackRows; r < std::min(M, (t + 1) * kPackRows); ++r)
      sbgemm_detail::row_pairs(A + r * lda, K, a + r * pairs);
    return;
  }
  for (int64_t p = t * kPackRows; p < std::min(pairs, (t + 1) * kPackRows); ++p)
    sbgemm_detail::interleave(A + 2 * p * lda, 2 * p + 1 < K ? A + (2 * p + 1) * lda : nullptr, M, a + p * M);
}

// Conversion of op(B) into its panels (panel q at b + q * panel_stride(pairs), zeros beyond N), task t:
// pairs t * kPackRows.. of every panel from an untransposed B (two rows read whole at a time), or panel t
// of a transposed one (16 rows of B, its columns, converted as pairs, then written down the panel).
int64_t b_tasks(bool trans_b, int64_t N, int64_t pairs) {
  return trans_b ? ceil_div(N, kNR) : ceil_div(pairs, kPackRows);
}
void convert_b(bool trans_b, const float* B, int64_t ldb, int64_t N, int64_t K, int64_t pairs, int64_t t,
               uint32_t* b) {
  if (!trans_b) {
    for (int64_t q = t * kPackRows; q < std::min(pairs, (t + 1) * kPackRows); ++q) {
      const float* x0 = B + 2 * q * ldb;
      sbgemm_detail::pairs_to_panels(x0, 2 * q + 1 < K ? x0 + ldb : nullptr, N, panel_stride(pairs), b + q * kNR);
    }
    return;
  }
  const int64_t j0 = t * kNR, n = std::min<int64_t>(kNR, N - j0), stride = pairs + 16;
  thread_local std::vector<uint32_t> rows;
  rows.resize(static_cast<size_t>(kNR * stride));
  for (int64_t jj = 0; jj < n; ++jj) sbgemm_detail::row_pairs(B + (j0 + jj) * ldb, K, rows.data() + jj * stride);
  std::fill(rows.begin() + n * stride, rows.end(), 0u);   // the panel's columns beyond N
  sbgemm_detail::transpose_pairs16(rows.data(), stride, pairs, b + t * panel_stride(pairs));
}

// The C tile rows [m0, m1) x columns [n0, n1): pairs of panels, then slivers of 12 rows (a remainder of r
// rows shares the last full sliver's 12 + r rows evenly: kernels of few rows are bound by the dot product's
// latency). The operations per element do not depend on the sliver, hence neither do the bits.
void run_tile(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const gemm_blocking::SliverSplit split(m0, m1, kMR);
  sbgemm_detail::TileOut o;
  o.alpha = p.alpha;
  o.beta = p.bias ? 1.0f : p.beta;
  o.ldcin = p.bias ? 0 : p.ldc;
  o.ldc = p.ldc;
  o.transposed = p.c_transposed;
  int64_t rs = 0, ps = 0;
  const uint32_t* a = tile_a(p, m0, m1, rs, ps);
  for (int64_t j = n0; j < n1; j += 2 * kNR) {
    const uint32_t* b0 = p.b + (j / kNR) * panel_stride(p.pairs);
    const uint32_t* b1 = j + kNR < n1 ? b0 + panel_stride(p.pairs) : nullptr;
    for (int64_t is = 0; is < split.count; ++is) {
      const int64_t i = split.start(is), m = split.end(is) - i;
      // Causal limits: the panels beyond the sliver's last query are not computed (left unwritten), and
      // its sums skip the pairs whose op(A) elements are all zero.
      if (!gemm_blocking::causal_wants_panel(p.causal, i, m, j)) continue;
      const bool both = b1 && gemm_blocking::causal_wants_panel(p.causal, i, m, j + kNR);
      const PairRange r = sliver_pairs(p, i, m);
      o.m = static_cast<int>(m);
      o.n = static_cast<int>(std::min<int64_t>(both ? 2 * kNR : kNR, n1 - j));
      o.c = p.c_transposed ? p.C + j * p.ldc + i : p.C + i * p.ldc + j;
      o.cin = p.bias ? p.bias + j : o.c;
      sbgemm_detail::micro_kernel(r.end - r.begin, a + (i - m0) * rs + r.begin * ps, rs, ps, b0 + r.begin * kNR,
                                  both ? b1 + r.begin * kNR : nullptr, o);
    }
  }
  // The tile is final: its epilogue, in C's rows and columns (C^T's tile rows are C's columns).
  if (p.epilogue.apply) {
    if (p.c_transposed) p.epilogue.apply(p.epilogue.ctx, p.C, p.ldc, n0, n1, m0, m1);
    else p.epilogue.apply(p.epilogue.ctx, p.C, p.ldc, m0, m1, n0, n1);
  }
}

// Tile rows: ceil(M / 96), the slivers spread evenly over them.
int64_t tile_rows(const Problem& p) { return ceil_div(p.M, kMc); }
int64_t tile_count(const Problem& p) { return tile_rows(p) * ceil_div(p.N, p.nc); }

void run_tiles(const Problem& p, int64_t t0, int64_t t1) {
  const int64_t mt = tile_rows(p), nt = ceil_div(p.N, p.nc), slivers = ceil_div(p.M, kMR);
  const auto row_of = [&](int64_t tm) { return std::min(p.M, slivers * tm / mt * kMR); };
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t tm = t / nt, n0 = t % nt * p.nc;
    run_tile(p, row_of(tm), row_of(tm + 1), n0, std::min(p.N, n0 + p.nc));
  }
}

void run(bool parallel, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias,
         SgemmEpilogue epilogue = {}, bool c_transposed = false, CausalLimits causal = {}) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    gemm_blocking::fill_no_k(M, N, beta, C, ldc, bias);
    if (epilogue.apply) epilogue.apply(epilogue.ctx, C, ldc, 0, M, 0, N);
    return;
  }
  const bool split = parallel && M * N * K >= kSplitWork;
  // A parallel product at least twice as wide as high computes C^T = op(B)^T op(A)^T (the weight gradient of
  // a layer that narrows, 128 x 512 from 768 tokens: 4 tile rows instead of 2), when its sum is long enough
  // to pay for micro-tiles stored element by element. Each element is the same dot products (their exact
  // products commute): the same bits.
  if (split && !c_transposed && !bias && causal.kind == CausalLimits::none && N >= 2 * M && K >= kSwapMinK)
    return run(parallel, !trans_b, !trans_a, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc, nullptr, epilogue, true);
  // A product of at least kTileRowsPerTile tile rows converts each tile's rows of op(A) in its task (tiles
  // then span all columns, so each row is converted once), right before they are used.
  const bool per_tile = split && ceil_div(M, kMc) >= kTileRowsPerTile;
  const int64_t pairs = (K + 1) / 2, panels = ceil_div(N, kNR);
  Scratch<uint32_t> abuf(static_cast<size_t>(per_tile ? 0 : M * pairs));
  Scratch<uint32_t> bbuf(static_cast<size_t>(panels * panel_stride(pairs)));
  Problem p{M, N, pairs, abuf.data(), trans_a ? 1 : pairs, trans_a ? M : 1, bbuf.data(), alpha, beta, bias, C, ldc};
  p.c_transposed = c_transposed;
  p.epilogue = epilogue;
  p.causal = causal;
  p.K = K;
  if (per_tile) {
    p.a_src = A;
    p.lda = lda;
    p.trans_a = trans_a;
    p.nc = ceil_div(N, 2 * kNR) * 2 * kNR;
  }
  const int64_t a_tasks = per_tile ? 0 : ceil_div(trans_a ? pairs : M, kPackRows);
  const auto convert = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      if (t < a_tasks) convert_a(trans_a, A, lda, M, K, pairs, t, abuf.data());
      else convert_b(trans_b, B, ldb, N, K, pairs, t - a_tasks, bbuf.data());
    }
  };
  const auto tiles = [&](int64_t t0, int64_t t1) { run_tiles(p, t0, t1); };
  if (!split) {
    convert(0, a_tasks + b_tasks(trans_b, N, pairs));
    return tiles(0, tile_count(p));
  }
  while (!per_tile && p.nc > 2 * kNR && tile_count(p) < kMinTasks) p.nc /= 2;
  parallel_for(a_tasks + b_tasks(trans_b, N, pairs), 1, convert);
  parallel_for(tile_count(p), 1, tiles);
}

}  // namespace

bool sbgemm_cpu_supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512bf16");
}

void sbgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* row_bias,
            SgemmEpilogue epilogue) {
  run(true, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, row_bias, epilogue);
}

void sbgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                   const float* row_bias, CausalLimits causal) {
  run(false, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, row_bias, {}, false, causal);
}

}  // namespace tg::kernels
