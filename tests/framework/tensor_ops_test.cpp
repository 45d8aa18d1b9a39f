// Tensor-level arithmetic for backward closures (framework/tensor_ops.h): values, broadcasting,
// dtypes, errors, and that nothing is recorded.
#include <cmath>

#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/tensor_ops.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {
Tensor vec(std::vector<double> v, Shape s, DType d = DType::Float64) { return Tensor::from_vector(v, s, d); }
using V = std::vector<double>;
}  // namespace

TEST_CASE("tensor_ops: add/sub/mul/div broadcast as PyTorch", "[tensor_ops]") {
  Tensor a = vec({1, 2, 3, 4, 5, 6}, {2, 3}), row = vec({10, 20, 30}, {3}), col = vec({2, 4}, {2, 1});
  REQUIRE(add(a, row).shape() == Shape{2, 3});
  REQUIRE(add(a, row).to_vector() == V{11, 22, 33, 14, 25, 36});
  REQUIRE(sub(a, row).to_vector() == V{-9, -18, -27, -6, -15, -24});
  REQUIRE(mul(a, col).to_vector() == V{2, 4, 6, 16, 20, 24});
  REQUIRE(div(a, col).to_vector() == V{0.5, 1, 1.5, 1, 1.25, 1.5});
  // [2, 1] with [3] -> [2, 3]: both sides broadcast.
  REQUIRE(mul(col, row).to_vector() == V{20, 40, 60, 40, 80, 120});
  // Operators are the same functions.
  REQUIRE((a + row).to_vector() == add(a, row).to_vector());
  REQUIRE((a - row).to_vector() == sub(a, row).to_vector());
  REQUIRE((a * col).to_vector() == mul(a, col).to_vector());
  REQUIRE((a / col).to_vector() == div(a, col).to_vector());
  REQUIRE((-a).to_vector() == V{-1, -2, -3, -4, -5, -6});
}

TEST_CASE("tensor_ops: scalar versions and operators", "[tensor_ops]") {
  Tensor a = vec({1, 2, 4}, {3});
  REQUIRE(add(a, 1.5).to_vector() == V{2.5, 3.5, 5.5});
  REQUIRE(mul(a, -2.0).to_vector() == V{-2, -4, -8});
  REQUIRE(div(a, 4.0).to_vector() == V{0.25, 0.5, 1});
  REQUIRE(rsub(a, 1.0).to_vector() == V{0, -1, -3});
  REQUIRE(rdiv(a, 8.0).to_vector() == V{8, 4, 2});
  REQUIRE((a + 1.0).to_vector() == V{2, 3, 5});
  REQUIRE((1.0 + a).to_vector() == V{2, 3, 5});
  REQUIRE((a - 1.0).to_vector() == V{0, 1, 3});
  REQUIRE((1.0 - a).to_vector() == V{0, -1, -3});
  REQUIRE((a * 3.0).to_vector() == V{3, 6, 12});
  REQUIRE((3.0 * a).to_vector() == V{3, 6, 12});
  REQUIRE((a / 2.0).to_vector() == V{0.5, 1, 2});
  REQUIRE((4.0 / a).to_vector() == V{4, 2, 1});
}

TEST_CASE("tensor_ops: unary functions", "[tensor_ops]") {
  Tensor a = vec({0.25, 1, 4}, {3});
  REQUIRE(neg(a).to_vector() == V{-0.25, -1, -4});
  REQUIRE(sqrt(a).to_vector() == V{0.5, 1, 2});
  REQUIRE(rsqrt(a).to_vector() == V{2, 1, 0.5});
  require_close(exp(a), {std::exp(0.25), std::exp(1.0), std::exp(4.0)}, 0.0);
  require_close(log(a), {std::log(0.25), 0.0, std::log(4.0)}, 0.0);
  require_close(tanh(a), {std::tanh(0.25), std::tanh(1.0), std::tanh(4.0)}, 0.0);
  require_close(sigmoid(a), {1 / (1 + std::exp(-0.25)), 1 / (1 + std::exp(-1.0)), 1 / (1 + std::exp(-4.0))}, 1e-16);
  // float32 stays float32 and is computed in float32.
  Tensor f = vec({0.25, 4}, {2}, DType::Float32);
  REQUIRE(rsqrt(f).dtype() == DType::Float32);
  REQUIRE(rsqrt(f).to_vector() == V{2, 0.5});
  REQUIRE(exp(f).flat(1) == static_cast<double>(std::exp(4.0f)));
}

TEST_CASE("tensor_ops: sum and mean over dims", "[tensor_ops]") {
  Tensor a = vec({1, 2, 3, 4, 5, 6}, {2, 3});
  REQUIRE(sum(a, {-1}).shape() == Shape{2});
  REQUIRE(sum(a, {-1}).to_vector() == V{6, 15});
  REQUIRE(sum(a, {0}, true).shape() == Shape{1, 3});
  REQUIRE(sum(a, {0}, true).to_vector() == V{5, 7, 9});
  REQUIRE(sum(a, {}).shape() == Shape{});
  REQUIRE(sum(a, {}).item() == 21);
  REQUIRE(mean(a, {1}, true).shape() == Shape{2, 1});
  REQUIRE(mean(a, {1}, true).to_vector() == V{2, 5});
  REQUIRE_THROWS_WITH(sum(a, {2}), Contains("[sum] dim 2 out of range for a 2-d tensor; got x=[2, 3]"));
}

TEST_CASE("tensor_ops: sum_to undoes broadcasting and expand is its adjoint", "[tensor_ops]") {
  Tensor g = vec({1, 2, 3, 4, 5, 6}, {2, 3});
  REQUIRE(sum_to(g, {3}).to_vector() == V{5, 7, 9});          // leading dim summed away
  REQUIRE(sum_to(g, {1, 3}).to_vector() == V{5, 7, 9});       // size-1 dim summed
  REQUIRE(sum_to(g, {1, 3}).shape() == Shape{1, 3});
  REQUIRE(sum_to(g, {2, 1}).to_vector() == V{6, 15});
  REQUIRE(sum_to(g, {}).shape() == Shape{});
  REQUIRE(sum_to(g, {}).item() == 21);
  REQUIRE(sum_to(g, {2, 3}).to_vector() == g.to_vector());
  // A [4, 1] operand broadcast with a [2, 1, 3] one gave [2, 4, 3]; its gradient comes back to [4, 1].
  Tensor big = Tensor::ones({2, 4, 3}, DType::Float64);
  REQUIRE(sum_to(big, {4, 1}).to_vector() == V{6, 6, 6, 6});
  REQUIRE(expand(vec({1, 2}, {2, 1}), {2, 3}).to_vector() == V{1, 1, 1, 2, 2, 2});
  REQUIRE(expand(vec({1, 2, 3}, {3}), {2, -1}).to_vector() == V{1, 2, 3, 1, 2, 3});
  // sum_to(expand(x)) multiplies by the number of copies.
  REQUIRE(sum_to(expand(vec({1, 2}, {2, 1}), {3, 2, 5}), {2, 1}).to_vector() == V{15, 30});
  REQUIRE_THROWS_WITH(sum_to(g, {3, 3}), Contains("[sum_to] shape=[3, 3] does not broadcast to t=[2, 3]"));
  REQUIRE_THROWS_WITH(sum_to(g, {2}), Contains("[sum_to] shape=[2] does not broadcast to t=[2, 3]"));
  REQUIRE_THROWS_WITH(sum_to(g, {1, 2, 3}), Contains("[sum_to] shape=[1, 2, 3] does not broadcast to t=[2, 3]"));
  REQUIRE_THROWS_WITH(sum_to(Tensor::zeros({2}, DType::Int64), {1}),
                      Contains("[sum_to] expected a float tensor; got t=int64[2]"));
  REQUIRE_THROWS_WITH(expand(g, {2, 4}), Contains("[expand] the expanded size 4 must match the existing size 3 at "
                                                   "non-singleton dim 1; got x=[2, 3], shape=[2, 4]"));
  REQUIRE(expand(g, {2, 3}).shares_storage(g));   // already that shape: the argument itself
  Tensor ints = Tensor::from_vector(std::vector<int64_t>{1, 2}, {2, 1});
  REQUIRE(expand(ints, {2, 2}).dtype() == DType::Int64);
  REQUIRE(expand(ints, {2, 2}).to_vector() == V{1, 1, 2, 2});
  REQUIRE(transpose(ints, 0, 1).to_vector() == V{1, 2});
  REQUIRE_THROWS_WITH(transpose(g, 0, 2), Contains("[transpose] dim1 2 out of range for a 2-d tensor; got x=[2, 3]"));
  REQUIRE_THROWS_WITH(expand(Tensor(), {2}), Contains("[expand] undefined tensor x"));
}

TEST_CASE("tensor_ops: matmul (2-D, batched, broadcast) and transpose", "[tensor_ops]") {
  Tensor a = vec({1, 2, 3, 4, 5, 6}, {2, 3}), b = vec({1, 0, 0, 1, 1, 1}, {3, 2});
  REQUIRE(matmul(a, b).shape() == Shape{2, 2});
  REQUIRE(matmul(a, b).to_vector() == V{4, 5, 10, 11});
  REQUIRE(transpose(a, 0, 1).shape() == Shape{3, 2});
  REQUIRE(transpose(a, -2, -1).to_vector() == V{1, 4, 2, 5, 3, 6});
  // [2, 2, 3] @ [3, 2]: the matrix is shared by the batch; equals each product on its own.
  Tensor batch = vec({1, 2, 3, 4, 5, 6, 0, 1, 0, 2, 0, 1}, {2, 2, 3});
  Tensor y = matmul(batch, b);
  REQUIRE(y.shape() == Shape{2, 2, 2});
  REQUIRE(y.to_vector() == V{4, 5, 10, 11, 0, 1, 3, 1});
  // The gradient of y = a @ b for upstream gy: da = gy @ b^T, db = a^T @ gy (checked against a Var matmul).
  Var av(a, true), bv(b, true);
  Tensor gy = vec({1, -1, 2, 0.5}, {2, 2});
  matmul(av, bv).backward(gy);
  REQUIRE(matmul(gy, transpose(b, -2, -1)).to_vector() == av.grad().to_vector());
  REQUIRE(matmul(transpose(a, -2, -1), gy).to_vector() == bv.grad().to_vector());
  REQUIRE_THROWS_WITH(matmul(a, a), Contains("[matmul] inner dims differ; got a=[2, 3], b=[2, 3]"));
}

TEST_CASE("tensor_ops: dtype errors and undefined tensors throw naming the op", "[tensor_ops]") {
  Tensor d = vec({1, 2}, {2}), f = vec({1, 2}, {2}, DType::Float32), i = Tensor::zeros({2}, DType::Int64);
  REQUIRE_THROWS_AS(mul(d, f), std::invalid_argument);
  REQUIRE_THROWS_WITH(mul(d, f), Contains("[mul] dtypes differ; got a=float64[2], b=float32[2]"));
  REQUIRE_THROWS_WITH(add(i, i), Contains("[add] expected float tensors; got a=int64[2]"));
  REQUIRE_THROWS_WITH(exp(i), Contains("[exp] expected a float tensor; got int64[2]"));
  REQUIRE_THROWS_WITH(rsqrt(i), Contains("[rsqrt] expected a floating tensor (float32 or float64); got int64"));
  REQUIRE_THROWS_WITH(mul(d, vec({1, 2, 3}, {3})), Contains("[mul] shapes cannot be broadcast; got a=[2], b=[3]"));
  REQUIRE_THROWS_WITH(add(Tensor(), d), Contains("[add] undefined tensor a"));
  REQUIRE_THROWS_WITH(div(d, Tensor()), Contains("[div] undefined tensor b"));
  REQUIRE_THROWS_WITH(rsqrt(Tensor()), Contains("[rsqrt] undefined tensor a"));
  REQUIRE_THROWS_WITH(sum_to(Tensor(), {1}), Contains("[sum_to] undefined tensor t"));
  // Float32 in, float32 out (no promotion).
  REQUIRE(mul(f, f).dtype() == DType::Float32);
  REQUIRE(mul(f, f).to_vector() == V{1, 4});
}

TEST_CASE("tensor_ops: equal to the Var op bit for bit and record nothing", "[tensor_ops]") {
  Var x = rand_var({3, 4}, 1), w = rand_var({4}, 2, 0.5, 2.0);
  Tensor t = mul(x.value(), w.value());
  REQUIRE(t.bit_equal((x * w).value()));
  REQUIRE(div(x.value(), w.value()).bit_equal((x / w).value()));
  REQUIRE(max_abs_diff(sum_to(t, {4}), sum(x * w, {0}).value()) < 1e-15);
  REQUIRE(t.shares_storage(sum_to(t, {3, 4})));   // same shape: the argument itself
  REQUIRE_FALSE(x.grad().defined());
}
