#pragma once
// tapegrad's own bf16-input, float32-accumulate GEMM for CPUs with AVX512_BF16, row-major, float32
// operands and result:
//   C[M,N] = alpha * bf16(op(A))[M,K] @ bf16(op(B))[K,N] + beta * C   (or + row_bias[N] on every row),
// op(X) = X or X^T, any lda/ldb/ldc. Autocast's native products (kernels/bf16.h) run through it.
//
// Structure: op(B) is converted once per product to bf16 pairs (kernels/sbgemm_kernel.h) as 16-column
// panels, shared by every task; op(A) as rows of pairs (or, transposed, as pairs of rows), up front, or,
// in a parallel product of 2 or more tile rows, by each tile for its own rows right before it uses them
// (tiles then span all of C's columns). Tasks are fixed tiles of C (at most 96 rows, the 12-row slivers
// spread evenly over the tile rows; 128 columns, narrower when there would be fewer than 4 tiles) that walk
// pairs of panels, then slivers, each through a 12 x 32 micro-kernel of VDPBF16PS with 24 zmm accumulators
// over the whole sum. A parallel product at least twice as wide as high with a sum of 256 or more is
// computed as C^T = op(B)^T op(A)^T (its micro-tiles stored element by element).
//
// Rounding: each operand to bf16, nearest even, NaN quieted, float32 denormals to zero (VCVTNE2PS2BF16).
// Determinism: every element C[i, j] is the same sequence of operations whatever the thread count and
// the tiling: sum = 0; sum = dpbf16(sum, (a[i,k], a[i,k+1]), (b[k,j], b[k+1,j])) for k = 0, 2, 4, .. in
// order (one instruction: the two exact products added in the CPU's fixed order, denormals flushed);
// C = alpha * sum; then C = fma(beta, C_old, C) when beta != 0. beta = 0 never reads C.
#include <cstdint>

#include "framework/kernels/sgemm.h"

namespace tg::kernels {

// True when this CPU runs the kernel: AVX512F, AVX512BW and AVX512_BF16, with the OS saving zmm state.
bool sbgemm_cpu_supported();

// The product above, parallel over the fixed tiles of C (serial when it is small). Only call when
// sbgemm_cpu_supported(). With row_bias, beta is ignored (treated as 1 against the bias). K = 0 gives
// C = beta * C (or the bias). An epilogue (kernels/sgemm.h: an element-wise step such as the GELU after a
// Linear) is applied to each finished tile of C while it is in cache; the tiles cover C once.
void sbgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* row_bias = nullptr,
            SgemmEpilogue epilogue = {});

// The same product on the calling thread only, for tasks that are already parallel. Same bits as sbgemm.
// With causal limits (kernels/sgemm.h, as sgemm_serial: the attention's tiles), the panels of 16 columns
// beyond a 12-row sliver's last query are not computed (those elements of C are LEFT UNWRITTEN), and a
// sliver's sums skip the pairs whose op(A) elements are zero for all its rows (k_upto_row: after its last
// query's key; k_from_row: before its first key's query). The same bits for any thread count.
void sbgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                   const float* row_bias = nullptr, CausalLimits causal = {});

}  // namespace tg::kernels
