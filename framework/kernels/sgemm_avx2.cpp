// AVX2 + FMA micro-kernel and B packing of tapegrad's float32 GEMM (see kernels/sgemm_kernel.h).
// Only these functions carry the avx2/fma target; the driver (kernels/sgemm.cpp) is baseline code.
#include <immintrin.h>

#include <algorithm>

#include "framework/kernels/sgemm_kernel.h"

namespace tg::kernels::sgemm_detail {
namespace {

// Lane masks for a partial 8-float store: the first `n` lanes set (n = 0..8).
inline __attribute__((target("avx2,fma"), always_inline)) __m256i lane_mask(int n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

// Stores one 8-lane half of a row: v = alpha * acc, then v = beta * cin + v when beta != 0.
inline __attribute__((target("avx2,fma"), always_inline)) void store_half(__m256 acc, const TileOut& o, int r, int h) {
  const int cols = std::clamp(o.n - 8 * h, 0, 8);
  if (cols == 0) return;
  __m256 v = _mm256_mul_ps(_mm256_set1_ps(o.alpha), acc);
  float* c = o.c + r * o.ldc + 8 * h;
  if (cols == 8) {
    if (o.beta != 0.0f)
      v = _mm256_fmadd_ps(_mm256_set1_ps(o.beta), _mm256_loadu_ps(o.cin + r * o.ldcin + 8 * h), v);
    _mm256_storeu_ps(c, v);
    return;
  }
  const __m256i mask = lane_mask(cols);
  if (o.beta != 0.0f)
    v = _mm256_fmadd_ps(_mm256_set1_ps(o.beta), _mm256_maskload_ps(o.cin + r * o.ldcin + 8 * h, mask), v);
  _mm256_maskstore_ps(c, mask, v);
}

// The kM x (8 kH) kernel body (kM = 1..6 rows, the rows that exist: an edge sliver computes no extra
// rows; kH = 2 halves of 8 columns, or 1 for a last panel of at most 8 columns, which would otherwise
// compute 16 for them); kRows: a(r, k) = a[r * lda + k], else a[k * lda + r]. Every element gets the
// same operations whatever kM and kH are.
template <bool kRows, int kM, int kH>
__attribute__((target("avx2,fma"))) void kernel_mxn(int64_t kc, const float* a, int64_t lda, const float* b,
                                                    int64_t ldb, const TileOut& o) {
  __m256 c[kM][kH];
#pragma GCC unroll 6
  for (int r = 0; r < kM; ++r)
    for (int h = 0; h < kH; ++h) c[r][h] = o.first ? _mm256_setzero_ps() : _mm256_loadu_ps(o.acc + r * kNR + 8 * h);
  // a(r, k) = a[r * rs + k * ks]
  const int64_t rs = kRows ? lda : 1, ks = kRows ? 1 : lda;
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bh[kH];
    for (int h = 0; h < kH; ++h) bh[h] = _mm256_loadu_ps(b + k * ldb + 8 * h);
    const float* ak = a + k * ks;
#pragma GCC unroll 6
    for (int r = 0; r < kM; ++r) {
      const __m256 ar = _mm256_broadcast_ss(ak + r * rs);
      for (int h = 0; h < kH; ++h) c[r][h] = _mm256_fmadd_ps(ar, bh[h], c[r][h]);
    }
  }
  if (o.last && o.n == 8 * kH && !o.transposed) {
    // Whole rows: the epilogue straight from the registers (the same operations as store_half).
    const __m256 alpha = _mm256_set1_ps(o.alpha), beta = _mm256_set1_ps(o.beta);
#pragma GCC unroll 6
    for (int r = 0; r < kM; ++r)
      for (int h = 0; h < kH; ++h) {
        __m256 v = _mm256_mul_ps(alpha, c[r][h]);
        if (o.beta != 0.0f) v = _mm256_fmadd_ps(beta, _mm256_loadu_ps(o.cin + r * o.ldcin + 8 * h), v);
        _mm256_storeu_ps(o.c + r * o.ldc + 8 * h, v);
      }
    return;
  }
  // Otherwise the accumulators leave the registers here, in one go (indexing them in the edge-aware
  // epilogue below would keep the whole array in memory during the k loop).
  alignas(32) float sums[kMR * kNR];
  float* dst = o.last ? sums : o.acc;
#pragma GCC unroll 6
  for (int r = 0; r < kM; ++r)
    for (int h = 0; h < kH; ++h) _mm256_storeu_ps(dst + r * kNR + 8 * h, c[r][h]);
  if (!o.last) return;
  if (o.transposed) return store_transposed(sums, kNR, kM, o);
  for (int r = 0; r < kM; ++r)
    for (int h = 0; h < kH; ++h) store_half(_mm256_load_ps(sums + r * kNR + 8 * h), o, r, h);
}

template <bool kRows, int kH>
void kernel_rows(int m, int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, const TileOut& o) {
  switch (m) {
    case 6: return kernel_mxn<kRows, 6, kH>(kc, a, lda, b, ldb, o);
    case 5: return kernel_mxn<kRows, 5, kH>(kc, a, lda, b, ldb, o);
    case 4: return kernel_mxn<kRows, 4, kH>(kc, a, lda, b, ldb, o);
    case 3: return kernel_mxn<kRows, 3, kH>(kc, a, lda, b, ldb, o);
    case 2: return kernel_mxn<kRows, 2, kH>(kc, a, lda, b, ldb, o);
    default: return kernel_mxn<kRows, 1, kH>(kc, a, lda, b, ldb, o);
  }
}

// Transposed B, a full 16-column panel: B rows j0..j0+15 become the panel's columns, 8 rows x 8 k at a
// time. The 128-bit halves are loaded straight into place (rows j and j + 4 share a register), so two
// in-lane shuffle stages finish the 8 x 8 transpose (16 shuffles, not 24).
__attribute__((target("avx2,fma"))) void pack_bt_full(const float* B, int64_t ldb, int64_t K, int64_t j0,
                                                      float* dst) {
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    for (int h = 0; h < 2; ++h) {
      const float* row = B + (j0 + 8 * h) * ldb + k;
      for (int q = 0; q < 2; ++q) {   // k + 4q .. k + 4q + 3
        __m256 r[4];
        for (int j = 0; j < 4; ++j)
          r[j] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(row + j * ldb + 4 * q)),
                                      _mm_loadu_ps(row + (j + 4) * ldb + 4 * q), 1);
        // r[j] = [row j: 4 k | row j + 4: 4 k]
        const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
        const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
        float* d = dst + (k + 4 * q) * kNR + 8 * h;
        _mm256_storeu_ps(d, _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)));
        _mm256_storeu_ps(d + kNR, _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)));
        _mm256_storeu_ps(d + 2 * kNR, _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)));
        _mm256_storeu_ps(d + 3 * kNR, _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)));
      }
    }
  }
  for (; k < K; ++k)
    for (int j = 0; j < kNR; ++j) dst[k * kNR + j] = B[(j0 + j) * ldb + k];
}

}  // namespace

void micro_kernel(bool a_rows, int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                  const TileOut& out) {
  if (out.n <= 8) {
    if (a_rows) kernel_rows<true, 1>(out.m, kc, a, lda, b, ldb, out);
    else kernel_rows<false, 1>(out.m, kc, a, lda, b, ldb, out);
  } else {
    if (a_rows) kernel_rows<true, 2>(out.m, kc, a, lda, b, ldb, out);
    else kernel_rows<false, 2>(out.m, kc, a, lda, b, ldb, out);
  }
}

__attribute__((target("avx2,fma"))) void pack_b_panel(bool trans_b, const float* B, int64_t ldb, int64_t K,
                                                      int64_t j0, int n, float* dst) {
  if (trans_b && n == kNR) return pack_bt_full(B, ldb, K, j0, dst);
  if (!trans_b && n == kNR) return pack_b_rows(B + j0, ldb, K, 1, dst);
  // Edge panel: n < 16 real columns, the rest zero (their sums are computed and never stored).
  for (int64_t k = 0; k < K; ++k) {
    float* d = dst + k * kNR;
    for (int j = 0; j < n; ++j) d[j] = trans_b ? B[(j0 + j) * ldb + k] : B[k * ldb + j0 + j];
    for (int j = n; j < kNR; ++j) d[j] = 0.0f;
  }
}

__attribute__((target("avx2,fma"))) void pack_b_rows(const float* B, int64_t ldb, int64_t K, int64_t panels,
                                                     float* dst) {
  for (int64_t k = 0; k < K; ++k)
    for (int64_t q = 0; q < panels; ++q) {
      const float* src = B + k * ldb + q * kNR;
      float* d = dst + (q * K + k) * kNR;
      _mm256_storeu_ps(d, _mm256_loadu_ps(src));
      _mm256_storeu_ps(d + 8, _mm256_loadu_ps(src + 8));
    }
}

}  // namespace tg::kernels::sgemm_detail
