#include "framework/kernels/activation.h"

#include <cmath>

#include "framework/kernels/fast_math.h"
#include "framework/kernels/parallel.h"

namespace tg::kernels {
namespace {

constexpr int64_t kGrain = 16384;

// e^z for float through the shared vectorisable exp (clamped below, where it is 0 anyway).
inline float exp_approx(float z) { return exp_nonpositive(z < kExpArgMin<float> ? kExpArgMin<float> : z); }

// erfc(z) for z >= 0 (Numerical Recipes erfcc: fractional error < 1.2e-7).
inline float erfc_nonneg(float z) {
  float t = 1.0f / (1.0f + 0.5f * z);
  float poly = -0.82215223f + t * 0.17087277f;
  poly = 1.48851587f + t * poly;
  poly = -1.13520398f + t * poly;
  poly = 0.27886807f + t * poly;
  poly = -0.18628806f + t * poly;
  poly = 0.09678418f + t * poly;
  poly = 0.37409196f + t * poly;
  poly = 1.00002368f + t * poly;
  return t * exp_approx(-z * z - 1.26551223f + t * poly);
}

// Phi(x) = P(N(0,1) <= x) = 0.5 * erfc(-x / sqrt(2)).
inline float normal_cdf(float x) {
  float u = x * 0.70710678118654752f;
  float e = erfc_nonneg(u < 0 ? -u : u);
  return u >= 0 ? 1.0f - 0.5f * e : 0.5f * e;
}

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

}  // namespace

template <> void gelu_forward<float>(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = x[i] * normal_cdf(x[i]);
  });
}

template <> void gelu_backward<float>(const float* x, const float* dy, float* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float v = x[i];
      float pdf = 0.39894228040143267794f * exp_approx(-0.5f * v * v);
      dx[i] = dy[i] * (normal_cdf(v) + v * pdf);
    }
  });
}

template <> void gelu_forward<double>(const double* x, double* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = 0.5 * x[i] * (1.0 + std::erf(x[i] * kInvSqrt2));
  });
}

template <> void gelu_backward<double>(const double* x, const double* dy, double* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double v = x[i];
      dx[i] = dy[i] * (0.5 * (1.0 + std::erf(v * kInvSqrt2)) + v * kInvSqrt2Pi * std::exp(-0.5 * v * v));
    }
  });
}

}  // namespace tg::kernels
