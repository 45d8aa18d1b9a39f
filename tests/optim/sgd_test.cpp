// SGD (optim/sgd.h): option checks, a step computed by hand, momentum state. Trajectory parity with
// PyTorch is in trajectories_test.cpp.
#include <cmath>

#include "tapegrad/optim/sgd.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::optim;
using namespace tg::test;
using Catch::Matchers::Contains;

TEST_CASE("SGDOptions: validate names the invalid field", "[optim][errors]") {
  REQUIRE_NOTHROW(SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true}.validate());
  REQUIRE_THROWS_WITH((SGDOptions{.lr = -0.1}.validate()),
                      Contains("[SGD] invalid learning rate: -0.1 (lr must be finite and >= 0)"));
  REQUIRE_THROWS_WITH((SGDOptions{.lr = NAN}.validate()), Contains("[SGD] invalid learning rate: nan"));
  REQUIRE_THROWS_WITH((SGDOptions{.lr = INFINITY}.validate()), Contains("[SGD] invalid learning rate: inf"));
  REQUIRE_THROWS_WITH((SGDOptions{.lr = 0.1, .momentum = -0.5}.validate()),
                      Contains("[SGD] invalid momentum value: -0.5 (momentum must be finite and >= 0)"));
  REQUIRE_THROWS_WITH((SGDOptions{.lr = 0.1, .dampening = NAN}.validate()),
                      Contains("[SGD] invalid dampening value: nan (dampening must be finite)"));
  REQUIRE_THROWS_WITH((SGDOptions{.lr = 0.1, .weight_decay = -1e-8}.validate()),
                      Contains("[SGD] invalid weight_decay value: -1e-08 (weight_decay must be finite and >= 0)"));
  REQUIRE_THROWS_WITH((SGDOptions{.lr = 0.1, .nesterov = true}.validate()),
                      Contains("[SGD] Nesterov momentum requires a momentum and zero dampening; got momentum=0, "
                               "dampening=0"));
  REQUIRE_THROWS_WITH((SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}.validate()),
                      Contains("got momentum=0.9, dampening=0.1"));
  Var w = rand_var({2}, 1);
  REQUIRE_THROWS_WITH(SGD({{"w", w}}, {.lr = -1}), Contains("[SGD] invalid learning rate: -1"));
}

TEST_CASE("SGD: two steps with momentum, dampening and weight decay equal the hand computation", "[optim]") {
  Var p(Tensor::from_vector(std::vector<double>{1.0, -2.0}, {2}), true);
  SGD opt({{"p", p}}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.5, .weight_decay = 0.1});
  Tensor g = Tensor::from_vector(std::vector<double>{0.5, 0.25}, {2});
  p.set_grad(g.clone());
  opt.step();
  // d = g + 0.1 p = [0.6, 0.05]; buf = d; p -= 0.1 d
  CHECK(std::abs(p.value().flat(0) - 0.94) < 1e-15);
  CHECK(std::abs(p.value().flat(1) + 2.005) < 1e-15);
  CHECK(max_abs_diff(*opt.param_state("p")->find("momentum_buffer"),
                     Tensor::from_vector(std::vector<double>{0.6, 0.05}, {2})) < 1e-15);
  p.set_grad(g.clone());
  opt.step();
  // d = g + 0.1 p = [0.594, 0.0495]; buf = 0.9 buf + 0.5 d = [0.837, 0.06975]; p -= 0.1 buf
  CHECK(std::abs(p.value().flat(0) - 0.8563) < 1e-15);
  CHECK(std::abs(p.value().flat(1) + 2.011975) < 1e-15);
}

TEST_CASE("SGD: nesterov and maximize follow PyTorch's formulas", "[optim]") {
  Var p(Tensor::from_vector(std::vector<double>{1.0}, {1}), true);
  SGD opt({{"p", p}}, {.lr = 0.5, .momentum = 0.5, .nesterov = true, .maximize = true});
  p.set_grad(Tensor::from_vector(std::vector<double>{2.0}, {1}));
  opt.step();   // d = -2; buf = -2; d = d + 0.5 buf = -3; p = 1 + 1.5
  CHECK(p.value().flat(0) == 2.5);
  opt.step();   // d = -2; buf = 0.5 * -2 + -2 = -3; d = -2 - 1.5 = -3.5; p = 2.5 + 1.75
  CHECK(p.value().flat(0) == 4.25);
}

TEST_CASE("SGD: without momentum no state is kept, momentum state starts at the first grad", "[optim]") {
  Var w = rand_var({3}, 1);
  SGD plain({{"w", w}}, {.lr = 0.1});
  w.set_grad(rand_tensor({3}, 2));
  plain.step();
  CHECK(plain.param_state("w") == nullptr);
  CHECK(plain.state_dict().size() == 7);   // group 0: num_params and six options
  // Switching momentum on later starts the buffer from the current d, as PyTorch's None buffer.
  plain.group_options(0).momentum = 0.9;
  Tensor w0 = w.value().clone();
  plain.step();
  REQUIRE(plain.param_state("w") != nullptr);
  CHECK(plain.param_state("w")->find("momentum_buffer")->bit_equal(w.grad()));
  CHECK(max_abs_diff(w.value(), w0) > 0.0);
}

TEST_CASE("SGD: float32 parameters are updated in float32", "[optim]") {
  Var w(Tensor::from_vector(std::vector<float>{1.0f, 2.0f}, {2}), true);
  SGD opt({{"w", w}}, {.lr = 0.1});
  w.set_grad(Tensor::from_vector(std::vector<float>{1.0f, -1.0f}, {2}));
  opt.step();
  REQUIRE(w.dtype() == DType::Float32);
  CHECK(w.value().data<float>()[0] == 1.0f + -0.1f * 1.0f);
  CHECK(w.value().data<float>()[1] == 2.0f + -0.1f * -1.0f);
}
