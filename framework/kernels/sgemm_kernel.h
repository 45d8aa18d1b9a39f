#pragma once
// The AVX2 + FMA pieces of tapegrad's float32 GEMM (kernels/sgemm.cpp drives them): a 6 x 16
// register-blocked micro-kernel (and its 1..5-row forms for edge slivers) and the packing of op(B) into 16-column panels. Compiled with
// __attribute__((target("avx2,fma"))) in kernels/sgemm_avx2.cpp, so the library's baseline flags stay
// portable; call them only when sgemm_active() (kernels/sgemm.h) is true.
#include <cstdint>

namespace tg::kernels::sgemm_detail {

constexpr int kMR = 6;    // rows of C per micro-tile (6 x 2 ymm accumulators)
constexpr int kNR = 16;   // columns of C per micro-tile (two 8-float ymm registers)

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

// One KC block of the m x 16 micro-tile (m = out.m <= 6 rows, only those computed; with out.n <= 8 only
// the first 8 columns are computed, by a 6 x 8 form of the kernel):
// acc(r, j) = fma(a(r, k), b(k, j), acc(r, j)) for k = 0..kc-1 in order, then per element
// C = alpha * acc + beta * cin (one multiply, then one fused multiply-add when beta != 0). The same
// instructions for every element wherever it sits in a tile and whatever m is.
//   a_rows: a(r, k) = a[r * lda + k]; else a(r, k) = a[k * lda + r].
// b: b(k, j) = b[k * ldb + j], a packed panel (ldb = 16) or op(B) in place (all 16 columns readable).
void micro_kernel(bool a_rows, int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                  const TileOut& out);

// Packs op(B)[0..K, j0..j0+n) (n <= 16) as a K x 16 panel, dst[k * 16 + j], columns >= n zero.
// op(B)(k, j) = B[k * ldb + j] or, trans_b, B[j * ldb + k].
void pack_b_panel(bool trans_b, const float* B, int64_t ldb, int64_t K, int64_t j0, int n, float* dst);

}  // namespace tg::kernels::sgemm_detail
