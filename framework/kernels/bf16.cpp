#include "framework/kernels/bf16.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "framework/kernels/parallel.h"
#include "framework/kernels/sbgemm.h"
#include "framework/kernels/simd.h"

#ifdef TAPEGRAD_WITH_ONEDNN
#include <dnnl.hpp>

extern "C" {
// libgomp's, present when oneDNN uses the OpenMP runtime (Debian's build); weak so that a oneDNN with
// another runtime still links.
void omp_set_num_threads(int) __attribute__((weak));
}
#endif

namespace tg::kernels {
namespace {

// Elements of a row-major rows x cols matrix (row stride ld) rounded into a packed rows x cols copy.
void round_matrix(const float* x, int64_t rows, int64_t cols, int64_t ld, float* y) {
  for (int64_t r = 0; r < rows; ++r) round_bf16(x + r * ld, cols, y + r * cols);
}

// Stored dims of op(X) [R, C]: X itself is [C, R] when transposed.
struct Stored {
  int64_t rows, cols;
};
Stored stored(bool trans, int64_t R, int64_t C) { return trans ? Stored{C, R} : Stored{R, C}; }

void emulated_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                     const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  thread_local std::vector<float> a, b;   // per thread: called from inside parallel tasks
  Stored sa = stored(ta, M, K), sb = stored(tb, K, N);
  a.resize(static_cast<size_t>(sa.rows * sa.cols));
  b.resize(static_cast<size_t>(sb.rows * sb.cols));
  round_matrix(A, sa.rows, sa.cols, lda, a.data());
  round_matrix(B, sb.rows, sb.cols, ldb, b.data());
  gemm_serial<float>(ta, tb, M, N, K, alpha, a.data(), sa.cols, b.data(), sb.cols, beta, C, ldc);
}

using u16x8 = uint16_t __attribute__((vector_size(16)));

// The bf16 bits of eight floats: round_bf16's integer operations, lane by lane.
[[gnu::always_inline]] inline u32x8 bf16_bits(const float* x) {
  u32x8 u;
  std::memcpy(&u, x, sizeof u);
  const auto nan = (u & 0x7fffffffu) > 0x7f800000u;   // lane masks
  const u32x8 even = (u >> 16) & 1u;
  return nan ? (u | 0x00400000u) >> 16 : (u + 0x7fffu + even) >> 16;
}

// y[i] = the upper 16 bits of round_bf16(x[i]) (the bf16 value) for i < n, eight lanes at a time: the
// same bits as the scalar function.
TG_MULTIVERSION void to_bf16_bits(const float* x, int64_t n, uint16_t* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const u16x8 h = __builtin_convertvector(bf16_bits(x + i), u16x8);
    std::memcpy(y + i, &h, sizeof h);
  }
  for (; i < n; ++i) y[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(round_bf16(x[i])) >> 16);
}

// y[i] = round_bf16(x[i]) for i < n, eight lanes at a time (y may equal x).
TG_MULTIVERSION void round_span(const float* x, int64_t n, float* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const u32x8 v = bf16_bits(x + i) << 16;
    std::memcpy(y + i, &v, sizeof v);
  }
  for (; i < n; ++i) y[i] = round_bf16(x[i]);
}

// Whole-matrix rounding in fixed row chunks (elementwise, so any split gives the same bits).
std::vector<float> rounded_copy(const float* x, Stored s, int64_t ld) {
  std::vector<float> y(static_cast<size_t>(s.rows * s.cols));
  parallel_for(s.rows, grain_for(s.cols, int64_t{1} << 16), [&](int64_t r0, int64_t r1) {
    round_matrix(x + r0 * ld, r1 - r0, s.cols, ld, y.data() + r0 * s.cols);
  });
  return y;
}

#ifdef TAPEGRAD_WITH_ONEDNN
using dnnl::memory;

// Never destroyed: worker threads' cached primitives and streams may outlive static destruction.
dnnl::engine& cpu_engine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// oneDNN's OpenMP team for calls from this thread: one thread (each call is one TBB task's work).
void single_threaded_onednn() {
  thread_local bool done = false;
  if (!done && omp_set_num_threads) omp_set_num_threads(1);
  done = true;
}

// Operand storage of a oneDNN product: E = uint16_t holds bf16 bits (the native path); E = float holds
// bf16-rounded values for oneDNN's float32 matmul, the same products and the same tile plan on a CPU
// without bf16 (gemm_bf16_onednn_f32, for tests).
template <class E> constexpr memory::data_type kType =
    std::is_same_v<E, uint16_t> ? memory::data_type::bf16 : memory::data_type::f32;

// Packed copy of a stored rows x cols matrix (row stride ld), rounded to bf16.
template <class E> void pack(const float* x, Stored s, int64_t ld, E* y) {
  for (int64_t r = 0; r < s.rows; ++r) {
    if constexpr (std::is_same_v<E, uint16_t>) to_bf16_bits(x + r * ld, s.cols, y + r * s.cols);
    else round_bf16(x + r * ld, s.cols, y + r * s.cols);
  }
}

// op(X) [R, C] over a packed stored matrix: strides of the logical dims.
memory::desc operand_desc(memory::data_type dt, bool trans, int64_t R, int64_t C, int64_t ld) {
  return memory::desc({R, C}, dt, trans ? memory::dims{1, ld} : memory::dims{ld, 1});
}

dnnl::matmul::primitive_desc matmul_desc(const memory::desc& a, const memory::desc& b, const memory::desc& c,
                                         float alpha, float beta) {
  dnnl::primitive_attr attr;
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(beta);
    attr.set_post_ops(ops);
  }
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, cpu_engine());
}

// The oneDNN primitive for one product's type, shape, strides and scalars, created once per thread (a
// tile grid repeats the same few shapes) and dropped wholesale when a thread has seen too many shapes.
struct TileKey {
  memory::data_type dt;
  bool ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  bool operator==(const TileKey&) const = default;
};
struct TileKeyHash {
  size_t operator()(const TileKey& k) const {
    size_t h = static_cast<size_t>(k.dt) * 4 + static_cast<size_t>(k.ta) * 2 + static_cast<size_t>(k.tb);
    for (int64_t v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc}) h = h * 1000003u ^ static_cast<size_t>(v);
    return h * 31 ^ std::hash<float>()(k.alpha) ^ (std::hash<float>()(k.beta) << 1);
  }
};

// A tile's primitive with its three memory objects (created once; each call only points them at its data).
struct TilePlan {
  dnnl::matmul prim;
  memory a, b, c;
};

TilePlan& tile_plan(const TileKey& k) {
  thread_local std::unordered_map<TileKey, TilePlan, TileKeyHash> cache;
  auto it = cache.find(k);
  if (it != cache.end()) return it->second;
  if (cache.size() >= 512) cache.clear();
  memory::desc a = operand_desc(k.dt, k.ta, k.M, k.K, k.lda), b = operand_desc(k.dt, k.tb, k.K, k.N, k.ldb);
  memory::desc c({k.M, k.N}, memory::data_type::f32, memory::dims{k.ldc, 1});
  dnnl::engine& eng = cpu_engine();
  TilePlan plan{dnnl::matmul(matmul_desc(a, b, c, k.alpha, k.beta)), memory(a, eng, DNNL_MEMORY_NONE),
                memory(b, eng, DNNL_MEMORY_NONE), memory(c, eng, DNNL_MEMORY_NONE)};
  return cache.emplace(k, std::move(plan)).first->second;
}

// C[M, N] (row stride ldc) = alpha op(A) op(B) + beta C from packed operands, on this thread.
template <class E>
void native_tile(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const E* A, int64_t lda, const E* B,
                 int64_t ldb, float beta, float* C, int64_t ldc) {
  single_threaded_onednn();
  TilePlan& plan = tile_plan({kType<E>, ta, tb, M, N, K, lda, ldb, ldc, alpha, beta});
  plan.a.set_data_handle(const_cast<E*>(A));
  plan.b.set_data_handle(const_cast<E*>(B));
  plan.c.set_data_handle(C);
  thread_local dnnl::stream stream(cpu_engine());
  plan.prim.execute(stream, {{DNNL_ARG_SRC, plan.a}, {DNNL_ARG_WEIGHTS, plan.b}, {DNNL_ARG_DST, plan.c}});
  stream.wait();
}

template <class E>
void native_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  thread_local std::vector<E> a, b;
  Stored sa = stored(ta, M, K), sb = stored(tb, K, N);
  a.resize(static_cast<size_t>(sa.rows * sa.cols));
  b.resize(static_cast<size_t>(sb.rows * sb.cols));
  pack(A, sa, lda, a.data());
  pack(B, sb, ldb, b.data());
  native_tile(ta, tb, M, N, K, alpha, a.data(), sa.cols, b.data(), sb.cols, beta, C, ldc);
}

// The parallel product: operands converted once, then fixed output tiles (row blocks, or column blocks
// when there are few rows, sized from the shape alone as in kernels::gemm), one oneDNN call per tile.
// With row_bias (beta must be 0) C starts as the bias on every row and the products are added to it.
template <class E>
void native_parallel(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                     const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* row_bias) {
  Stored sa = stored(ta, M, K), sb = stored(tb, K, N);
  std::vector<E> a(static_cast<size_t>(sa.rows * sa.cols)), b(static_cast<size_t>(sb.rows * sb.cols));
  parallel_for(2, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) i == 0 ? pack(A, sa, lda, a.data()) : pack(B, sb, ldb, b.data());
  });
  if (row_bias) {
    parallel_for(M, grain_for(N), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) std::copy(row_bias, row_bias + N, C + r * ldc);
    });
    beta = 1.0f;
  }
  const bool by_rows = M >= 64;
  const int64_t extent = by_rows ? M : N;
  const int64_t block = by_rows ? std::max<int64_t>(32, ((M + 7) / 8 + 15) / 16 * 16)
                                : std::max<int64_t>(64, ((N + 7) / 8 + 63) / 64 * 64);
  parallel_for((extent + block - 1) / block, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t s0 = t * block, n = std::min(block, extent - s0);
      if (by_rows)   // rows s0.. of op(A): row s0 of A, or column s0 of the stored A^T
        native_tile(ta, tb, n, N, K, alpha, a.data() + (ta ? s0 : s0 * sa.cols), sa.cols, b.data(), sb.cols, beta,
                    C + s0 * ldc, ldc);
      else
        native_tile(ta, tb, M, n, K, alpha, a.data(), sa.cols, b.data() + (tb ? s0 * sb.cols : s0), sb.cols, beta,
                    C + s0, ldc);
    }
  });
}
#endif

void require_native() {
#ifndef TAPEGRAD_WITH_ONEDNN
  throw std::logic_error("[gemm_bf16] native bf16 needs tapegrad built with oneDNN (TAPEGRAD_WITH_ONEDNN)");
#endif
}

// K == 0 or an empty result: C = beta C (+ row_bias), no operand is read.
bool trivial(int64_t M, int64_t N, int64_t K, float beta, float* C, int64_t ldc, const float* row_bias) {
  if (M == 0 || N == 0) return true;
  if (K != 0) return false;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      C[i * ldc + j] = (beta == 0.0f ? 0.0f : beta * C[i * ldc + j]) + (row_bias ? row_bias[j] : 0.0f);
  return true;
}

}  // namespace

float round_bf16(float x) {
  uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::bit_cast<float>((u | 0x00400000u) & 0xffff0000u);   // NaN
  u += 0x7fffu + ((u >> 16) & 1u);   // ties to even; the largest finite values round to inf
  return std::bit_cast<float>(u & 0xffff0000u);
}

void round_bf16(const float* x, int64_t n, float* y) { round_span(x, n, y); }

Bf16Gemm native_bf16_gemm() {
  static const Bf16Gemm gemm = [] {
    const char* env = std::getenv("TAPEGRAD_BF16_GEMM");
    const std::string choice = env ? env : "";
    const bool onednn = !onednn_version().empty(), own = sbgemm_cpu_supported();
    if (choice == "onednn") return onednn || !own ? Bf16Gemm::onednn : Bf16Gemm::tapegrad;
    if (choice == "tapegrad") return own || !onednn ? Bf16Gemm::tapegrad : Bf16Gemm::onednn;
    if (!choice.empty() && choice != "auto")
      throw std::invalid_argument("[gemm_bf16] TAPEGRAD_BF16_GEMM must be 'tapegrad', 'onednn' or 'auto'; got "
                                  "TAPEGRAD_BF16_GEMM=" + choice);
    const bool amx = bf16_cpu_features().find("AMX-BF16") != std::string::npos;
    return own && !(amx && onednn) ? Bf16Gemm::tapegrad : Bf16Gemm::onednn;
  }();
  return gemm;
}

void gemm_bf16_serial(Bf16Mode mode, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (trivial(M, N, K, beta, C, ldc, nullptr)) return;
  if (mode == Bf16Mode::emulated) return emulated_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (mode != Bf16Mode::native) throw std::logic_error("[gemm_bf16] mode must be native or emulated");
  if (uses_sbgemm(mode))
    return sbgemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  require_native();
#ifdef TAPEGRAD_WITH_ONEDNN
  native_serial<uint16_t>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void gemm_bf16(Bf16Mode mode, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* row_bias) {
  if (row_bias) beta = 0.0f;
  if (trivial(M, N, K, beta, C, ldc, row_bias)) return;
  if (mode != Bf16Mode::native && mode != Bf16Mode::emulated)
    throw std::logic_error("[gemm_bf16] mode must be native or emulated");
  Stored sa = stored(ta, M, K), sb = stored(tb, K, N);
  if (mode == Bf16Mode::emulated) {
    std::vector<float> a = rounded_copy(A, sa, lda), b = rounded_copy(B, sb, ldb);
    gemm<float>(ta, tb, M, N, K, alpha, a.data(), sa.cols, b.data(), sb.cols, beta, C, ldc, row_bias);
    return;
  }
  if (uses_sbgemm(mode))
    return sbgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, row_bias);
  require_native();
#ifdef TAPEGRAD_WITH_ONEDNN
  native_parallel<uint16_t>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, row_bias);
#endif
}

void gemm_bf16_batched(Bf16Mode mode, int64_t batch, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b,
                       float beta, float* C, int64_t ldc, int64_t stride_c) {
  if (batch == 1) return gemm_bf16(mode, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  parallel_for(batch, grain_for(M * N * std::max<int64_t>(K, 1), int64_t{1} << 18), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      gemm_bf16_serial(mode, ta, tb, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
                       C + i * stride_c, ldc);
  });
}

void gemm_bf16_onednn(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  require_native();
  if (trivial(M, N, K, beta, C, ldc, nullptr)) return;
#ifdef TAPEGRAD_WITH_ONEDNN
  native_parallel<uint16_t>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr);
#endif
}

#ifdef TAPEGRAD_WITH_ONEDNN
void gemm_bf16_onednn_f32(bool serial, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                          const float* row_bias) {
  if (row_bias) beta = 0.0f;
  if (trivial(M, N, K, beta, C, ldc, row_bias)) return;
  if (serial && !row_bias) native_serial<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else native_parallel<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, row_bias);
}
#else
void gemm_bf16_onednn_f32(bool, bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                          int64_t, float, float*, int64_t, const float*) {
  require_native();
}
#endif

std::string bf16_cpu_features() {
  unsigned a = 0, b = 0, c = 0, d = 0, a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return "";
  if (a >= 1) __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
  bool avx512_bf16 = (b & bit_AVX512F) && (a1 & (1u << 5));   // leaf 7.1 EAX bit 5
  bool amx_bf16 = (d & (1u << 22)) != 0;                       // leaf 7.0 EDX bit 22
  std::string s = avx512_bf16 ? "AVX512_BF16" : "";
  if (amx_bf16) s += s.empty() ? "AMX-BF16" : "+AMX-BF16";
  return s;
}

namespace {
// Seconds that f() takes (its result kept, so the work cannot be dropped).
template <class F> double timed(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  volatile float sink = f();
  (void)sink;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// n iterations of 12 independent instructions on registers only: bf16 dot products (kDot) or float32
// FMAs. Lane 0 of their sum is returned (_mm512_reduce_add_ps trips GCC 12's -Wuninitialized).
template <bool kDot> __attribute__((target("avx512f,avx512bf16"), noinline)) float register_loop(int64_t n) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  __m512 a = kDot ? _mm512_castsi512_ps(_mm512_set1_epi32(0x3f803f80)) : _mm512_set1_ps(1.0001f);
  const __m512 b = kDot ? _mm512_castsi512_ps(_mm512_set1_epi32(0x3f803f81)) : _mm512_set1_ps(0.9999f);
  for (int64_t k = 0; k < n; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i)
      acc[i] = kDot ? _mm512_dpbf16_ps(acc[i], (__m512bh)a, (__m512bh)b) : _mm512_fmadd_ps(a, b, acc[i]);
    __asm__ volatile("" : "+v"(a));   // the loop cannot be folded
  }
  for (int i = 1; i < 12; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc[0]);
  return lanes[0];
}
}  // namespace

double measure_bf16_dot_speed_ratio() {
  if (bf16_cpu_features().find("AVX512_BF16") == std::string::npos) return 0.0;
  constexpr int64_t kIters = 40000;   // 480k instructions: ~0.1 ms of FMAs, 0.1-0.4 ms of dot products
  double dot = 1e30, fma = 1e30;
  for (int rep = 0; rep < 7; ++rep) {   // alternated, best of 7: a busy neighbour slows both alike
    fma = std::min(fma, timed([] { return register_loop<false>(kIters); }));
    dot = std::min(dot, timed([] { return register_loop<true>(kIters); }));
  }
  return 2.0 * fma / dot;   // 32 multiply-adds per dot-product instruction, 16 per FMA
}

bool onednn_bf16_matmul_works() {
#ifdef TAPEGRAD_WITH_ONEDNN
  try {
    memory::desc a({8, 8}, memory::data_type::bf16, memory::dims{8, 1});
    memory::desc c({8, 8}, memory::data_type::f32, memory::dims{8, 1});
    matmul_desc(a, a, c, 1.0f, 0.0f);
    return true;
  } catch (const dnnl::error&) {
    return false;   // "could not create a primitive descriptor iterator": no bf16 kernel for this ISA
  }
#else
  return false;
#endif
}

std::string onednn_version() {
#ifdef TAPEGRAD_WITH_ONEDNN
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
#else
  return "";
#endif
}

}  // namespace tg::kernels
