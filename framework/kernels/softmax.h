#pragma once
// Fused softmax / log-softmax kernels, and the row primitives they share with the cross-entropy
// kernels: a vectorisable exp for non-positive arguments, row max, and a lane iterator.
//
// A tensor reduced along one dim is viewed as [outer, n, inner]: each of its outer * inner "lanes" is
// the n elements x[o, :, i] (contiguous when inner == 1). Lanes are independent, so the results are the
// same bits for any thread count; every reduction inside a lane runs in a fixed order.
#include <array>
#include <bit>
#include <cstdint>
#include <vector>

#include "framework/kernels/parallel.h"

namespace tg::kernels {

// Lower clamp for the argument of exp_nonpositive: below it the result flushes to exactly 0.
template <class T> constexpr T kExpArgMin = sizeof(T) == 4 ? T(-104) : T(-746);

// exp(z) for kExpArgMin<T> <= z <= 0 (positive z also works below ~88 for float, ~709 for double), without
// a libm call so that a loop over it vectorises: z = n ln2 + r, |r| <= ln2 / 2, exp(r) by a Taylor
// polynomial (degree 13 for double, 7 for float; within 2 ulp of std::exp), times 2^n built in the
// exponent bits. Results that would be subnormal flush to 0; NaN propagates. The caller clamps z to
// >= kExpArgMin<T> first, in a separate loop, so that both loops vectorise.
template <class T> inline T exp_nonpositive(T z) {
  if constexpr (sizeof(T) == 8) {
    constexpr double kMagic = 0x1.8p52, kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
    double t = z * 1.4426950408889634 + kMagic;   // round(z / ln2) in the low mantissa bits
    double n = t - kMagic;
    double r = (z - n * kLn2Hi) - n * kLn2Lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // Biased exponent n + 1023; negative (a subnormal result) -> scale 0.
    uint64_t e = std::bit_cast<uint64_t>(t) - std::bit_cast<uint64_t>(kMagic) + 1023u;
    uint64_t keep = (e >> 63) - 1u;
    return p * std::bit_cast<double>((e << 52) & keep);
  } else {
    constexpr float kMagic = 0x1.8p23f, kLn2Hi = 0.693145752f, kLn2Lo = 1.42860677e-06f;
    float t = z * 1.44269504f + kMagic;
    float n = t - kMagic;
    float r = (z - n * kLn2Hi) - n * kLn2Lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t e = std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(kMagic) + 127u;
    uint32_t keep = (e >> 31) - 1u;
    return p * std::bit_cast<float>((e << 23) & keep);
  }
}

// y[i] = exp(x[i] - shift) for i < n, with x[i] - shift <= 0 (shift is the max of x, or an upper bound
// such as the log-sum-exp). Returns sum_i y[i], accumulated in double in a fixed order. y may equal x.
template <class T> double exp_shifted(const T* x, T shift, T* y, int64_t n);

// Largest element of x[0, n) (n >= 1); NaNs are skipped, -inf when all are -inf.
template <class T> T row_max(const T* x, int64_t n);

// Sum of x[0, n) in double, fixed order.
template <class T> double row_sum(const T* x, int64_t n);

// Calls f(lane, rows, out_row, scratch) for each of the outer * inner lanes of [outer, n, inner]
// tensors, in parallel over lanes. rows[k] points at the n elements of input k in that lane and out_row
// at the output's (nullptr when out is nullptr); both are contiguous: when inner > 1 the lane is
// gathered into a per-task buffer and out_row is scattered back after f. scratch holds n elements.
template <class T, size_t K, class F>
void for_each_lane(int64_t outer, int64_t n, int64_t inner, const std::array<const T*, K>& in, T* out, F&& f) {
  if (n <= 0) return;
  bool strided = inner != 1;
  parallel_for(outer * inner, grain_for(n * 16, int64_t{1} << 17), [&](int64_t l0, int64_t l1) {
    std::vector<T> buf(static_cast<size_t>((strided ? K + 2 : 1) * n));
    T* scratch = buf.data();
    std::array<const T*, K> rows;
    for (int64_t lane = l0; lane < l1; ++lane) {
      int64_t base = (lane / inner) * n * inner + lane % inner;   // element 0 of the lane
      T* out_row = out ? out + lane * n : nullptr;
      for (size_t k = 0; k < K; ++k) rows[k] = in[k] + lane * n;
      if (strided) {
        for (size_t k = 0; k < K; ++k) {
          T* g = buf.data() + (2 + k) * n;
          for (int64_t j = 0; j < n; ++j) g[j] = in[k][base + j * inner];
          rows[k] = g;
        }
        out_row = out ? buf.data() + n : nullptr;
      }
      f(lane, rows, out_row, scratch);
      if (strided && out)
        for (int64_t j = 0; j < n; ++j) out[base + j * inner] = out_row[j];
    }
  });
}

// Softmax (log == false) or log-softmax (log == true) along n of x viewed as [outer, n, inner].
// softmax: y = exp(x - max) / sum(exp(x - max)); log_softmax: y = (x - max) - log(sum(exp(x - max))).
// A lane that is entirely -inf gives zeros (softmax) or -inf (log_softmax).
template <class T> void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log);

// Input gradient from the forward output y and the output gradient gy, same layout:
// softmax: gx = y * (gy - sum(gy * y)); log_softmax: gx = gy - exp(y) * sum(gy).
// Lanes that were entirely -inf get gx = 0.
template <class T>
void softmax_backward(const T* y, const T* gy, T* gx, int64_t outer, int64_t n, int64_t inner, bool log);

}  // namespace tg::kernels
