#pragma once
// Branch-free math that loops vectorise over (no libm calls): used by the softmax, cross-entropy and
// GELU kernels.
#include <bit>
#include <cstdint>

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

}  // namespace tg::kernels
