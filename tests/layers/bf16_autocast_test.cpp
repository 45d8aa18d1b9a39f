// bf16 autocast (emulated: bf16-rounded operands, float32 accumulation) of MultiheadAttention and
// TransformerEncoderLayer against float32, forward and every gradient, and bitwise determinism.
//
// The tolerance. A bf16 operand carries 8 significant bits, so rounding moves it by at most
// u = 2^-9 relatively; a product of two rounded operands is off by at most 2u + u^2 < 2^-8, and the
// float32 sum of those exact products adds only ~K * 2^-24. So one matrix product has a norm-wise
// relative error of about 2^-8 (less when signs are random), and errors of chained products add to
// first order. We allow n * 2^-8 for the forward output, n being the number of products on the
// longest chain (MultiheadAttention: in_proj, q k^T, P v, out_proj = 4; the encoder layer adds
// linear1 and linear2 = 6), and 2n * 2^-8 for gradients (each backward product meets the forward
// errors again). Every comparison also requires an error above 2^-16, so a run that silently stayed
// float32 (differences ~1e-7) fails.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>

#include "tapegrad/framework/autocast.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/layers/linear.h"
#include "tapegrad/layers/multihead_attention.h"
#include "tapegrad/layers/transformer_encoder_layer.h"
#include "support/readme_support.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;

namespace {

constexpr double kProductError = 1.0 / 256;   // 2^-8: one bf16-input product, relative

struct ModeScope {
  explicit ModeScope(Bf16Mode m) { set_bf16_mode(m); }
  ~ModeScope() { reset_bf16_mode(); }
};

// ||a - b|| / ||b|| (Frobenius).
double relative_error(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double x = a.data<float>()[i], y = b.data<float>()[i];
    num += (x - y) * (x - y);
    den += y * y;
  }
  return std::sqrt(num / den);
}

// Output, input gradient and every parameter gradient of one forward + backward of `forward` on x
// with a fixed random upstream gradient, in `precision`.
template <class M, class F>
std::vector<std::pair<std::string, Tensor>> step(M& module, const Tensor& x, Precision precision, F&& forward) {
  module.zero_grad();
  Var in(x, true);
  Var out;
  {
    AutocastGuard g(precision);
    out = forward(in);
    sum(out * Var(rand_tensor(out.shape(), 99, -1, 1, DType::Float32))).backward();
  }
  std::vector<std::pair<std::string, Tensor>> r{{"output", out.value()}, {"input.grad", in.grad()}};
  for (const auto& [name, p] : module.named_parameters()) r.push_back({name + ".grad", p.grad()});
  return r;
}

// Compares a bf16 step with the float32 step under the documented tolerance (n products deep). `exact`
// names the gradient that no product reaches (the bias added last: a float32 column sum of the upstream
// gradient), which must keep its float32 bits.
void require_within_bf16_tolerance(const std::vector<std::pair<std::string, Tensor>>& bf,
                                   const std::vector<std::pair<std::string, Tensor>>& f32, int n,
                                   const std::string& exact) {
  REQUIRE(bf.size() == f32.size());
  for (size_t i = 0; i < bf.size(); ++i) {
    const double err = relative_error(bf[i].second, f32[i].second);
    const double tol = (i == 0 ? n : 2 * n) * kProductError;
    INFO(bf[i].first << ": relative error " << err << ", tolerance " << tol);
    if (bf[i].first == exact) {
      REQUIRE(err == 0.0);
      continue;
    }
    REQUIRE(err < tol);
    REQUIRE(err > std::ldexp(1.0, -16));
  }
}

std::vector<Tensor> values(const std::vector<std::pair<std::string, Tensor>>& r) {
  std::vector<Tensor> v;
  for (const auto& [name, t] : r) v.push_back(t);
  return v;
}

// Runs `run` (one training step's values) in native bf16 with 1 and 2 threads, REQUIREs the same bits, and
// REQUIREs it close to the emulation: the same bf16 operands, float32 sums in another order; an intermediate
// that lands on the other side of a bf16 rounding boundary moves by 2^-9 in one element, so allow well below
// the bf16 error, not 1e-7. False (after a warning) where native bf16 is unavailable.
bool require_native_steps(const std::function<std::vector<Tensor>(int)>& run) {
  if (!bf16_native_available()) {
    WARN("native bf16 unavailable here (" << bf16_status() << "); the emulated tests cover the numerics");
    REQUIRE(bf16_mode() != Bf16Mode::native);
    return false;
  }
  std::vector<Tensor> emulated;
  {
    ModeScope mode(Bf16Mode::emulated);
    emulated = run(1);
  }
  ModeScope mode(Bf16Mode::native);
  auto [one, two] = require_same_bits_across_threads(run);
  for (size_t i = 0; i < one.size(); ++i) REQUIRE(relative_error(one[i], emulated[i]) < 1e-3);
  return true;
}

}  // namespace

TEST_CASE("bf16 autocast: the README's snippet runs verbatim and computes in bf16", "[autocast][docs]") {
  ModeScope mode(Bf16Mode::emulated);
  Generator gen(1);
  Tensor input = rand_tensor({8, 64}, 3, -1, 1, DType::Float32);
  // --- README block begins
  tg::Linear layer({.in_features = 64, .out_features = 256}, gen);
  tg::Var x(input, /*requires_grad=*/true);
  {
    tg::AutocastGuard autocast(tg::Precision::bf16);   // this thread, this scope; guards nest
    tg::Var loss = tg::sum(tg::gelu(layer.forward(x)));
    loss.backward();
  }
  std::printf("%s\n", tg::runtime_info().c_str());   // ends "| bf16: <mode and why>"
  // --- README block ends
  Var x32(input, true);
  sum(gelu(layer.forward(x32))).backward();
  const double err = relative_error(x.grad(), x32.grad());
  REQUIRE(err > std::ldexp(1.0, -16));
  REQUIRE(err < 2 * 2 * kProductError);   // two products deep (forward, then dx)
  tg::test::require_readme_block_matches("## bf16 mixed precision", "tests/layers/bf16_autocast_test.cpp");
}

TEST_CASE("bf16 autocast: MultiheadAttention forward and backward match float32 within the bf16 tolerance "
          "(fused and weights paths)", "[autocast][mha]") {
  ModeScope mode(Bf16Mode::emulated);
  Generator gen(3);
  MultiheadAttention mha({.embed_dim = 64, .num_heads = 4, .batch_first = true}, gen);
  Tensor x = rand_tensor({3, 32, 64}, 1, -1, 1, DType::Float32);
  for (bool need_weights : {false, true}) {
    INFO("need_weights=" << need_weights);
    auto forward = [&](const Var& in) {
      return mha.forward(in, in, in, {.need_weights = need_weights, .is_causal = !need_weights}).attn_output;
    };
    auto f32 = step(mha, x, Precision::f32, forward);
    auto bf = step(mha, x, Precision::bf16, forward);
    require_within_bf16_tolerance(bf, f32, 4, "out_proj.bias.grad");
  }
}

TEST_CASE("bf16 autocast: TransformerEncoderLayer forward and backward match float32 within the bf16 tolerance",
          "[autocast][encoder]") {
  ModeScope mode(Bf16Mode::emulated);
  Generator gen(5);
  for (bool norm_first : {false, true}) {
    INFO("norm_first=" << norm_first);
    TransformerEncoderLayer layer({.d_model = 64, .nhead = 4, .dim_feedforward = 128, .dropout = 0.0,
                                   .activation = Activation::gelu, .batch_first = true, .norm_first = norm_first},
                                  gen);
    Tensor x = rand_tensor({2, 24, 64}, 2, -1, 1, DType::Float32);
    auto forward = [&](const Var& in) { return layer.forward(in, {.is_causal = true}); };
    auto f32 = step(layer, x, Precision::f32, forward);
    auto bf = step(layer, x, Precision::bf16, forward);
    require_within_bf16_tolerance(bf, f32, 6, norm_first ? "linear2.bias.grad" : "norm2.bias.grad");
  }
}

TEST_CASE("bf16 autocast: emulated encoder-layer training steps are bitwise equal with 1 and 2 threads",
          "[autocast][determinism]") {
  ModeScope mode(Bf16Mode::emulated);
  Tensor x = rand_tensor({8, 64, 64}, 4, -1, 1, DType::Float32);
  auto [one, two] = require_same_bits_across_threads([&](int) {
    Generator gen(8);
    TransformerEncoderLayer layer({.d_model = 64, .nhead = 4, .dim_feedforward = 256, .dropout = 0.1,
                                   .batch_first = true},
                                  gen);
    return values(step(layer, x, Precision::bf16,
                       [&](const Var& in) { return layer.forward(in, {.is_causal = true}); }));
  });
  // Not a float32 run in disguise: the same step in float32 differs.
  Generator gen(8);
  TransformerEncoderLayer layer(
      {.d_model = 64, .nhead = 4, .dim_feedforward = 256, .dropout = 0.1, .batch_first = true}, gen);
  auto f32 =
      values(step(layer, x, Precision::f32, [&](const Var& in) { return layer.forward(in, {.is_causal = true}); }));
  REQUIRE(max_abs_diff(one[0], f32[0]) > 1e-4);
}

TEST_CASE("bf16 autocast: native encoder-layer training steps (the tiny LM's layer shape) are bitwise equal with 1 "
          "and 2 threads and close to the emulation", "[autocast][native][determinism]") {
  // 12 x 64 tokens of width 128, FFN 512: the bf16 GEMM's parallel paths (tiles converting their own rows
  // of A, the FFN weight gradient as C^T, the GELU epilogue) and the causal attention products.
  Tensor x = rand_tensor({12, 64, 128}, 7, -1, 1, DType::Float32);
  require_native_steps([&](int) {
    Generator gen(9);
    TransformerEncoderLayer layer({.d_model = 128, .nhead = 4, .dim_feedforward = 512, .dropout = 0.1,
                                   .activation = Activation::gelu, .batch_first = true, .norm_first = true},
                                  gen);
    return values(step(layer, x, Precision::bf16,
                       [&](const Var& in) { return layer.forward(in, {.is_causal = true}); }));
  });
}

TEST_CASE("bf16 autocast: native MultiheadAttention steps are bitwise equal with 1 and 2 threads and close to the "
          "emulation", "[autocast][native]") {
  Tensor x = rand_tensor({4, 48, 64}, 6, -1, 1, DType::Float32);
  require_native_steps([&](int) {
    Generator gen(2);
    MultiheadAttention mha({.embed_dim = 64, .num_heads = 4, .batch_first = true}, gen);
    return values(step(mha, x, Precision::bf16, [&](const Var& in) {
      return mha.forward(in, in, in, {.need_weights = false, .is_causal = true}).attn_output;
    }));
  });
}
