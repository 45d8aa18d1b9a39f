// tapegrad's bf16 GEMM (kernels/sbgemm.h): every transpose combination, odd sizes and K, padded leading
// dimensions, alpha/beta/row bias, beta = 0 over NaN and K = 0 against a float64 loop over the
// bf16-rounded operands; the determinism invariant (the same bits for 1 and 2 threads, whole, row by row
// or as column blocks); the rounding of the operands (nearest even, NaN kept, denormals to zero).
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "framework/kernels/bf16.h"
#include "framework/kernels/sbgemm.h"
#include "support/gemm_check.h"
#include "support/process_support.h"
#include "support/test_support.h"
#include "tapegrad/framework/autocast.h"
#include "tapegrad/framework/runtime.h"

using namespace tg;
using Catch::Matchers::Contains;
using test::same_bits;

namespace {

// A case whose operands are seen rounded to bf16 (uniform values in [-1, 1) have no denormals).
struct Case : test::GemmCase {
  using GemmCase::GemmCase;
  double a(int64_t i, int64_t k) const { return kernels::round_bf16(stored_a(i, k)); }
  double b(int64_t k, int64_t j) const { return kernels::round_bf16(stored_b(k, j)); }
  std::vector<float> run(bool parallel, float alpha, float beta, std::vector<float> C, const float* row_bias) const {
    if (parallel) kernels::sbgemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, row_bias);
    else kernels::sbgemm_serial(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, row_bias);
    return C;
  }
};

// One variant of the case (test::require_gemm_result: the products of bf16 values are exact in float32, so
// the float32 bound holds against the float64 loop over the same rounded operands), parallel or serial.
void check_case(const Case& c, int variant, bool parallel) {
  INFO("parallel=" << parallel);
  const std::vector<float> C = c.run(parallel, test::kGemmAlpha, test::gemm_variant_beta(variant),
                                     test::gemm_start(c, variant), variant == 2 ? c.bias.data() : nullptr);
  test::require_gemm_result(c, C, variant);
}

bool skip() {
  if (kernels::sbgemm_cpu_supported()) return false;
  WARN("not run: this CPU has no AVX512_BF16");
  return true;
}

}  // namespace

TEST_CASE("sbgemm: matches a float64 loop over the bf16-rounded operands (transposes, odd sizes, strides, alpha, "
          "beta, bias)", "[kernels][gemm][bf16]") {
  if (skip()) return;
  uint32_t seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t M : {1, 2, 11, 12, 13, 23, 25, 97, 130})
        for (int64_t N : {1, 15, 16, 17, 33, 48, 70})
          for (int64_t K : {1, 2, 3, 17, 32, 70}) {
            const Case c(ta, tb, M, N, K, seed++);
            check_case(c, static_cast<int>(seed % 3), seed % 2 == 0);
          }
  // Long sums, tall and wide products (several tiles, narrow tiles for few of them, tiles converting their
  // own rows of op(A), C^T for a wide product with a long sum), each variant.
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int variant = 0; variant < 3; ++variant) {
        check_case(Case(ta, tb, 23, 37, 1277, seed++), variant, true);
        check_case(Case(ta, tb, 301, 29, 45, seed++), variant, true);
        check_case(Case(ta, tb, 50, 300, 64, seed++), variant, true);
        check_case(Case(ta, tb, 40, 200, 300, seed++), variant, true);   // computed as C^T (without bias)
      }
}

TEST_CASE("sbgemm: K = 0 gives beta * C, the row bias, or 0 over NaN", "[kernels][gemm][bf16]") {
  if (skip()) return;
  test::require_empty_sum_results(
      [](bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
         int64_t ldb, float beta, float* C, int64_t ldc, const float* bias) {
        kernels::sbgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
      },
      [](bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
         int64_t ldb, float beta, float* C, int64_t ldc, const float* bias) {
        kernels::sbgemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
      });
}

TEST_CASE("sbgemm: the same bits for 1 and 2 threads and for any split of the product", "[kernels][gemm][bf16]") {
  if (skip()) return;
  const int before = get_num_threads();
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      INFO("trans_a=" << ta << " trans_b=" << tb);
      for (const auto& [M, N] : {std::pair<int64_t, int64_t>{197, 283}, {60, 300}}) {
        // Tile-edge heavy: M, N not multiples of 12/16/96/128; K odd. 60 x 300 is computed as C^T.
        const Case c(ta, tb, M, N, 301, 7);
        set_num_threads(1);
        const std::vector<float> one = c.run(true, 0.75f, 0.5f, c.C0, nullptr);
        set_num_threads(2);
        const std::vector<float> two = c.run(true, 0.75f, 0.5f, c.C0, nullptr);
        REQUIRE(same_bits(one, two));
        std::vector<float> rows = c.C0, cols = c.C0;
        for (int64_t i = 0; i < c.M; ++i)   // op(A) row i starts at A + i, or A + i * lda
          kernels::sbgemm_serial(ta, tb, 1, c.N, c.K, 0.75f, c.A.data() + (ta ? i : i * c.lda), c.lda, c.B.data(),
                                 c.ldb, 0.5f, rows.data() + i * c.ldc, c.ldc);
        for (int64_t j0 = 0; j0 < c.N; j0 += 37)   // op(B) columns j0.. start at B + j0 * ldb, or B + j0
          kernels::sbgemm_serial(ta, tb, c.M, std::min<int64_t>(37, c.N - j0), c.K, 0.75f, c.A.data(), c.lda,
                                 c.B.data() + (tb ? j0 * c.ldb : j0), c.ldb, 0.5f, cols.data() + j0, c.ldc);
        REQUIRE(same_bits(one, rows));
        REQUIRE(same_bits(one, cols));
      }
    }
  set_num_threads(before);
}

namespace {
// An epilogue: every element of the tile squared, with a count of the elements it saw.
struct SquareCount {
  std::atomic<int64_t> seen{0};
};
void square_tile(const void* ctx, float* C, int64_t ldc, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) C[r * ldc + c] *= C[r * ldc + c];
  const_cast<SquareCount*>(static_cast<const SquareCount*>(ctx))->seen += (r1 - r0) * (c1 - c0);
}
}  // namespace

TEST_CASE("sbgemm: an epilogue sees every element of C once, after its sum (plain tiles, tiles converting their "
          "rows of A, C^T, K = 0)", "[kernels][gemm][bf16]") {
  if (skip()) return;
  // 50 x 70 x 40: serial, op(A) converted up front; 300 x 70 x 64: per tile; 40 x 200 x 300: C^T.
  for (const auto& [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{50, 70, 40}, {300, 70, 64}, {40, 200, 300},
                                {20, 30, 0}})
    for (bool ta : {false, true}) {
      INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta);
      const Case c(ta, true, M, N, K, static_cast<uint32_t>(M + K));
      std::vector<float> want = c.run(true, 0.5f, 0.25f, c.C0, nullptr);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          float& w = want[static_cast<size_t>(i * c.ldc + j)];
          w *= w;
        }
      SquareCount count;
      std::vector<float> got = c.C0;
      kernels::sbgemm(ta, true, M, N, K, 0.5f, c.A.data(), c.lda, c.B.data(), c.ldb, 0.25f, got.data(), c.ldc,
                      nullptr, {square_tile, &count});
      REQUIRE(same_bits(got, want));
      REQUIRE(count.seen == M * N);
    }
}

TEST_CASE("sbgemm: operands round to nearest even, NaN propagates, float32 denormals count as zero",
          "[kernels][gemm][bf16]") {
  if (skip()) return;
  // 1 x 1 products with K = 1: C = a * b, where b = 1.
  const auto times_one = [](float a) {
    const float one = 1.0f;
    float c = 0;
    kernels::sbgemm_serial(false, false, 1, 1, 1, 1.0f, &a, 1, &one, 1, 0.0f, &c, 1);
    return c;
  };
  REQUIRE(times_one(1.0f + 0x1p-8f) == 1.0f);                  // a tie: to the even 1.0
  REQUIRE(times_one(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);   // a tie: to the even 1 + 2^-6
  REQUIRE(times_one(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);
  REQUIRE(std::isnan(times_one(std::numeric_limits<float>::quiet_NaN())));
  REQUIRE(times_one(std::numeric_limits<float>::infinity()) == std::numeric_limits<float>::infinity());
  REQUIRE(times_one(std::numeric_limits<float>::denorm_min() * 1000) == 0.0f);
  REQUIRE(times_one(-std::numeric_limits<float>::denorm_min() * 1000) == 0.0f);   // +0 + (-0): +0
  REQUIRE(times_one(std::numeric_limits<float>::min()) == std::numeric_limits<float>::min());   // normal: kept
  // A pair's second element beyond an odd K is zero, not whatever follows the row.
  const float a[3] = {2.0f, 3.0f, std::numeric_limits<float>::quiet_NaN()}, b[3] = {5.0f, 7.0f, 1.0f};
  float c = 0;
  kernels::sbgemm_serial(false, false, 1, 1, 2, 1.0f, a, 3, b, 1, 0.0f, &c, 1);
  REQUIRE(c == 31.0f);
  kernels::sbgemm_serial(false, true, 1, 1, 1, 1.0f, a + 1, 3, b + 1, 3, 0.0f, &c, 1);
  REQUIRE(c == 21.0f);
}

TEST_CASE("sbgemm child: print the bf16 dispatch", "[.sbgemm_child]") {
  try {
    const bool own = kernels::native_bf16_gemm() == kernels::Bf16Gemm::tapegrad;
    std::printf("gemm=%s\n", own ? "tapegrad" : "onednn");
    if (bf16_native_available()) {
      set_bf16_mode(Bf16Mode::native);
      std::printf("%s\n", bf16_status().c_str());
    }
  } catch (const std::invalid_argument& e) {
    std::printf("threw: %s\n", e.what());
  }
}

TEST_CASE("sbgemm: TAPEGRAD_BF16_GEMM chooses the native bf16 GEMM and runtime_info says which",
          "[kernels][gemm][bf16][runtime]") {
  const auto child = [](const std::string& value) {
    return test::run_self_test_case("TAPEGRAD_BF16_GEMM=" + value, "sbgemm child: print the bf16 dispatch");
  };
  REQUIRE_THAT(child("mkl"), Contains("threw: [gemm_bf16] TAPEGRAD_BF16_GEMM must be 'tapegrad', 'onednn' or "
                                      "'auto'; got TAPEGRAD_BF16_GEMM=mkl"));
  const bool own = kernels::sbgemm_cpu_supported(), onednn = !kernels::onednn_version().empty();
  // Each choice where it can run; otherwise the other one.
  const std::string tapegrad = child("tapegrad"), forced_onednn = child("onednn");
  REQUIRE_THAT(tapegrad, Contains(own || !onednn ? "gemm=tapegrad" : "gemm=onednn"));
  REQUIRE_THAT(forced_onednn, Contains(onednn || !own ? "gemm=onednn" : "gemm=tapegrad"));
  if (!skip()) {
    REQUIRE_THAT(tapegrad, Contains("bf16: native (tapegrad AVX512_BF16 GEMM, "));
    if (onednn) REQUIRE_THAT(forced_onednn, Contains("bf16: native (oneDNN " + kernels::onednn_version()));
  }
}
