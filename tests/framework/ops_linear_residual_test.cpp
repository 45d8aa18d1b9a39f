// linear_residual: residual + linear(x, weight, bias) as one op, the bits of the two ops (value and every
// gradient) in float32 through the sgemm's tile epilogue, float64, native bf16, 1 and 2 threads; its gradient
// against finite differences; its errors.
#include <vector>

#include "tapegrad/framework/autocast.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/runtime.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

struct Case {
  Shape xs;
  int64_t out;
  bool bias;
};

// Value and the gradients of x, weight, bias and the residual, fused or as residual + linear.
std::vector<Tensor> run_form(bool fused, const Case& c, DType dt) {
  Shape ys = c.xs;
  ys.back() = c.out;
  Var x = rand_var(c.xs, 41, -2, 2, true, dt), w = rand_var({c.out, c.xs.back()}, 42, -0.5, 0.5, true, dt);
  Var b = c.bias ? rand_var({c.out}, 43, -1, 1, true, dt) : Var(), r = rand_var(ys, 44, -3, 3, true, dt);
  Var y = fused ? linear_residual(x, w, b, r) : r + linear(x, w, b);
  y.backward(rand_tensor(ys, 45, -1, 1, dt));
  std::vector<Tensor> out{y.value(), x.grad(), w.grad(), r.grad()};
  if (c.bias) out.push_back(b.grad());
  return out;
}

// The tiny LM's attention output projection (768 rows, 128 -> 128: many tiles), one tile, a wide product the
// sgemm computes as C^T, one row, a 1-D x, no bias, in = 0.
const Case kCases[] = {{{12, 64, 128}, 128, true}, {{96, 40}, 24, true}, {{40, 33}, 300, false},
                       {{1, 64}, 48, true},        {{64}, 16, true},    {{3, 7, 9}, 5, false},
                       {{20, 0}, 8, true}};

}  // namespace

TEST_CASE("linear_residual: the bits of residual + linear(x, weight, bias), value and gradients",
          "[ops][fused][determinism]") {
  const int before = get_num_threads();
  for (const DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : kCases)
      for (const int threads : {1, 2}) {
        INFO("dtype " << to_string(dt) << " x " << to_string(c.xs) << " out " << c.out << " threads " << threads);
        set_num_threads(threads);
        require_bit_equal(run_form(true, c, dt), run_form(false, c, dt));
      }
  set_num_threads(before);
}

TEST_CASE("linear_residual: under native bf16 autocast, the bits of the two ops (the bf16 GEMM's epilogue)",
          "[ops][fused][autocast][native]") {
  for_native_bf16_threads([](int threads) {
    for (const Case& c : kCases) {
      INFO("x " << to_string(c.xs) << " threads " << threads);
      require_bit_equal(run_form(true, c, DType::Float32), run_form(false, c, DType::Float32));
    }
  });
}

TEST_CASE("linear_residual: without a tape it writes the same values and records no backward", "[ops][fused]") {
  Var x = rand_var({300, 70}, 21, -2, 2, true, DType::Float32), w = rand_var({30, 70}, 22, -1, 1, true, DType::Float32);
  Var b = rand_var({30}, 23, -1, 1, true, DType::Float32), r = rand_var({300, 30}, 24, -1, 1, true, DType::Float32);
  const Tensor want = (r + linear(x, w, b)).value();
  NoGradGuard no_grad;
  const Var y = linear_residual(x, w, b, r);
  REQUIRE_FALSE(y.requires_grad());
  require_bit_equal({y.value()}, {want});
}

TEST_CASE("linear_residual: grad matches finite differences (with and without bias, 1-D and 3-D x)", "[ops][grad]") {
  Var x = rand_var({2, 3, 4}, 350, -2, 2), w = rand_var({5, 4}, 351), b = rand_var({5}, 352);
  Var r = rand_var({2, 3, 5}, 353), x1 = rand_var({4}, 354), r1 = rand_var({5}, 355);
  const auto f = [](const std::vector<Var>& v) { return linear_residual(v[0], v[1], v[2], v[3]); };
  REQUIRE_GRADCHECK(f, {x, w, b, r});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear_residual(v[0], v[1], Var(), v[2]); }, {x, w, r});
  REQUIRE_GRADCHECK(f, {x1, w, b, r1});
}

TEST_CASE("linear_residual: bad input throws naming the op and every shape", "[ops][errors]") {
  const Var x = rand_var({4, 2}, 1), w = rand_var({5, 2}, 2), b = rand_var({5}, 3);
  REQUIRE_THROWS_WITH(linear_residual(x, w, b, rand_var({4, 2}, 4)),
                      Contains("[linear_residual] residual must have the output's shape [4, 5]; got x=[4, 2], "
                               "weight=[5, 2], residual=[4, 2]"));
  REQUIRE_THROWS_WITH(linear_residual(x, w, b, rand_var({4, 5}, 4, -1, 1, true, DType::Float32)),
                      Contains("[linear_residual] dtypes differ; got x=float64[4, 2], residual=float32[4, 5]"));
  REQUIRE_THROWS_WITH(linear_residual(x, w, b, Var()), Contains("[linear_residual] residual is an undefined Var"));
  REQUIRE_THROWS_WITH(linear_residual(rand_var({4, 3}, 1), w, b, rand_var({4, 5}, 4)),
                      Contains("[linear_residual] in_features differ; got x=[4, 3], weight=[5, 2], bias=[5]"));
}
