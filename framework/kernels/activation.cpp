#include "framework/kernels/activation.h"

#include <algorithm>
#include <cmath>

#include "framework/kernels/fast_math.h"
#include "framework/kernels/parallel.h"
#include "framework/kernels/simd.h"

namespace tg::kernels {
namespace {

constexpr int64_t kGrain = 16384;

constexpr int64_t kChunk = 256;   // elements per pass of the float kernels (stack buffers)

// Phi(x) = P(N(0,1) <= x) = 0.5 * erfc(-x / sqrt(2)) for n <= kChunk floats, with Numerical Recipes'
// erfc (fractional error < 1.2e-7) through the shared exp. Several simple loops instead of one, so
// that each vectorises (a select or clamp inside a long loop body stops GCC's vectoriser).
inline void normal_cdf(const float* x, float* cdf, int64_t n) {
  float z[kChunk], t[kChunk], a[kChunk];
  for (int64_t i = 0; i < n; ++i) {
    float u = x[i] * 0.70710678118654752f;
    z[i] = u < 0 ? -u : u;
  }
  for (int64_t i = 0; i < n; ++i) {
    float tt = 1.0f / (1.0f + 0.5f * z[i]);
    float poly = -0.82215223f + tt * 0.17087277f;
    poly = 1.48851587f + tt * poly;
    poly = -1.13520398f + tt * poly;
    poly = 0.27886807f + tt * poly;
    poly = -0.18628806f + tt * poly;
    poly = 0.09678418f + tt * poly;
    poly = 0.37409196f + tt * poly;
    poly = 1.00002368f + tt * poly;
    t[i] = tt;
    a[i] = -z[i] * z[i] - 1.26551223f + tt * poly;
  }
  for (int64_t i = 0; i < n; ++i) a[i] = a[i] < kExpArgMin<float> ? kExpArgMin<float> : a[i];
  for (int64_t i = 0; i < n; ++i) a[i] = 0.5f * t[i] * exp_nonpositive(a[i]);   // erfc(|u|) / 2
  for (int64_t i = 0; i < n; ++i) {   // both sides computed, so the select vectorises (no branch)
    float upper = 1.0f - a[i];
    cdf[i] = x[i] >= 0 ? upper : a[i];
  }
}

// One chunk (n <= kChunk) of the float kernels.
TG_MULTIVERSION void gelu_forward_chunk(const float* x, float* y, int64_t n) {
  float cdf[kChunk];
  normal_cdf(x, cdf, n);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * cdf[i];
}

TG_MULTIVERSION void gelu_backward_chunk(const float* x, const float* dy, float* dx, int64_t n) {
  float cdf[kChunk], pdf[kChunk];
  normal_cdf(x, cdf, n);
  for (int64_t i = 0; i < n; ++i) {
    float a = -0.5f * x[i] * x[i];
    pdf[i] = a < kExpArgMin<float> ? kExpArgMin<float> : a;
  }
  for (int64_t i = 0; i < n; ++i) pdf[i] = 0.39894228040143267794f * exp_nonpositive(pdf[i]);
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (cdf[i] + x[i] * pdf[i]);
}

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

}  // namespace

template <> void gelu_forward<float>(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; c += kChunk) gelu_forward_chunk(x + c, y + c, std::min(kChunk, e - c));
  });
}

template <> void gelu_backward<float>(const float* x, const float* dy, float* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; c += kChunk) gelu_backward_chunk(x + c, dy + c, dx + c, std::min(kChunk, e - c));
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
