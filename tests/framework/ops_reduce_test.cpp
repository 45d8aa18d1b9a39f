#include <cmath>
#include <limits>

#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/ops/shape.h"
#include "tapegrad/framework/runtime.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// x = arange(24).reshape(2, 3, 4) * 0.5 - 3, float64 (exact sums).
Var arange_var(bool requires_grad = false) {
  std::vector<double> v(24);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i) * 0.5 - 3.0;
  return Var(Tensor::from_vector(v, {2, 3, 4}), requires_grad);
}

// Naive reference: sum over `dims` (normalised) of x, keepdim layout, in long double.
std::vector<double> naive_sum(const Tensor& x, const std::vector<int64_t>& dims) {
  const Shape& s = x.shape();
  Shape keep = s;
  for (int64_t d : dims) keep[static_cast<size_t>(d)] = 1;
  std::vector<long double> acc(static_cast<size_t>(numel(keep)), 0.0L);
  Shape ks = strides_of(keep);
  std::vector<int64_t> idx(s.size(), 0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t rem = i, o = 0;
    for (size_t d = s.size(); d-- > 0;) {
      idx[d] = rem % s[d];
      rem /= s[d];
      if (keep[d] != 1 || s[d] == 1) o += idx[d] * ks[d];
    }
    acc[static_cast<size_t>(o)] += x.flat(i);
  }
  return {acc.begin(), acc.end()};
}

// Values ((i * 7919) % 1000 - 500) / 7 as float32: exactly reproducible in C++ and Python.
Tensor pattern_f32(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = static_cast<float>(static_cast<double>((i * 7919) % 1000 - 500) / 7.0);
  return Tensor::from_vector(v, {n});
}

}  // namespace

TEST_CASE("sum: forward values over dims with and without keepdim", "[ops][reduce]") {
  Var x = arange_var();
  // torch.sum on the same tensor, PyTorch 1.13
  REQUIRE(sum(x).shape() == Shape{});
  REQUIRE(sum(x).item() == 66.0);
  Var s1 = sum(x, {1});
  REQUIRE(s1.shape() == Shape{2, 4});
  REQUIRE(s1.value().to_vector() == std::vector<double>{-3.0, -1.5, 0.0, 1.5, 15.0, 16.5, 18.0, 19.5});
  Var s02 = sum(x, {0, 2}, true);
  REQUIRE(s02.shape() == Shape{1, 3, 1});
  REQUIRE(s02.value().to_vector() == std::vector<double>{6.0, 22.0, 38.0});
  REQUIRE(sum(x, {-1, 0}).value().to_vector() == std::vector<double>{6.0, 22.0, 38.0});
  REQUIRE(sum(x, {}).item() == 66.0);                    // dim=[] reduces every dim (PyTorch 1.13)
  REQUIRE(sum(x, {}, true).shape() == Shape{1, 1, 1});
  Var s = Var(Tensor::scalar(2.5, DType::Float64));
  REQUIRE(sum(s, {0}, true).shape() == Shape{});
  REQUIRE(sum(s, {-1}).item() == 2.5);
  REQUIRE(sum(Var(Tensor::zeros({0, 3}, DType::Float64)), {0}).value().to_vector() == std::vector<double>{0, 0, 0});
}

TEST_CASE("mean: forward values over dims with and without keepdim", "[ops][reduce]") {
  Var x = arange_var();
  REQUIRE(mean(x).item() == 2.75);
  REQUIRE(mean(x, {1}).value().to_vector() == std::vector<double>{-1.0, -0.5, 0.0, 0.5, 5.0, 5.5, 6.0, 6.5});
  Var m = mean(x, {0, 2}, true);
  REQUIRE(m.shape() == Shape{1, 3, 1});
  REQUIRE(m.value().to_vector() == std::vector<double>{0.75, 2.75, 4.75});
  REQUIRE(std::isnan(mean(Var(Tensor::zeros({0}, DType::Float64))).item()));   // as torch.mean of an empty tensor
}

TEST_CASE("sum: matches a naive sum for every subset of dims, including chunked reductions", "[ops][reduce]") {
  Tensor x = rand_tensor({3, 1, 5, 7, 4}, 21);
  for (int mask = 0; mask < 32; ++mask) {
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < 5; ++d)
      if (mask & (1 << d)) dims.push_back(d);
    if (dims.empty()) continue;
    auto ref = naive_sum(x, dims);
    auto got = sum(Var(x), dims, true).value().to_vector();
    REQUIRE(got.size() == ref.size());
    for (size_t i = 0; i < ref.size(); ++i) REQUIRE(std::abs(got[i] - ref[i]) <= 1e-13);
  }
  // Reductions longer than one chunk, innermost dim reduced and kept.
  Tensor big = rand_tensor({3, 20000}, 22);
  auto r1 = naive_sum(big, {1}), g1 = sum(Var(big), {1}).value().to_vector();
  for (size_t i = 0; i < r1.size(); ++i) REQUIRE(std::abs(g1[i] - r1[i]) <= 1e-10);
  Tensor tall = rand_tensor({9000, 3, 5}, 23);
  auto r0 = naive_sum(tall, {0}), g0 = sum(Var(tall), {0}).value().to_vector();
  for (size_t i = 0; i < r0.size(); ++i) REQUIRE(std::abs(g0[i] - r0[i]) <= 1e-10);
  auto r02 = naive_sum(tall, {0, 2}), g02 = sum(Var(tall), {0, 2}).value().to_vector();
  for (size_t i = 0; i < r02.size(); ++i) REQUIRE(std::abs(g02[i] - r02[i]) <= 1e-10);
}

TEST_CASE("sum/mean: float32 accumulates in double and matches PyTorch", "[ops][reduce]") {
  Tensor x = pattern_f32(50000);
  double exact = 0;
  for (int64_t i = 0; i < x.numel(); ++i) exact += x.flat(i);
  Var s = sum(Var(x));
  REQUIRE(s.dtype() == DType::Float32);
  REQUIRE(s.item() == static_cast<double>(static_cast<float>(exact)));
  REQUIRE(std::abs(s.item() - -3571.42724609375) <= 1e-5 * 3571.5);   // torch.sum (float32 accumulation)
  Var m = mean(Var(x.reshape({500, 100})), {0});
  // torch.mean(x.reshape(500, 100), 0)[:3] in float32
  std::vector<double> ref{-7.142857551574707, -4.4285712242126465, -1.714285135269165};
  for (int64_t i = 0; i < 3; ++i) REQUIRE(std::abs(m.value().flat(i) - ref[static_cast<size_t>(i)]) <= 1e-6);
}

TEST_CASE("sum: grad matches finite differences (full and over several dims)", "[ops][grad]") {
  auto x = rand_var({2, 3, 4}, 1);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return sum(v[0]); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return sum(v[0], {1}); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return sum(v[0], {0, 2}); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return sum(v[0], {-1, 0}, true); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return sum(v[0], {2}, true); }, {x});
}

TEST_CASE("mean: grad matches finite differences (full and over several dims)", "[ops][grad]") {
  auto x = rand_var({3, 2, 5}, 2);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return mean(v[0]); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return mean(v[0], {0}); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return mean(v[0], {0, 2}, true); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return mean(v[0], {1, 2}); }, {x});
}

TEST_CASE("sum/mean: grad accumulates for an input used twice", "[ops][grad]") {
  auto x = rand_var({3, 4}, 3);
  // x - mean(x, 1, keepdim) and sum(x * x, 0): x reaches the output along two paths each.
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return v[0] - mean(v[0], {1}, true); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return sum(v[0] * v[0], {0}) + mean(v[0], {0}); }, {x});
  Var y(Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}), true);
  (sum(y) + mean(y)).backward();
  REQUIRE(y.grad().to_vector() == std::vector<double>{1.25, 1.25, 1.25, 1.25});
}

TEST_CASE("sum/amax: grad matches finite differences on a transposed input", "[ops][grad]") {
  auto x = rand_var({3, 4, 2}, 4);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return sum(transpose(v[0], 0, 2), {1}); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return amax(permute(v[0], {2, 0, 1}), {2}); }, {x});
}

TEST_CASE("max/amax: forward values and the even split of the gradient among ties", "[ops][reduce]") {
  Var t(Tensor::from_vector(std::vector<double>{1, 3, 3, 2, 5, 5, 5, 0}, {2, 4}), true);
  Var a = amax(t, {1});
  REQUIRE(a.value().to_vector() == std::vector<double>{3, 5});
  a.backward(Tensor::ones({2}, DType::Float64));
  // torch.amax(t, 1).backward(ones): ties share the gradient
  std::vector<double> ref{0, 0.5, 0.5, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3, 0};
  REQUIRE(t.grad().to_vector() == ref);
  t.zero_grad();
  Var m = max(t);
  REQUIRE(m.shape() == Shape{});
  REQUIRE(m.item() == 5.0);
  m.backward();
  REQUIRE(t.grad().to_vector() == std::vector<double>{0, 0, 0, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3, 0});
  REQUIRE(amax(t, {0}, true).value().to_vector() == std::vector<double>{5, 5, 5, 2});
  REQUIRE(amax(t, {0}, true).shape() == Shape{1, 4});
  REQUIRE(amax(t, {}).item() == 5.0);
}

TEST_CASE("max/amax: NaN propagates and receives the gradient", "[ops][reduce]") {
  double nan = std::numeric_limits<double>::quiet_NaN();
  Var n(Tensor::from_vector(std::vector<double>{1, nan, 2, nan}, {4}), true);
  Var m = max(n);
  REQUIRE(std::isnan(m.item()));
  m.backward();
  REQUIRE(n.grad().to_vector() == std::vector<double>{0, 0.5, 0, 0.5});   // torch.max(): split among the NaNs
  MaxResult r = max(Var(n.value().reshape({1, 4})), 1);
  REQUIRE(std::isnan(r.values.item()));
  REQUIRE(r.indices.item() == 1.0);
  Var rows(Tensor::from_vector(std::vector<double>{1, nan, 2, 0, 1, 2}, {2, 3}));
  Var am = amax(rows, {1});
  REQUIRE(std::isnan(am.value().flat(0)));
  REQUIRE(am.value().flat(1) == 2.0);
}

TEST_CASE("max(dim): values, first-occurrence indices and gradient to the index", "[ops][reduce]") {
  Var t(Tensor::from_vector(std::vector<double>{1, 3, 3, 2, 5, 5, 5, 0}, {2, 4}), true);
  MaxResult r = max(t, 1);
  REQUIRE(r.values.value().to_vector() == std::vector<double>{3, 5});
  REQUIRE(r.indices.dtype() == DType::Int64);
  REQUIRE(r.indices.to_vector() == std::vector<double>{1, 0});
  r.values.backward(Tensor::from_vector(std::vector<double>{2, 3}, {2}));
  REQUIRE(t.grad().to_vector() == std::vector<double>{0, 2, 0, 0, 3, 0, 0, 0});   // torch.max(t, 1)
  MaxResult k = max(t, 0, true);
  REQUIRE(k.values.shape() == Shape{1, 4});
  REQUIRE(k.indices.shape() == Shape{1, 4});
  REQUIRE(k.values.value().to_vector() == std::vector<double>{5, 5, 5, 2});
  REQUIRE(k.indices.to_vector() == std::vector<double>{1, 1, 1, 0});
  MaxResult s = max(Var(Tensor::scalar(4.0, DType::Float64)), -1);
  REQUIRE(s.values.item() == 4.0);
  REQUIRE(s.indices.item() == 0.0);
  // A zero-size dim beside the reduced one: empty values and indices (torch.max(torch.zeros(2, 0), 0)),
  // not a division by zero.
  MaxResult e = max(Var(Tensor::zeros({2, 0})), 0);
  REQUIRE(e.values.shape() == Shape{0});
  REQUIRE(e.indices.shape() == Shape{0});
  MaxResult ek = max(Var(Tensor::zeros({3, 2, 0}), true), 1, true);
  REQUIRE(ek.values.shape() == Shape{3, 1, 0});
  ek.values.backward(Tensor::zeros({3, 1, 0}));
}

TEST_CASE("max/amax: grad matches finite differences away from ties", "[ops][grad]") {
  auto x = rand_var({3, 4, 5}, 5);   // continuous random values: no ties
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return max(v[0]); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return amax(v[0], {1}); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return amax(v[0], {0, 2}, true); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return max(v[0], 2).values; }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return max(v[0], 0, true).values; }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return max(v[0], -2).values * amax(v[0], {1}); }, {x});
}

TEST_CASE("sum: bad input throws naming op, dims and shape", "[ops][errors]") {
  Var x = arange_var();
  REQUIRE_THROWS_WITH(sum(x, {3}), Contains("[sum] dim 3 out of range for a 3-d tensor; got x=[2, 3, 4]"));
  REQUIRE_THROWS_WITH(sum(x, {1, -2}), Contains("[sum] dim 1 appears more than once in dims=[1, -2]; got x=[2, 3, 4]"));
  Var i(Tensor::zeros({2, 3}, DType::Int64));
  REQUIRE_THROWS_WITH(sum(i), Contains("[sum] expected a float tensor; got x=int64[2, 3]"));
}

TEST_CASE("mean: bad input throws naming op, dims and shape", "[ops][errors]") {
  Var x = arange_var();
  REQUIRE_THROWS_WITH(mean(x, {-4}), Contains("[mean] dim -4 out of range for a 3-d tensor; got x=[2, 3, 4]"));
  REQUIRE_THROWS_WITH(mean(x, {2, 2}), Contains("[mean] dim 2 appears more than once in dims=[2, 2]; got x=[2, 3, 4]"));
  Var b(Tensor::zeros({4}, DType::Bool));
  REQUIRE_THROWS_WITH(mean(b), Contains("[mean] expected a float tensor; got x=bool[4]"));
}

TEST_CASE("max: bad input throws naming op, dim and shape", "[ops][errors]") {
  Var e(Tensor::zeros({0, 3}, DType::Float64));
  REQUIRE_THROWS_WITH(max(e), Contains("[max] cannot reduce an empty tensor; got x=[0, 3]"));
  REQUIRE_THROWS_WITH(max(e, 0), Contains("[max] cannot reduce over the zero-size dim 0; got x=[0, 3]"));
  REQUIRE(max(e, 1).values.shape() == Shape{0});
  Var x = arange_var();
  REQUIRE_THROWS_WITH(max(x, 3), Contains("[max] dim 3 out of range for a 3-d tensor; got x=[2, 3, 4]"));
  Var i(Tensor::zeros({2}, DType::Int64));
  REQUIRE_THROWS_WITH(max(i), Contains("[max] expected a float tensor; got x=int64[2]"));
  REQUIRE_THROWS_WITH(max(i, 0), Contains("[max] expected a float tensor; got x=int64[2]"));
}

TEST_CASE("amax: bad input throws naming op, dims and shape", "[ops][errors]") {
  Var e(Tensor::zeros({0, 3}, DType::Float64));
  REQUIRE_THROWS_WITH(amax(e, {0}), Contains("[amax] cannot reduce over the zero-size dim 0; got x=[0, 3]"));
  REQUIRE_THROWS_WITH(amax(e, {}), Contains("[amax] cannot reduce over the zero-size dim 0; got x=[0, 3]"));
  REQUIRE(amax(e, {1}).shape() == Shape{0});
  Var x = arange_var();
  REQUIRE_THROWS_WITH(amax(x, {0, -3}),
                      Contains("[amax] dim 0 appears more than once in dims=[0, -3]; got x=[2, 3, 4]"));
  REQUIRE_THROWS_WITH(amax(x, {5}), Contains("[amax] dim 5 out of range for a 3-d tensor; got x=[2, 3, 4]"));
  Var i(Tensor::zeros({2}, DType::Int64));
  REQUIRE_THROWS_WITH(amax(i, {0}), Contains("[amax] expected a float tensor; got x=int64[2]"));
}

TEST_CASE("sum/mean/max: determinism of values and grads across thread counts", "[ops][reduce][determinism]") {
  Tensor base = rand_tensor({48, 130, 37}, 31, -1.0, 1.0, DType::Float32);
  Tensor up = rand_tensor({48, 37}, 32, -1.0, 1.0, DType::Float32);
  auto run = [&](int threads) {
    set_num_threads(threads);
    Var x(base.clone(), true);
    std::vector<Tensor> outs;
    outs.push_back(sum(x).value());                       // one output, many chunks
    outs.push_back(sum(x, {0, 2}).value());               // innermost reduced, strided outer reduced dim
    outs.push_back(mean(x, {0}).value());                 // innermost kept, chunked rows
    outs.push_back(amax(x, {1, 2}).value());
    Var loss = sum(mean(x, {1}) * Var(up)) + 37.0 * mean(x) + sum(amax(x, {0})) + sum(sum(x, {0, 2}));
    loss.backward();
    outs.push_back(loss.value());
    outs.push_back(x.grad());
    return outs;
  };
  require_same_bits_across_threads(run);
}
