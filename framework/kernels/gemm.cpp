#include "framework/kernels/gemm.h"

#include <cblas.h>

#include <algorithm>

#include "framework/kernels/parallel.h"
#include "framework/kernels/sgemm.h"
#include "tapegrad/framework/runtime.h"

namespace tg::kernels {
namespace {

// Below this many multiply-adds a GEMM runs as one call: splitting would cost more than it gains.
constexpr int64_t kSplitWork = int64_t{1} << 20;

// C[r, c] = bias[c] for the m x n block at C.
template <class T> void fill_rows(T* C, int64_t ldc, int64_t m, int64_t n, const T* bias) {
  for (int64_t r = 0; r < m; ++r) std::copy(bias, bias + n, C + r * ldc);
}

// C[1, N] = alpha * op(A)[1, K] @ op(B)[K, N] + beta * C as one matrix-vector product: a one-row GEMM
// (a decoding step through a Linear) would otherwise pack all of B, which costs more than the product.
template <class T>
void gemv_row(bool trans_a, bool trans_b, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
              int64_t ldb, T beta, T* C) {
  // op(A) is a row of A, or a column of A^T stored [K, 1] with stride lda.
  const blasint inc_a = trans_a ? static_cast<blasint>(lda) : 1;
  // op(B)^T [N, K] @ a: B [N, K] untransposed when trans_b, else B [K, N] transposed.
  const auto tb = trans_b ? CblasNoTrans : CblasTrans;
  const blasint rows = static_cast<blasint>(trans_b ? N : K), cols = static_cast<blasint>(trans_b ? K : N);
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemv(CblasRowMajor, tb, rows, cols, alpha, B, static_cast<blasint>(ldb), A, inc_a, beta, C, 1);
  else
    cblas_dgemv(CblasRowMajor, tb, rows, cols, alpha, B, static_cast<blasint>(ldb), A, inc_a, beta, C, 1);
}

}  // namespace

template <class T>
void gemm_serial_openblas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                 const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K),
                alpha, A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
                static_cast<blasint>(ldc));
  else
    cblas_dgemm(CblasRowMajor, ta, tb, static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K),
                alpha, A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
                static_cast<blasint>(ldc));
}

template <class T>
void gemm_openblas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                   const T* B, int64_t ldb, T beta, T* C, int64_t ldc, const T* row_bias) {
  init_blas();
  if (row_bias) beta = T(1);   // each block's rows hold the bias when its BLAS call runs
  if (M == 1 && N > 0 && K > 0) {
    // C may be uninitialised: with beta = 0 it is zeroed first, so no NaN in it can survive 0 * NaN.
    if (row_bias) fill_rows(C, ldc, M, N, row_bias);
    else if (beta == T(0)) std::fill(C, C + N, T(0));
    gemv_row(trans_a, trans_b, N, K, alpha, A, lda, B, ldb, beta, C);
    return;
  }
  if (M * N * K < kSplitWork || (M < 64 && N < 256)) {
    if (row_bias) fill_rows(C, ldc, M, N, row_bias);
    gemm_serial_openblas(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (M < 64) {
    // Few rows, many columns (e.g. a short sequence through a wide projection): column blocks, a
    // multiple of 64 columns, at most 8, chosen from the shape only.
    int64_t block = std::max<int64_t>(64, ((N + 7) / 8 + 63) / 64 * 64);
    int64_t nblocks = (N + block - 1) / block;
    parallel_for(nblocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        int64_t n0 = b * block, n = std::min(block, N - n0);
        const T* bp = trans_b ? B + n0 * ldb : B + n0;
        if (row_bias) fill_rows(C + n0, ldc, M, n, row_bias + n0);
        gemm_serial_openblas(trans_a, trans_b, M, n, K, alpha, A, lda, bp, ldb, beta, C + n0, ldc);
      }
    });
    return;
  }
  // Row blocks: at most 8 of equal size rounded up to 16 rows (the micro-kernel's unroll), at
  // least 32 rows; depends on the shape only. Equal blocks keep the threads evenly loaded.
  int64_t block = std::max<int64_t>(32, ((M + 7) / 8 + 15) / 16 * 16);
  int64_t nblocks = (M + block - 1) / block;
  parallel_for(nblocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      int64_t m0 = b * block, m = std::min(block, M - m0);
      const T* a = trans_a ? A + m0 : A + m0 * lda;
      if (row_bias) fill_rows(C + m0 * ldc, ldc, m, N, row_bias);
      gemm_serial_openblas(trans_a, trans_b, m, N, K, alpha, a, lda, B, ldb, beta, C + m0 * ldc, ldc);
    }
  });
}

bool gemm_uses_sgemm(int64_t M) { return M != 1 && sgemm_active(); }

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc, const T* row_bias) {
  if constexpr (std::is_same_v<T, float>)
    if (gemm_uses_sgemm(M)) return sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, row_bias);
  gemm_openblas(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, row_bias);
}

template <class T>
void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                 const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>)
    if (sgemm_active()) return sgemm_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  init_blas();
  gemm_serial_openblas(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <class T>
void gemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                  int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta, T* C,
                  int64_t ldc, int64_t stride_c) {
  init_blas();
  if (batch == 1) {
    gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  int64_t grain = grain_for(M * N * std::max<int64_t>(K, 1), int64_t{1} << 18);
  parallel_for(batch, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      gemm_serial<T>(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
                  C + i * stride_c, ldc);
  });
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                        float, float*, int64_t, const float*);
template void gemm_serial<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                               int64_t, float, float*, int64_t);
template void gemm_batched<float>(int64_t, bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t,
                                const float*, int64_t, int64_t, float, float*, int64_t, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*, int64_t,
                        double, double*, int64_t, const double*);
template void gemm_serial<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                               int64_t, double, double*, int64_t);
template void gemm_batched<double>(int64_t, bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                                const double*, int64_t, int64_t, double, double*, int64_t, int64_t);

template void gemm_openblas<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                   int64_t, float, float*, int64_t, const float*);
template void gemm_serial_openblas<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                          const float*, int64_t, float, float*, int64_t);
template void gemm_openblas<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                    const double*, int64_t, double, double*, int64_t, const double*);
template void gemm_serial_openblas<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                           const double*, int64_t, double, double*, int64_t);

}  // namespace tg::kernels
