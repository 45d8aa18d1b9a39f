#pragma once
// tapegrad's own float32 GEMM for x86-64 CPUs with AVX2 + FMA (AVX-512 ones included), row-major:
//   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C   (or + row_bias[N] on every row instead of beta * C),
// op(X) = X or X^T, any lda/ldb/ldc. kernels::gemm<float>, gemm_serial<float> and gemm_batched<float>
// run through it when sgemm_active(); otherwise (CPUs without AVX2/FMA; TAPEGRAD_GEMM=openblas) they
// call OpenBLAS.
//
// Structure (Goto/BLIS): op(B) is packed ONCE per product into K x 16 column panels (in parallel over
// panels), shared by every task; tasks are tiles of C (at most 96 rows, the slivers spread evenly
// over the tile rows; 128 columns) that walk the KC blocks, then the 16-column panels, then slivers of
// A's rows: 6 rows through a 6 x 16 AVX2/FMA micro-kernel with 12 ymm accumulators, or on AVX-512 CPUs
// 12 rows through a 12 x 16 micro-kernel with 12 zmm accumulators (a remainder of r rows shares the
// last full sliver's rows evenly: short kernels are FMA-latency bound). Edge micro-tiles use the same
// kernels with masked stores.
// Measured choices (bench_sgemm --shapes): A is not packed into slivers, the micro-kernel broadcasts
// its elements straight from A's rows or columns; only when A's leading dimension would cause cache-set
// conflicts (sgemm_copies_a) is each tile's A block copied contiguously. A product one tile high (M <= 96)
// reads an untransposed B with a short row stride in place (packing it would cost a large part of
// such a small product, e.g. the attention's per-head products), and so does a parallel product of at
// most 768 rows whose B is small (<= 512 KB: the tiny LM's and gpt-cpu's backward products). Any other
// product one tile high (a linear layer on a few tokens, x W^T) packs op(B) in its tiles' tasks, one KC
// block of the tile's panels at a time, right before its slivers use it (each panel once, through L2). A
// product at least twice as wide as high with K >= 256 is computed as C^T = op(B)^T op(A)^T, packing the
// smaller operand: its micro-tiles are stored transposed (the same fma sequence per element: the same bits).
//
// Determinism invariant: every element C[i, j] is computed by the same sequence of operations whatever
// the thread count and whatever the M/N tiling: acc = 0; acc = fma(op(A)[i, k], op(B)[k, j], acc) for
// k = 0..K-1 in order, in one accumulator (between KC blocks it is stored to and reloaded from a
// scratch tile, exactly); then C = alpha * acc (one rounding), then C = fma(beta, C_old, C) when
// beta != 0 (row bias: beta = 1 and C_old = bias[j]). The KC blocking depends on K alone. So a product
// computed whole, row by row, as column blocks, or with 1 or 64 threads gives the same bits
// (tests/framework/sgemm_test.cpp). beta = 0 never reads C, so NaN in an uninitialised C cannot survive.
#include <cstdint>
#include <string>

namespace tg::kernels {

// True when this CPU can run the kernel: AVX2 and FMA (with the OS saving ymm state).
bool sgemm_cpu_supported();

// Which micro-kernel runs: "AVX-512" (12 x 16, one zmm per row) on CPUs with AVX-512F, else "AVX2"
// (6 x 16). Both perform the same operations per element: the same bits on either kind of CPU.
std::string sgemm_isa();

// The one place that decides which float32 GEMM runs: sgemm_cpu_supported() and the environment
// variable TAPEGRAD_GEMM is unset, empty or "auto". TAPEGRAD_GEMM=openblas forces OpenBLAS. Read once.
// Throws std::invalid_argument for any other value of TAPEGRAD_GEMM.
bool sgemm_active();

// True when op(A)'s rows (or, trans_a, columns) `lda` floats apart make each tile copy its A block first:
// rows >= 1024 floats apart and a multiple of 256 (they would fall into a few cache sets); a transposed A
// >= 1024 floats apart, or a multiple of 512 floats apart. A caller that lays out an untransposed A itself
// can choose a stride for which it is false and spare the copy (the bits are the same).
bool sgemm_copies_a(bool trans_a, int64_t lda);

// The causal structure of one query tile's attention product, which lets the micro-tiles skip what the
// mask makes zero or never reads. Row r of C (or, for k_from_row, k index r of op(A)) is query
// `first_query` + r of the head; column j of C, or k index j, is key j.
//   cols_upto_row (scores q k^T, dp = dout v^T): C[r, j] is wanted only for j <= first_query + r; the
//     16-column panels entirely beyond a 6-row sliver's last query are not computed and those
//     elements of C are LEFT UNWRITTEN (the caller never reads beyond a row's causal limit).
//   k_upto_row (p v, ds k): op(A)[r, k] is zero for k > first_query + r; a sliver's sum stops after its
//     last query's key (fewer zero terms: the same bits).
//   k_from_row (p^T dout, ds^T q): op(A)[j, k] is zero for k < j - first_query; a sliver's sum starts
//     at its first key's query (leading zero terms only leave the accumulator at +0: the same bits).
// Applies to sgemm_serial and sgemm_serial_packed_b; {} (none) is the plain product.
struct CausalLimits {
  enum Kind { none, cols_upto_row, k_upto_row, k_from_row } kind = none;
  int64_t first_query = 0;
};

// An element-wise step sgemm applies to each finished tile of C while it is still in cache: apply(ctx, C,
// ldc, r0, r1, c0, c1) for the rows [r0, r1) and columns [c0, c1) of C (C, ldc: sgemm's), once their sums,
// alpha, beta and the bias are done; the tiles cover C once. Each element must only depend on itself (and
// on data at its own index), so that the result does not depend on the tiling: e.g. the GELU after a
// Linear (kernels/activation.h, linear_gelu_forward).
struct SgemmEpilogue {
  void (*apply)(const void* ctx, float* C, int64_t ldc, int64_t r0, int64_t r1, int64_t c0, int64_t c1) = nullptr;
  const void* ctx = nullptr;
};

// The product above, parallel over the fixed tiles of C (serial when it is small). Only call when
// sgemm_cpu_supported(). With row_bias, beta is ignored (treated as 1 against the bias).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* row_bias = nullptr,
           SgemmEpilogue epilogue = {});

// The same product on the calling thread only, for tasks that are already parallel. Same bits as sgemm.
void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                  const float* row_bias = nullptr, CausalLimits causal = {});

// op(B) [K, N] packed once for several products that share it (the attention packs a head's keys and
// values once for all its query tiles): sgemm_pack_b writes sgemm_packed_b_floats(N, K) floats at
// `packed` (16-column panels, K x 16 each). sgemm_serial_packed_b(..., packed, packed_k = that K, ...)
// then computes, on the calling thread, C[M, n] = alpha * op(A)[M, K] @ (the first K <= packed_k rows
// and n <= N columns of that op(B)) + beta * C; the same bits as sgemm_serial on those rows and columns.
int64_t sgemm_packed_b_floats(int64_t N, int64_t K);
void sgemm_pack_b(bool trans_b, int64_t N, int64_t K, const float* B, int64_t ldb, float* packed);
void sgemm_serial_packed_b(bool trans_a, int64_t M, int64_t n, int64_t K, float alpha, const float* A, int64_t lda,
                           const float* packed, int64_t packed_k, float beta, float* C, int64_t ldc,
                           CausalLimits causal = {});

}  // namespace tg::kernels
