// tapegrad's float32 GEMM (kernels/sgemm.h) and the OpenBLAS path beside it: every transpose
// combination, odd sizes, padded leading dimensions, alpha/beta/row bias, beta = 0 over NaN and K = 0
// against a float64 loop; the determinism invariant (same bits for 1 and 2 threads, and for a product
// computed whole, row by row or as column blocks); the dispatch (TAPEGRAD_GEMM, runtime_info).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "framework/kernels/gemm.h"
#include "framework/kernels/sgemm.h"
#include "support/gemm_check.h"
#include "support/process_support.h"
#include "support/test_support.h"
#include "tapegrad/framework/runtime.h"

using namespace tg;
using Catch::Matchers::Contains;
using test::same_bits;

namespace {

using Gemm = test::GemmFn;

// A case whose operands are seen as stored.
struct Case : test::GemmCase {
  using GemmCase::GemmCase;
  double a(int64_t i, int64_t k) const { return stored_a(i, k); }
  double b(int64_t k, int64_t j) const { return stored_b(k, j); }
};

// One variant of the case (test::require_gemm_result) through gemm.
void check_case(Gemm gemm, const Case& c, int variant) {
  std::vector<float> C = test::gemm_start(c, variant);
  gemm(c.ta, c.tb, c.M, c.N, c.K, test::kGemmAlpha, c.A.data(), c.lda, c.B.data(), c.ldb,
       test::gemm_variant_beta(variant), C.data(), c.ldc, variant == 2 ? c.bias.data() : nullptr);
  test::require_gemm_result(c, C, variant);
}

void check_all(Gemm gemm) {
  const int64_t sizes[] = {1, 2, 5, 6, 7, 13, 16, 17, 31, 33, 70};
  uint32_t seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t M : sizes)
        for (int64_t N : {1, 7, 16, 17, 40, 70})
          for (int64_t K : {1, 3, 8, 17, 70}) {
            const Case c(ta, tb, M, N, K, seed++);
            check_case(gemm, c, static_cast<int>(seed % 3));
          }
  // Longer K (several KC blocks); leading dimensions of A >= 1024 that are multiples of 256 (A's block
  // copied per tile: K + 3 = 1280 untransposed, M + 3 = 1024 transposed) and ones that are not (1033: read
  // in place untransposed, copied transposed); a short wide product (B read in place over two column
  // tiles); each variant.
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int variant = 0; variant < 3; ++variant) {
        check_case(gemm, Case(ta, tb, 23, 37, 1277, seed++), variant);
        check_case(gemm, Case(ta, tb, 23, 37, 1030, seed++), variant);
        check_case(gemm, Case(ta, tb, 1021, 5, 7, seed++), variant);
        check_case(gemm, Case(ta, tb, 1030, 5, 7, seed++), variant);
        check_case(gemm, Case(ta, tb, 50, 200, 20, seed++), variant);
      }
}

void tapegrad_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias) {
  kernels::sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
}

void openblas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias) {
  kernels::gemm_openblas<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
}

// C = alpha * op(A) op(B) + beta * C0 of a case through `run`, which may split the product as it likes.
template <class Run> std::vector<float> product(const Case& c, Run run) {
  std::vector<float> C = c.C0;
  run(C.data());
  return C;
}

}  // namespace

TEST_CASE("sgemm: tapegrad's kernel matches a float64 loop (transposes, odd sizes, strides, alpha, beta, bias)",
          "[kernels][gemm]") {
  if (!kernels::sgemm_cpu_supported()) {
    WARN("not run: this CPU cannot run tapegrad's sgemm (no AVX2/FMA)");
    return;
  }
  check_all(tapegrad_gemm);
}

TEST_CASE("sgemm: the OpenBLAS path matches a float64 loop (transposes, odd sizes, strides, alpha, beta, bias)",
          "[kernels][gemm]") {
  check_all(openblas_gemm);
}

TEST_CASE("sgemm: K = 0 gives beta * C, the row bias, or 0 over NaN", "[kernels][gemm]") {
  if (!kernels::sgemm_cpu_supported()) {
    WARN("not run: this CPU cannot run tapegrad's sgemm (no AVX2/FMA)");
    return;
  }
  test::require_empty_sum_results(tapegrad_gemm, [](bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                                                    const float* A, int64_t lda, const float* B, int64_t ldb,
                                                    float beta, float* C, int64_t ldc, const float* bias) {
    kernels::sgemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
  });
}

TEST_CASE("sgemm: the same bits for 1 and 2 threads and for any split of the product", "[kernels][gemm][determinism]") {
  if (!kernels::sgemm_cpu_supported()) {
    WARN("not run: this CPU cannot run tapegrad's sgemm (no AVX2/FMA)");
    return;
  }
  const int before = get_num_threads();
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      INFO("trans_a=" << ta << " trans_b=" << tb);
      // Tile-edge heavy: M, N not multiples of 6/16/96/128, K over several KC blocks.
      const Case c(ta, tb, 197, 283, 700, 7);
      const auto whole = [&](float* C) {
        kernels::sgemm(ta, tb, c.M, c.N, c.K, 0.75f, c.A.data(), c.lda, c.B.data(), c.ldb, 0.5f, C, c.ldc);
      };
      set_num_threads(1);
      const std::vector<float> one = product(c, whole);
      set_num_threads(2);
      const std::vector<float> two = product(c, whole);
      REQUIRE(same_bits(one, two));
      // Row by row through gemm_serial (op(A) row i starts at A + i, or A + i * lda).
      const std::vector<float> rows = product(c, [&](float* C) {
        for (int64_t i = 0; i < c.M; ++i)
          kernels::gemm_serial<float>(ta, tb, 1, c.N, c.K, 0.75f, c.A.data() + (ta ? i : i * c.lda), c.lda,
                                      c.B.data(), c.ldb, 0.5f, C + i * c.ldc, c.ldc);
      });
      // Column blocks of 37 (op(B) columns j0.. start at B + j0 * ldb, or B + j0).
      const std::vector<float> cols = product(c, [&](float* C) {
        for (int64_t j0 = 0; j0 < c.N; j0 += 37)
          kernels::gemm_serial<float>(ta, tb, c.M, std::min<int64_t>(37, c.N - j0), c.K, 0.75f, c.A.data(), c.lda,
                                      c.B.data() + (tb ? j0 * c.ldb : j0), c.ldb, 0.5f, C + j0, c.ldc);
      });
      if (kernels::sgemm_active()) {
        REQUIRE(same_bits(one, rows));
        REQUIRE(same_bits(one, cols));
      }
    }
  set_num_threads(before);
}

TEST_CASE("sgemm: uneven tile rows and shared last slivers give the same bits as row by row",
          "[kernels][gemm][determinism]") {
  if (!kernels::sgemm_active()) {
    WARN("not run: tapegrad's sgemm is not active");
    return;
  }
  const int before = get_num_threads();
  // M = 32: 6 + 6 + 6 + 6 + 4 + 4 rows; M = 128: tiles of 66 + 62 rows (62 = 9 x 6 + 4 + 4);
  // M = 201: tiles of 66 + 66 + 69 rows, 69 ending 6 + 5 + 4; M = 99: tiles of 48 + 51 rows. Row by row
  // (and M = 32 whole) runs products one tile high whose tiles pack their own blocks of the transposed B
  // (two KC blocks: K = 330); 99 x 300 whole runs as C^T (at least twice as wide as high, micro-tiles stored
  // transposed). So this also checks that both keep the plain form's bits.
  for (const auto& [M, N] : {std::pair<int64_t, int64_t>{32, 40}, {99, 40}, {128, 40}, {201, 40}, {99, 300}}) {
    INFO("M=" << M << " N=" << N);
    const Case c(false, true, M, N, 330, static_cast<uint32_t>(M + N));
    set_num_threads(2);
    const std::vector<float> whole = product(c, [&](float* C) {
      kernels::sgemm(false, true, c.M, c.N, c.K, 1.25f, c.A.data(), c.lda, c.B.data(), c.ldb, -0.5f, C, c.ldc);
    });
    const std::vector<float> rows = product(c, [&](float* C) {
      for (int64_t i = 0; i < c.M; ++i)
        kernels::sgemm_serial(false, true, 1, c.N, c.K, 1.25f, c.A.data() + i * c.lda, c.lda, c.B.data(), c.ldb,
                              -0.5f, C + i * c.ldc, c.ldc);
    });
    REQUIRE(same_bits(whole, rows));
    check_case(tapegrad_gemm, c, 1);
  }
  set_num_threads(before);
}

TEST_CASE("sgemm: gemm, gemm_serial and gemm_batched give the same bits in float32", "[kernels][gemm][determinism]") {
  const Case c(false, true, 130, 150, 400, 9);
  const std::vector<float> par = product(c, [&](float* C) {
    kernels::gemm<float>(false, true, c.M, c.N, c.K, 1.0f, c.A.data(), c.lda, c.B.data(), c.ldb, 0.0f, C, c.ldc);
  });
  const std::vector<float> ser = product(c, [&](float* C) {
    kernels::gemm_serial<float>(false, true, c.M, c.N, c.K, 1.0f, c.A.data(), c.lda, c.B.data(), c.ldb, 0.0f, C,
                                c.ldc);
  });
  // Two batch items: the product and itself again (stride 0 broadcasts A and B; C items 1 apart in rows).
  std::vector<float> batched(static_cast<size_t>(2 * c.M * c.ldc));
  kernels::gemm_batched<float>(2, false, true, c.M, c.N, c.K, 1.0f, c.A.data(), c.lda, 0, c.B.data(), c.ldb, 0, 0.0f,
                               batched.data(), c.ldc, c.M * c.ldc);
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) {
      const size_t at = static_cast<size_t>(i * c.ldc + j), at2 = at + static_cast<size_t>(c.M * c.ldc);
      REQUIRE(std::memcmp(&par[at], &ser[at], sizeof(float)) == 0);
      REQUIRE(std::memcmp(&par[at], &batched[at], sizeof(float)) == 0);
      REQUIRE(std::memcmp(&par[at], &batched[at2], sizeof(float)) == 0);
    }
}

// Run as a child by the next test, under a chosen TAPEGRAD_GEMM: prints what the dispatch decided.
TEST_CASE("sgemm: a product from op(B) packed once (its first K rows, n columns) gives sgemm_serial's bits",
          "[kernels][gemm][determinism]") {
  if (!kernels::sgemm_cpu_supported()) {
    WARN("not run: this CPU cannot run tapegrad's sgemm (no AVX2/FMA)");
    return;
  }
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t M : {50, 197}) {   // one tile high (B read in place by sgemm_serial when untransposed) or not
        const Case c(ta, tb, M, 283, 700, 11);   // K over several KC blocks, N ending in a partial panel
        std::vector<float> packed(static_cast<size_t>(kernels::sgemm_packed_b_floats(c.N, c.K)),
                                  std::numeric_limits<float>::quiet_NaN());
        kernels::sgemm_pack_b(c.tb, c.N, c.K, c.B.data(), c.ldb, packed.data());
        // The first n columns and the first K rows of the packed op(B) (op(A)'s first K columns).
        for (int64_t n : {c.N, int64_t{150}, int64_t{16}, int64_t{1}})
          for (int64_t K : {c.K, int64_t{300}, int64_t{5}}) {
            INFO("trans_a=" << ta << " trans_b=" << tb << " M=" << M << " n=" << n << " K=" << K);
            const std::vector<float> want = product(c, [&](float* C) {
              kernels::sgemm_serial(ta, tb, M, n, K, 0.75f, c.A.data(), c.lda, c.B.data(), c.ldb, 0.5f, C, c.ldc);
            });
            const std::vector<float> got = product(c, [&](float* C) {
              kernels::sgemm_serial_packed_b(ta, M, n, K, 0.75f, c.A.data(), c.lda, packed.data(), c.K, 0.5f, C,
                                             c.ldc);
            });
            REQUIRE(same_bits(want, got));
            REQUIRE(got[0] != c.C0[0]);   // the product was written
          }
      }
}

TEST_CASE("sgemm: a parallel product of fewer than 4 tiles (cut into half-width tiles) gives the serial bits",
          "[kernels][gemm][determinism]") {
  if (!kernels::sgemm_active()) {
    WARN("not run: tapegrad's sgemm is not active");
    return;
  }
  const int before = get_num_threads();
  // Weight gradients dY^T X: the tiny LM's head (65 x 128) and out-projection (128 x 128) from 768 tokens
  // (one and two 128-column tiles), and 200 x 100 (three tile rows; columns halved into 64 + 36).
  const int64_t shapes[][3] = {{65, 128, 768}, {128, 128, 768}, {200, 100, 600}};
  for (const auto& s : shapes) {
    INFO("M=" << s[0] << " N=" << s[1] << " K=" << s[2]);
    const Case c(true, false, s[0], s[1], s[2], static_cast<uint32_t>(s[0] + s[1]));
    set_num_threads(2);
    const std::vector<float> whole = product(c, [&](float* C) {
      kernels::sgemm(true, false, c.M, c.N, c.K, 1.0f, c.A.data(), c.lda, c.B.data(), c.ldb, 0.0f, C, c.ldc);
    });
    const std::vector<float> serial = product(c, [&](float* C) {
      kernels::sgemm_serial(true, false, c.M, c.N, c.K, 1.0f, c.A.data(), c.lda, c.B.data(), c.ldb, 0.0f, C, c.ldc);
    });
    REQUIRE(same_bits(whole, serial));
    check_case(tapegrad_gemm, c, 2);
  }
  set_num_threads(before);
}

TEST_CASE("sgemm: a parallel product of up to 768 rows reads a small untransposed B in place, with the packed "
          "product's bits", "[kernels][gemm][determinism]") {
  if (!kernels::sgemm_active()) {
    WARN("not run: tapegrad's sgemm is not active");
    return;
  }
  const int before = get_num_threads();
  set_num_threads(2);
  // The tiny LM's backward products (dX = dY W: 768 x 128 from 384; dW = dY^T X: 128 x 128 from 768 tokens),
  // odd sizes with a last partial panel, and the bounds' other sides: 769 rows, and B of 2^17 + 16 floats
  // (both packed). sgemm_serial always packs a B of more than 96 rows' product; so does the parallel product
  // when B's rows are 1024 floats apart or more.
  const int64_t shapes[][4] = {{0, 768, 128, 384}, {1, 128, 128, 768}, {0, 300, 100, 77},
                               {1, 97, 50, 999},   {0, 769, 64, 200},  {0, 700, 48, 2731}};
  for (const auto& s : shapes) {
    const bool ta = s[0] == 1;
    INFO("trans_a=" << ta << " M=" << s[1] << " N=" << s[2] << " K=" << s[3]);
    const Case c(ta, false, s[1], s[2], s[3], static_cast<uint32_t>(s[1] * 7 + s[3]));
    const std::vector<float> parallel = product(c, [&](float* C) {
      kernels::sgemm(ta, false, c.M, c.N, c.K, 1.0f, c.A.data(), c.lda, c.B.data(), c.ldb, 0.0f, C, c.ldc);
    });
    const std::vector<float> serial = product(c, [&](float* C) {
      kernels::sgemm_serial(ta, false, c.M, c.N, c.K, 1.0f, c.A.data(), c.lda, c.B.data(), c.ldb, 0.0f, C, c.ldc);
    });
    std::vector<float> wide(static_cast<size_t>(c.K * 1024));
    for (int64_t k = 0; k < c.K; ++k)
      std::copy_n(c.B.data() + k * c.ldb, c.N, wide.data() + k * 1024);
    const std::vector<float> packed = product(c, [&](float* C) {
      kernels::sgemm(ta, false, c.M, c.N, c.K, 1.0f, c.A.data(), c.lda, wide.data(), 1024, 0.0f, C, c.ldc);
    });
    REQUIRE(same_bits(parallel, serial));
    REQUIRE(same_bits(parallel, packed));
    check_case(tapegrad_gemm, c, 1);
  }
  set_num_threads(before);
}

TEST_CASE("sgemm: a transposed A whose columns are a multiple of 512 floats apart is copied per tile, with the "
          "bits of reading it in place", "[kernels][gemm][determinism]") {
  REQUIRE(kernels::sgemm_copies_a(true, 512));
  REQUIRE(kernels::sgemm_copies_a(true, 1536));
  REQUIRE(kernels::sgemm_copies_a(true, 1100));   // >= 1024 apart: whatever the stride
  REQUIRE_FALSE(kernels::sgemm_copies_a(true, 256));
  REQUIRE_FALSE(kernels::sgemm_copies_a(true, 520));
  REQUIRE_FALSE(kernels::sgemm_copies_a(false, 512));
  if (!kernels::sgemm_active()) {
    WARN("not run: tapegrad's sgemm is not active");
    return;
  }
  const int before = get_num_threads();
  set_num_threads(2);
  // The tiny LM's FFN weight gradient dY^T X (512 x 128 from 768 tokens) with dY's rows 512 apart (copied)
  // and the same values 520 apart (read in place).
  const Case c(true, false, 512, 128, 768, 31);
  std::vector<float> a512(static_cast<size_t>(c.K * 512)), a520(static_cast<size_t>(c.K * 520));
  for (int64_t k = 0; k < c.K; ++k)
    for (int64_t i = 0; i < c.M; ++i)
      a512[static_cast<size_t>(k * 512 + i)] = a520[static_cast<size_t>(k * 520 + i)] =
          c.A[static_cast<size_t>(k * c.lda + i)];
  const auto run = [&](const std::vector<float>& a, int64_t lda) {
    return product(c, [&](float* C) {
      kernels::sgemm(true, false, c.M, c.N, c.K, 1.0f, a.data(), lda, c.B.data(), c.ldb, 0.0f, C, c.ldc);
    });
  };
  REQUIRE(same_bits(run(a512, 512), run(a520, 520)));
  check_case(tapegrad_gemm, c, 0);
  set_num_threads(before);
}

TEST_CASE("sgemm: every element is the documented sequence, bit for bit: fma over k in order, alpha * sum, "
          "then fma with beta * C or the bias", "[kernels][gemm][determinism]") {
  // 300 products from a fixed stream through sgemm (1 or 2 threads), sgemm_serial and the packed-B entry:
  // sizes around the 6-row slivers, 16-column panels and 96-row tiles, K over several KC blocks, padded
  // and power-of-two leading dimensions (A copied per tile), products one tile high (B read in place, or packed
  // by the tiles themselves), wide products (C^T). Each against the scalar sequence of kernels/sgemm.h's
  // determinism invariant.
  if (!kernels::sgemm_cpu_supported()) {
    WARN("not run: this CPU cannot run tapegrad's sgemm (no AVX2/FMA)");
    return;
  }
  std::mt19937 pick(77);
  const auto below = [&](uint32_t n) { return static_cast<int64_t>(pick() % n); };
  const int64_t sizes[] = {1, 5, 6, 7, 12, 17, 40, 96, 97, 130, 200, 400};
  const int threads_before = get_num_threads();
  for (int n = 0; n < 300; ++n) {
    const bool ta = below(2), tb = below(2);
    const int64_t M = sizes[below(12)], N = sizes[below(12)];
    const int64_t K = below(6) == 0 ? 300 + below(800) : sizes[below(12)];
    Case c(ta, tb, M, N, K, static_cast<uint32_t>(500 + n));
    if (below(8) == 0) {   // A's rows (or columns) 1024 or 1280 floats apart, a transposed A's also 512
      c.lda = ta && below(3) == 0 ? 512 : below(2) == 0 ? 1024 : 1280;
      c.A.resize(static_cast<size_t>((ta ? K : M) * c.lda));
      for (size_t i = 0; i < c.A.size(); ++i) c.A[i] = std::sin(0.37f * static_cast<float>(i));
    }
    const int variant = static_cast<int>(below(3)), path = static_cast<int>(below(3));   // beta 0 / beta / bias
    const float alpha = below(2) ? 1.0f : 0.37f, beta = variant == 1 ? 0.61f : 0.0f;
    const float* bias = variant == 2 ? c.bias.data() : nullptr;
    const float *A = c.A.data(), *B = c.B.data();
    INFO("case " << n << ": trans_a=" << ta << " trans_b=" << tb << " M=" << M << " N=" << N << " K=" << K
                 << " lda=" << c.lda << " variant=" << variant << " path=" << path);
    set_num_threads(1 + static_cast<int>(below(2)));
    const std::vector<float> got = product(c, [&](float* C) {
      if (path == 0) return kernels::sgemm(ta, tb, M, N, K, alpha, A, c.lda, B, c.ldb, beta, C, c.ldc, bias);
      if (path == 1 || bias)
        return kernels::sgemm_serial(ta, tb, M, N, K, alpha, A, c.lda, B, c.ldb, beta, C, c.ldc, bias);
      std::vector<float> packed(static_cast<size_t>(kernels::sgemm_packed_b_floats(N, K)));
      kernels::sgemm_pack_b(tb, N, K, B, c.ldb, packed.data());
      kernels::sgemm_serial_packed_b(ta, M, N, K, alpha, A, c.lda, packed.data(), K, beta, C, c.ldc);
    });
    std::vector<float> want = c.C0;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k)
          acc = std::fmaf(static_cast<float>(c.a(i, k)), static_cast<float>(c.b(k, j)), acc);
        float& out = want[static_cast<size_t>(i * c.ldc + j)];
        const float scaled = alpha * acc;
        out = bias ? std::fmaf(1.0f, bias[j], scaled) : beta != 0.0f ? std::fmaf(beta, out, scaled) : scaled;
      }
    REQUIRE(same_bits(want, got));
  }
  set_num_threads(threads_before);
}

TEST_CASE("sgemm child: print the dispatch", "[.sgemm_child]") {
  try {
    std::printf("active=%d\n%s\n", kernels::sgemm_active() ? 1 : 0, runtime_info().c_str());
  } catch (const std::invalid_argument& e) {
    std::printf("threw: %s\n", e.what());
  }
}

TEST_CASE("sgemm: TAPEGRAD_GEMM chooses the kernel and runtime_info says which", "[kernels][gemm][runtime]") {
  const auto child = [](const std::string& value) {
    return test::run_self_test_case("TAPEGRAD_GEMM=" + value, "sgemm child: print the dispatch");
  };
  const std::string forced = child("openblas");
  REQUIRE_THAT(forced, Contains("active=0"));
  REQUIRE_THAT(forced, Contains("| GEMM: OpenBLAS " + blas_core() + " |"));
  const std::string automatic = child("auto");
  if (kernels::sgemm_cpu_supported()) {
    REQUIRE_THAT(automatic, Contains("active=1"));
    REQUIRE_THAT(automatic, Contains("| GEMM: tapegrad " + kernels::sgemm_isa() + " kernel (float32), OpenBLAS " +
                                            blas_core() + " (float64) |"));
    __builtin_cpu_init();
    REQUIRE(kernels::sgemm_isa() == (__builtin_cpu_supports("avx512f") ? "AVX-512" : "AVX2"));
  } else {
    REQUIRE_THAT(automatic, Contains("active=0"));
  }
  REQUIRE_THAT(child("mkl"),
               Contains("threw: [gemm] TAPEGRAD_GEMM must be 'openblas' or 'auto'; got TAPEGRAD_GEMM=mkl"));
  // This process: the default (unless the environment already chose).
  if (std::getenv("TAPEGRAD_GEMM") == nullptr) REQUIRE(kernels::sgemm_active() == kernels::sgemm_cpu_supported());
}
