// AVX-512 micro-kernels of tapegrad's float32 GEMM (see kernels/sgemm_kernel.h): 12 rows x 16 columns
// (one zmm accumulator per row) or x 32 columns of two panels (two per row). Only these functions carry
// the avx512f target; the driver
// (kernels/sgemm.cpp) is baseline code and op(B) is packed by the AVX2 code, which AVX-512 CPUs run.
//
// Each element gets the operations of the AVX2 kernel (acc = fma(a, b, acc) for k in order, then
// alpha * acc, then one fma with beta * cin): a lane of a zmm register rounds exactly as a lane of a
// ymm register, so both kernels give the same bits.
#include <immintrin.h>

#include "framework/kernels/sgemm_kernel.h"

namespace tg::kernels::sgemm_detail {
namespace {

// The first n lanes (n = 0..16).
inline __mmask16 lanes(int n) { return static_cast<__mmask16>((1u << n) - 1u); }

// Ends one KC block of a kM x 16 micro-tile held in c: partial sums to o.acc, or the epilogue into C.
template <int kM>
__attribute__((target("avx512f"), always_inline)) inline void finish(const __m512* c, const TileOut& o) {
  if (!o.last) {
#pragma GCC unroll 12
    for (int r = 0; r < kM; ++r) _mm512_storeu_ps(o.acc + r * kNR, c[r]);
    return;
  }
  if (o.transposed) {
    alignas(64) float sums[kMRMax * kNR];
    for (int r = 0; r < kM; ++r) _mm512_store_ps(sums + r * kNR, c[r]);
    return store_transposed(sums, kNR, kM, o);
  }
  const __m512 alpha = _mm512_set1_ps(o.alpha), beta = _mm512_set1_ps(o.beta);
  const __mmask16 cols = lanes(o.n);
#pragma GCC unroll 12
  for (int r = 0; r < kM; ++r) {
    __m512 v = _mm512_mul_ps(alpha, c[r]);
    if (o.beta != 0.0f) v = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(cols, o.cin + r * o.ldcin), v);
    _mm512_mask_storeu_ps(o.c + r * o.ldc, cols, v);
  }
}

// The kM x (16 kP) body (kM = 1..12, the rows that exist; kP = 1 or 2 panels, b[q] the q-th, o[q] its
// micro-tile); kRows: a(r, k) = a[r * lda + k], else a[k * lda + r]. The last panel's B is read in its
// first o.n lanes only (an in-place op(B) may have no more columns); kFull: its o.n == 16. Rows are read
// through one pointer per 3 rows, moved along k, so that the 12 broadcast operands need few registers
// (row r of a group at +0, +rs or +2 rs elements).
// o[q] is read field by field where the caller built it: a copy of the whole struct would load it in 16-byte
// pieces straight after the caller's narrower stores, which the CPU cannot forward (a stall that took
// ~10% of mid's and long's fwd+bwd time in this function's entry).
template <bool kRows, int kM, int kP, bool kFull>
__attribute__((target("avx512f"))) void kernel_m(int64_t kc, const float* a, int64_t lda, const float* const* b,
                                                 int64_t ldb, const TileOut* const* o) {
  const __mmask16 cols = lanes(o[kP - 1]->n);
  __m512 c[kP][kM];
#pragma GCC unroll 2
  for (int q = 0; q < kP; ++q)
#pragma GCC unroll 12
    for (int r = 0; r < kM; ++r) c[q][r] = o[q]->first ? _mm512_setzero_ps() : _mm512_loadu_ps(o[q]->acc + r * kNR);
  const int64_t rs = kRows ? lda : 1, ks = kRows ? 1 : lda;   // a(r, k) = a[r * rs + k * ks]
  constexpr int kGroups = (kM + 2) / 3;
  const float* p[kGroups];
#pragma GCC unroll 4
  for (int g = 0; g < kGroups; ++g) p[g] = a + 3 * g * rs;
  const float* b0 = b[0];
  const float* b1 = b[kP - 1];
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bk[kP];
    if constexpr (kP == 2) bk[0] = _mm512_loadu_ps(b0);
    bk[kP - 1] = kFull ? _mm512_loadu_ps(b1) : _mm512_maskz_loadu_ps(cols, b1);
    b0 += ldb;
    b1 += ldb;
#pragma GCC unroll 12
    for (int r = 0; r < kM; ++r) {
      const __m512 ar = _mm512_set1_ps(p[r / 3][(r % 3) * rs]);
#pragma GCC unroll 2
      for (int q = 0; q < kP; ++q) c[q][r] = _mm512_fmadd_ps(ar, bk[q], c[q][r]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < kGroups; ++g) p[g] += ks;
  }
#pragma GCC unroll 2
  for (int q = 0; q < kP; ++q) finish<kM>(c[q], *o[q]);
}

template <bool kRows, int kP, bool kFull>
void kernel_rows(int m, int64_t kc, const float* a, int64_t lda, const float* const* b, int64_t ldb,
                 const TileOut* const* o) {
  switch (m) {
    case 12: return kernel_m<kRows, 12, kP, kFull>(kc, a, lda, b, ldb, o);
    case 11: return kernel_m<kRows, 11, kP, kFull>(kc, a, lda, b, ldb, o);
    case 10: return kernel_m<kRows, 10, kP, kFull>(kc, a, lda, b, ldb, o);
    case 9: return kernel_m<kRows, 9, kP, kFull>(kc, a, lda, b, ldb, o);
    case 8: return kernel_m<kRows, 8, kP, kFull>(kc, a, lda, b, ldb, o);
    case 7: return kernel_m<kRows, 7, kP, kFull>(kc, a, lda, b, ldb, o);
    case 6: return kernel_m<kRows, 6, kP, kFull>(kc, a, lda, b, ldb, o);
    case 5: return kernel_m<kRows, 5, kP, kFull>(kc, a, lda, b, ldb, o);
    case 4: return kernel_m<kRows, 4, kP, kFull>(kc, a, lda, b, ldb, o);
    case 3: return kernel_m<kRows, 3, kP, kFull>(kc, a, lda, b, ldb, o);
    case 2: return kernel_m<kRows, 2, kP, kFull>(kc, a, lda, b, ldb, o);
    default: return kernel_m<kRows, 1, kP, kFull>(kc, a, lda, b, ldb, o);
  }
}

template <int kP>
void dispatch(bool a_rows, int64_t kc, const float* a, int64_t lda, const float* const* b, int64_t ldb,
              const TileOut* const* o) {
  const int m = o[0]->m;
  if (o[kP - 1]->n == kNR) {
    if (a_rows) kernel_rows<true, kP, true>(m, kc, a, lda, b, ldb, o);
    else kernel_rows<false, kP, true>(m, kc, a, lda, b, ldb, o);
  } else {
    if (a_rows) kernel_rows<true, kP, false>(m, kc, a, lda, b, ldb, o);
    else kernel_rows<false, kP, false>(m, kc, a, lda, b, ldb, o);
  }
}

}  // namespace

void micro_kernel_avx512(bool a_rows, int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                         const TileOut& out) {
  const TileOut* const o[1] = {&out};
  dispatch<1>(a_rows, kc, a, lda, &b, ldb, o);
}

void micro_kernel_avx512_pair(bool a_rows, int64_t kc, const float* a, int64_t lda, const float* b0, const float* b1,
                              int64_t ldb, const TileOut& out0, const TileOut& out1) {
  const float* const b[2] = {b0, b1};
  const TileOut* const o[2] = {&out0, &out1};
  dispatch<2>(a_rows, kc, a, lda, b, ldb, o);
}

}  // namespace tg::kernels::sgemm_detail
