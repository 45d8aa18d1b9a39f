#pragma once
// The vector pieces of tapegrad's bf16 GEMM (kernels/sbgemm.cpp drives them): the conversion of float32
// operands to bf16 pairs and a 12 x 32 micro-kernel of AVX512_BF16 dot products (VDPBF16PS). Compiled
// with target attributes (kernels/sbgemm_avx512.cpp); call them only when sbgemm_cpu_supported().
//
// A "pair" is one 32-bit word holding two bf16 values: element k in its low half, k + 1 in its high half
// (k even; a missing k + 1 past an odd K is +0). The conversion rounds to nearest even, quiets NaN and
// flushes float32 denormals to (signed) zero, as VCVTNE2PS2BF16 does; the dot product treats bf16
// denormals as zero anyway.
#include <cstdint>

namespace tg::kernels::sbgemm_detail {

constexpr int kMR = 12;   // rows of C per micro-tile (one zmm accumulator per row and panel)
constexpr int kNR = 16;   // columns of C per panel (one zmm of 16 float32 sums)

// How a micro-tile ends: C = alpha * sum (one rounding), then C = fma(beta, cin, C) when beta != 0 (a
// row bias: cin = the bias, ldcin = 0), stored in its first m rows and n columns (n <= 32: columns
// 16.. belong to the second panel).
struct TileOut {
  float alpha = 1, beta = 0;
  const float* cin = nullptr;
  int64_t ldcin = 0;
  float* c = nullptr;
  int64_t ldc = 0;
  int m = kMR, n = 2 * kNR;
  // The micro-tile is of C^T (the driver computed C^T = op(B)^T op(A)^T): element (r, j) goes to
  // c[j * ldc + r] and cin is read at cin[j * ldcin + r]. The same operations per element, in scalar form.
  bool transposed = false;
};

// The m x n micro-tile (m = out.m <= 12; n = out.n <= 16 with b1 null, else <= 32):
// sum(r, j) = 0; sum = dpbf16(sum, a(r, p), b(p, j)) for pairs p = 0..pairs-1 in order, then the epilogue.
// a(r, p) = a[r * rs + p * ps] (a pair of op(A)'s row r); b(p, j) = b0[p * 16 + j] for j < 16, else
// b1[p * 16 + j - 16] (panels of pairs, all 16 columns readable, zeros beyond the matrix).
void micro_kernel(int64_t pairs, const uint32_t* a, int64_t rs, int64_t ps, const uint32_t* b0, const uint32_t* b1,
                  const TileOut& out);

// y[p] = the pair (x[2p], x[2p + 1]) for p < (n + 1) / 2 (x[n] taken as 0 when n is odd): a contiguous
// row of floats as pairs.
void row_pairs(const float* x, int64_t n, uint32_t* y);
// y[i] = the pair (x0[i], x1[i]) for i < n (x1 null: zeros).
void interleave(const float* x0, const float* x1, int64_t n, uint32_t* y);
// The pairs (x0[j], x1[j]) of columns j < n (x1 null: zeros) into panels: column j at
// y[(j / 16) * panel_stride + j % 16], the last panel's columns n.. written as zeros.
void pairs_to_panels(const float* x0, const float* x1, int64_t n, int64_t panel_stride, uint32_t* y);

// panel[p * 16 + j] = rows[j * stride + p] for p < pairs, j < 16: 16 rows of pairs written down a panel's
// columns.
void transpose_pairs16(const uint32_t* rows, int64_t stride, int64_t pairs, uint32_t* panel);

}  // namespace tg::kernels::sbgemm_detail
