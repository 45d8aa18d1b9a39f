#include <algorithm>
#include <cmath>
#include <string>

#include "tapegrad/framework/io/hdf5_file.h"
#include "tapegrad/layers/layer_norm.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

const std::string kFixture = std::string(TAPEGRAD_SOURCE_DIR) + "/tests/fixtures/layers.h5";


// Rebuilds one recorded nn.LayerNorm case in `dtype`, loads its state_dict, runs forward and backward
// with the recorded upstream gradient, and compares the output and every gradient.
void check_layer_norm_case(const io::H5File& f, const std::string& c, DType dtype, double tol) {
  Tensor ns = f.read(c + "/normalized_shape");
  Shape normalized_shape;
  for (int64_t i = 0; i < ns.numel(); ++i) normalized_shape.push_back(static_cast<int64_t>(ns.flat(i)));
  LayerNorm norm({.normalized_shape = normalized_shape, .eps = f.attr_double(c, "eps"),
                  .elementwise_affine = f.attr_int(c, "elementwise_affine") != 0, .bias = f.attr_int(c, "bias") != 0},
                 dtype);
  StateDict state;
  if (f.exists(c + "/params"))
    for (const auto& k : f.children(c + "/params")) state.emplace_back(k, f.read(c + "/params/" + k));
  norm.load_state_dict(state);   // strict: the recorded keys are exactly ours
  Var x(f.read(c + "/inputs/input").to(dtype), true);
  Var y = norm.forward(x);
  REQUIRE(y.dtype() == dtype);
  require_close(y.value(), f.read(c + "/outputs/output"), tol, c + " output");
  y.backward(f.read(c + "/grad_output").to(dtype));
  require_close(x.grad(), f.read(c + "/grads/inputs/input"), tol, c + " input grad");
  for (const auto& [name, p] : norm.named_parameters())
    require_close(p.grad(), f.read(c + "/grads/params/" + name), tol, c + " " + name + " grad");
}

void check_all_layer_norm_cases(DType dtype, double tol) {
  io::H5File f(kFixture, io::H5File::Mode::read);
  int cases = 0;
  for (const auto& name : f.children("/")) {
    if (f.attr_string("/" + name, "kind") != "layer_norm") continue;
    check_layer_norm_case(f, "/" + name, dtype, tol);
    ++cases;
  }
  REQUIRE(cases == 5);   // 1 and 2 trailing dims, affine and not; affine without bias
}

// Replaces the layer's parameters by gradcheck's leaves v[1], v[2] (when present), then runs it.
Var run_with(LayerNorm& norm, const std::vector<Var>& v) {
  if (v.size() > 1) norm.set_parameter("weight", v[1]);
  if (v.size() > 2) norm.set_parameter("bias", v[2]);
  return norm.forward(v[0]);
}

}  // namespace

TEST_CASE("LayerNorm: matches PyTorch output and grads (float64)", "[layers][parity]") {
  check_all_layer_norm_cases(DType::Float64, 1e-10);
}

TEST_CASE("LayerNorm: matches PyTorch output and grads (float32)", "[layers][parity]") {
  check_all_layer_norm_cases(DType::Float32, 1e-5);
}

TEST_CASE("LayerNorm: grad matches finite differences (1 trailing dim, affine)", "[layers][grad]") {
  LayerNorm norm({.normalized_shape = {5}}, DType::Float64);
  Var(norm.weight()).value().copy_(rand_tensor({5}, 21, 0.5, 1.5));
  Var(norm.bias()).value().copy_(rand_tensor({5}, 22));
  auto x = rand_var({3, 5}, 23, -2.0, 2.0);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return run_with(norm, v); }, {x, norm.weight(), norm.bias()});
}

TEST_CASE("LayerNorm: grad matches finite differences (2 trailing dims, affine, after to(float64))", "[layers][grad]") {
  LayerNorm norm({.normalized_shape = {2, 3}, .eps = 1e-3});
  norm.to(DType::Float64);
  Var(norm.weight()).value().copy_(rand_tensor({2, 3}, 24, 0.5, 1.5));
  Var(norm.bias()).value().copy_(rand_tensor({2, 3}, 25));
  auto x = rand_var({2, 2, 2, 3}, 26, -2.0, 2.0);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return run_with(norm, v); }, {x, norm.weight(), norm.bias()});
}

TEST_CASE("LayerNorm: grad matches finite differences (no affine, weight without bias)", "[layers][grad]") {
  LayerNorm plain({.normalized_shape = {3, 2}, .elementwise_affine = false}, DType::Float64);
  auto x = rand_var({4, 3, 2}, 27, -2.0, 2.0);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return run_with(plain, v); }, {x});
  LayerNorm no_bias({.normalized_shape = {4}, .bias = false}, DType::Float64);
  Var(no_bias.weight()).value().copy_(rand_tensor({4}, 28, 0.5, 1.5));
  auto x2 = rand_var({3, 4}, 29, -2.0, 2.0);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return run_with(no_bias, v); }, {x2, no_bias.weight()});
}

TEST_CASE("LayerNorm: options have PyTorch's defaults, weight is 1 and bias 0", "[layers][init]") {
  LayerNormOptions o{.normalized_shape = {2, 3}};
  REQUIRE(o.eps == 1e-5);
  REQUIRE(o.elementwise_affine);
  REQUIRE(o.bias);
  LayerNorm norm(o);
  REQUIRE(norm.weight().shape() == Shape{2, 3});
  REQUIRE(norm.bias().shape() == Shape{2, 3});
  REQUIRE(norm.weight().dtype() == DType::Float32);
  REQUIRE(norm.weight().value().to_vector() == std::vector<double>(6, 1.0));
  REQUIRE(norm.bias().value().to_vector() == std::vector<double>(6, 0.0));
  auto named = norm.named_parameters();
  REQUIRE(named.size() == 2);
  REQUIRE(named[0].first == "weight");
  REQUIRE(named[0].second.same(norm.weight()));
  REQUIRE(named[1].first == "bias");
  REQUIRE(named[1].second.same(norm.bias()));

  LayerNorm plain({.normalized_shape = {4}, .elementwise_affine = false});
  REQUIRE_FALSE(plain.weight().defined());
  REQUIRE_FALSE(plain.bias().defined());
  REQUIRE(plain.named_parameters().empty());
  REQUIRE(plain.state_dict().empty());
  LayerNorm no_bias({.normalized_shape = {4}, .bias = false});
  REQUIRE(no_bias.weight().defined());
  REQUIRE_FALSE(no_bias.bias().defined());
  REQUIRE(no_bias.named_parameters().size() == 1);

  // The generator overload draws nothing and builds the same module.
  Generator gen(3);
  LayerNorm with_gen({.normalized_shape = {4}}, gen, DType::Float64);
  REQUIRE(gen.state() == Generator(3).state());
  REQUIRE(with_gen.weight().dtype() == DType::Float64);
  REQUIRE(with_gen.weight().value().to_vector() == std::vector<double>(4, 1.0));
  REQUIRE(with_gen.bias().value().to_vector() == std::vector<double>(4, 0.0));
}

TEST_CASE("LayerNorm: reset_parameters restores 1 and 0 in place", "[layers][init]") {
  LayerNorm norm({.normalized_shape = {3}});
  Var w = norm.named_parameters()[0].second;
  Var(norm.weight()).value().fill_(4.0);
  Var(norm.bias()).value().fill_(-2.0);
  norm.reset_parameters();
  REQUIRE(w.same(norm.weight()));
  REQUIRE(norm.weight().value().to_vector() == std::vector<double>(3, 1.0));
  REQUIRE(norm.bias().value().to_vector() == std::vector<double>(3, 0.0));
}

TEST_CASE("LayerNorm: forward normalises each row to mean 0 and variance 1", "[layers]") {
  LayerNorm norm({.normalized_shape = {4}, .eps = 0.0}, DType::Float64);
  Var x(Tensor::from_vector(std::vector<double>{1, 2, 3, 4, -1, -1, 1, 1}, {2, 4}));
  Var y = norm.forward(x);
  // Row 0: mean 2.5, biased variance 1.25; row 1: mean 0, variance 1.
  double s = 1.0 / std::sqrt(1.25);
  std::vector<double> expected{-1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s, -1, -1, 1, 1};
  auto got = y.value().to_vector();
  for (size_t i = 0; i < 8; ++i) REQUIRE(std::abs(got[i] - expected[i]) < 1e-14);
}

TEST_CASE("LayerNorm: bad options throw naming the field", "[layers][errors]") {
  REQUIRE_THROWS_WITH(LayerNorm({.normalized_shape = {}}),
                      Contains("[LayerNorm] normalized_shape must be non-empty with positive sizes; got "
                               "normalized_shape=[]"));
  REQUIRE_THROWS_WITH(LayerNorm({.normalized_shape = {3, 0}}),
                      Contains("[LayerNorm] normalized_shape must be non-empty with positive sizes; got "
                               "normalized_shape=[3, 0]"));
  REQUIRE_THROWS_WITH(LayerNorm({.normalized_shape = {3}, .eps = -1e-5}),
                      Contains("[LayerNorm] eps must be finite and non-negative; got eps=-1e-05"));
  REQUIRE_THROWS_WITH(LayerNorm({.normalized_shape = {3}}, DType::Int64),
                      Contains("[LayerNorm] dtype must be float32 or float64; got dtype=int64"));
}

TEST_CASE("LayerNorm: bad input throws naming the layer's path and shapes", "[layers][errors]") {
  Module model;
  auto norm1 = model.register_module("norm1", std::make_shared<LayerNorm>(LayerNormOptions{.normalized_shape = {3, 4}}));
  REQUIRE_THROWS_WITH(norm1->forward(Var(Tensor::zeros({2, 4, 3}))),
                      Contains("[LayerNorm norm1] expected input of shape [*, 3, 4] for normalized_shape=[3, 4]; "
                               "got input=[2, 4, 3]"));
  REQUIRE_THROWS_WITH(norm1->forward(Var(Tensor::zeros({4}))),
                      Contains("[LayerNorm norm1] expected input of shape [*, 3, 4] for normalized_shape=[3, 4]; "
                               "got input=[4]"));
  REQUIRE_THROWS_WITH(norm1->forward(Var(Tensor::zeros({3, 4}, DType::Float64))),
                      Contains("[LayerNorm norm1] input dtype must equal the weight's (float32); got "
                               "input=float64[3, 4]"));
  LayerNorm plain({.normalized_shape = {2}, .elementwise_affine = false});
  REQUIRE_THROWS_WITH(plain.forward(Var(Tensor::zeros({2}, DType::Int64))),
                      Contains("[LayerNorm] input must be float32 or float64; got input=int64[2]"));
  REQUIRE_THROWS_WITH(plain.forward(Var()), Contains("[LayerNorm] input is undefined"));
}
