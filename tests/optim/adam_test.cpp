// Adam and AdamW (optim/adam.h): option checks, state contents, the weight-decay flag. Trajectory
// parity with PyTorch is in trajectories_test.cpp.
#include <cmath>

#include "tapegrad/optim/adam.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::optim;
using namespace tg::test;
using Catch::Matchers::Contains;

TEST_CASE("AdamOptions: validate names the invalid field", "[optim][errors]") {
  REQUIRE_NOTHROW(AdamOptions{}.validate());
  REQUIRE_THROWS_WITH((AdamOptions{.lr = -1}.validate()),
                      Contains("[Adam] invalid learning rate: -1 (lr must be finite and >= 0)"));
  REQUIRE_THROWS_WITH((AdamOptions{.eps = -1e-8}.validate()),
                      Contains("[Adam] invalid epsilon value: -1e-08 (eps must be finite and >= 0)"));
  REQUIRE_THROWS_WITH((AdamOptions{.betas = {1.5, 0.999}}.validate()),
                      Contains("[Adam] invalid beta parameter at index 0: 1.5 (betas must be in [0, 1))"));
  REQUIRE_THROWS_WITH((AdamOptions{.betas = {-0.1, 0.999}}.validate()),
                      Contains("[Adam] invalid beta parameter at index 0: -0.1"));
  REQUIRE_THROWS_WITH((AdamOptions{.betas = {0.9, 1.0}}.validate()),
                      Contains("[Adam] invalid beta parameter at index 1: 1 (betas must be in [0, 1))"));
  REQUIRE_THROWS_WITH((AdamOptions{.betas = {0.9, NAN}}.validate()), Contains("[Adam] invalid beta parameter at index 1: nan"));
  REQUIRE_THROWS_WITH((AdamOptions{.weight_decay = -0.1}.validate()),
                      Contains("[Adam] invalid weight_decay value: -0.1 (weight_decay must be finite and >= 0)"));
  Var w = rand_var({2}, 1);
  REQUIRE_THROWS_WITH(Adam({{"w", w}}, {.eps = NAN}), Contains("[Adam] invalid epsilon value: nan"));
}

TEST_CASE("AdamWOptions: defaults are PyTorch's and errors name AdamW", "[optim][errors]") {
  AdamWOptions o;
  CHECK(o.lr == 1e-3);
  CHECK(o.betas == std::pair<double, double>{0.9, 0.999});
  CHECK(o.eps == 1e-8);
  CHECK(o.weight_decay == 1e-2);
  CHECK_FALSE(o.amsgrad);
  CHECK(AdamOptions{}.weight_decay == 0.0);
  REQUIRE_THROWS_WITH((AdamWOptions{.lr = -1}.validate()), Contains("[AdamW] invalid learning rate: -1"));
  REQUIRE_THROWS_WITH((AdamWOptions{.eps = -1}.validate()), Contains("[AdamW] invalid epsilon value: -1"));
  REQUIRE_THROWS_WITH((AdamWOptions{.betas = {0.9, 2.0}}.validate()), Contains("[AdamW] invalid beta parameter at index 1: 2"));
  REQUIRE_THROWS_WITH((AdamWOptions{.betas = {1.0, 0.9}}.validate()), Contains("[AdamW] invalid beta parameter at index 0: 1"));
  REQUIRE_THROWS_WITH((AdamWOptions{.weight_decay = -1e-2}.validate()),
                      Contains("[AdamW] invalid weight_decay value: -0.01"));
}

TEST_CASE("Adam: state holds step, exp_avg, exp_avg_sq and, with amsgrad, max_exp_avg_sq", "[optim]") {
  Var w = rand_var({4}, 1);
  Adam adam({{"w", w}}, {.lr = 0.01, .amsgrad = true});
  Tensor g = rand_tensor({4}, 2);
  w.set_grad(g.clone());
  adam.step();
  const ParamState* st = adam.param_state("w");
  REQUIRE(st != nullptr);
  REQUIRE(st->tensors.size() == 4);
  CHECK(st->tensors[0].first == "step");
  CHECK(st->find("step")->dtype() == DType::Int64);
  CHECK(st->find("step")->item() == 1.0);
  for (int64_t i = 0; i < 4; ++i) {
    double gi = g.flat(i);
    CHECK(st->find("exp_avg")->flat(i) == (1 - 0.9) * gi);   // 0 * 0.9 + (1 - 0.9) * g
    CHECK(std::abs(st->find("exp_avg_sq")->flat(i) - 0.001 * gi * gi) < 1e-18);
    CHECK(st->find("max_exp_avg_sq")->flat(i) == st->find("exp_avg_sq")->flat(i));
  }
  w.set_grad(Tensor::zeros({4}, DType::Float64));
  adam.step();
  CHECK(adam.param_state("w")->find("step")->item() == 2.0);
  // exp_avg_sq decays, the running max keeps the first value.
  CHECK(st->find("max_exp_avg_sq")->flat(0) > st->find("exp_avg_sq")->flat(0));
}

TEST_CASE("Adam: switching amsgrad on later starts max_exp_avg_sq from zeros", "[optim]") {
  Var w = rand_var({3}, 1);
  Adam adam({{"w", w}});
  w.set_grad(rand_tensor({3}, 2));
  adam.step();
  CHECK(adam.param_state("w")->find("max_exp_avg_sq") == nullptr);
  adam.group_options(0).amsgrad = true;
  adam.step();
  const Tensor* vmax = adam.param_state("w")->find("max_exp_avg_sq");
  REQUIRE(vmax != nullptr);
  CHECK(vmax->bit_equal(*adam.param_state("w")->find("exp_avg_sq")));   // max(0, v) = v
}

TEST_CASE("AdamW: decoupled weight decay scales parameters, Adam adds it to the gradient", "[optim]") {
  Tensor init = rand_tensor({5}, 1, 0.5, 2.0);
  Var a(init.clone(), true), b(init.clone(), true);
  AdamW adamw({{"p", a}}, {.lr = 0.1, .weight_decay = 0.5});
  Adam adam({{"p", b}}, {.lr = 0.1, .weight_decay = 0.5});
  CHECK(adamw.decoupled_weight_decay());
  CHECK_FALSE(adam.decoupled_weight_decay());
  a.set_grad(Tensor::zeros({5}, DType::Float64));
  b.set_grad(Tensor::zeros({5}, DType::Float64));
  adamw.step();
  adam.step();
  for (int64_t i = 0; i < 5; ++i) {
    // AdamW: param * (1 - lr * wd); the moment update is exactly zero.
    CHECK(a.value().flat(i) == init.flat(i) * (1 - 0.1 * 0.5));
    // Adam: g = wd * p > 0, first step moves by lr * m_hat / (sqrt(v_hat) + eps) ~= lr.
    CHECK(std::abs(b.value().flat(i) - (init.flat(i) - 0.1)) < 1e-7);
  }
}
