#pragma once
// The float64 check of a GEMM test case's result, shared by the float32 and bf16 GEMM tests.
#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

namespace tg::test {

std::vector<float> uniform_floats(int64_t n, uint32_t seed);   // support/test_support.h

// One product's operands, uniform in [-1, 1): op(A) [M, K] and op(B) [K, N] stored with leading dimensions
// padded by 3, C0 [M, N + 3], a bias [N]. A test's case adds a(i, k) and b(k, j): the operands as its GEMM
// sees them (stored_a / stored_b, or those rounded).
struct GemmCase {
  bool ta, tb;
  int64_t M, N, K;
  int64_t lda, ldb, ldc;
  std::vector<float> A, B, C0, bias;

  GemmCase(bool ta_, bool tb_, int64_t M_, int64_t N_, int64_t K_, uint32_t seed)
      : ta(ta_), tb(tb_), M(M_), N(N_), K(K_), lda((ta_ ? M_ : K_) + 3), ldb((tb_ ? K_ : N_) + 3), ldc(N_ + 3),
        A(uniform_floats((ta ? K : M) * lda, seed)), B(uniform_floats((tb ? N : K) * ldb, seed + 1000)),
        C0(uniform_floats(M * ldc, seed + 2000)), bias(uniform_floats(N, seed + 3000)) {}
  float stored_a(int64_t i, int64_t k) const { return A[static_cast<size_t>(ta ? k * lda + i : i * lda + k)]; }
  float stored_b(int64_t k, int64_t j) const { return B[static_cast<size_t>(tb ? j * ldb + k : k * ldb + j)]; }
};

// Variants of a GEMM check: 0: beta = 0 over a C full of NaN; 1: beta = 0.5; 2: a row bias; alpha = 1.5.
inline float gemm_variant_beta(int variant) { return variant == 1 ? 0.5f : 0.0f; }
constexpr float kGemmAlpha = 1.5f;

// C as the case's start (C0, or NaN everywhere for variant 0).
template <class Case> std::vector<float> gemm_start(const Case& c, int variant) {
  return variant == 0 ? std::vector<float>(c.C0.size(), std::nanf("")) : c.C0;
}

// REQUIREs C = kGemmAlpha * op(A) op(B) + (beta * C0 | bias) against a float64 loop over c.a(i, k), c.b(k, j)
// within the float32 error bound (K + 2) * 2^-23 * (|alpha| sum |a b| + |beta c| + |bias|), and the padding
// columns of C (j >= N) untouched. Case: ta, tb, M, N, K, ldc, C0, bias, a(i, k), b(k, j).
template <class Case> void require_gemm_result(const Case& c, const std::vector<float>& C, int variant) {
  const double alpha = kGemmAlpha, beta = gemm_variant_beta(variant);
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) {
      double acc = 0, mag = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        acc += c.a(i, k) * c.b(k, j);
        mag += std::abs(c.a(i, k) * c.b(k, j));
      }
      const double c0 = c.C0[static_cast<size_t>(i * c.ldc + j)], bj = c.bias[static_cast<size_t>(j)];
      const double add = variant == 1 ? beta * c0 : variant == 2 ? bj : 0.0;
      const double ref = alpha * acc + add;
      const double tol = static_cast<double>(c.K + 2) * 0x1p-23 * (alpha * mag + std::abs(add)) + 1e-30;
      const float got = C[static_cast<size_t>(i * c.ldc + j)];
      if (!(std::abs(got - ref) <= tol)) {
        INFO("ta=" << c.ta << " tb=" << c.tb << " M=" << c.M << " N=" << c.N << " K=" << c.K << " variant=" << variant
                   << " i=" << i << " j=" << j << " got=" << got << " ref=" << ref);
        REQUIRE(std::abs(got - ref) <= tol);
      }
    }
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = c.N; j < c.ldc; ++j) {
      const float got = C[static_cast<size_t>(i * c.ldc + j)];
      REQUIRE((variant == 0 ? std::isnan(got) : got == c.C0[static_cast<size_t>(i * c.ldc + j)]));
    }
}

using GemmFn = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                        float, float*, int64_t, const float*);

// REQUIREs that K = 0 gives C = beta * C, the row bias, or 0 over NaN when beta = 0, through a parallel and
// a serial entry point (the operands, never read, are null).
inline void require_empty_sum_results(GemmFn parallel, GemmFn serial) {
  const float bias[3] = {1, 2, 3};
  std::vector<float> C = {4, 5, 6, 7, 8, 9};
  parallel(false, false, 2, 3, 0, 1.0f, nullptr, 1, nullptr, 3, 0.5f, C.data(), 3, nullptr);
  REQUIRE(C == std::vector<float>{2, 2.5f, 3, 3.5f, 4, 4.5f});
  serial(true, true, 2, 3, 0, 1.0f, nullptr, 1, nullptr, 1, 0.0f, C.data(), 3, bias);
  REQUIRE(C == std::vector<float>{1, 2, 3, 1, 2, 3});
  C.assign(6, std::nanf(""));
  parallel(false, true, 2, 3, 0, 1.0f, nullptr, 1, nullptr, 1, 0.0f, C.data(), 3, nullptr);
  REQUIRE(C == std::vector<float>(6, 0.0f));
}

}  // namespace tg::test
