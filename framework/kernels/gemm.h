#pragma once
// GEMM, row-major:
//   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C,  op(X) = X or X^T.
// float32 runs through tapegrad's own AVX2 kernel (kernels/sgemm.h) when sgemm_active(): fixed tiles of
// C, the same bits for any thread count and any tiling. Otherwise (and always for float64) through
// OpenBLAS cblas_sgemm/cblas_dgemm, as below ("OpenBLAS path").
// OpenBLAS path: large products are split into row blocks (or column blocks when there are few rows) whose sizes
// depend only on (M, N, K), and run as
// separate single-threaded BLAS calls in parallel TBB tasks: the same bits for any thread count.
// A one-row product (M = 1, e.g. a decoding step through a Linear) in gemm is one cblas_?gemv call:
// sgemm would first pack all of op(B), which costs more than the product itself.
#include <cstdint>

namespace tg::kernels {

// Whether gemm<float> with M rows runs tapegrad's sgemm (sgemm_active(), and M != 1: a one-row product
// stays one OpenBLAS gemv, since packing op(B) would cost as much as the product). A caller that applies
// the sgemm's options itself (linear_gelu_forward's epilogue) asks here, so that it gets gemm's bits.
bool gemm_uses_sgemm(int64_t M);

// With `row_bias` [N] (then beta must be 0): C = alpha * op(A) @ op(B) + row_bias on every row, the
// bias written into each block just before its BLAS call (beta = 1), so no separate pass over C.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc, const T* row_bias = nullptr);

// `batch` independent GEMMs; operand i starts at X + i * stride_x (a stride of 0 broadcasts).
template <class T>
void gemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                  int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta, T* C,
                  int64_t ldc, int64_t stride_c);

// One single-threaded product, for use inside a task that is already parallel.
template <class T>
void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                 const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// The OpenBLAS path of gemm / gemm_serial whatever sgemm_active() says, for benchmarks and tests that
// compare the two kernels.
template <class T>
void gemm_openblas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                   const T* B, int64_t ldb, T beta, T* C, int64_t ldc, const T* row_bias = nullptr);
template <class T>
void gemm_serial_openblas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace tg::kernels
