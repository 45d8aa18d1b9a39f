// AVX512_BF16 pieces of tapegrad's bf16 GEMM (see kernels/sbgemm_kernel.h). Only these functions carry
// the avx512bf16 target; the driver (kernels/sbgemm.cpp) is baseline code.
#include <immintrin.h>

#include "framework/kernels/sbgemm_kernel.h"
#include "framework/kernels/sgemm_kernel.h"

#define TG_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

namespace tg::kernels::sbgemm_detail {
namespace {

// The first n lanes (n = 0..16).
inline __mmask16 lanes(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

// The kM x (16 kP) body (kM = 1..12 rows; kP = 1 or 2 panels). Rows are read through one pointer per 3
// rows, moved along the pairs, so that the 12 broadcast operands need few registers.
template <int kM, int kP>
TG_BF16_TARGET void kernel_m(int64_t pairs, const uint32_t* a, int64_t rs, int64_t ps, const uint32_t* b0,
                             const uint32_t* b1, const TileOut& o) {
  __m512 c[kP][kM];
#pragma GCC unroll 2
  for (int q = 0; q < kP; ++q)
#pragma GCC unroll 12
    for (int r = 0; r < kM; ++r) c[q][r] = _mm512_setzero_ps();
  constexpr int kGroups = (kM + 2) / 3;
  const uint32_t* g[kGroups];
#pragma GCC unroll 4
  for (int i = 0; i < kGroups; ++i) g[i] = a + 3 * i * rs;
#pragma GCC unroll 2
  for (int64_t p = 0; p < pairs; ++p) {
    __m512bh bk[kP];
    bk[0] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b0));
    if constexpr (kP == 2) bk[1] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b1));
    b0 += kNR;
    b1 += kNR;
#pragma GCC unroll 12
    for (int r = 0; r < kM; ++r) {
      const __m512bh ar = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(g[r / 3][(r % 3) * rs])));
#pragma GCC unroll 2
      for (int q = 0; q < kP; ++q) c[q][r] = _mm512_dpbf16_ps(c[q][r], ar, bk[q]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < kGroups; ++i) g[i] += ps;
  }
  if (o.transposed) {
    alignas(64) float sums[kM][kP * kNR];
    for (int q = 0; q < kP; ++q)
      for (int r = 0; r < kM; ++r) _mm512_store_ps(&sums[r][q * kNR], c[q][r]);
    return sgemm_detail::store_transposed(&sums[0][0], kP * kNR, kM, o);
  }
  const __m512 alpha = _mm512_set1_ps(o.alpha), beta = _mm512_set1_ps(o.beta);
#pragma GCC unroll 2
  for (int q = 0; q < kP; ++q) {
    const int64_t n = o.n - q * kNR;
    if (n <= 0) break;
    const __mmask16 cols = lanes(n < kNR ? n : kNR);
#pragma GCC unroll 12
    for (int r = 0; r < kM; ++r) {
      __m512 v = _mm512_mul_ps(alpha, c[q][r]);
      if (o.beta != 0.0f) v = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(cols, o.cin + r * o.ldcin + q * kNR), v);
      _mm512_mask_storeu_ps(o.c + r * o.ldc + q * kNR, cols, v);
    }
  }
}

template <int kP>
void kernel_rows(int m, int64_t pairs, const uint32_t* a, int64_t rs, int64_t ps, const uint32_t* b0,
                 const uint32_t* b1, const TileOut& o) {
  switch (m) {
    case 12: return kernel_m<12, kP>(pairs, a, rs, ps, b0, b1, o);
    case 11: return kernel_m<11, kP>(pairs, a, rs, ps, b0, b1, o);
    case 10: return kernel_m<10, kP>(pairs, a, rs, ps, b0, b1, o);
    case 9: return kernel_m<9, kP>(pairs, a, rs, ps, b0, b1, o);
    case 8: return kernel_m<8, kP>(pairs, a, rs, ps, b0, b1, o);
    case 7: return kernel_m<7, kP>(pairs, a, rs, ps, b0, b1, o);
    case 6: return kernel_m<6, kP>(pairs, a, rs, ps, b0, b1, o);
    case 5: return kernel_m<5, kP>(pairs, a, rs, ps, b0, b1, o);
    case 4: return kernel_m<4, kP>(pairs, a, rs, ps, b0, b1, o);
    case 3: return kernel_m<3, kP>(pairs, a, rs, ps, b0, b1, o);
    case 2: return kernel_m<2, kP>(pairs, a, rs, ps, b0, b1, o);
    default: return kernel_m<1, kP>(pairs, a, rs, ps, b0, b1, o);
  }
}

// 16 floats (the first n of x0 and x1; x1 null: zeros) as 16 pairs (x0[i], x1[i]).
TG_BF16_TARGET inline __m512i pairs16(const float* x0, const float* x1, int64_t n) {
  const __mmask16 m = lanes(n < kNR ? n : kNR);
  const __m512 lo = _mm512_maskz_loadu_ps(m, x0), hi = x1 ? _mm512_maskz_loadu_ps(m, x1) : _mm512_setzero_ps();
  // Words 0..15 are lo's, 16..31 hi's; word 2i of the result is lo[i], 2i + 1 is hi[i].
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                       5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
}

}  // namespace

void micro_kernel(int64_t pairs, const uint32_t* a, int64_t rs, int64_t ps, const uint32_t* b0, const uint32_t* b1,
                  const TileOut& out) {
  if (b1) kernel_rows<2>(out.m, pairs, a, rs, ps, b0, b1, out);
  else kernel_rows<1>(out.m, pairs, a, rs, ps, b0, b0, out);
}

TG_BF16_TARGET void row_pairs(const float* x, int64_t n, uint32_t* y) {
  int64_t i = 0;
  for (; i + 2 * kNR <= n; i += 2 * kNR) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + kNR), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(y + i / 2, reinterpret_cast<__m512i>(v));
  }
  if (i == n) return;
  const int64_t rest = n - i;
  const __m512 lo = _mm512_maskz_loadu_ps(lanes(rest < kNR ? rest : kNR), x + i);
  const __m512 hi = _mm512_maskz_loadu_ps(lanes(rest > kNR ? rest - kNR : 0), x + i + kNR);
  _mm512_mask_storeu_epi32(y + i / 2, lanes((rest + 1) / 2), reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
}

TG_BF16_TARGET void interleave(const float* x0, const float* x1, int64_t n, uint32_t* y) {
  int64_t i = 0;
  for (; i + kNR <= n; i += kNR) _mm512_storeu_si512(y + i, pairs16(x0 + i, x1 ? x1 + i : nullptr, kNR));
  if (i < n) _mm512_mask_storeu_epi32(y + i, lanes(n - i), pairs16(x0 + i, x1 ? x1 + i : nullptr, n - i));
}

TG_BF16_TARGET void pairs_to_panels(const float* x0, const float* x1, int64_t n, int64_t panel_stride, uint32_t* y) {
  int64_t j = 0;
  for (; j + kNR <= n; j += kNR, y += panel_stride)
    _mm512_storeu_si512(y, pairs16(x0 + j, x1 ? x1 + j : nullptr, kNR));
  if (j < n) _mm512_storeu_si512(y, pairs16(x0 + j, x1 ? x1 + j : nullptr, n - j));
}

namespace {

// GCC 12's unpack and shuffle intrinsics pass _mm512_undefined_epi32() (self-initialised) as their unused
// merge source, which -Wmaybe-uninitialized reports once inlined here: a false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// 16 x 16 words in registers: r[j] (row j) becomes column j (r[c] lane j = the old r[j] lane c). Unpacks of
// words, then of pairs of words, then two shuffles of 128-bit lanes.
TG_BF16_TARGET inline void transpose16x16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {   // per 128-bit lane L: t[2i] = (r[2i][4L], r[2i+1][4L], r[2i][4L+1], ..)
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  __m512i q[4][4];   // q[i][k], lane L: column 4L + k of rows 4i..4i+3
  for (int i = 0; i < 4; ++i) {
    q[i][0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    q[i][1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    q[i][2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    q[i][3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int k = 0; k < 4; ++k) {   // column 4L + k: lane i from q[i][k]'s lane L
    const __m512i x0 = _mm512_shuffle_i32x4(q[0][k], q[1][k], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512i x1 = _mm512_shuffle_i32x4(q[0][k], q[1][k], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512i y0 = _mm512_shuffle_i32x4(q[2][k], q[3][k], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512i y1 = _mm512_shuffle_i32x4(q[2][k], q[3][k], _MM_SHUFFLE(3, 2, 3, 2));
    r[k] = _mm512_shuffle_i32x4(x0, y0, _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + k] = _mm512_shuffle_i32x4(x0, y0, _MM_SHUFFLE(3, 1, 3, 1));
    r[8 + k] = _mm512_shuffle_i32x4(x1, y1, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + k] = _mm512_shuffle_i32x4(x1, y1, _MM_SHUFFLE(3, 1, 3, 1));
  }
}
#pragma GCC diagnostic pop

}  // namespace

// 16 pairs of each of the 16 rows at a time, transposed in registers (a gather per panel row took most of the
// conversion of a transposed B: a linear layer's x W^T on few tokens).
TG_BF16_TARGET void transpose_pairs16(const uint32_t* rows, int64_t stride, int64_t pairs, uint32_t* panel) {
  for (int64_t p = 0; p < pairs; p += kNR) {
    const int64_t n = pairs - p < kNR ? pairs - p : kNR;
    __m512i r[kNR];
    for (int j = 0; j < kNR; ++j) r[j] = _mm512_maskz_loadu_epi32(lanes(n), rows + j * stride + p);
    transpose16x16(r);
    for (int64_t c = 0; c < n; ++c) _mm512_storeu_si512(panel + (p + c) * kNR, r[c]);
  }
}

}  // namespace tg::kernels::sbgemm_detail
