#pragma once
// Branch-free math that loops vectorise over (no libm calls): used by the softmax, cross-entropy and
// GELU kernels; and fixed-order lane reductions (attention, gradient norms). The float functions also
// take the lane vectors f32x4, f32x8 and f32x16 (simd.h), with the same bits per lane as the scalar call.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "framework/kernels/simd.h"

namespace tg::kernels {

// Lower clamp for the argument of exp_nonpositive: below it the result flushes to exactly 0.
template <class T> constexpr T kExpArgMin = sizeof(T) == 4 ? T(-104) : T(-746);

// max(z, kExpArgMin) as the compare-and-select the loops used before (a NaN stays NaN).
template <class V> [[gnu::always_inline]] inline V clamp_exp_arg(const V& z) {
  using S = std::conditional_t<std::is_same_v<V, double>, double, float>;
  const V lo = splat<V>(kExpArgMin<S>);
  return z < lo ? lo : z;
}

// exp(z) for kExpArgMin<T> <= z <= 0 (positive z also works below ~88 for float, ~709 for double), without
// a libm call so that a loop over it vectorises: z = n ln2 + r, |r| <= ln2 / 2, exp(r) by a Taylor
// polynomial (degree 13 for double, 7 for float; within 2 ulp of std::exp), times 2^n built in the
// exponent bits. Results that would be subnormal flush to 0; NaN propagates. The caller clamps z to
// >= kExpArgMin<T> first (clamp_exp_arg; in a separate loop where a loop is left to GCC's
// auto-vectoriser, which gives up on a select inside a long body).
template <class T> [[gnu::always_inline]] inline T exp_nonpositive(const T& z) {
  if constexpr (std::is_same_v<T, double>) {
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
  } else {   // float, f32x4 or f32x8
    using U = UIntOf<T>;
    constexpr float kMagic = 0x1.8p23f, kLn2Hi = 0.693145752f, kLn2Lo = 1.42860677e-06f;
    T t = z * 1.44269504f + kMagic;
    T n = t - kMagic;
    T r = (z - n * kLn2Hi) - n * kLn2Lo;
    T p = splat<T>(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    U e = std::bit_cast<U>(t) - std::bit_cast<uint32_t>(kMagic) + 127u;
    U keep = (e >> 31) - 1u;
    return p * std::bit_cast<T>((e << 23) & keep);
  }
}

// f(0) + ... + f(n-1) in 8 interleaved lanes (element i goes to lane i % 8), the lanes combined as the
// fixed tree ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)): the order depends on n only, and the
// loop vectorises where a single running sum would not (that needs reassociation).
template <class Acc, class F> inline Acc lane_sum(int64_t n, F&& f) {
  Acc acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += f(i + l);
  for (int l = 0; i < n; ++i, ++l) acc[l] += f(i);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// The running max of lane_max: m, or x + 0 if that is larger (a NaN never is; x + 0 turns -0 into +0 and
// leaves every other value as it is). With no -0 left, the max of a set of numbers does not depend on the
// order it is taken in. Scalars or lane vectors.
template <class V> [[gnu::always_inline]] inline V max_step(const V& m, const V& x) {
  const V y = x + 0.0f;
  return m < y ? y : m;
}

// The max of a[0..n) by max_step: -inf for n == 0 or all NaN (a NaN is skipped, as by a running
// std::max); +0 when the max is a zero of either sign.
template <class T> inline T lane_max(const T* a, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) m = max_step(m, a[j]);
  return m;
}

// The max_step max of v's lanes, halving the vector (16 -> 8 -> 4 lanes, then two swaps within the 4):
// log2 steps, not a chain of one step per lane (the order does not change the result).
template <class V> [[gnu::always_inline]] inline float max_across(const V& v) {
  if constexpr (kLanes<V> > 4) {
    return max_across(max_step(low_half(v), high_half(v)));
  } else {
    const f32x4 a = max_step(v, __builtin_shufflevector(v, v, 2, 3, 0, 1));
    return max_step(a, __builtin_shufflevector(a, a, 1, 0, 3, 2))[0];
  }
}

// v with its lanes from the n-th on replaced by `fill` (n may be <= 0 or >= the lane count).
template <class V> [[gnu::always_inline]] inline V keep_first(const V& v, int64_t n, float fill) {
  V index;
  for (int64_t l = 0; l < kLanes<V>; ++l) index[l] = static_cast<float>(l);
  return index < static_cast<float>(n) ? v : splat<V>(fill);
}

// lane_sum's 8 lanes held in lane vectors V (one f32x8, two f32x4, or for V = f32x16 one f32x8
// that each 16-lane step folds its low, then its high half into) over the runs of 8 (element j of a run
// goes to lane j % 8); the last n % 8 elements go to lanes 0, 1, ... one by one, as in the scalar
// function (a padded copy costs more: its narrow stores stall the wide load) -- unless the caller can
// read and write the whole run they start (avail >= its end): then they are one more run whose lanes
// from n on are left out (a lane's sum plus +0 is itself). The same lanes, the same order and the same
// combining tree give the scalar function's bits.
template <class V> struct Lanes8 {
  static constexpr bool kWide = kLanes<V> == 16;
  using Part = std::conditional_t<kWide, f32x8, V>;
  static constexpr int64_t kWidth = kLanes<Part>, kParts = 8 / kWidth;
  Part part[kParts];

  // Runs f(k, p, valid, width) over every full run of 8 of a[0, n), and over the last, partial one when
  // a[0, avail) holds it whole; returns where the one-by-one tail starts (n if none). f reads and
  // writes `width` elements at p (load_run / store_run: kLanes<V>, or 8 for a 16-lane V's last odd
  // run), of which the first `valid` are elements of a[0, n) (valid == width but in the last run; may be
  // <= 0 there), and adds them into part k (add). One call site: f's body is emitted once for full
  // and partial runs. Two copies could be compiled differently -- one with an a * b + c contracted to an
  // fma and one without, as GCC does under the sanitizers -- and give the same element different bits.
  template <class A, class F> [[gnu::always_inline]] static int64_t for_runs(A* a, int64_t n, int64_t avail, F&& f) {
    const int64_t full = n / 8 * 8, end = full < n && full + 8 <= avail ? n : full;
    for (int64_t j = 0; j < end;) {
      const int64_t width = kWide && j + 16 > (end + 7) / 8 * 8 ? 8 : kLanes<V>;
      for (int64_t k = 0; k < kParts; ++k) {
        const int64_t w = kWide ? width : kWidth;
        f(k, a + j + k * kWidth, std::min(n - j - k * kWidth, w), w);
      }
      j += kWide ? width : 8;
    }
    return end;
  }
  // `width` elements at p as a V (a 16-lane V's upper lanes unspecified when width is 8: the caller masks
  // them, as valid <= 8 < 16), and their store.
  [[gnu::always_inline]] static V load_run(const float* p, int64_t width) {
    if constexpr (kWide) {
      if (width < 16) {
        const f32x8 lo = load<f32x8>(p);
        return __builtin_shufflevector(lo, lo, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
      }
    }
    return load<V>(p);
  }
  [[gnu::always_inline]] static void store_run(float* p, const V& v, int64_t width) {
    if constexpr (kWide) {
      if (width < 16) return store(p, low_half(v));
    }
    store(p, v);
  }
  // v's lanes added to part k (a 16-lane v: its low half, then its high half).
  [[gnu::always_inline]] void add(int64_t k, const V& v) {
    if constexpr (kWide) {
      part[0] += low_half(v);
      part[0] += high_half(v);
    } else {
      part[k] += v;
    }
  }
  // The 8 lanes in order.
  [[gnu::always_inline]] void lanes(float (&out)[8]) const {
    for (int64_t k = 0; k < kParts; ++k) store(out + k * kWidth, part[k]);
  }
  // lane_sum's combining tree ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) of the 8 lanes, on vectors:
  // the pair sums of even and odd lanes twice, then the last add (the same adds, not a chain through memory).
  [[gnu::always_inline]] float total() const {
    f32x8 l;
    if constexpr (kParts == 1) l = part[0];
    else l = __builtin_shufflevector(part[0], part[1], 0, 1, 2, 3, 4, 5, 6, 7);
    const f32x4 q = __builtin_shufflevector(l, l, 0, 2, 4, 6) + __builtin_shufflevector(l, l, 1, 3, 5, 7);
    const f32x4 r = __builtin_shufflevector(q, q, 0, 2, 0, 2) + __builtin_shufflevector(q, q, 1, 3, 1, 3);
    return r[0] + r[1];
  }
  // total() with the one-by-one tail of elements j = from..n-1 added first, element j's value tail(j)
  // (called in order) to lanes 0, 1, ... as lane_sum adds them.
  template <class F> [[gnu::always_inline]] float total_with_tail(int64_t from, int64_t n, F&& tail) const {
    if (from == n) return total();
    float l[8];
    lanes(l);
    for (int i = 0; from < n; ++from, ++i) l[i] += tail(from);
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  }
};

// lane_max<float> of a[0, n) on lane vectors V (f32x4, f32x8 or f32x16): the same result (max_step's max
// does not depend on the order), from four independent accumulators, so that the loop is not bound by the
// latency of one chain of maxima. a[n, avail) may be read (avail <= n: nothing beyond a[0, n)): a last
// partial vector is then one more step with its lanes from n on left out.
template <class V>
[[gnu::always_inline]] inline float lane_max_lanes(const float* a, int64_t n, int64_t avail = 0) {
  constexpr int64_t kL = kLanes<V>;
  constexpr float lo = -std::numeric_limits<float>::infinity();
  V acc[4];
  for (V& v : acc) v = splat<V>(lo);
  int64_t j = 0;
  for (; j + 4 * kL <= n; j += 4 * kL)
    for (int k = 0; k < 4; ++k) acc[k] = max_step(acc[k], load<V>(a + j + k * kL));
  for (; j + kL <= n; j += kL) acc[0] = max_step(acc[0], load<V>(a + j));
  if (j < n && j + kL <= avail) {
    acc[1] = max_step(acc[1], keep_first(load<V>(a + j), n - j, lo));
    j = n;
  }
  float m = max_across(max_step(max_step(acc[0], acc[1]), max_step(acc[2], acc[3])));
  for (; j < n; ++j) m = max_step(m, a[j]);
  return m;
}

// x[j] = exp_nonpositive(clamp_exp_arg(x[j] - shift)) for j < n, in place, and the sum of the results
// as lane_sum<float> adds them, on lane vectors V. x[n, avail) may be read, and is then overwritten with 0
// up to the end of the last run of 8 (avail <= n: nothing beyond x[0, n)).
template <class V>
[[gnu::always_inline]] inline float exp_shifted_lane_sum(float* x, int64_t n, float shift, int64_t avail = 0) {
  using L = Lanes8<V>;
  L acc;
  for (auto& p : acc.part) p = splat<typename L::Part>(0.0f);
  int64_t j = L::for_runs(x, n, avail, [&](int64_t k, float* p, int64_t valid, int64_t width) {
    V e = exp_nonpositive(clamp_exp_arg(L::load_run(p, width) - shift));
    if (valid < kLanes<V>) e = keep_first(e, valid, 0.0f);
    L::store_run(p, e, width);
    acc.add(k, e);
  });
  return acc.total_with_tail(j, n, [&](int64_t i) { return x[i] = exp_nonpositive(clamp_exp_arg(x[i] - shift)); });
}

// lane_sum<float>(n, a[j] * b[j]) on lane vectors V: the same products added to the same 8 lanes in the same
// order and tree, each as `lane += a * b` (which clones with FMA contract, as they contract the scalar loop's
// `acc[l] += f(i + l)`). a[n, avail) and b[n, avail) may be read (any values: NaN, inf); the lanes past n
// then add 0 * -0 = -0, which leaves every sum as it is.
template <class V>
[[gnu::always_inline]] inline float dot_lane_sum(const float* a, const float* b, int64_t n, int64_t avail = 0) {
  using L = Lanes8<V>;
  L acc;
  for (auto& p : acc.part) p = splat<typename L::Part>(0.0f);
  int64_t j = L::for_runs(b, n, avail, [&](int64_t k, const float* at, int64_t valid, int64_t width) {
    V av = L::load_run(a + (at - b), width), bv = L::load_run(at, width);
    if (valid < kLanes<V>) {
      av = keep_first(av, valid, 0.0f);
      bv = keep_first(bv, valid, -0.0f);
    }
    if constexpr (L::kWide) {
      acc.part[0] += low_half(av) * low_half(bv);
      acc.part[0] += high_half(av) * high_half(bv);
    } else {
      acc.part[k] += av * bv;
    }
  });
  return acc.total_with_tail(j, n, [&](int64_t i) { return a[i] * b[i]; });
}

}  // namespace tg::kernels
