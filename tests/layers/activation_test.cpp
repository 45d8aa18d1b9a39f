#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "tapegrad/framework/io/hdf5_file.h"
#include "tapegrad/layers/activation.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

const std::string kFixture = std::string(TAPEGRAD_SOURCE_DIR) + "/tests/fixtures/layers.h5";


// Runs every recorded ReLU/GELU case in `dtype`: output and input gradient for the recorded upstream.
void check_all_activation_cases(DType dtype, double tol) {
  io::H5File f(kFixture, io::H5File::Mode::read);
  int cases = 0;
  for (const auto& name : f.children("/")) {
    const std::string c = "/" + name, kind = f.attr_string(c, "kind");
    if (kind != "relu" && kind != "gelu") continue;
    std::function<Var(const Var&)> forward;
    if (kind == "relu") {
      auto m = std::make_shared<ReLU>();
      forward = [m](const Var& x) { return m->forward(x); };
    } else {
      std::string approximate = f.attr_string(c, "approximate");
      REQUIRE((approximate == "none" || approximate == "tanh"));
      auto m = std::make_shared<GELU>(approximate == "tanh" ? GeluApproximate::tanh : GeluApproximate::none);
      forward = [m](const Var& x) { return m->forward(x); };
    }
    Var x(f.read(c + "/inputs/input").to(dtype), true);
    Var y = forward(x);
    REQUIRE(y.dtype() == dtype);
    require_close(y.value(), f.read(c + "/outputs/output"), tol, name + " output");
    y.backward(f.read(c + "/grad_output").to(dtype));
    require_close(x.grad(), f.read(c + "/grads/inputs/input"), tol, name + " input grad");
    ++cases;
  }
  REQUIRE(cases == 3);   // relu, gelu none, gelu tanh
}

}  // namespace

TEST_CASE("ReLU/GELU: match PyTorch output and grads (float64)", "[layers][parity]") {
  check_all_activation_cases(DType::Float64, 1e-10);
}

TEST_CASE("ReLU/GELU: match PyTorch output and grads (float32)", "[layers][parity]") {
  check_all_activation_cases(DType::Float32, 1e-5);
}

TEST_CASE("ReLU: grad matches finite differences away from the kink", "[layers][grad]") {
  ReLU relu_module;
  Tensor t = rand_tensor({3, 5}, 31, 0.1, 2.0);
  for (int64_t i = 0; i < t.numel(); i += 2) t.set_flat(i, -t.flat(i));
  REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return relu_module.forward(v[0]); }, {Var(t, true)});
}

TEST_CASE("GELU: grad matches finite differences (none and tanh)", "[layers][grad]") {
  GELU exact, fast(GeluApproximate::tanh);
  auto x = rand_var({4, 5}, 32, -3.0, 3.0);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return exact.forward(v[0]); }, {x});
  REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return fast.forward(v[0]); }, {x});
}

TEST_CASE("ReLU/GELU: forward values and defaults", "[layers]") {
  Var x(Tensor::from_vector(std::vector<double>{-2.0, -0.5, 0.0, 1.0, 2.5}, {5}));
  ReLU r;
  REQUIRE(r.forward(x).value().to_vector() == std::vector<double>{0, 0, 0, 1.0, 2.5});
  REQUIRE(r.named_parameters().empty());
  GELU g;
  REQUIRE(g.approximate() == GeluApproximate::none);
  REQUIRE(GELU(GeluApproximate::tanh).approximate() == GeluApproximate::tanh);
  REQUIRE(g.named_parameters().empty());
  // F.gelu(torch.tensor([-2.0, 1.0], dtype=torch.float64)), PyTorch 1.13.1
  Var y = g.forward(Var(Tensor::from_vector(std::vector<double>{-2.0, 1.0}, {2})));
  REQUIRE(std::abs(y.value().flat(0) - -0.04550026389635842) < 1e-15);
  REQUIRE(std::abs(y.value().flat(1) - 0.841344746068543) < 1e-15);
}

TEST_CASE("ReLU/GELU: bad input throws naming the layer's path", "[layers][errors]") {
  Module model;
  auto act = model.register_module("activation", std::make_shared<GELU>());
  auto relu_module = model.register_module("relu", std::make_shared<ReLU>());
  Var ints(Tensor::zeros({2, 3}, DType::Int64));
  REQUIRE_THROWS_WITH(act->forward(ints),
                      Contains("[GELU activation] input must be float32 or float64; got input=int64[2, 3]"));
  REQUIRE_THROWS_WITH(relu_module->forward(ints),
                      Contains("[ReLU relu] input must be float32 or float64; got input=int64[2, 3]"));
  REQUIRE_THROWS_WITH(ReLU().forward(Var()), Contains("[ReLU] input is undefined"));
  REQUIRE_THROWS_WITH(GELU().forward(Var()), Contains("[GELU] input is undefined"));
}
