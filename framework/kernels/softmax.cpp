#include "framework/kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tg::kernels {

template <class T> double exp_shifted(const T* x, T shift, T* y, int64_t n) {
  // Three simple loops rather than one: each vectorises (a clamp inside the exp loop would not).
  for (int64_t i = 0; i < n; ++i) {
    T z = x[i] - shift;
    y[i] = z < kExpArgMin<T> ? kExpArgMin<T> : z;
  }
  for (int64_t i = 0; i < n; ++i) y[i] = exp_nonpositive(y[i]);
  return row_sum(y, n);
}

template <class T> T row_max(const T* x, int64_t n) {
  // Four running maxima in a fixed pattern (max is exact, so the order never changes the result).
  T m0 = -std::numeric_limits<T>::infinity(), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    m0 = m0 < x[i] ? x[i] : m0;
    m1 = m1 < x[i + 1] ? x[i + 1] : m1;
    m2 = m2 < x[i + 2] ? x[i + 2] : m2;
    m3 = m3 < x[i + 3] ? x[i + 3] : m3;
  }
  for (; i < n; ++i) m0 = m0 < x[i] ? x[i] : m0;
  m0 = m0 < m1 ? m1 : m0;
  m2 = m2 < m3 ? m3 : m2;
  return m0 < m2 ? m2 : m0;
}

template <class T> double row_sum(const T* x, int64_t n) {
  // Four interleaved partial sums, combined as (s0 + s1) + (s2 + s3): fixed order, vectorisable.
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += static_cast<double>(x[i]);
    s1 += static_cast<double>(x[i + 1]);
    s2 += static_cast<double>(x[i + 2]);
    s3 += static_cast<double>(x[i + 3]);
  }
  for (; i < n; ++i) s0 += static_cast<double>(x[i]);
  return (s0 + s1) + (s2 + s3);
}

namespace {

// Sum of a[i] * b[i] in double, fixed order.
template <class T> double row_dot(const T* a, const T* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += static_cast<double>(a[i]) * b[i];
    s1 += static_cast<double>(a[i + 1]) * b[i + 1];
    s2 += static_cast<double>(a[i + 2]) * b[i + 2];
    s3 += static_cast<double>(a[i + 3]) * b[i + 3];
  }
  for (; i < n; ++i) s0 += static_cast<double>(a[i]) * b[i];
  return (s0 + s1) + (s2 + s3);
}

template <class T> void softmax_row(const T* x, T* y, int64_t n, bool log) {
  T m = row_max(x, n);
  if (m == -std::numeric_limits<T>::infinity()) {
    // All -inf: zeros / -inf (tapegrad's choice, see ops/nn_functional.h); -inf and NaN: all NaN.
    bool nan = false;
    for (int64_t i = 0; i < n; ++i) nan = nan || x[i] != x[i];
    std::fill(y, y + n, nan ? std::numeric_limits<T>::quiet_NaN() : log ? m : T(0));
    return;
  }
  double s = exp_shifted(x, m, y, n);
  if (log) {
    T ls = static_cast<T>(std::log(s));
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - ls;
  } else {
    T inv = static_cast<T>(1.0 / s);
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

template <class T> void softmax_backward_row(const T* y, const T* gy, T* gx, int64_t n) {
  T d = static_cast<T>(row_dot(gy, y, n));
  for (int64_t i = 0; i < n; ++i) gx[i] = y[i] * (gy[i] - d);
}

template <class T> void log_softmax_backward_row(const T* y, const T* gy, T* gx, int64_t n) {
  T sg = static_cast<T>(row_sum(gy, n));
  double se = exp_shifted(y, T(0), gx, n);   // gx = exp(y) = softmax; sums to 1, or 0 for an all -inf lane
  if (se == 0.0) {
    std::fill(gx, gx + n, T(0));
    return;
  }
  for (int64_t i = 0; i < n; ++i) gx[i] = gy[i] - gx[i] * sg;
}

}  // namespace

template <class T> void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log) {
  for_each_lane<T, 1>(outer, n, inner, {x}, y, [&](int64_t, const std::array<const T*, 1>& r, T* out, T*) {
    softmax_row(r[0], out, n, log);
  });
}

template <class T>
void softmax_backward(const T* y, const T* gy, T* gx, int64_t outer, int64_t n, int64_t inner, bool log) {
  for_each_lane<T, 2>(outer, n, inner, {y, gy}, gx, [&](int64_t, const std::array<const T*, 2>& r, T* out, T*) {
    if (log)
      log_softmax_backward_row(r[0], r[1], out, n);
    else
      softmax_backward_row(r[0], r[1], out, n);
  });
}

template double exp_shifted<float>(const float*, float, float*, int64_t);
template double exp_shifted<double>(const double*, double, double*, int64_t);
template float row_max<float>(const float*, int64_t);
template double row_max<double>(const double*, int64_t);
template double row_sum<float>(const float*, int64_t);
template double row_sum<double>(const double*, int64_t);
template void softmax_forward<float>(const float*, float*, int64_t, int64_t, int64_t, bool);
template void softmax_forward<double>(const double*, double*, int64_t, int64_t, int64_t, bool);
template void softmax_backward<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
template void softmax_backward<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool);

}  // namespace tg::kernels
