// The micro-kernels of tapegrad's float32 GEMM (kernels/sgemm_kernel.h) give the same bits: the 12 x 16
// AVX-512 one and its two-panel form against the 6 x 16 AVX2 one run as 6-row slivers, over every row count,
// edge column counts, A by rows or by columns, B packed or with a longer stride, KC blocks continued
// through the partial-sum tile, alpha/beta, a row bias and the transposed store.
#include <cstring>
#include <vector>

#include "framework/kernels/sgemm.h"
#include "framework/kernels/sgemm_kernel.h"
#include "support/test_support.h"

using namespace tg::kernels;
using sgemm_detail::kMR;
using sgemm_detail::kMRMax;
using sgemm_detail::kNR;
using sgemm_detail::TileOut;

namespace {

struct Setting {
  bool a_rows, transposed, bias;
  int m, n;
  int64_t ldb;
  float alpha, beta;
};

enum class Kernel { avx2, avx512, avx512_pair };

// C of the m x (16 + n) tile of two panels (columns 16.. at B + 16; stored at a stride of 40, or
// transposed) computed over K = 2 x 37 in two KC blocks: per panel the AVX-512 kernel, or the AVX2 kernel
// on rows [0, 6) and [6, m); or both panels in one pass of the AVX-512 pair kernel.
std::vector<float> tile(const Setting& s, Kernel kernel) {
  constexpr int64_t K = 74, kc = 37, lda = 80, ldc = 40;
  const std::vector<float> a = tg::test::uniform_floats(kMRMax * lda + K * lda, 1);
  const std::vector<float> b = tg::test::uniform_floats(K * s.ldb, 2);
  const std::vector<float> cin = tg::test::uniform_floats(ldc * ldc, 3);
  std::vector<float> c(static_cast<size_t>(ldc * ldc), -7.0f), acc(static_cast<size_t>(2 * kMRMax * kNR));
  const int rows = kernel == Kernel::avx2 ? kMR : kMRMax;
  for (int64_t r0 = 0; r0 < s.m; r0 += rows) {
    TileOut o[2];
    for (int q = 0; q < 2; ++q) {
      const int64_t j = q * kNR;
      o[q].m = std::min<int>(rows, s.m - static_cast<int>(r0));
      o[q].n = q == 0 ? kNR : s.n;
      o[q].alpha = s.alpha;
      o[q].beta = s.bias ? 1.0f : s.beta;
      o[q].transposed = s.transposed;
      o[q].acc = acc.data() + q * kMRMax * kNR;
      o[q].ldc = ldc;
      o[q].c = s.transposed ? c.data() + j * ldc + r0 : c.data() + r0 * ldc + j;
      o[q].ldcin = s.bias ? 0 : ldc;
      const float* in = s.transposed ? cin.data() + j * ldc + r0 : cin.data() + r0 * ldc + j;
      o[q].cin = s.bias ? cin.data() + (s.transposed ? r0 : j) : in;
    }
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const float* ak = s.a_rows ? a.data() + r0 * lda + k0 : a.data() + k0 * lda + r0;
      const float* bk = b.data() + k0 * s.ldb;
      for (TileOut& t : o) {
        t.first = k0 == 0;
        t.last = k0 + kc == K;
      }
      if (kernel == Kernel::avx512_pair) {
        sgemm_detail::micro_kernel_avx512_pair(s.a_rows, kc, ak, lda, bk, bk + kNR, s.ldb, o[0], o[1]);
        continue;
      }
      for (int q = 0; q < 2; ++q) {
        const auto run = kernel == Kernel::avx512 ? sgemm_detail::micro_kernel_avx512 : sgemm_detail::micro_kernel;
        run(s.a_rows, kc, ak, lda, bk + q * kNR, s.ldb, o[q]);
      }
    }
  }
  return c;
}

}  // namespace

TEST_CASE("sgemm kernels: the AVX-512 micro-kernels, one panel or two, give the AVX2 micro-kernel's bits",
          "[kernels][gemm][determinism]") {
  __builtin_cpu_init();
  if (!sgemm_cpu_supported() || !__builtin_cpu_supports("avx512f")) {
    WARN("not run: this CPU has no AVX-512F (the AVX2 kernel alone runs here)");
    return;
  }
  REQUIRE(sgemm_isa() == "AVX-512");
  int compared = 0;
  for (bool a_rows : {true, false})
    for (bool transposed : {false, true})
      for (int m = 1; m <= kMRMax; ++m)
        for (int n : {16, 13, 8, 3})
          for (int64_t ldb : {int64_t{32}, int64_t{37}}) {
            const Setting plain{a_rows, transposed, false, m, n, ldb, 1.0f, 0.0f};
            const Setting scaled{a_rows, transposed, false, m, n, ldb, 0.375f, -1.25f};
            const Setting bias{a_rows, transposed, true, m, n, ldb, 1.0f, 0.0f};
            for (const Setting& s : {plain, scaled, bias}) {
              INFO("a_rows " << a_rows << " transposed " << transposed << " m " << m << " n " << n << " ldb " << ldb
                             << " alpha " << s.alpha << " beta " << s.beta << " bias " << s.bias);
              const std::vector<float> narrow = tile(s, Kernel::avx2);
              REQUIRE(tg::test::same_bits(tile(s, Kernel::avx512), narrow));
              REQUIRE(tg::test::same_bits(tile(s, Kernel::avx512_pair), narrow));
              ++compared;
            }
          }
  REQUIRE(compared == 2 * 2 * 12 * 4 * 2 * 3);
}
