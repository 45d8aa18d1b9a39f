// linear_gelu_linear: one op for linear(linear_gelu(x, w1, b1), w2, b2) (and r + that, with a residual r), the same
// bits as the ops one by one (value and every gradient), in float32 through the sgemm's tile epilogues (the GELU's
// gradient on the tiles of gy @ w2, the residual on the output's) and in the other paths; its gradient against
// finite differences; its errors.
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

struct Case {
  Shape xs;
  int64_t hidden, out;
  bool bias1, bias2;
};

// Value and the gradients of one form (fused or not) from the same inputs and upstream gradient. With
// `only_weights`, x needs no gradient (the fused op then skips nothing it would need: the first linear's
// weight and bias still take the GELU's gradient). With `residual`, r + the block (fused: the op's residual).
std::vector<Tensor> run_form(bool fused, const Case& c, DType dt, bool only_weights = false, bool residual = false) {
  const int64_t in = c.xs.back();
  Shape ys = c.xs;
  ys.back() = c.out;
  Var x = rand_var(c.xs, 11, -2, 2, !only_weights, dt);
  Var w1 = rand_var({c.hidden, in}, 12, -0.5, 0.5, true, dt), w2 = rand_var({c.out, c.hidden}, 13, -0.5, 0.5, true, dt);
  Var b1 = c.bias1 ? rand_var({c.hidden}, 14, -1, 1, true, dt) : Var();
  Var b2 = c.bias2 ? rand_var({c.out}, 15, -1, 1, true, dt) : Var();
  Var r = residual ? rand_var(ys, 17, -3, 3, true, dt) : Var();
  Var y;
  if (fused) y = linear_gelu_linear(x, w1, b1, w2, b2, r);
  else if (residual) y = r + linear(linear_gelu(x, w1, b1), w2, b2);
  else y = linear(linear_gelu(x, w1, b1), w2, b2);
  y.backward(rand_tensor(ys, 16, -1, 1, dt));
  std::vector<Tensor> out{y.value(), w1.grad(), w2.grad()};
  if (!only_weights) out.push_back(x.grad());
  if (c.bias1) out.push_back(b1.grad());
  if (c.bias2) out.push_back(b2.grad());
  if (residual) out.push_back(r.grad());
  return out;
}

// Both forms of every case, with and without a residual, equal bit for bit.
void require_forms_equal(const Case& c, DType dt) {
  for (const bool residual : {false, true}) {
    INFO("residual " << residual);
    require_bit_equal(run_form(true, c, dt, false, residual), run_form(false, c, dt, false, residual));
    require_bit_equal(run_form(true, c, dt, true, residual), run_form(false, c, dt, true, residual));
  }
}

}  // namespace

TEST_CASE("linear_gelu_linear: the bits of linear(linear_gelu(x, w1, b1), w2, b2), value and gradients",
          "[ops][fused][determinism]") {
  // The tiny LM's block (768 rows, 128 -> 512 -> 128: many tiles, two threads), one tile, rows the sgemm
  // computes as C^T, a single row (one gemv, then the slope pass), a 1-D x, no biases, in = 0 and hidden = 0.
  const Case cases[] = {{{6, 128, 128}, 512, 128, true, true}, {{96, 40}, 130, 24, true, false},
                        {{50, 33}, 300, 20, false, true},      {{1, 64}, 200, 48, true, true},
                        {{64}, 48, 16, true, true},            {{3, 7, 9}, 11, 5, false, false},
                        {{20, 0}, 40, 8, true, true},          {{20, 6}, 0, 8, true, true}};
  const int before = get_num_threads();
  for (const DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : cases)
      for (const int threads : {1, 2}) {
        INFO("dtype " << to_string(dt) << " x " << to_string(c.xs) << " hidden " << c.hidden << " out " << c.out
                      << " threads " << threads);
        set_num_threads(threads);
        require_forms_equal(c, dt);
      }
  set_num_threads(before);
}

TEST_CASE("linear_gelu_linear: under native bf16 autocast, the bits of the two ops (the bf16 GEMM's epilogue)",
          "[ops][fused][autocast][native]") {
  const Case cases[] = {{{6, 128, 128}, 512, 128, true, true}, {{96, 40}, 130, 24, true, true},
                        {{1, 64}, 200, 48, true, true}};
  for_native_bf16_threads([&](int threads) {
    for (const Case& c : cases) {
      INFO("x " << to_string(c.xs) << " threads " << threads);
      require_forms_equal(c, DType::Float32);
    }
  });
}

TEST_CASE("linear_gelu_linear: the README's example is this code and gives the two ops' bits",
          "[ops][fused][readme]") {
  Var x = rand_var({8, 16}, 31, -2, 2, true, DType::Float32);
  Var w1 = rand_var({32, 16}, 32, -1, 1, true, DType::Float32), b1 = rand_var({32}, 33, -1, 1, true, DType::Float32);
  Var w2 = rand_var({4, 32}, 34, -1, 1, true, DType::Float32), b2 = rand_var({4}, 35, -1, 1, true, DType::Float32);
  // --- README block begins
  tg::Var y = tg::linear_gelu_linear(x, w1, b1, w2, b2);   // the bits of linear(linear_gelu(x, w1, b1), w2, b2)
  // --- README block ends
  require_bit_equal({y.value()}, {linear(linear_gelu(x, w1, b1), w2, b2).value()});
  require_readme_block_matches("### Fused feed-forward block", "tests/framework/ops_linear_gelu_linear_test.cpp");
}

TEST_CASE("linear_gelu_linear: without a tape it writes the same values and records no backward", "[ops][fused]") {
  Var x = rand_var({300, 70}, 21, -2, 2, true, DType::Float32);
  Var w1 = rand_var({90, 70}, 22, -1, 1, true, DType::Float32), b1 = rand_var({90}, 23, -1, 1, true, DType::Float32);
  Var w2 = rand_var({30, 90}, 24, -1, 1, true, DType::Float32), b2 = rand_var({30}, 25, -1, 1, true, DType::Float32);
  const Tensor want = linear(linear_gelu(x, w1, b1), w2, b2).value();
  NoGradGuard no_grad;
  const Var y = linear_gelu_linear(x, w1, b1, w2, b2);
  REQUIRE_FALSE(y.requires_grad());
  require_bit_equal({y.value()}, {want});
}

TEST_CASE("linear_gelu_linear: grad matches finite differences (with and without biases, 1-D and 3-D x)",
          "[ops][grad]") {
  Var x = rand_var({2, 3, 4}, 340, -2, 2), w1 = rand_var({5, 4}, 341), b1 = rand_var({5}, 342);
  Var w2 = rand_var({3, 5}, 343), b2 = rand_var({3}, 344), x1 = rand_var({4}, 345);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear_gelu_linear(v[0], v[1], v[2], v[3], v[4]); },
                    {x, w1, b1, w2, b2});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear_gelu_linear(v[0], v[1], Var(), v[2]); },
                    {x, w1, w2});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear_gelu_linear(v[0], v[1], v[2], v[3], v[4]); },
                    {x1, w1, b1, w2, b2});
  Var r = rand_var({2, 3, 3}, 346);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear_gelu_linear(v[0], v[1], v[2], v[3], v[4], v[5]); },
                    {x, w1, b1, w2, b2, r});
}

TEST_CASE("linear_gelu_linear: bad input throws naming the op and every shape", "[ops][errors]") {
  const Var x = rand_var({4, 8}, 1), w1 = rand_var({16, 8}, 2), b1 = rand_var({16}, 3);
  REQUIRE_THROWS_WITH(linear_gelu_linear(rand_var({4, 3}, 1), w1, b1, rand_var({4, 16}, 4)),
                      Contains("[linear_gelu_linear] in_features differ; got x=[4, 3], weight=[16, 8], bias=[16]"));
  REQUIRE_THROWS_WITH(linear_gelu_linear(x, w1, b1, rand_var({16}, 4)),
                      Contains("[linear_gelu_linear] weight2 must be 2-D [out_features, hidden]; got weight1=[16, 8], "
                               "weight2=[16]"));
  REQUIRE_THROWS_WITH(linear_gelu_linear(x, w1, b1, rand_var({4, 12}, 4)),
                      Contains("[linear_gelu_linear] hidden features differ; got weight1=[16, 8], weight2=[4, 12]"));
  REQUIRE_THROWS_WITH(
      linear_gelu_linear(x, w1, b1, rand_var({4, 16}, 4), rand_var({16}, 5)),
      Contains("[linear_gelu_linear] bias2 must have shape [out_features]; got weight2=[4, 16], bias2=[16]"));
  REQUIRE_THROWS_WITH(
      linear_gelu_linear(x, w1, b1, rand_var({4, 16}, 4, -1, 1, true, DType::Float32)),
      Contains("[linear_gelu_linear] dtypes differ; got x=float64[4, 8], weight2=float32[4, 16]"));
  REQUIRE_THROWS_WITH(linear_gelu_linear(x, w1, b1, Var()),
                      Contains("[linear_gelu_linear] weight2 is an undefined Var"));
  const Var w2 = rand_var({4, 16}, 4), b2 = rand_var({4}, 5);
  REQUIRE_THROWS_WITH(linear_gelu_linear(x, w1, b1, w2, b2, rand_var({4, 8}, 6)),
                      Contains("[linear_gelu_linear] residual must have the output's shape [4, 4]; got x=[4, 8], "
                               "weight2=[4, 16], residual=[4, 8]"));
  REQUIRE_THROWS_WITH(linear_gelu_linear(x, w1, b1, w2, b2, rand_var({4, 4}, 6, -1, 1, true, DType::Float32)),
                      Contains("[linear_gelu_linear] dtypes differ; got x=float64[4, 8], residual=float32[4, 4]"));
}
