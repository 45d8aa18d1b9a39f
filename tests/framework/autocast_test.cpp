// Autocast (bf16 mixed precision): the guard, bf16 rounding, which ops and dtypes it touches, the
// modes and their runtime_info text, and the native oneDNN path when this CPU has it.
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "framework/kernels/bf16.h"
#include "framework/kernels/sbgemm.h"
#include "tapegrad/framework/autocast.h"
#include "tapegrad/framework/ops/attention.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/runtime.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// Restores the process-wide default mode when a test ends (or fails).
struct ModeScope {
  explicit ModeScope(Bf16Mode m) { set_bf16_mode(m); }
  ~ModeScope() { reset_bf16_mode(); }
};

Tensor rounded(const Tensor& t) {
  Tensor r = t.clone();
  kernels::round_bf16(t.data<float>(), t.numel(), r.data<float>());
  return r;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (std::bit_cast<uint32_t>(a.data<float>()[i]) != std::bit_cast<uint32_t>(b.data<float>()[i])) return false;
  return true;
}

// matmul of [2, 48, 40] @ [40, 72] (one folded GEMM) and linear of x [96, 40] with weight [72, 40]:
// outputs and the gradients of every input for the upstream gradient gy.
std::vector<Tensor> products(const Tensor& a, const Tensor& b, const Tensor& x, const Tensor& w, const Tensor& bias) {
  Var av(a, true), bv(b, true), xv(x, true), wv(w, true), biasv(bias, true);
  Var y1 = matmul(av, bv), y2 = linear(xv, wv, biasv);
  Var loss = sum(y1 * Var(rand_tensor(y1.shape(), 9, -1, 1, DType::Float32))) +
             sum(y2 * Var(rand_tensor(y2.shape(), 10, -1, 1, DType::Float32)));
  loss.backward();
  return {y1.value(), y2.value(), av.grad(), bv.grad(), xv.grad(), wv.grad(), biasv.grad()};
}

struct Inputs {
  Tensor a = rand_tensor({2, 48, 40}, 1, -1, 1, DType::Float32), b = rand_tensor({40, 72}, 2, -1, 1, DType::Float32);
  Tensor x = rand_tensor({96, 40}, 3, -1, 1, DType::Float32), w = rand_tensor({72, 40}, 4, -0.2, 0.2, DType::Float32);
  Tensor bias = rand_tensor({72}, 5, -0.2, 0.2, DType::Float32);
};

// A product of the native path's oneDNN tiles: shape, transposes, one serial call or the tiled product, a
// row bias, alpha and beta.
struct OnednnCase {
  int64_t M, N, K;
  bool ta, tb, serial, bias;
  float alpha, beta;
};

// C = alpha op(A) op(B) + beta C, + the bias when given (null: none).
using OnednnProduct = std::function<void(const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                                         int64_t ldc, const float* bias)>;

// `product` for case c, on operands and C whose row strides are wider than the matrices, against the emulation:
// within float32 rounding, bitwise equal with 1 and 2 threads, and C written.
void require_matches_emulation(const OnednnCase& c, const char* what, const OnednnProduct& product) {
  INFO("M=" << c.M << " N=" << c.N << " K=" << c.K << " ta=" << c.ta << " tb=" << c.tb << " serial=" << c.serial);
  const int64_t ar = c.ta ? c.K : c.M, ac = c.ta ? c.M : c.K, br = c.tb ? c.N : c.K, bc = c.tb ? c.K : c.N;
  Tensor a = rand_tensor({ar, ac + 3}, 1, -1, 1, DType::Float32);
  Tensor b = rand_tensor({br, bc + 3}, 2, -1, 1, DType::Float32);
  Tensor c0 = rand_tensor({c.M, c.N + 3}, 3, -1, 1, DType::Float32);
  Tensor bias = rand_tensor({c.N}, 4, -1, 1, DType::Float32);
  const float* pb = c.bias ? bias.data<float>() : nullptr;
  Tensor expected = c0.clone();
  kernels::gemm_bf16(Bf16Mode::emulated, c.ta, c.tb, c.M, c.N, c.K, c.alpha, a.data<float>(), ac + 3,
                     b.data<float>(), bc + 3, c.beta, expected.data<float>(), c.N + 3, pb);
  auto [one, two] = require_same_bits_across_threads([&](int) {
    Tensor got = c0.clone();
    product(a.data<float>(), ac + 3, b.data<float>(), bc + 3, got.data<float>(), c.N + 3, pb);
    return std::vector<Tensor>{got};
  });
  require_close(one[0], expected, 1e-5, what);
  REQUIRE(max_abs_diff(one[0], c0) > 0.1);   // the product was written
}

}  // namespace

TEST_CASE("autocast: the guard sets, nests and restores the precision of its thread only", "[autocast]") {
  REQUIRE_FALSE(autocast_enabled());
  {
    AutocastGuard outer(Precision::bf16);
    REQUIRE(autocast_enabled());
    REQUIRE(autocast_precision() == Precision::bf16);
    bool other_thread = true;
    std::thread([&] { other_thread = autocast_enabled(); }).join();
    REQUIRE_FALSE(other_thread);
    {
      AutocastGuard inner(Precision::f32);
      REQUIRE_FALSE(autocast_enabled());
      {
        AutocastGuard innermost(Precision::bf16);
        REQUIRE(autocast_enabled());
      }
      REQUIRE_FALSE(autocast_enabled());
    }
    REQUIRE(autocast_enabled());
  }
  REQUIRE_FALSE(autocast_enabled());
  REQUIRE(autocast_precision() == Precision::f32);
}

TEST_CASE("autocast: precision names parse and print, a bad one throws", "[autocast]") {
  REQUIRE(parse_precision("bf16") == Precision::bf16);
  REQUIRE(parse_precision("f32") == Precision::f32);
  REQUIRE(to_string(Precision::bf16) == "bf16");
  REQUIRE(to_string(Bf16Mode::emulated) == "emulated");
  REQUIRE_THROWS_WITH(parse_precision("fp16"), Contains("[precision] expected f32 or bf16; got precision=fp16"));
}

TEST_CASE("autocast: round_bf16 rounds to nearest, ties to even, and keeps inf and NaN", "[autocast]") {
  const float ulp = std::ldexp(1.0f, -7);   // bf16 spacing in [1, 2)
  REQUIRE(kernels::round_bf16(1.0f) == 1.0f);
  REQUIRE(kernels::round_bf16(1.0f + ulp / 2) == 1.0f);                  // tie -> even (1.0)
  REQUIRE(kernels::round_bf16(1.0f + 3 * ulp / 2) == 1.0f + 2 * ulp);    // tie -> even (1 + 2 ulp)
  REQUIRE(kernels::round_bf16(1.0f + ulp / 2 + std::ldexp(1.0f, -20)) == 1.0f + ulp);
  REQUIRE(kernels::round_bf16(-3.14159265f) == -3.140625f);
  REQUIRE(kernels::round_bf16(std::numeric_limits<float>::max()) == std::numeric_limits<float>::infinity());
  REQUIRE(kernels::round_bf16(-std::numeric_limits<float>::infinity()) == -std::numeric_limits<float>::infinity());
  REQUIRE(std::isnan(kernels::round_bf16(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("autocast: round_bf16 over an array (eight lanes at a time) gives the scalar function's bits",
          "[autocast]") {
  // Random bit patterns (every exponent: denormals, inf, NaN with any payload) and exact ties, 1003 of
  // them so that the tail after the last run of eight is used too.
  std::mt19937 gen(5);
  std::vector<float> x(1003);
  for (size_t i = 0; i < x.size(); ++i) {
    const uint32_t bits = static_cast<uint32_t>(gen());
    x[i] = std::bit_cast<float>(i % 3 == 0 ? (bits & 0xffff0000u) | 0x8000u : bits);   // every third a tie
  }
  x[7] = std::numeric_limits<float>::infinity();
  x[8] = std::numeric_limits<float>::quiet_NaN();
  x[9] = std::bit_cast<float>(0x7f800001u);   // signalling NaN: kept a NaN, made quiet
  std::vector<float> y(x.size());
  kernels::round_bf16(x.data(), static_cast<int64_t>(x.size()), y.data());
  int nans = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    INFO("element " << i << " bits " << std::bit_cast<uint32_t>(x[i]));
    REQUIRE(std::bit_cast<uint32_t>(y[i]) == std::bit_cast<uint32_t>(kernels::round_bf16(x[i])));
    nans += std::isnan(y[i]) ? 1 : 0;
  }
  REQUIRE(nans >= 3);
  kernels::round_bf16(x.data(), static_cast<int64_t>(x.size()), x.data());   // in place
  REQUIRE(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
}

TEST_CASE("autocast: emulated matmul and linear equal float32 products of bf16-rounded operands, forward and "
          "backward", "[autocast]") {
  Inputs in;
  ModeScope mode(Bf16Mode::emulated);
  std::vector<Tensor> bf;
  {
    AutocastGuard g(Precision::bf16);
    bf = products(in.a, in.b, in.x, in.w, in.bias);
  }
  // Reference forward: float32 GEMMs of rounded operands (the bias is added in float32).
  REQUIRE(same_bits(bf[0], matmul(Var(rounded(in.a)), Var(rounded(in.b))).value()));
  REQUIRE(same_bits(bf[1], linear(Var(rounded(in.x)), Var(rounded(in.w)), Var(in.bias)).value()));
  // Reference backward: dx = gy @ W with gy and W rounded (the same for every product).
  Tensor gy2 = rand_tensor({96, 72}, 10, -1, 1, DType::Float32);
  REQUIRE(same_bits(bf[4], matmul(Var(rounded(gy2)), Var(rounded(in.w))).value()));
  std::vector<Tensor> f32 = products(in.a, in.b, in.x, in.w, in.bias);
  for (size_t i = 0; i < f32.size(); ++i) {
    INFO("tensor " << i);
    double scale = std::max(1.0, max_abs_diff(f32[i], Tensor::zeros(f32[i].shape(), DType::Float32)));
    double err = max_abs_diff(bf[i], f32[i]) / scale;
    // bf16 arithmetic really happened (float32 reassociation would differ by ~1e-7), within 40 products
    // of 2^-8 relative error each (K = 40, |a b| <= 1: |error| <= 2^-8 * sum |a_k b_k|).
    if (i != 6) REQUIRE(err > 1e-5);
    REQUIRE(err < 40 * std::ldexp(1.0, -8));
  }
  REQUIRE(same_bits(bf[6], f32[6]));   // the bias gradient is a float32 column sum either way
}

TEST_CASE("autocast: off, or in float32 mode, every product keeps its float32 bits", "[autocast]") {
  Inputs in;
  std::vector<Tensor> plain = products(in.a, in.b, in.x, in.w, in.bias);
  std::vector<Tensor> guarded_f32, fallback;
  {
    ModeScope mode(Bf16Mode::emulated);
    AutocastGuard g(Precision::f32);
    guarded_f32 = products(in.a, in.b, in.x, in.w, in.bias);
  }
  {
    ModeScope mode(Bf16Mode::float32);
    AutocastGuard g(Precision::bf16);
    fallback = products(in.a, in.b, in.x, in.w, in.bias);
  }
  for (size_t i = 0; i < plain.size(); ++i) {
    REQUIRE(same_bits(guarded_f32[i], plain[i]));
    REQUIRE(same_bits(fallback[i], plain[i]));
  }
}

TEST_CASE("autocast: float64 tensors are never autocast", "[autocast]") {
  Var a = rand_var({24, 40}, 1), b = rand_var({40, 16}, 2), w = rand_var({8, 16}, 3);
  Var q = rand_var({6, 2, 8}, 4);
  auto run = [&] {
    Var y = linear(matmul(a, b), w);
    Var z = fused_attention(q, q, q, {.num_heads = 2});
    return std::make_pair(y.value(), z.value());
  };
  auto plain = run();
  ModeScope mode(Bf16Mode::emulated);
  AutocastGuard g(Precision::bf16);
  auto cast = run();
  REQUIRE(max_abs_diff(cast.first, plain.first) == 0.0);
  REQUIRE(max_abs_diff(cast.second, plain.second) == 0.0);
}

TEST_CASE("autocast: the backward of a product recorded under autocast uses bf16 even outside the scope",
          "[autocast]") {
  Inputs in;
  ModeScope mode(Bf16Mode::emulated);
  Var x(in.x, true), w(in.w, true);
  Tensor gy = rand_tensor({96, 72}, 11, -1, 1, DType::Float32);
  Var y;
  {
    AutocastGuard g(Precision::bf16);
    y = linear(x, w);
  }
  sum(y * Var(gy)).backward();   // outside the guard
  REQUIRE(same_bits(x.grad(), matmul(Var(rounded(gy)), Var(rounded(in.w))).value()));
}

TEST_CASE("autocast: modes, native availability and the runtime_info text", "[autocast][runtime]") {
  const std::string features = kernels::bf16_cpu_features();
  INFO("cpu bf16 features: '" << features << "', oneDNN '" << kernels::onednn_version() << "'");
  if (features.empty()) REQUIRE_FALSE(bf16_native_available());
  REQUIRE_THAT(runtime_info(), Contains(bf16_status()));
  if (!bf16_native_available()) {
    REQUIRE(bf16_mode() != Bf16Mode::native);
    REQUIRE_THROWS_WITH(set_bf16_mode(Bf16Mode::native),
                        Contains("[set_bf16_mode] native bf16 is unavailable on this CPU"));
    ModeScope mode(Bf16Mode::float32);
    if (features.empty() && !kernels::onednn_version().empty())
      REQUIRE(bf16_status() == "bf16: unavailable on this CPU (no AVX512_BF16/AMX), autocast runs float32");
    REQUIRE_THAT(runtime_info(), Contains("autocast runs float32"));
  } else {
    // The default is native only where it pays off: AMX-BF16, or dot products >= 1.5x the FMA rate.
    const bool amx = features.find("AMX-BF16") != std::string::npos;
    const double ratio = bf16_dot_speed_ratio();
    INFO("bf16 dot products at " << ratio << "x the float32 FMA rate");
    REQUIRE(bf16_native_preferred() == (amx || ratio >= 1.5));
    if (!amx) REQUIRE((ratio > 0.1 && ratio < 8.0));   // measured: 0.50 on an Intel Xeon without AMX
    if (std::getenv("TAPEGRAD_BF16") == nullptr) {
      REQUIRE(bf16_mode() == (bf16_native_preferred() ? Bf16Mode::native : Bf16Mode::float32));
      if (!bf16_native_preferred()) {
        char text[16];
        std::snprintf(text, sizeof text, "%.2fx", ratio);
        REQUIRE(bf16_status() == std::string("bf16: float32 (this CPU's AVX512_BF16 dot products run at ") + text +
                                     " its float32 FMA rate, measured: bf16 would be slower), autocast runs "
                                     "float32; TAPEGRAD_BF16=native or set_bf16_mode(native) forces native bf16");
      }
    }
    ModeScope mode(Bf16Mode::native);
    // tapegrad's own AVX512_BF16 GEMM, except on AMX-BF16 CPUs (oneDNN's AMX tiles) or when asked.
    const bool own = kernels::native_bf16_gemm() == kernels::Bf16Gemm::tapegrad;
    if (std::getenv("TAPEGRAD_BF16_GEMM") == nullptr)
      REQUIRE(own == (kernels::sbgemm_cpu_supported() && !(amx && !kernels::onednn_version().empty())));
    REQUIRE_THAT(runtime_info(), Contains(own ? "bf16: native (tapegrad AVX512_BF16 GEMM, " + features + ")"
                                              : "bf16: native (oneDNN " + kernels::onednn_version()));
  }
  ModeScope mode(Bf16Mode::emulated);
  REQUIRE(bf16_mode() == Bf16Mode::emulated);
  REQUIRE_THAT(runtime_info(), Contains("bf16: emulated (bf16-rounded operands, float32 GEMM"));
}

TEST_CASE("autocast: the native path's oneDNN tiles, strides, alpha, beta and bias (run through oneDNN's float32 "
          "matmul on bf16-rounded values) match the emulation, bitwise equal with 1 and 2 threads",
          "[autocast][onednn]") {
  if (kernels::onednn_version().empty()) {
    WARN("tapegrad was built without oneDNN: nothing to check");
    REQUIRE_THROWS_AS(kernels::gemm_bf16_onednn_f32(false, false, false, 1, 1, 1, 1.0f, nullptr, 1, nullptr, 1, 0.0f,
                                                    nullptr, 1),
                      std::logic_error);
    return;
  }
  // Row tiles (M >= 64), column tiles (M < 64), one serial call; every transpose combination; a row
  // stride wider than the matrix (ld = cols + 3).
  const std::vector<OnednnCase> cases{{200, 70, 50, false, false, false, false, 1.0f, 0.0f},
                                      {200, 70, 50, true, true, false, true, 1.0f, 0.0f},
                                      {20, 300, 33, false, true, false, false, 0.5f, 0.25f},
                                      {20, 300, 33, true, false, false, true, 1.0f, 0.0f},
                                      {37, 45, 29, true, true, true, false, 0.75f, 1.0f},
                                      {96, 130, 64, false, true, true, false, 1.0f, 0.0f}};
  for (const OnednnCase& c : cases)
    require_matches_emulation(c, "oneDNN tiles vs emulation",
                              [&](const float* a, int64_t lda, const float* b, int64_t ldb, float* out, int64_t ldc,
                                  const float* bias) {
                                kernels::gemm_bf16_onednn_f32(c.serial, c.ta, c.tb, c.M, c.N, c.K, c.alpha, a, lda, b,
                                                              ldb, c.beta, out, ldc, bias);
                              });
}

TEST_CASE("autocast: native products match the emulation and are bitwise equal with 1 and 2 threads",
          "[autocast][native]") {
  if (!bf16_native_available()) {
    WARN("native bf16 unavailable here (" << bf16_status() << "): only the emulated path was tested");
    REQUIRE_THROWS_AS(kernels::gemm_bf16_serial(Bf16Mode::float32, false, false, 1, 1, 1, 1.0f, nullptr, 1, nullptr, 1,
                                                0.0f, nullptr, 1),
                      std::logic_error);
    return;
  }
  Inputs in;
  std::vector<Tensor> emulated;
  {
    ModeScope mode(Bf16Mode::emulated);
    AutocastGuard g(Precision::bf16);
    emulated = products(in.a, in.b, in.x, in.w, in.bias);
  }
  ModeScope mode(Bf16Mode::native);
  auto [one, two] = require_same_bits_across_threads([&](int) {
    AutocastGuard g(Precision::bf16);
    return products(in.a, in.b, in.x, in.w, in.bias);
  });
  // Same rounded operands, float32 accumulation in another order: float32-level differences only.
  for (size_t i = 0; i < one.size(); ++i) require_close(one[i], emulated[i], 1e-5, "native vs emulated");
}

TEST_CASE("autocast: oneDNN's bf16 matmul on the native path's tiles (gemm_bf16_onednn, the benchmarks' bf16 peak) "
          "matches the emulation, bitwise equal with 1 and 2 threads",
          "[autocast][onednn]") {
  if (kernels::onednn_version().empty()) {
    REQUIRE_THROWS_AS(kernels::gemm_bf16_onednn(false, false, 1, 1, 1, 1.0f, nullptr, 1, nullptr, 1, 0.0f, nullptr, 1),
                      std::logic_error);
    return;
  }
  if (!kernels::onednn_bf16_matmul_works()) {
    WARN("oneDNN's bf16 matmul cannot run here: only its float32 form was tested");
    return;
  }
  // Row tiles (M >= 64) and column tiles, every transpose, alpha and beta (no serial call, no bias: the tiled
  // product alone).
  const std::vector<OnednnCase> cases{{200, 70, 50, false, false, false, false, 0.5f, 0.25f},
                                      {200, 70, 50, true, true, false, false, 0.5f, 0.25f},
                                      {20, 300, 33, false, true, false, false, 0.5f, 0.25f},
                                      {20, 300, 33, true, false, false, false, 0.5f, 0.25f}};
  for (const OnednnCase& c : cases)
    require_matches_emulation(c, "oneDNN bf16 tiles vs emulation",
                              [&](const float* a, int64_t lda, const float* b, int64_t ldb, float* out, int64_t ldc,
                                  const float*) {
                                kernels::gemm_bf16_onednn(c.ta, c.tb, c.M, c.N, c.K, c.alpha, a, lda, b, ldb, c.beta,
                                                          out, ldc);
                              });
}
