#pragma once
// TG_MULTIVERSION: compiles a hot loop function for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and
// the baseline, and picks one at load time from the CPU (GCC target_clones, resolved once through an
// ifunc). The choice depends on the machine only, never on the thread count, so results stay bitwise
// identical for any number of threads; two machines with different vector units may differ in the
// last bits (FMA contraction), as two BLAS kernels do. Helpers called from such a function should be
// inline so that they are compiled with the clone's instruction set.
//
// Lane vectors: f32x4 / f32x8 are four / eight floats as GCC vector extensions, for loop bodies that
// GCC's auto-vectoriser leaves scalar (selects, clamps and bit tricks in one long body). +, -, *, /
// are the IEEE operations lane by lane, so a lane's bits equal the scalar expression's (with the same
// FMA contraction, which GCC applies to vector and scalar code alike); a comparison gives a lane mask
// (-1 or 0) and `mask ? a : b` selects lane by lane. A kernel body is a template on the lane vector V,
// run (with_float_lanes) with V = f32x16 (one zmm register) where the CPU runs the AVX-512 clones, f32x8
// (one ymm) where it runs the AVX2 ones and f32x4 (one xmm) otherwise: without AVX, GCC turns a 32-byte
// compare or select into scalar code. Lanes are independent, so the width never changes a result's bits
// (reductions keep their own fixed lanes: fast_math.h).
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(TG_NO_MULTIVERSION)
#define TG_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TG_MULTIVERSION
#endif

// GCC warns that a 32-byte vector returned by value has another ABI without AVX (the baseline clone).
// The helpers returning them are inline, internal to the kernels and never exported, so no call
// crosses an ABI boundary: the warning is switched off for every kernel file that includes this
// header. Vector parameters are passed by const reference (GCC notes by-value ones unconditionally).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace tg::kernels {

using f32x4 = float __attribute__((vector_size(16)));
using u32x4 = uint32_t __attribute__((vector_size(16)));
using f32x8 = float __attribute__((vector_size(32)));
using u32x8 = uint32_t __attribute__((vector_size(32)));
using f32x16 = float __attribute__((vector_size(64)));
using u32x16 = uint32_t __attribute__((vector_size(64)));
using f64x4 = double __attribute__((vector_size(32)));   // four double accumulators (fixed lane sums)

// The element type of V (V itself for a scalar), its number of lanes, and the unsigned integer type
// of the same shape (for exponent bits).
template <class V> struct LaneTraits {
  using type = std::remove_cvref_t<decltype(std::declval<V>()[0])>;
};
template <class V>
  requires std::is_arithmetic_v<V>
struct LaneTraits<V> {
  using type = V;
};
template <class V> using LaneOf = typename LaneTraits<V>::type;
template <class V> constexpr int64_t kLanes = sizeof(V) / sizeof(LaneOf<V>);
template <class V>
using UIntOf = std::conditional_t<
    std::is_same_v<V, f32x16>, u32x16,
    std::conditional_t<std::is_same_v<V, f32x8>, u32x8,
                       std::conditional_t<std::is_same_v<V, f32x4>, u32x4,
                                          std::conditional_t<sizeof(V) == 8, uint64_t, uint32_t>>>>;

// Whether the CPU runs the AVX2/AVX-512 clones of TG_MULTIVERSION functions (the ifunc resolvers'
// own test), i.e. whether lane-vector kernels should take f32x8.
inline bool wide_lanes() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(TG_NO_MULTIVERSION)
  static const bool wide = __builtin_cpu_supports("x86-64-v3");
  return wide;
#elif defined(__AVX__)
  return true;
#else
  return false;
#endif
}

// Whether the CPU runs the AVX-512 clones (x86-64-v4), i.e. whether lane-vector kernels take f32x16.
inline bool widest_lanes() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(TG_NO_MULTIVERSION)
  static const bool widest = __builtin_cpu_supports("x86-64-v4");
  return widest;
#elif defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}

// f.template operator()<V>() with the lane vector the CPU's clones run best: f32x16, f32x8 or f32x4. The
// choice depends on the machine only, never on the thread count.
template <class F> [[gnu::always_inline]] inline void with_float_lanes(F&& f) {
  if (widest_lanes()) f.template operator()<f32x16>();
  else if (wide_lanes()) f.template operator()<f32x8>();
  else f.template operator()<f32x4>();
}

// The low and high 8 lanes of a 16-lane vector.
[[gnu::always_inline]] inline f32x8 low_half(const f32x16& v) {
  return __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
}
[[gnu::always_inline]] inline f32x8 high_half(const f32x16& v) {
  return __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
}
// The low and high 4 lanes of an 8-lane vector.
[[gnu::always_inline]] inline f32x4 low_half(const f32x8& v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3); }
[[gnu::always_inline]] inline f32x4 high_half(const f32x8& v) { return __builtin_shufflevector(v, v, 4, 5, 6, 7); }

// c in every lane of V (a float or double scalar, or a lane vector): c in lane 0, then a shuffle of lane 0
// into every lane, which GCC emits as one broadcast whatever the width (a lane-by-lane fill became 16
// masked broadcasts per call for f32x16 inside the softmax).
template <class V, class S> [[gnu::always_inline]] inline V splat(S c) {
  if constexpr (std::is_arithmetic_v<V>) {
    return static_cast<V>(c);
  } else {
    V v = {};
    v[0] = static_cast<LaneOf<V>>(c);
    return [&]<size_t... I>(std::index_sequence<I...>) {
      return __builtin_shufflevector(v, v, (I * 0)...);
    }(std::make_index_sequence<static_cast<size_t>(kLanes<V>)>());
  }
}

// p[0, kLanes<V>) as a vector, and its store back (unaligned).
template <class V> [[gnu::always_inline]] inline V load(const LaneOf<V>* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V> [[gnu::always_inline]] inline void store(LaneOf<V>* p, const V& v) { std::memcpy(p, &v, sizeof v); }

// p[0, n), n <= kLanes<V>, in the low lanes; the other lanes hold `fill`.
template <class V> [[gnu::always_inline]] inline V load_tail(const LaneOf<V>* p, int64_t n, LaneOf<V> fill = 0) {
  LaneOf<V> buf[kLanes<V>];
  for (int64_t l = 0; l < kLanes<V>; ++l) buf[l] = l < n ? p[l] : fill;
  return load<V>(buf);
}
template <class V> [[gnu::always_inline]] inline void store_tail(LaneOf<V>* p, const V& v, int64_t n) {
  LaneOf<V> buf[kLanes<V>];
  store(buf, v);
  for (int64_t l = 0; l < n; ++l) p[l] = buf[l];
}

}  // namespace tg::kernels
