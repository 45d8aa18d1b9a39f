#pragma once
// The vector pieces of tapegrad's float32 GEMM (kernels/sgemm.cpp drives them): a 6 x 16 AVX2 + FMA
// register-blocked micro-kernel (and its 1..5-row forms for edge slivers), a 12 x 16 AVX-512 one (and its
// 1..11-row forms), and the packing of op(B) into 16-column panels (AVX2). Compiled with target
// attributes (kernels/sgemm_avx2.cpp, kernels/sgemm_avx512.cpp), so the library's baseline flags stay
// portable; call them only when sgemm_active() (kernels/sgemm.h) is true.
#include <cstdint>

namespace tg::kernels::sgemm_detail {

constexpr int kMR = 6;       // rows of C per AVX2 micro-tile (6 x 2 ymm accumulators)
constexpr int kMRMax = 12;   // rows of C per AVX-512 micro-tile (12 zmm accumulators)
constexpr int kNR = 16;      // columns of C per micro-tile (two 8-float ymm registers, or one zmm)

// How the micro-kernel ends one KC block of a micro-tile.
struct TileOut {
  bool first = true;          // accumulators start at 0 (else loaded from `acc`)
  bool last = true;           // apply the epilogue and store to C (else store the partial sums to `acc`)
  float* acc = nullptr;       // kMR x kNR partial sums between KC blocks (row-major), when !first or !last
  float alpha = 1, beta = 0;  // C = alpha * sum + beta * cin (cin not read when beta == 0)
  const float* cin = nullptr; // C itself, or the row bias (then ldcin = 0)
  int64_t ldcin = 0;
  float* c = nullptr;         // the micro-tile's top-left element of C
  int64_t ldc = 0;
  int m = kMR, n = kNR;       // rows and columns of it that exist (edges store only these)
  // The micro-tile is of C^T (the driver computed C^T = op(B)^T op(A)^T): element (r, j) goes to
  // c[j * ldc + r], and cin is read at cin[j * ldcin + r] (C itself: ldcin = ldc; a bias along r: 0).
  // The same operations per element, in scalar form.
  bool transposed = false;
};

// The epilogue of a micro-tile of C^T (out.transposed), element by element from its m x out.n sums (row
// stride ld): alpha * sum (one rounding), then one fused multiply-add with beta * cin when beta != 0, as
// the kernels do in lanes; stored transposed. Always inlined, so it takes its caller's instruction set.
// Out: this TileOut, or the bf16 GEMM's (kernels/sbgemm_kernel.h), which have the same fields.
template <class Out>
[[gnu::always_inline]] inline void store_transposed(const float* sums, int64_t ld, int m, const Out& o) {
  for (int j = 0; j < o.n; ++j)
    for (int r = 0; r < m; ++r) {
      float v = o.alpha * sums[r * ld + j];
      if (o.beta != 0.0f) v = __builtin_fmaf(o.beta, o.cin[j * o.ldcin + r], v);
      o.c[j * o.ldc + r] = v;
    }
}

// One KC block of the m x 16 micro-tile (m = out.m <= 6 rows, only those computed; with out.n <= 8 only
// the first 8 columns are computed, by a 6 x 8 form of the kernel):
// acc(r, j) = fma(a(r, k), b(k, j), acc(r, j)) for k = 0..kc-1 in order, then per element
// C = alpha * acc + beta * cin (one multiply, then one fused multiply-add when beta != 0). The same
// instructions for every element wherever it sits in a tile and whatever m is.
//   a_rows: a(r, k) = a[r * lda + k]; else a(r, k) = a[k * lda + r].
// b: b(k, j) = b[k * ldb + j], a packed panel (ldb = 16) or op(B) in place (all 16 columns readable).
void micro_kernel(bool a_rows, int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                  const TileOut& out);

// The same contract for m = out.m <= 12 rows, with one 16-lane zmm accumulator per row (B read in the
// first out.n lanes only); `acc` holds kMRMax x kNR partial sums. kernels/sgemm_avx512.cpp, target avx512f:
// call it only on CPUs with AVX-512F. It gives micro_kernel's bits.
void micro_kernel_avx512(bool a_rows, int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                         const TileOut& out);
// Two such micro-tiles side by side in one pass over A: out0 of the panel at b0 (16 columns, all
// computed) and out1 of the panel at b1 (out1.n columns), both with row stride ldb and out0.m rows;
// out0 and out1 differ only in acc, c, cin and n. The same bits as two micro_kernel_avx512 calls.
void micro_kernel_avx512_pair(bool a_rows, int64_t kc, const float* a, int64_t lda, const float* b0, const float* b1,
                              int64_t ldb, const TileOut& out0, const TileOut& out1);

// Packs op(B)[0..K, j0..j0+n) (n <= 16) as a K x 16 panel, dst[k * 16 + j], columns >= n zero.
// op(B)(k, j) = B[k * ldb + j] or, trans_b, B[j * ldb + k].
void pack_b_panel(bool trans_b, const float* B, int64_t ldb, int64_t K, int64_t j0, int n, float* dst);
// Packs `panels` full 16-column panels of an untransposed B (columns 0.., rows k at B + k * ldb) as
// pack_b_panel does one by one (panel q at dst + q * K * 16), reading B row by row.
void pack_b_rows(const float* B, int64_t ldb, int64_t K, int64_t panels, float* dst);

}  // namespace tg::kernels::sgemm_detail
