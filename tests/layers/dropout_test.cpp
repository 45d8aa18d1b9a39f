#include <cmath>
#include <limits>
#include <string>

#include "tapegrad/layers/dropout.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

TEST_CASE("Dropout: options default to p = 0.5", "[layers]") {
  DropoutOptions o;
  REQUIRE(o.p == 0.5);
  Dropout d;
  REQUIRE(d.options().p == 0.5);
  REQUIRE(d.named_parameters().empty());
  REQUIRE(d.state_dict().empty());
  REQUIRE(d.is_training());
}

TEST_CASE("Dropout: eval mode returns the input itself", "[layers]") {
  Generator gen(1);
  Dropout d({.p = 0.9}, gen);
  d.eval();
  auto x = rand_var({4, 5}, 2);
  Var y = d.forward(x);
  REQUIRE(y.same(x));
  REQUIRE(gen.state() == Generator(1).state());   // no mask drawn
  d.train();
  REQUIRE_FALSE(d.forward(x).same(x));
}

TEST_CASE("Dropout: training keeps 1 - p of the elements, scaled by 1 / (1 - p)", "[layers][stats]") {
  Generator gen(3);
  const double p = 0.3;
  Dropout d({.p = p}, gen);
  Var x(Tensor::ones({200, 500}));
  Var y = d.forward(x);
  REQUIRE(y.shape() == x.shape());
  REQUIRE(y.dtype() == DType::Float32);
  const double scale = static_cast<double>(static_cast<float>(1.0 / (1.0 - p)));
  int64_t kept = 0, other = 0;
  double sum = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    double v = y.value().flat(i);
    other += v != 0.0 && v != scale;   // every element is 0 or exactly 1 / (1 - p) in float32
    kept += v != 0.0;
    sum += v;
  }
  REQUIRE(other == 0);
  double n = static_cast<double>(y.numel());
  REQUIRE(std::abs(static_cast<double>(kept) / n - (1.0 - p)) < 0.01);   // sd ~0.0015
  REQUIRE(std::abs(sum / n - 1.0) < 0.02);                                // mean preserved
  // Eval mode: exactly the input, mean exactly 1.
  d.eval();
  Var e = d.forward(x);
  REQUIRE(e.value().to_vector() == std::vector<double>(100000, 1.0));
}

TEST_CASE("Dropout: p = 0 keeps everything and p = 1 zeroes everything in training", "[layers]") {
  Generator gen(4);
  auto x = rand_var({3, 7}, 5);
  Dropout keep({.p = 0.0}, gen), drop_all({.p = 1.0}, gen);
  REQUIRE(keep.forward(x).value().to_vector() == x.value().to_vector());
  REQUIRE(drop_all.forward(x).value().to_vector() == std::vector<double>(21, 0.0));
}

TEST_CASE("Dropout: re-seeding the generator replays the mask, successive calls differ", "[layers]") {
  Generator gen(6);
  Dropout d({.p = 0.5}, gen);
  auto x = rand_var({8, 8}, 7);
  Tensor first = d.forward(x).value().clone();
  Tensor second = d.forward(x).value().clone();
  REQUIRE_FALSE(first.bit_equal(second));
  gen.manual_seed(6);
  REQUIRE(d.forward(x).value().bit_equal(first));
}

TEST_CASE("Dropout: the gradient is the mask scaled by 1 / (1 - p)", "[layers][grad]") {
  Generator gen(8);
  Dropout d({.p = 0.25}, gen);
  Var x(Tensor::ones({6, 10}, DType::Float64), true);
  Var y = d.forward(x);
  y.backward(Tensor::ones({6, 10}, DType::Float64));
  // With x = 1 and upstream 1, y and dx are both mask / (1 - p).
  REQUIRE(x.grad().to_vector() == y.value().to_vector());
}

TEST_CASE("Dropout: grad matches finite differences in training mode (mask replayed)", "[layers][grad]") {
  Generator gen(9);
  Dropout d({.p = 0.4}, gen);
  REQUIRE(d.is_training());
  auto x = rand_var({4, 6}, 10);
  REQUIRE_GRADCHECK(
      [&](const std::vector<Var>& v) {
        gen.manual_seed(9);   // the same mask on every call
        return d.forward(v[0]);
      },
      {x});
}

TEST_CASE("Dropout: follows train/eval of its parent module", "[layers]") {
  Module model;
  Generator gen(11);
  auto drop = model.register_module("dropout", std::make_shared<Dropout>(DropoutOptions{.p = 0.5}, gen));
  auto x = rand_var({10}, 12);
  model.eval();
  REQUIRE(drop->forward(x).same(x));
  model.train();
  REQUIRE_FALSE(drop->forward(x).same(x));
}

TEST_CASE("Dropout: bad options and input throw naming the field and the path", "[layers][errors]") {
  REQUIRE_THROWS_WITH(Dropout({.p = 1.5}), Contains("[Dropout] p must be in [0, 1]; got p=1.5"));
  REQUIRE_THROWS_WITH(Dropout({.p = -0.1}), Contains("[Dropout] p must be in [0, 1]; got p=-0.1"));
  REQUIRE_THROWS_WITH(Dropout({.p = std::numeric_limits<double>::quiet_NaN()}),
                      Contains("[Dropout] p must be in [0, 1]; got p=nan"));
  REQUIRE_THROWS_AS(DropoutOptions{.p = 2.0}.validate(), std::invalid_argument);
  Module model;
  auto drop = model.register_module("dropout1", std::make_shared<Dropout>());
  REQUIRE_THROWS_WITH(drop->forward(Var(Tensor::zeros({3}, DType::Int64))),
                      Contains("[Dropout dropout1] input must be float32 or float64; got input=int64[3]"));
  Dropout root;
  REQUIRE_THROWS_WITH(root.forward(Var()), Contains("[Dropout] input is undefined"));
}
