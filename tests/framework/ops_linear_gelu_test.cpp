// linear_gelu: one op for gelu(linear(x, weight, bias)), the same bits as the two ops (values and every
// gradient), in float32 through the sgemm's tile epilogue and in the other paths; and the epilogue itself.
#include <utility>
#include <vector>

#include "framework/kernels/sgemm.h"
#include "tapegrad/framework/autocast.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/runtime.h"
#include "support/readme_support.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// Value and the three gradients of one form (fused or not) from the same inputs and upstream gradient.
std::vector<Tensor> run_form(bool fused, const Shape& xs, int64_t out, bool with_bias, DType dt) {
  const int64_t in = xs.back();
  Var x = rand_var(xs, 11, -2, 2, true, dt), w = rand_var({out, in}, 12, -0.5, 0.5, true, dt);
  Var b = with_bias ? rand_var({out}, 13, -1, 1, true, dt) : Var();
  Var y = fused ? linear_gelu(x, w, b) : gelu(linear(x, w, b));
  Shape ys = xs;
  ys.back() = out;
  y.backward(rand_tensor(ys, 14, -1, 1, dt));
  std::vector<Tensor> r{y.value(), x.grad(), w.grad()};
  if (with_bias) r.push_back(b.grad());
  return r;
}

}  // namespace

TEST_CASE("linear_gelu: the bits of gelu(linear(x, w, b)), value and gradients, in float32 and float64",
          "[ops][fused][determinism]") {
  // Rows: many tiles (two threads), one tile, 50 rows (the sgemm computes C^T: the epilogue gets C's
  // columns as its rows), a single row (one gemv, then the GELU pass), a 1-D x; K = 0 (bias only).
  struct Case {
    Shape xs;
    int64_t out;
    bool bias;
  };
  const Case cases[] = {{{4, 150, 70}, 300, true}, {{96, 40}, 130, true}, {{50, 33}, 300, false},
                        {{1, 64}, 200, true},      {{64}, 48, true},        {{20, 0}, 40, true}};
  const int before = get_num_threads();
  for (const DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : cases)
      for (const int threads : {1, 2}) {
        INFO("dtype " << to_string(dt) << " x " << to_string(c.xs) << " out " << c.out << " threads " << threads);
        set_num_threads(threads);
        require_bit_equal(run_form(true, c.xs, c.out, c.bias, dt), run_form(false, c.xs, c.out, c.bias, dt));
      }
  set_num_threads(before);
}

TEST_CASE("linear_gelu: under native bf16 autocast, the bits of gelu(linear(x, w, b)) (the bf16 GEMM's tile "
          "epilogue)", "[ops][fused][autocast][native]") {
  // Many tiles converting their own rows (768 x 128 -> 512, the tiny LM's FFN), a few tiles, one row.
  for_native_bf16_threads([](int threads) {
    for (const auto& [xs, out] : {std::pair<Shape, int64_t>{{6, 128, 128}, 512}, {{96, 40}, 130}, {{1, 64}, 200}}) {
      INFO("x " << to_string(xs) << " out " << out << " threads " << threads);
      require_bit_equal(run_form(true, xs, out, true, DType::Float32), run_form(false, xs, out, true, DType::Float32));
    }
  });
}

TEST_CASE("linear_gelu: the README's example is this code and gives gelu(linear(x, w, b))", "[ops][fused][readme]") {
  Var x = rand_var({8, 16}, 31, -2, 2, true, DType::Float32), w = rand_var({32, 16}, 32, -1, 1, true, DType::Float32);
  Var b = rand_var({32}, 33, -1, 1, true, DType::Float32);
  // --- README block begins
  tg::Var h = tg::linear_gelu(x, w, b);   // the bits of tg::gelu(tg::linear(x, w, b)), gradients too
  // --- README block ends
  require_bit_equal({h.value()}, {gelu(linear(x, w, b)).value()});
  require_readme_block_matches("### Fused linear and GELU", "tests/framework/ops_linear_gelu_test.cpp");
}

TEST_CASE("linear_gelu: without a tape it writes the same values and records no backward", "[ops][fused]") {
  Var x = rand_var({300, 70}, 21, -2, 2, true, DType::Float32), w = rand_var({90, 70}, 22, -1, 1, true, DType::Float32);
  Var b = rand_var({90}, 23, -1, 1, true, DType::Float32);
  const Tensor want = gelu(linear(x, w, b)).value();
  NoGradGuard no_grad;
  const Var y = linear_gelu(x, w, b);
  REQUIRE_FALSE(y.requires_grad());
  require_bit_equal({y.value()}, {want});
}

TEST_CASE("linear_gelu: grad matches finite differences (with and without bias, 1-D and 3-D x)", "[ops][grad]") {
  Var x = rand_var({2, 3, 4}, 340, -2, 2), w = rand_var({5, 4}, 341), b = rand_var({5}, 342), x1 = rand_var({4}, 343);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear_gelu(v[0], v[1], v[2]); }, {x, w, b});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear_gelu(v[0], v[1]); }, {x, w});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear_gelu(v[0], v[1], v[2]); }, {x1, w, b});
}

TEST_CASE("linear_gelu: bad input throws naming the op and every shape", "[ops][errors]") {
  REQUIRE_THROWS_WITH(linear_gelu(rand_var({4, 3}, 1), rand_var({5, 2}, 2)),
                      Contains("[linear_gelu] in_features differ; got x=[4, 3], weight=[5, 2]"));
  REQUIRE_THROWS_WITH(
      linear_gelu(rand_var({4, 2}, 1), rand_var({5, 2}, 2), rand_var({3}, 3)),
      Contains("[linear_gelu] bias must have shape [out_features]; got x=[4, 2], weight=[5, 2], bias=[3]"));
  REQUIRE_THROWS_WITH(linear_gelu(rand_var({4, 2}, 1), rand_var({5, 2}, 2, -1, 1, true, DType::Float32)),
                      Contains("[linear_gelu] dtypes differ; got x=float64[4, 2], weight=float32[5, 2]"));
}

TEST_CASE("sgemm: the epilogue visits every element of C exactly once, after its sum", "[kernels][gemm]") {
  if (!kernels::sgemm_active()) {
    WARN("not run: tapegrad's sgemm is not active");
    return;
  }
  // The epilogue adds 1000 to each element it is given: C must be the plain product + 1000 everywhere, for
  // products of many tiles, narrow tiles, C^T (few rows with a transposed B; wide with a long K) and K = 0.
  const auto add_1000 = [](const void*, float* C, int64_t ldc, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t j = c0; j < c1; ++j) C[i * ldc + j] += 1000.0f;
  };
  struct Case {
    bool tb;
    int64_t M, N, K;
  };
  const Case cases[] = {{true, 300, 200, 70}, {false, 65, 128, 768}, {true, 20, 300, 40},
                        {false, 100, 400, 300}, {true, 7, 9, 0}};
  const int before = get_num_threads();
  for (const int threads : {1, 2})
    for (const Case& c : cases) {
      INFO("threads " << threads << " trans_b " << c.tb << " M " << c.M << " N " << c.N << " K " << c.K);
      set_num_threads(threads);
      const std::vector<float> A = uniform_floats(c.M * c.K, 5), B = uniform_floats(c.N * c.K, 6);
      const std::vector<float> bias = uniform_floats(c.N, 7);
      const int64_t ldb = c.tb ? c.K : c.N;
      std::vector<float> plain(static_cast<size_t>(c.M * c.N)), with(plain.size());
      kernels::sgemm(false, c.tb, c.M, c.N, c.K, 1.0f, A.data(), c.K, B.data(), ldb, 0.0f, plain.data(), c.N,
                     bias.data());
      kernels::sgemm(false, c.tb, c.M, c.N, c.K, 1.0f, A.data(), c.K, B.data(), ldb, 0.0f, with.data(), c.N,
                     bias.data(), {add_1000, nullptr});
      for (float& v : plain) v += 1000.0f;
      REQUIRE(same_bits(plain, with));
    }
  set_num_threads(before);
}
