// fast_math.h's lane-vector forms (f32x4 and f32x8) against the scalar functions they replace in the
// kernels: exp_nonpositive per lane, lane_max and the fused exp + lane_sum, bit for bit at every length
// (full runs of 8 and the element-wise tail), with -inf, NaN and all-masked rows; and the reductions again with
// both sides compiled with FMA, as the kernels' AVX2 / AVX-512 clones run them (GCC then contracts a * b + c).
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "framework/kernels/fast_math.h"
#include "support/test_support.h"

using namespace tg::kernels;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

bool same_bits(float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b); }

// exp_nonpositive(clamp_exp_arg(.)) on V lanes equals the scalar float call, bit for bit.
template <class V> void require_lanes_match_scalar_exp(const std::vector<float>& z) {
  for (size_t i = 0; i + kLanes<V> <= z.size(); i += kLanes<V>) {
    const V e = exp_nonpositive(clamp_exp_arg(load<V>(z.data() + i)));
    for (int64_t l = 0; l < kLanes<V>; ++l) {
      const float s = exp_nonpositive(clamp_exp_arg(z[i + static_cast<size_t>(l)])), lane = e[l];
      INFO(kLanes<V> << " lanes, z=" << z[i + static_cast<size_t>(l)] << ": lane " << lane << ", scalar " << s);
      if (std::isnan(s)) REQUIRE(std::isnan(lane));
      else REQUIRE(same_bits(lane, s));
    }
  }
}

}  // namespace

TEST_CASE("exp_nonpositive: the f32x4 and f32x8 forms give the scalar float bits in every lane", "[kernels]") {
  std::vector<float> z;
  for (int i = 0; i <= 8 * 1400; ++i) z.push_back(-105.0f + 0.0095f * static_cast<float>(i));   // to ~1.4
  for (float s : {0.0f, -0.0f, -kInf, kNaN, -1e-30f, -103.99f, -87.5f, -88.0f}) z.push_back(s);
  while (z.size() % 8 != 0) z.push_back(-1.0f);
  require_lanes_match_scalar_exp<f32x4>(z);
  require_lanes_match_scalar_exp<f32x8>(z);
  // And the scalar one is exp within 2 ulp (relative 2.4e-7) down to the flush at exp(-87.3) (float's
  // smallest normal); below it exactly 0.
  for (float v : z) {
    if (!(v <= 0.0f) || std::isinf(v)) continue;
    const double exact = std::exp(static_cast<double>(v));
    const float got = exp_nonpositive(clamp_exp_arg(v));
    INFO("z=" << v);
    if (exact < 0x1p-126) REQUIRE(got <= 0x1p-126f);
    else REQUIRE(std::abs(got - exact) <= 2.4e-7 * exact);
  }
}

namespace {

// Row n of a pattern with NaN, -inf, ties and a wide range (exp underflows to 0 for some entries).
std::vector<float> row(int64_t n, int variant) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) x[static_cast<size_t>(j)] = std::sin(0.7f * static_cast<float>(j + variant)) * 60.0f;
  if (variant == 1 && n > 2) x[2] = -kInf;
  if (variant == 2 && n > 5) x[static_cast<size_t>(n - 1)] = x[5];   // a tie for the max
  if (variant == 3)
    for (float& v : x) v = -kInf;   // all masked: max -inf
  if (variant == 4 && n > 3) x[3] = kNaN;   // lane_max skips it; the exp sum turns NaN
  if (variant == 5)   // zeros of both signs are the max: +0 whatever the order
    for (int64_t j = 0; j < n; ++j) x[static_cast<size_t>(j)] = j % 3 == 0 ? -0.0f : j % 3 == 1 ? -1.5f : 0.0f;
  return x;
}

template <class V> void require_lanes_match_scalar_reductions() {
  for (int64_t n = 0; n <= 41; ++n)
    for (int variant = 0; variant < 6; ++variant) {
      INFO(kLanes<V> << " lanes, n=" << n << ", variant " << variant);
      std::vector<float> x = row(n, variant);
      const float m_scalar = lane_max(x.data(), n), m_lanes = lane_max_lanes<V>(x.data(), n);
      REQUIRE(same_bits(m_lanes, m_scalar));
      if (variant == 5 && n > 0) REQUIRE(same_bits(m_scalar, 0.0f));
      if (m_scalar == -kInf) continue;
      std::vector<float> a = x, b = x;
      for (float& v : a) v = exp_nonpositive(clamp_exp_arg(v - m_scalar));
      const float s_scalar = lane_sum<float>(n, [&](int64_t j) { return a[static_cast<size_t>(j)]; });
      const float s_lanes = exp_shifted_lane_sum<V>(b.data(), n, m_scalar);
      if (variant == 4 && n > 3) {
        REQUIRE(std::isnan(s_lanes));
        REQUIRE(std::isnan(s_scalar));
      } else {
        REQUIRE(same_bits(s_lanes, s_scalar));
        REQUIRE(s_lanes > 0.0f);
      }
      for (int64_t j = 0; j < n; ++j) {
        const float u = a[static_cast<size_t>(j)], w = b[static_cast<size_t>(j)];
        if (std::isnan(u)) REQUIRE(std::isnan(w));
        else REQUIRE(same_bits(w, u));
      }
      // The same row with 8 more readable elements (a huge score and a NaN, as a causal row's hidden
      // scores could be): the last n % 8 go as one run whose lanes from n on are left out and written 0.
      std::vector<float> c = x;
      for (int i = 0; i < 8; ++i) c.push_back(i % 2 ? kNaN : 1e30f);
      const int64_t avail = n + 8, run_end = n % 8 ? n / 8 * 8 + 8 : n;
      REQUIRE(same_bits(lane_max_lanes<V>(c.data(), n, avail), m_scalar));
      const float s_runs = exp_shifted_lane_sum<V>(c.data(), n, m_scalar, avail);
      if (variant == 4 && n > 3) REQUIRE(std::isnan(s_runs));
      else REQUIRE(same_bits(s_runs, s_scalar));
      for (int64_t j = 0; j < n; ++j) {
        const float u = a[static_cast<size_t>(j)], w = c[static_cast<size_t>(j)];
        if (std::isnan(u)) REQUIRE(std::isnan(w));
        else REQUIRE(same_bits(w, u));
      }
      for (int64_t j = n; j < run_end; ++j) REQUIRE(same_bits(c[static_cast<size_t>(j)], 0.0f));
    }
}

}  // namespace

TEST_CASE("lane_max_lanes / exp_shifted_lane_sum on 4, 8 and 16 lanes: the scalar lane_max and lane_sum bits at "
          "every length, with or without a whole last run", "[kernels]") {
  require_lanes_match_scalar_reductions<f32x4>();
  require_lanes_match_scalar_reductions<f32x8>();
  require_lanes_match_scalar_reductions<f32x16>();
  // Known values: the max of a short row (tail only) and of a longer one; exp(0) = 1 exactly.
  const std::vector<float> x = {1.0f, -2.0f, 3.5f, 0.25f, 3.5f, -7.0f, 2.0f, 1.0f, 9.0f, -1.0f};
  REQUIRE(lane_max_lanes<f32x8>(x.data(), 5) == 3.5f);
  REQUIRE(lane_max_lanes<f32x4>(x.data(), 10) == 9.0f);
  std::vector<float> one = {4.0f};
  REQUIRE(exp_shifted_lane_sum<f32x8>(one.data(), 1, 4.0f) == 1.0f);
  REQUIRE(one[0] == 1.0f);
}

namespace {

// The operands a, b of row n of variant 0..2, each n + 16 long (the 16 beyond n readable, never summed).
void dot_operands(int64_t n, int variant, std::vector<float>& a, std::vector<float>& b) {
  a.assign(static_cast<size_t>(n) + 16, 0.0f);
  b.assign(a.size(), 0.0f);
  for (size_t j = 0; j < a.size(); ++j) {
    const auto x = static_cast<float>(j);
    a[j] = variant == 1 ? 0.0f : std::cos(0.9f * x) * 0.7f;   // variant 1: every product -0
    b[j] = variant == 1 ? -1.0f - x : std::sin(1.3f * x) * 50.0f;
    if (variant == 2) a[j] = std::abs(a[j]);
    if (static_cast<int64_t>(j) >= n) {   // readable beyond the row: never summed
      a[j] = j % 2 ? kNaN : 1e30f;
      b[j] = j % 3 ? -kInf : kNaN;
    }
  }
}

// dot_lane_sum<V> against lane_sum<float> of a[j] * b[j] (this file is compiled without FMA, so neither
// contracts): every length, with rows whose products are all -0 (the sum is +0), mixed signs, and
// huge and NaN values readable beyond n (avail), which must not reach the sum.
template <class V> void require_dot_lanes_match_scalar() {
  for (int64_t n = 0; n <= 41; ++n)
    for (int variant = 0; variant < 3; ++variant) {
      INFO(kLanes<V> << " lanes, n=" << n << ", variant " << variant);
      std::vector<float> a, b;
      dot_operands(n, variant, a, b);
      const float scalar =
          lane_sum<float>(n, [&](int64_t j) { return a[static_cast<size_t>(j)] * b[static_cast<size_t>(j)]; });
      REQUIRE(same_bits(dot_lane_sum<V>(a.data(), b.data(), n), scalar));
      REQUIRE(same_bits(dot_lane_sum<V>(a.data(), b.data(), n, n + 16), scalar));
      if (variant == 1) REQUIRE(same_bits(scalar, 0.0f));   // lanes start at +0: +0 + -0 = +0
    }
}

}  // namespace

TEST_CASE("dot_lane_sum on 4, 8 and 16 lanes: lane_sum's bits for a[j] * b[j] at every length, values beyond "
          "the row left out", "[kernels]") {
  require_dot_lanes_match_scalar<f32x4>();
  require_dot_lanes_match_scalar<f32x8>();
  require_dot_lanes_match_scalar<f32x16>();
  const std::vector<float> a = {1.0f, 2.0f, 3.0f}, b = {4.0f, -5.0f, 0.5f};
  REQUIRE(dot_lane_sum<f32x8>(a.data(), b.data(), 3) == -4.5f);
}

namespace {

// The kernels run these reductions in their AVX2 and AVX-512 clones (simd.h), where GCC contracts a * b + c into
// a fused multiply-add (its default, also under -std=c++20), in lane-vector and scalar code alike; the tests
// above run this file's baseline code, which never contracts. Here each side is compiled with FMA, as there.
[[gnu::target("avx2,fma")]] float dot_scalar_fma(const float* a, const float* b, int64_t n) {
  return lane_sum<float>(n, [a, b](int64_t j) { return a[j] * b[j]; });
}
[[gnu::target("avx2,fma")]] float dot_lanes_fma8(const float* a, const float* b, int64_t n, int64_t avail) {
  return dot_lane_sum<f32x8>(a, b, n, avail);
}
[[gnu::target("avx512f,avx2,fma")]] float dot_lanes_fma16(const float* a, const float* b, int64_t n,
                                                           int64_t avail) {
  return dot_lane_sum<f32x16>(a, b, n, avail);
}
// x[j] = exp_nonpositive(clamp_exp_arg(x[j] - shift)) one by one for j < n, and lane_sum of the results.
[[gnu::target("avx2,fma")]] float exp_scalar_fma(float* x, int64_t n, float shift) {
  for (int64_t j = 0; j < n; ++j) x[j] = exp_nonpositive(clamp_exp_arg(x[j] - shift));
  return lane_sum<float>(n, [x](int64_t j) { return x[j]; });
}
[[gnu::target("avx2,fma")]] float exp_lanes_fma8(float* x, int64_t n, float shift, int64_t avail) {
  return exp_shifted_lane_sum<f32x8>(x, n, shift, avail);
}
[[gnu::target("avx512f,avx2,fma")]] float exp_lanes_fma16(float* x, int64_t n, float shift, int64_t avail) {
  return exp_shifted_lane_sum<f32x16>(x, n, shift, avail);
}

bool same_bits_or_nan(float a, float b) { return std::isnan(a) ? std::isnan(b) : same_bits(a, b); }

using DotLanes = float (*)(const float*, const float*, int64_t, int64_t);
using ExpLanes = float (*)(float*, int64_t, float, int64_t);

// exp_shifted_lane_sum through `lanes` against the scalar steps, both with FMA, on row(n, variant): the sum
// and every element, with the row alone and with 8 more readable elements (a last whole run).
void require_exp_lanes_fma(ExpLanes lanes, int64_t n, int variant) {
  const std::vector<float> x = row(n, variant);
  const float m = lane_max(x.data(), n);
  if (m == -kInf) return;
  std::vector<float> a = x, b = x, c = x;
  for (int i = 0; i < 8; ++i) c.push_back(i % 2 ? kNaN : 1e30f);
  const float scalar = exp_scalar_fma(a.data(), n, m);
  REQUIRE(same_bits_or_nan(lanes(b.data(), n, m, n), scalar));
  REQUIRE(same_bits_or_nan(lanes(c.data(), n, m, n + 8), scalar));
  for (size_t j = 0; j < a.size(); ++j) {
    REQUIRE(same_bits_or_nan(b[j], a[j]));
    REQUIRE(same_bits_or_nan(c[j], a[j]));
  }
}

}  // namespace

TEST_CASE("dot_lane_sum and exp_shifted_lane_sum compiled with FMA, as the AVX2 / AVX-512 clones run them: the bits "
          "of the scalar lane_sum compiled so too", "[kernels]") {
  std::vector<std::pair<DotLanes, ExpLanes>> forms;   // the lane vectors the CPU's clones take (with_float_lanes)
  if (wide_lanes()) forms.emplace_back(dot_lanes_fma8, exp_lanes_fma8);
  if (widest_lanes()) forms.emplace_back(dot_lanes_fma16, exp_lanes_fma16);
  if (forms.empty()) {
    WARN("no AVX2 + FMA on this CPU: the kernels run their baseline clones, which the tests above cover");
    return;
  }
  int contracted = 0;   // rows whose FMA sum differs from the baseline's: the functions above do contract
  for (int64_t n = 0; n <= 41; ++n) {
    for (int variant = 0; variant < 3; ++variant) {
      std::vector<float> a, b;
      dot_operands(n, variant, a, b);
      const float scalar = dot_scalar_fma(a.data(), b.data(), n);
      contracted += !same_bits(scalar, lane_sum<float>(n, [&](int64_t j) {
        return a[static_cast<size_t>(j)] * b[static_cast<size_t>(j)];
      }));
      for (size_t f = 0; f < forms.size(); ++f) {
        INFO((f == 0 ? 8 : 16) << " lanes, dot_lane_sum, n=" << n << ", variant " << variant);
        REQUIRE(same_bits(forms[f].first(a.data(), b.data(), n, n), scalar));
        REQUIRE(same_bits(forms[f].first(a.data(), b.data(), n, n + 16), scalar));
      }
    }
    for (int variant = 0; variant < 6; ++variant)
      for (size_t f = 0; f < forms.size(); ++f) {
        INFO((f == 0 ? 8 : 16) << " lanes, exp_shifted_lane_sum, n=" << n << ", variant " << variant);
        require_exp_lanes_fma(forms[f].second, n, variant);
      }
  }
  CHECK(contracted > 0);
}
