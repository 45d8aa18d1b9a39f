#include <algorithm>
#include <cmath>
#include <string>

#include "tapegrad/framework/io/hdf5_file.h"
#include "tapegrad/layers/init.h"
#include "tapegrad/layers/linear.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

const std::string kFixture = std::string(TAPEGRAD_SOURCE_DIR) + "/tests/fixtures/layers.h5";


// Rebuilds one recorded nn.Linear case in `dtype`, loads its state_dict, runs forward and backward
// with the recorded upstream gradient, and compares the output and every gradient.
void check_linear_case(const io::H5File& f, const std::string& c, DType dtype, double tol) {
  Generator gen(0);
  Linear lin({.in_features = f.attr_int(c, "in_features"), .out_features = f.attr_int(c, "out_features"),
              .bias = f.attr_int(c, "bias") != 0},
             gen, dtype);
  StateDict state;
  for (const auto& k : f.children(c + "/params")) state.emplace_back(k, f.read(c + "/params/" + k));
  lin.load_state_dict(state);   // strict: the recorded keys are exactly ours
  Var x(f.read(c + "/inputs/input").to(dtype), true);
  Var y = lin.forward(x);
  REQUIRE(y.dtype() == dtype);
  require_close(y.value(), f.read(c + "/outputs/output"), tol, c + " output");
  y.backward(f.read(c + "/grad_output").to(dtype));
  require_close(x.grad(), f.read(c + "/grads/inputs/input"), tol, c + " input grad");
  for (const auto& [name, p] : lin.named_parameters())
    require_close(p.grad(), f.read(c + "/grads/params/" + name), tol, c + " " + name + " grad");
}

void check_all_linear_cases(DType dtype, double tol) {
  io::H5File f(kFixture, io::H5File::Mode::read);
  int cases = 0;
  for (const auto& name : f.children("/")) {
    if (f.attr_string("/" + name, "kind") != "linear") continue;
    check_linear_case(f, "/" + name, dtype, tol);
    ++cases;
  }
  REQUIRE(cases == 3);   // with bias, without bias, 1-d input
}

}  // namespace

TEST_CASE("Linear: matches PyTorch output and grads (float64)", "[layers][parity]") {
  check_all_linear_cases(DType::Float64, 1e-10);
}

TEST_CASE("Linear: matches PyTorch output and grads (float32)", "[layers][parity]") {
  check_all_linear_cases(DType::Float32, 1e-5);
}

TEST_CASE("Linear: grad matches finite differences over input, weight and bias", "[layers][grad]") {
  Generator gen(1);
  Linear lin({.in_features = 3, .out_features = 2}, gen, DType::Float64);
  auto x = rand_var({2, 4, 3}, 5);
  // The fn points the layer's parameter handles at gradcheck's leaves, so grads flow to them.
  REQUIRE_GRADCHECK(
      [&](const std::vector<Var>& v) {
        lin.set_parameter("weight", v[1]);
        lin.set_parameter("bias", v[2]);
        return lin.forward(v[0]);
      },
      {x, lin.weight(), lin.bias()});
}

TEST_CASE("Linear: grad matches finite differences without bias, after to(float64)", "[layers][grad]") {
  Generator gen(2);
  Linear lin({.in_features = 4, .out_features = 3, .bias = false}, gen);
  lin.to(DType::Float64);
  REQUIRE(lin.weight().dtype() == DType::Float64);
  auto x = rand_var({5, 4}, 6);
  REQUIRE_GRADCHECK(
      [&](const std::vector<Var>& v) {
        lin.set_parameter("weight", v[1]);
        return lin.forward(v[0]);
      },
      {x, lin.weight()});
}

TEST_CASE("Linear: options have PyTorch's defaults and parameters its names and shapes", "[layers]") {
  LinearOptions o{.in_features = 5, .out_features = 7};
  REQUIRE(o.bias);
  Linear lin(o);
  REQUIRE(lin.options().in_features == 5);
  REQUIRE(lin.options().out_features == 7);
  REQUIRE(lin.weight().shape() == Shape{7, 5});
  REQUIRE(lin.bias().shape() == Shape{7});
  REQUIRE(lin.weight().dtype() == DType::Float32);
  REQUIRE(lin.weight().requires_grad());
  REQUIRE(lin.bias().requires_grad());
  auto named = lin.named_parameters();
  REQUIRE(named.size() == 2);
  REQUIRE(named[0].first == "weight");
  REQUIRE(named[0].second.same(lin.weight()));
  REQUIRE(named[1].first == "bias");
  REQUIRE(named[1].second.same(lin.bias()));
  REQUIRE(parameter_count(lin) == 42);

  Linear no_bias({.in_features = 5, .out_features = 7, .bias = false});
  REQUIRE_FALSE(no_bias.bias().defined());
  REQUIRE(no_bias.named_parameters().size() == 1);
  REQUIRE(no_bias.state_dict().size() == 1);
  REQUIRE(no_bias.state_dict()[0].first == "weight");
}

TEST_CASE("Linear: initialisation is U(-1/sqrt(in), 1/sqrt(in)) for weight and bias", "[layers][init]") {
  Generator gen(11);
  Linear lin({.in_features = 64, .out_features = 32}, gen);
  const double bound = 1.0 / 8.0;
  std::vector<double> w = lin.weight().value().to_vector(), b = lin.bias().value().to_vector();
  REQUIRE(w.size() == 2048);
  double sum = 0, sum_sq = 0;
  int quarter[4] = {0, 0, 0, 0}, outside = 0;
  for (double v : w) {
    outside += std::abs(v) > bound;
    sum += v;
    sum_sq += v * v;
    quarter[std::min(3, static_cast<int>((v + bound) / (2 * bound) * 4))]++;
  }
  REQUIRE(outside == 0);
  double mean = sum / 2048, var = sum_sq / 2048 - mean * mean;
  REQUIRE(std::abs(mean) < 0.01);                                // sd of the mean ~0.0016
  REQUIRE(std::abs(var - bound * bound / 3) < 0.1 * bound * bound / 3);   // uniform variance b^2/3
  for (int q : quarter) REQUIRE(std::abs(q - 512) < 80);          // 4 equal bins, sd ~20
  REQUIRE(*std::max_element(w.begin(), w.end()) > 0.12);
  REQUIRE(*std::min_element(w.begin(), w.end()) < -0.12);
  for (double v : b) REQUIRE(std::abs(v) <= bound);
  REQUIRE(*std::max_element(b.begin(), b.end()) - *std::min_element(b.begin(), b.end()) > 0.1);
}

TEST_CASE("Linear: draws the weight then the bias from the generator, as PyTorch", "[layers][init]") {
  Generator gen(5), ref(5);
  Linear lin({.in_features = 6, .out_features = 4}, gen);
  Tensor w = init::kaiming_uniform({4, 6}, std::sqrt(5.0), ref);
  double bound = 1.0 / std::sqrt(6.0);
  Tensor b = init::uniform({4}, -bound, bound, ref);
  REQUIRE(lin.weight().value().bit_equal(w));
  REQUIRE(lin.bias().value().bit_equal(b));
  REQUIRE(gen.state() == ref.state());
}

TEST_CASE("Linear: the same seed gives the same parameters in any dtype", "[layers][init]") {
  Generator g1(7), g2(7), g3(8), g4(7);
  Linear a({.in_features = 10, .out_features = 3}, g1), b({.in_features = 10, .out_features = 3}, g2);
  Linear c({.in_features = 10, .out_features = 3}, g3);
  Linear d({.in_features = 10, .out_features = 3}, g4, DType::Float64);
  REQUIRE(a.weight().value().bit_equal(b.weight().value()));
  REQUIRE(a.bias().value().bit_equal(b.bias().value()));
  REQUIRE_FALSE(a.weight().value().bit_equal(c.weight().value()));
  REQUIRE(d.weight().dtype() == DType::Float64);
  REQUIRE(d.weight().value().to(DType::Float32).bit_equal(a.weight().value()));
  REQUIRE(d.bias().value().to(DType::Float32).bit_equal(a.bias().value()));

  manual_seed(123);
  Linear e({.in_features = 10, .out_features = 3});
  manual_seed(123);
  Linear f({.in_features = 10, .out_features = 3});
  REQUIRE(e.weight().value().bit_equal(f.weight().value()));
  REQUIRE(e.bias().value().bit_equal(f.bias().value()));
}

TEST_CASE("Linear: reset_parameters redraws in place", "[layers][init]") {
  Generator gen(3), again(3);
  Linear lin({.in_features = 4, .out_features = 2}, gen);
  Var handle = lin.named_parameters()[0].second;
  Var(lin.weight()).value().fill_(9.0);
  lin.reset_parameters(again);
  REQUIRE(handle.same(lin.weight()));
  Generator fresh(3);
  Linear ref({.in_features = 4, .out_features = 2}, fresh);
  REQUIRE(lin.weight().value().bit_equal(ref.weight().value()));
  REQUIRE(lin.bias().value().bit_equal(ref.bias().value()));
}

TEST_CASE("Linear: forward values for a hand-computed case, batched and 1-d", "[layers]") {
  Linear lin({.in_features = 2, .out_features = 2}, default_generator(), DType::Float64);
  Var(lin.weight()).value().copy_(Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}));
  Var(lin.bias()).value().copy_(Tensor::from_vector(std::vector<double>{10, 20}, {2}));
  Var x(Tensor::from_vector(std::vector<double>{1, 1, 2, -1}, {2, 1, 2}));
  Var y = lin.forward(x);
  REQUIRE(y.shape() == Shape{2, 1, 2});
  REQUIRE(y.value().to_vector() == std::vector<double>{13, 27, 10, 22});
  Var y1 = lin.forward(Var(Tensor::from_vector(std::vector<double>{1, 1}, {2})));
  REQUIRE(y1.shape() == Shape{2});
  REQUIRE(y1.value().to_vector() == std::vector<double>{13, 27});
}

TEST_CASE("Linear: bad options throw naming the field", "[layers][errors]") {
  REQUIRE_THROWS_WITH(Linear({.in_features = 0, .out_features = 3}),
                      Contains("[Linear] in_features must be positive; got in_features=0"));
  REQUIRE_THROWS_WITH(Linear({.in_features = 2, .out_features = -1}),
                      Contains("[Linear] out_features must be positive; got out_features=-1"));
  REQUIRE_THROWS_AS(LinearOptions({.in_features = 0, .out_features = 1}).validate(), std::invalid_argument);
  REQUIRE_THROWS_WITH(Linear({.in_features = 2, .out_features = 3}, default_generator(), DType::Int64),
                      Contains("[Linear] dtype must be float32 or float64; got dtype=int64"));
}

TEST_CASE("Linear: bad input throws naming the layer's path and shapes", "[layers][errors]") {
  Linear root({.in_features = 4, .out_features = 2});
  Var x(Tensor::zeros({2, 3}));
  REQUIRE_THROWS_WITH(root.forward(x), Contains("[Linear] input feature size must be in_features=4; got input=[2, 3]"));
  REQUIRE_THROWS_WITH(root.forward(Var(Tensor::scalar(1.0))),
                      Contains("[Linear] input feature size must be in_features=4; got input=[]"));
  REQUIRE_THROWS_WITH(root.forward(Var(Tensor::zeros({2, 4}, DType::Float64))),
                      Contains("[Linear] input dtype must equal the weight's (float32); got input=float64[2, 4]"));
  REQUIRE_THROWS_WITH(root.forward(Var()), Contains("[Linear] input is undefined"));

  Module model;
  auto layers = model.register_module("layers", std::make_shared<ModuleList>());
  auto block = layers->push_back(std::make_shared<Module>());
  auto linear1 = block->register_module("linear1", std::make_shared<Linear>(LinearOptions{4, 2}));
  REQUIRE(linear1->path() == "layers.0.linear1");
  REQUIRE_THROWS_WITH(linear1->forward(x),
                      Contains("[Linear layers.0.linear1] input feature size must be in_features=4; got input=[2, 3]"));
  Module parent;
  auto named = parent.register_module("linear1", std::make_shared<Linear>(LinearOptions{4, 2}));
  REQUIRE_THROWS_WITH(named->forward(x),
                      Contains("[Linear linear1] input feature size must be in_features=4; got input=[2, 3]"));
}
