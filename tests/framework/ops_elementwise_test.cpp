#include <cmath>

#include "tapegrad/framework/ops/elementwise.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

TEST_CASE("add: broadcasting forward values", "[ops]") {
  Var a(Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}));
  Var b(Tensor::from_vector(std::vector<double>{10, 20, 30}, {3}));
  Var y = a + b;
  REQUIRE(y.shape() == Shape{2, 3});
  REQUIRE(y.value().to_vector() == std::vector<double>{11, 22, 33, 14, 25, 36});
  Var c(Tensor::from_vector(std::vector<double>{100, 200}, {2, 1}));
  REQUIRE((a * c).value().to_vector() == std::vector<double>{100, 200, 300, 800, 1000, 1200});
}

TEST_CASE("add/sub/mul/div: grad matches finite differences (same shape)", "[ops][grad]") {
  auto a = rand_var({3, 4}, 1), b = rand_var({3, 4}, 2, 0.5, 2.0);
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return x[0] + x[1]; }, {a, b});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return x[0] - x[1]; }, {a, b});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return x[0] * x[1]; }, {a, b});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return x[0] / x[1]; }, {a, b});
}

TEST_CASE("add/sub/mul/div: grad matches finite differences (broadcast both sides)", "[ops][grad]") {
  auto a = rand_var({2, 1, 4}, 3), b = rand_var({3, 1}, 4, 0.5, 2.0), s = rand_var({}, 5, 0.5, 1.5);
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return x[0] + x[1]; }, {a, b});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return x[0] - x[1]; }, {a, b});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return x[0] * x[1]; }, {a, b});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return x[0] / x[1]; }, {a, b});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return x[0] * x[1]; }, {a, s});
}

TEST_CASE("mul: grad accumulates for an input used twice", "[ops][grad]") {
  auto a = rand_var({5}, 6);
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return x[0] * x[0] + x[0]; }, {a});
  Var v(Tensor::from_vector(std::vector<double>{3.0}, {1}), true);
  (v * v).backward(Tensor::ones({1}, DType::Float64));
  REQUIRE(v.grad().at({0}) == 6.0);
}

TEST_CASE("pow: grad matches finite differences (tensor and scalar exponents)", "[ops][grad]") {
  auto a = rand_var({2, 3}, 7, 0.5, 2.0), b = rand_var({3}, 8, -1.0, 2.0);
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return pow(x[0], x[1]); }, {a, b});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return pow(x[0], 3.0); }, {a});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return pow(x[0], -0.5); }, {a});
}

TEST_CASE("scalar ops: grad matches finite differences", "[ops][grad]") {
  auto a = rand_var({4, 3}, 9, 0.5, 2.0);
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return 2.0 - x[0] * 3.0 + 1.5; }, {a});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return 2.0 / x[0] - x[0] / 4.0; }, {a});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return -x[0]; }, {a});
}

TEST_CASE("unary ops: grad matches finite differences", "[ops][grad]") {
  auto pos = rand_var({3, 5}, 10, 0.2, 3.0), any = rand_var({3, 5}, 11, -2.0, 2.0);
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return exp(x[0]); }, {any});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return log(x[0]); }, {pos});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return sqrt(x[0]); }, {pos});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return tanh(x[0]); }, {any});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return sigmoid(x[0]); }, {any});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return gelu(x[0]); }, {any});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return gelu(x[0], GeluApproximate::tanh); }, {any});
}

TEST_CASE("relu: grad matches finite differences away from the kink", "[ops][grad]") {
  // Values kept at least 0.1 from zero so central differences never straddle the kink.
  Tensor t = rand_tensor({4, 4}, 12, 0.1, 2.0);
  for (int64_t i = 0; i < t.numel(); i += 2) t.set_flat(i, -t.flat(i));
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return relu(x[0]); }, {Var(t, true)});
}

TEST_CASE("gelu: values equal PyTorch's erf and tanh forms", "[ops]") {
  Var x(Tensor::from_vector(std::vector<double>{-3.0, -0.5, 0.0, 1.0, 2.5}, {5}));
  // torch.nn.functional.gelu(x) and gelu(x, approximate='tanh'), float64, PyTorch 1.13.1
  std::vector<double> erf_ref{-0.00404969409489031, -0.15426876936299344, 0.0, 0.841344746068543, 2.4844758366855597};
  std::vector<double> tanh_ref{-0.0036373920817729943, -0.15428599017485606, 0.0, 0.8411919906082768,
                               2.484915733910001};
  auto e = gelu(x).value().to_vector(), t = gelu(x, GeluApproximate::tanh).value().to_vector();
  for (size_t i = 0; i < 5; ++i) {
    REQUIRE(std::abs(e[i] - erf_ref[i]) <= 1e-15);
    REQUIRE(std::abs(t[i] - tanh_ref[i]) <= 1e-15);
  }
}

TEST_CASE("masked_fill and where: values and grads", "[ops][grad]") {
  Tensor mask = Tensor::from_bools({true, false, false, true}, {4});
  auto a = rand_var({3, 4}, 13), b = rand_var({4}, 14);
  Var y = masked_fill(a, mask, -5.0);
  REQUIRE(y.value().at({1, 0}) == -5.0);
  REQUIRE(y.value().at({1, 1}) == a.value().at({1, 1}));
  REQUIRE_GRADCHECK([mask](const std::vector<Var>& x) { return masked_fill(x[0], mask, 2.0); }, {a});
  Tensor cond = Tensor::from_bools({true, false, true}, {3, 1});
  Var w = where(cond, a, b);
  REQUIRE(w.value().at({0, 2}) == a.value().at({0, 2}));
  REQUIRE(w.value().at({1, 2}) == b.value().at({2}));
  REQUIRE_GRADCHECK([cond](const std::vector<Var>& x) { return where(cond, x[0], x[1]); }, {a, b});
}

TEST_CASE("elementwise: bad input throws naming op and shapes", "[ops][errors]") {
  auto a = rand_var({2, 3}, 1), b = rand_var({4}, 2);
  REQUIRE_THROWS_WITH(a + b, Contains("[add] shapes cannot be broadcast; got a=[2, 3], b=[4]"));
  REQUIRE_THROWS_WITH(a - b, Contains("[sub] shapes cannot be broadcast"));
  REQUIRE_THROWS_WITH(a * b, Contains("[mul] shapes cannot be broadcast"));
  REQUIRE_THROWS_WITH(a / b, Contains("[div] shapes cannot be broadcast"));
  REQUIRE_THROWS_WITH(pow(a, b), Contains("[pow] shapes cannot be broadcast"));
  auto f = rand_var({2, 3}, 3, -1, 1, false, DType::Float32);
  REQUIRE_THROWS_WITH(a + f, Contains("[add] dtypes differ; got a=float64[2, 3], b=float32[2, 3]"));
  Var idx(Tensor::zeros({2}, DType::Int64));
  REQUIRE_THROWS_WITH(exp(idx), Contains("[exp] expected a float tensor; got int64[2]"));
  REQUIRE_THROWS_WITH(masked_fill(a, Tensor::zeros({3}, DType::Float64), 0.0), Contains("[masked_fill] mask must be bool"));
  REQUIRE_THROWS_WITH(masked_fill(a, Tensor::zeros({2, 3, 1}, DType::Bool), 0.0),
                      Contains("[masked_fill] mask must broadcast to the input's shape; got input=[2, 3], mask=[2, 3, 1]"));
  REQUIRE_THROWS_WITH(where(Tensor::zeros({5}, DType::Bool), a, a),
                      Contains("[where] condition cannot be broadcast with a and b; got condition=[5], a=[2, 3], "
                               "b=[2, 3]"));
}

TEST_CASE("gelu: float32 kernel is within a few ulps of the exact erf form, values and grads", "[ops]") {
  Tensor x64 = Tensor::arange(-12.0, 12.0, 0.0137, DType::Float64);
  Var x32(x64.to(DType::Float32), true);
  Var y = gelu(x32);
  y.backward(Tensor::ones(y.shape(), DType::Float32));
  double worst_y = 0, worst_g = 0;
  for (int64_t i = 0; i < x64.numel(); ++i) {
    double v = static_cast<float>(x64.flat(i));
    double ref = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    double dref = 0.5 * (1.0 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
    worst_y = std::max(worst_y, std::abs(y.value().flat(i) - ref) / std::max(1.0, std::abs(ref)));
    worst_g = std::max(worst_g, std::abs(x32.grad().flat(i) - dref) / std::max(1.0, std::abs(dref)));
  }
  INFO("worst value error " << worst_y << ", worst grad error " << worst_g);
  REQUIRE(worst_y < 1e-6);
  REQUIRE(worst_g < 1e-6);
}
