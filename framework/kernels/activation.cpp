#include "framework/kernels/activation.h"

#include <cmath>
#include <type_traits>

#include "framework/kernels/bf16.h"
#include "framework/kernels/fast_math.h"
#include "framework/kernels/gemm.h"
#include "framework/kernels/parallel.h"
#include "framework/kernels/sbgemm.h"
#include "framework/kernels/sgemm.h"
#include "framework/kernels/simd.h"

namespace tg::kernels {
namespace {

constexpr int64_t kGrain = 16384;

// y[i] = residual[i] + y[i] for i < n: add's bits (residual first, as x + f(x)).
template <class T> TG_MULTIVERSION void add_rows_into(const T* residual, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = residual[i] + y[i];
}

// Phi(x) = P(N(0,1) <= x) = 0.5 * erfc(-x / sqrt(2)) and e = exp(-x^2 / 2) lane by lane, from ONE exp:
// with z = |x| / sqrt(2) and t = 1 / (1 + z / 2), erfc(z) = t * exp(-z^2) * R(t), where exp(-z^2) is e
// itself and R is a degree-9 polynomial fitted (relative minimax, Lawson's iteration) to
// erfc(z) exp(z^2) / t over t in [0.16, 1], i.e. z <= 10.5 (relative error 2.2e-8 in exact arithmetic;
// beyond, e flushes to 0 anyway). The density phi(x) = e / sqrt(2 pi) then needs no second exp. Measured
// over every 97th float in [-13, 13] against long double: Phi's mean relative error 9.4e-8 and worst
// 4.1e-6 (at x near -12, from rounding x^2 / 2), against 1.5e-7 and 1.9e-5 for Numerical Recipes' erfc
// with its own exp, which this replaces. Written on lane vectors (simd.h) because GCC's auto-vectoriser
// leaves the selects and the clamp of this body scalar and branchy, however the loops are split.
template <class V> struct CdfExp {
  V cdf, e;
};
template <class V> [[gnu::always_inline]] inline CdfExp<V> normal_cdf_exp(const V& x) {
  const V zero = splat<V>(0.0f);
  const V z = (x < zero ? -x : x) * 0.70710678118654752f;
  const V t = 1.0f / (1.0f + 0.5f * z);
  V r = 0.4111032234f + t * (-0.1154592346f + t * 0.01081358663f);
  r = -0.6470157786f + t * r;
  r = 0.4028587930f + t * r;
  r = -0.08886762244f + t * r;
  r = 0.2224429868f + t * r;
  r = 0.2392690901f + t * r;
  r = 0.2827871249f + t * r;
  r = 0.2820678088f + t * r;
  const V e = exp_nonpositive(clamp_exp_arg(-0.5f * x * x));
  const V a = 0.5f * t * r * e;   // erfc(z) / 2
  return {x >= zero ? 1.0f - a : a, e};
}

template <class V> [[gnu::always_inline]] inline V gelu_value(const V& x) { return x * normal_cdf_exp(x).cdf; }

// d gelu / dx = Phi(x) + x * phi(x). The one expression every backward form uses, so dy * slope equals
// gelu_grad's bits.
template <class V> [[gnu::always_inline]] inline V slope_of(const V& x, const CdfExp<V>& c) {
  return c.cdf + x * (0.39894228040143267794f * c.e);
}

// dy * (Phi(x) + x * phi(x))
template <class V> [[gnu::always_inline]] inline V gelu_grad(const V& x, const V& dy) {
  return dy * slope_of(x, normal_cdf_exp(x));
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

// y = x * Phi(x) and the slope from one Phi(x) and exp.
template <class V> TG_MULTIVERSION void gelu_forward_slope_span(const float* x, float* y, float* slope, int64_t n) {
  constexpr int64_t L = kLanes<V>;
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V v = load<V>(x + i);
    const CdfExp<V> c = normal_cdf_exp(v);
    store(y + i, v * c.cdf);
    store(slope + i, slope_of(v, c));
  }
  if (i < n) {
    const V v = load_tail<V>(x + i, n - i);
    const CdfExp<V> c = normal_cdf_exp(v);
    store_tail(y + i, v * c.cdf, n - i);
    store_tail(slope + i, slope_of(v, c), n - i);
  }
}

template <class V> TG_MULTIVERSION void scale_by_slope_span(const float* slope, const float* dy, float* dx, int64_t n) {
  constexpr int64_t L = kLanes<V>;
  int64_t i = 0;
  for (; i + L <= n; i += L) store(dx + i, load<V>(dy + i) * load<V>(slope + i));
  if (i < n) store_tail(dx + i, load_tail<V>(dy + i, n - i) * load_tail<V>(slope + i, n - i), n - i);
}

// SgemmEpilogue of linear_gelu_forward: rows [r0, r1), columns [c0, c1) of y (row stride ld) through the
// GELU in place, the slope (null: none) at the same index.
struct GeluTile {
  float* slope;
};
void gelu_tile(const void* ctx, float* y, int64_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  float* slope = static_cast<const GeluTile*>(ctx)->slope;
  with_float_lanes([&]<class V>() {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = y + r * ld + c0;
      if (slope) gelu_forward_slope_span<V>(row, row, slope + r * ld + c0, c1 - c0);
      else gelu_forward_span<V>(row, row, c1 - c0);
    }
  });
}

// SgemmEpilogue of linear_gelu_input_grad: rows [r0, r1), columns [c0, c1) of dz (row stride ld) times the
// slope at the same index (the slope's rows are ld apart too).
struct SlopeTile {
  const float* slope;
};
void slope_tile(const void* ctx, float* dz, int64_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const float* slope = static_cast<const SlopeTile*>(ctx)->slope;
  with_float_lanes([&]<class V>() {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = dz + r * ld + c0;
      scale_by_slope_span<V>(slope + r * ld + c0, row, row, c1 - c0);
    }
  });
}

// SgemmEpilogue of linear_residual_forward: rows [r0, r1), columns [c0, c1) of y (row stride ld) become
// residual + y (the residual's rows are ld apart too).
struct ResidualTile {
  const float* residual;
};
void residual_tile(const void* ctx, float* y, int64_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const float* residual = static_cast<const ResidualTile*>(ctx)->residual;
  for (int64_t r = r0; r < r1; ++r) add_rows_into(residual + r * ld + c0, y + r * ld + c0, c1 - c0);
}

// C [M, N] (row stride N) = op(A) @ op(B) + bias with the epilogue applied to each finished tile, where
// gemm_mixed<float>(mode, ...) would run the product on tapegrad's sgemm or its bf16 GEMM (then the same bits);
// false, nothing computed, where it would run elsewhere: the caller then runs gemm_mixed and the epilogue's pass.
bool own_gemm_with_epilogue(Bf16Mode mode, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                            const float* A, int64_t lda, const float* B, int64_t ldb, float* C, const float* bias,
                            SgemmEpilogue epilogue) {
  if (mode == Bf16Mode::float32 && gemm_uses_sgemm(M))
    sgemm(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N, bias, epilogue);
  else if (uses_sbgemm(mode))
    sbgemm(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N, bias, epilogue);
  else
    return false;
  return true;
}

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

}  // namespace

template <> void gelu_forward<float>(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    with_float_lanes([&]<class V>() { gelu_forward_span<V>(x + b, y + b, e - b); });
  });
}

template <> void gelu_backward<float>(const float* x, const float* dy, float* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    with_float_lanes([&]<class V>() { gelu_backward_span<V>(x + b, dy + b, dx + b, e - b); });
  });
}

template <> void gelu_forward_slope<float>(const float* x, float* y, float* slope, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    with_float_lanes([&]<class V>() { gelu_forward_slope_span<V>(x + b, y + b, slope + b, e - b); });
  });
}

template <> void gelu_backward_slope<float>(const float* slope, const float* dy, float* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    with_float_lanes([&]<class V>() { scale_by_slope_span<V>(slope + b, dy + b, dx + b, e - b); });
  });
}

namespace {
// The float64 forms (PyTorch's double formulas), from 1 + erf(v / sqrt(2)) computed once per element.
inline double one_plus_erf(double v) { return 1.0 + std::erf(v * kInvSqrt2); }
inline double value_of(double v, double ope) { return 0.5 * v * ope; }
inline double slope_of(double v, double ope) { return 0.5 * ope + v * kInvSqrt2Pi * std::exp(-0.5 * v * v); }
}  // namespace

template <> void gelu_forward<double>(const double* x, double* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = value_of(x[i], one_plus_erf(x[i]));
  });
}

template <> void gelu_backward<double>(const double* x, const double* dy, double* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * slope_of(x[i], one_plus_erf(x[i]));
  });
}

template <> void gelu_forward_slope<double>(const double* x, double* y, double* slope, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {   // x read once: y may be x (linear_gelu_forward)
      const double v = x[i], ope = one_plus_erf(v);
      y[i] = value_of(v, ope);
      slope[i] = slope_of(v, ope);
    }
  });
}

template <> void gelu_backward_slope<double>(const double* slope, const double* dy, double* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * slope[i];
  });
}

template <class T>
void linear_gelu_forward(Bf16Mode mode, const T* x, const T* w, const T* b, T* y, T* slope, int64_t rows, int64_t out,
                         int64_t in) {
  if constexpr (std::is_same_v<T, float>) {
    const GeluTile tile{slope};
    if (own_gemm_with_epilogue(mode, false, true, rows, out, in, x, in, w, in, y, b, {gelu_tile, &tile})) return;
  }
  gemm_mixed<T>(mode, false, true, rows, out, in, T(1), x, in, w, in, T(0), y, out, b);
  if (slope) gelu_forward_slope<T>(y, y, slope, rows * out);
  else gelu_forward<T>(y, y, rows * out);
}

template <class T>
void linear_gelu_input_grad(Bf16Mode mode, const T* dy, const T* w, const T* slope, T* dz, int64_t rows, int64_t hid,
                            int64_t out) {
  if constexpr (std::is_same_v<T, float>) {
    const SlopeTile tile{slope};
    if (own_gemm_with_epilogue(mode, false, false, rows, hid, out, dy, out, w, hid, dz, nullptr, {slope_tile, &tile}))
      return;
  }
  gemm_mixed<T>(mode, false, false, rows, hid, out, T(1), dy, out, w, hid, T(0), dz, hid);
  gelu_backward_slope<T>(slope, dz, dz, rows * hid);
}

template <class T>
void linear_residual_forward(Bf16Mode mode, const T* x, const T* w, const T* b, const T* residual, T* y, int64_t rows,
                             int64_t out, int64_t in) {
  if constexpr (std::is_same_v<T, float>) {
    const ResidualTile tile{residual};
    if (own_gemm_with_epilogue(mode, false, true, rows, out, in, x, in, w, in, y, b, {residual_tile, &tile})) return;
  }
  gemm_mixed<T>(mode, false, true, rows, out, in, T(1), x, in, w, in, T(0), y, out, b);
  parallel_for(rows * out, kGrain, [&](int64_t i0, int64_t i1) { add_rows_into(residual + i0, y + i0, i1 - i0); });
}

template void linear_residual_forward<float>(Bf16Mode, const float*, const float*, const float*, const float*, float*,
                                             int64_t, int64_t, int64_t);
template void linear_residual_forward<double>(Bf16Mode, const double*, const double*, const double*, const double*,
                                              double*, int64_t, int64_t, int64_t);
template void linear_gelu_input_grad<float>(Bf16Mode, const float*, const float*, const float*, float*, int64_t,
                                            int64_t, int64_t);
template void linear_gelu_input_grad<double>(Bf16Mode, const double*, const double*, const double*, double*, int64_t,
                                             int64_t, int64_t);
template void linear_gelu_forward<float>(Bf16Mode, const float*, const float*, const float*, float*, float*, int64_t,
                                         int64_t, int64_t);
template void linear_gelu_forward<double>(Bf16Mode, const double*, const double*, const double*, double*, double*,
                                          int64_t, int64_t, int64_t);

}  // namespace tg::kernels
