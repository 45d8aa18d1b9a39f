#pragma once
// The float64 check of a GEMM test case's result, shared by the float32 and bf16 GEMM tests.
#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

namespace tg::test {

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

}  // namespace tg::test
