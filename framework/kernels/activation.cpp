#include "framework/kernels/activation.h"

#include <cmath>

#include "framework/kernels/fast_math.h"
#include "framework/kernels/parallel.h"
#include "framework/kernels/simd.h"

namespace tg::kernels {
namespace {

constexpr int64_t kGrain = 16384;

// Phi(x) = P(N(0,1) <= x) = 0.5 * erfc(-x / sqrt(2)) lane by lane, with Numerical Recipes' erfc
// (fractional error < 1.2e-7) through the shared exp. Written on lane vectors (simd.h) because GCC's
// auto-vectoriser leaves the selects and the clamp of this body scalar and branchy, however the loops
// are split.
template <class V> [[gnu::always_inline]] inline V normal_cdf(const V& x) {
  const V zero = splat<V>(0.0f);
  V u = x * 0.70710678118654752f;
  V z = u < zero ? -u : u;
  V tt = 1.0f / (1.0f + 0.5f * z);
  V poly = -0.82215223f + tt * 0.17087277f;
  poly = 1.48851587f + tt * poly;
  poly = -1.13520398f + tt * poly;
  poly = 0.27886807f + tt * poly;
  poly = -0.18628806f + tt * poly;
  poly = 0.09678418f + tt * poly;
  poly = 0.37409196f + tt * poly;
  poly = 1.00002368f + tt * poly;
  V a = -z * z - 1.26551223f + tt * poly;
  a = 0.5f * tt * exp_nonpositive(clamp_exp_arg(a));   // erfc(|u|) / 2
  V upper = 1.0f - a;
  return x >= zero ? upper : a;
}

template <class V> [[gnu::always_inline]] inline V gelu_value(const V& x) { return x * normal_cdf(x); }

// d gelu / dx = Phi(x) + x * phi(x), given Phi(x). The one expression both backward forms use, so
// dy * slope equals gelu_grad's bits.
template <class V> [[gnu::always_inline]] inline V slope_from_cdf(const V& x, const V& cdf) {
  V pdf = 0.39894228040143267794f * exp_nonpositive(clamp_exp_arg(-0.5f * x * x));
  return cdf + x * pdf;
}

// dy * (Phi(x) + x * phi(x))
template <class V> [[gnu::always_inline]] inline V gelu_grad(const V& x, const V& dy) {
  return dy * slope_from_cdf(x, normal_cdf(x));
}

// The float kernels over [0, n): kLanes<V> elements per step, the last few through a padded vector.
template <class V> TG_MULTIVERSION void gelu_forward_span(const float* x, float* y, int64_t n) {
  constexpr int64_t L = kLanes<V>;
  int64_t i = 0;
  for (; i + L <= n; i += L) store(y + i, gelu_value(load<V>(x + i)));
  if (i < n) store_tail(y + i, gelu_value(load_tail<V>(x + i, n - i)), n - i);
}

template <class V> TG_MULTIVERSION void gelu_backward_span(const float* x, const float* dy, float* dx, int64_t n) {
  constexpr int64_t L = kLanes<V>;
  int64_t i = 0;
  for (; i + L <= n; i += L) store(dx + i, gelu_grad(load<V>(x + i), load<V>(dy + i)));
  if (i < n) store_tail(dx + i, gelu_grad(load_tail<V>(x + i, n - i), load_tail<V>(dy + i, n - i)), n - i);
}

// y = x * Phi(x) and the slope from one Phi(x).
template <class V> TG_MULTIVERSION void gelu_forward_slope_span(const float* x, float* y, float* slope, int64_t n) {
  constexpr int64_t L = kLanes<V>;
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V v = load<V>(x + i), cdf = normal_cdf(v);
    store(y + i, v * cdf);
    store(slope + i, slope_from_cdf(v, cdf));
  }
  if (i < n) {
    const V v = load_tail<V>(x + i, n - i), cdf = normal_cdf(v);
    store_tail(y + i, v * cdf, n - i);
    store_tail(slope + i, slope_from_cdf(v, cdf), n - i);
  }
}

template <class V> TG_MULTIVERSION void scale_by_slope_span(const float* slope, const float* dy, float* dx, int64_t n) {
  constexpr int64_t L = kLanes<V>;
  int64_t i = 0;
  for (; i + L <= n; i += L) store(dx + i, load<V>(dy + i) * load<V>(slope + i));
  if (i < n) store_tail(dx + i, load_tail<V>(dy + i, n - i) * load_tail<V>(slope + i, n - i), n - i);
}

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

}  // namespace

template <> void gelu_forward<float>(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if (wide_lanes()) gelu_forward_span<f32x8>(x + b, y + b, e - b);
    else gelu_forward_span<f32x4>(x + b, y + b, e - b);
  });
}

template <> void gelu_backward<float>(const float* x, const float* dy, float* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if (wide_lanes()) gelu_backward_span<f32x8>(x + b, dy + b, dx + b, e - b);
    else gelu_backward_span<f32x4>(x + b, dy + b, dx + b, e - b);
  });
}

template <> void gelu_forward_slope<float>(const float* x, float* y, float* slope, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if (wide_lanes()) gelu_forward_slope_span<f32x8>(x + b, y + b, slope + b, e - b);
    else gelu_forward_slope_span<f32x4>(x + b, y + b, slope + b, e - b);
  });
}

template <> void gelu_backward_slope<float>(const float* slope, const float* dy, float* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if (wide_lanes()) scale_by_slope_span<f32x8>(slope + b, dy + b, dx + b, e - b);
    else scale_by_slope_span<f32x4>(slope + b, dy + b, dx + b, e - b);
  });
}

template <> void gelu_forward<double>(const double* x, double* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = 0.5 * x[i] * (1.0 + std::erf(x[i] * kInvSqrt2));
  });
}

namespace {
inline double slope_of(double v) {
  return 0.5 * (1.0 + std::erf(v * kInvSqrt2)) + v * kInvSqrt2Pi * std::exp(-0.5 * v * v);
}
}  // namespace

template <> void gelu_backward<double>(const double* x, const double* dy, double* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * slope_of(x[i]);
  });
}

template <> void gelu_forward_slope<double>(const double* x, double* y, double* slope, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      y[i] = 0.5 * x[i] * (1.0 + std::erf(x[i] * kInvSqrt2));
      slope[i] = slope_of(x[i]);
    }
  });
}

template <> void gelu_backward_slope<double>(const double* slope, const double* dy, double* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * slope[i];
  });
}

}  // namespace tg::kernels
