// Behaviour shared by all optimizers (optim/optimizer.h): parameter checks, grads, zero_grad,
// param groups, state_dict() layout and load_state_dict errors.
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/optim/adam.h"
#include "tapegrad/optim/sgd.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::optim;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

std::vector<std::string> keys_of(const StateDict& sd) {
  std::vector<std::string> keys;
  for (const auto& [k, t] : sd) keys.push_back(k);
  return keys;
}

}  // namespace

TEST_CASE("Optimizer: constructor rejects bad parameter lists", "[optim][errors]") {
  Var w = rand_var({2, 3}, 1), b = rand_var({3}, 2);
  REQUIRE_THROWS_WITH(SGD(NamedParams{}, {.lr = 0.1}),
                      Contains("[SGD] optimizer got an empty parameter list; got 1 param groups"));
  REQUIRE_THROWS_WITH(Adam(NamedParams{{"w", w}, {"w", b}}),
                      Contains("[Adam] parameter name 'w' appears more than once"));
  REQUIRE_THROWS_WITH(Adam(NamedParams{{"a/b", w}}),
                      Contains("[Adam] parameter names must be non-empty and contain no '/'; got 'a/b' in param group 0"));
  REQUIRE_THROWS_WITH(Adam(NamedParams{{"", w}}), Contains("[Adam] parameter names must be non-empty"));
  REQUIRE_THROWS_WITH(AdamW(std::vector<ParamGroup<AdamWOptions>>{{{{"w", w}}, {}}, {{{"w2", w}}, {}}}),
                      Contains("[AdamW] parameter 'w2' is a Var that appears more than once"));
  REQUIRE_THROWS_WITH(SGD(NamedParams{{"x", w * 2.0}}, {.lr = 0.1}),
                      Contains("[SGD] can't optimize a non-leaf Var; got parameter 'x' (result of mul)"));
  REQUIRE_THROWS_WITH(SGD(NamedParams{{"u", Var()}}, {.lr = 0.1}), Contains("[SGD] parameter 'u' is an undefined Var"));
  Var idx(Tensor::zeros({2}, DType::Int64));
  REQUIRE_THROWS_WITH(SGD(NamedParams{{"i", idx}}, {.lr = 0.1}),
                      Contains("[SGD] parameters must be float32 or float64; got 'i'=int64[2]"));
}

TEST_CASE("Optimizer: step rejects a grad whose shape or dtype differs from its parameter", "[optim][errors]") {
  Var w = rand_var({2, 3}, 1);
  Adam adam({{"w", w}});
  w.set_grad(Tensor::zeros({3}, DType::Float64));
  REQUIRE_THROWS_WITH(adam.step(), Contains("[Adam] grad of parameter 'w' does not match the parameter; "
                                            "got grad=float64[3], param=float64[2, 3]"));
  SGD sgd({{"w", w}}, {.lr = 0.1});
  w.set_grad(Tensor::zeros({2, 3}, DType::Float32));
  REQUIRE_THROWS_WITH(sgd.step(), Contains("[SGD] grad of parameter 'w' does not match the parameter; "
                                           "got grad=float32[2, 3], param=float64[2, 3]"));
}

TEST_CASE("Optimizer: parameters without a grad are skipped and get no state", "[optim]") {
  Var w = rand_var({2, 3}, 1), b = rand_var({3}, 2);
  Tensor b0 = b.value().clone();
  for (int which = 0; which < 3; ++which) {
    std::unique_ptr<Optimizer> opt;
    if (which == 0) opt = std::make_unique<SGD>(NamedParams{{"w", w}, {"b", b}}, SGDOptions{.lr = 0.1, .momentum = 0.9});
    if (which == 1) opt = std::make_unique<Adam>(NamedParams{{"w", w}, {"b", b}});
    if (which == 2) opt = std::make_unique<AdamW>(NamedParams{{"w", w}, {"b", b}});
    Tensor w0 = w.value().clone();
    w.set_grad(rand_tensor({2, 3}, 3));
    b.zero_grad();
    opt->step();
    INFO(opt->name());
    CHECK_FALSE(w.value().bit_equal(w0));
    CHECK(b.value().bit_equal(b0));
    CHECK(opt->param_state("w") != nullptr);
    CHECK(opt->param_state("b") == nullptr);
    CHECK(opt->param_state("nope") == nullptr);
  }
}

TEST_CASE("Optimizer: zero_grad sets grads to none, or to zeros in place", "[optim]") {
  Var w = rand_var({2, 2}, 1), b = rand_var({2}, 2);
  Adam adam({{"w", w}, {"b", b}});
  w.set_grad(rand_tensor({2, 2}, 3));
  b.set_grad(rand_tensor({2}, 4));
  Tensor wg = w.grad();
  adam.zero_grad(/*set_to_none=*/false);
  REQUIRE(w.grad().defined());
  CHECK(w.grad().shares_storage(wg));
  CHECK(w.grad().to_vector() == std::vector<double>(4, 0.0));
  CHECK(b.grad().to_vector() == std::vector<double>(2, 0.0));
  // A zero grad is still a grad: Adam steps (PyTorch's documented difference from None).
  adam.step();
  REQUIRE(adam.param_state("w") != nullptr);
  CHECK(adam.param_state("w")->find("step")->item() == 1.0);
  adam.zero_grad();
  CHECK_FALSE(w.grad().defined());
  CHECK_FALSE(b.grad().defined());
  adam.step();   // nothing has a grad: no step counted
  CHECK(adam.param_state("w")->find("step")->item() == 1.0);
}

TEST_CASE("Optimizer: param groups keep their own options, lr is settable", "[optim]") {
  Var w = rand_var({2, 3}, 1), b = rand_var({3}, 2), g = rand_var({3}, 3);
  AdamW opt(std::vector<ParamGroup<AdamWOptions>>{{{{"w", w}}, {.lr = 0.01, .weight_decay = 0.1}},
                                                  {{{"b", b}, {"g", g}}, {.lr = 0.02, .weight_decay = 0.0}}});
  REQUIRE(opt.num_groups() == 2);
  REQUIRE(opt.param_groups().size() == 2);
  CHECK(opt.param_groups()[1].params.size() == 2);
  CHECK(opt.param_groups()[0].options.weight_decay == 0.1);
  CHECK(opt.param_groups()[1].options.weight_decay == 0.0);
  CHECK(opt.param_groups()[1].options.betas == std::pair<double, double>{0.9, 0.999});
  CHECK(opt.group_params(1)[1].first == "g");
  NamedParams all = opt.named_parameters();
  REQUIRE(all.size() == 3);
  CHECK(all[0].first == "w");
  CHECK(all[2].second.same(g));
  CHECK(opt.lr(1) == 0.02);
  opt.set_lr(1, 0.5);
  CHECK(opt.lr(1) == 0.5);
  CHECK(opt.param_groups()[1].options.lr == 0.5);
  REQUIRE_THROWS_WITH(opt.set_lr(0, -1.0), Contains("[AdamW] invalid learning rate: -1"));
  CHECK(opt.lr(0) == 0.01);
  opt.group_options(0).eps = 0.25;
  CHECK(opt.param_groups()[0].options.eps == 0.25);
  REQUIRE_THROWS(opt.set_lr(2, 0.1));
}

TEST_CASE("Optimizer: options made invalid after construction throw at step, before any update", "[optim][errors]") {
  Var w = rand_var({3}, 1), b = rand_var({3}, 2);
  SGD opt(std::vector<ParamGroup<SGDOptions>>{{{{"w", w}}, {.lr = 0.1}}, {{{"b", b}}, {.lr = 0.1}}});
  w.set_grad(rand_tensor({3}, 3));
  b.set_grad(rand_tensor({3}, 4));
  opt.group_options(1).nesterov = true;
  Tensor w0 = w.value().clone();
  REQUIRE_THROWS_WITH(opt.step(), Contains("[SGD] Nesterov momentum requires a momentum and zero dampening"));
  CHECK(w.value().bit_equal(w0));
}

TEST_CASE("Optimizer: state_dict() lists per-parameter state and group options under documented keys", "[optim]") {
  Var w = rand_var({2, 3}, 1), b = rand_var({3}, 2);
  Adam opt(std::vector<ParamGroup<AdamOptions>>{{{{"layer.weight", w}}, {.amsgrad = true}},
                                                {{{"layer.bias", b}}, {.lr = 0.5}}});
  w.set_grad(rand_tensor({2, 3}, 3));
  opt.step();
  opt.step();
  StateDict sd = opt.state_dict();
  std::vector<std::string> expected{"state/layer.weight/step",      "state/layer.weight/exp_avg",
                                    "state/layer.weight/exp_avg_sq", "state/layer.weight/max_exp_avg_sq",
                                    "groups/0/num_params",           "groups/0/lr",
                                    "groups/0/betas",                "groups/0/eps",
                                    "groups/0/weight_decay",         "groups/0/amsgrad",
                                    "groups/0/maximize",             "groups/1/num_params",
                                    "groups/1/lr",                   "groups/1/betas",
                                    "groups/1/eps",                  "groups/1/weight_decay",
                                    "groups/1/amsgrad",              "groups/1/maximize"};
  CHECK(keys_of(sd) == expected);
  CHECK(sd.at("state/layer.weight/step").dtype() == DType::Int64);
  CHECK(sd.at("state/layer.weight/step").dim() == 0);
  CHECK(sd.at("state/layer.weight/step").item() == 2.0);
  CHECK(sd.at("state/layer.weight/exp_avg").shape() == Shape{2, 3});
  CHECK(sd.at("groups/1/lr").dtype() == DType::Float64);
  CHECK(sd.at("groups/1/lr").item() == 0.5);
  CHECK(sd.at("groups/0/amsgrad").dtype() == DType::Bool);
  CHECK(sd.at("groups/0/amsgrad").item() == 1.0);
  CHECK(sd.at("groups/0/betas").to_vector() == std::vector<double>{0.9, 0.999});
  CHECK(sd.at("groups/1/num_params").item() == 1.0);
  // state_dict() copies: later steps do not change it.
  Tensor m = sd.at("state/layer.weight/exp_avg").clone();
  opt.step();
  CHECK(sd.at("state/layer.weight/exp_avg").bit_equal(m));
  REQUIRE_THROWS_WITH(sd.at("state/x/step"), Contains("[StateDict] missing key state/x/step"));
  REQUIRE_THROWS_WITH(sd.add("groups/0/lr", Tensor::scalar(1.0)), Contains("[StateDict] duplicate key groups/0/lr"));

  SGD sgd({{"w", w}}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  sgd.step();
  CHECK(keys_of(sgd.state_dict()) ==
        std::vector<std::string>{"state/w/momentum_buffer", "groups/0/num_params", "groups/0/lr", "groups/0/momentum",
                                 "groups/0/dampening", "groups/0/weight_decay", "groups/0/nesterov",
                                 "groups/0/maximize"});
}

TEST_CASE("Optimizer: load_state_dict rejects mismatched state and leaves the optimizer unchanged", "[optim][errors]") {
  Var w = rand_var({2, 3}, 1), b = rand_var({3}, 2);
  auto make = [&](double lr) { return std::make_unique<Adam>(NamedParams{{"w", w}, {"b", b}}, AdamOptions{.lr = lr}); };
  auto src = make(0.1);
  w.set_grad(rand_tensor({2, 3}, 3));
  b.set_grad(rand_tensor({3}, 4));
  src->step();
  const StateDict good = src->state_dict();
  auto dst = make(0.2);
  auto with = [&](const std::string& key, Tensor value) {
    StateDict sd = good;
    for (auto& [k, t] : sd)
      if (k == key) t = value;
    return sd;
  };
  auto without = [&](const std::string& key) {
    StateDict sd;
    for (const auto& [k, t] : good)
      if (k != key) sd.add(k, t);
    return sd;
  };
  REQUIRE_THROWS_WITH(dst->load_state_dict(with("state/w/exp_avg", Tensor::zeros({3, 2}, DType::Float64))),
                      Contains("[Adam] load_state_dict: state/w/exp_avg has float64[3, 2], expected float64[2, 3]"));
  REQUIRE_THROWS_WITH(dst->load_state_dict(with("state/w/step", Tensor::scalar(1.0, DType::Float32))),
                      Contains("[Adam] load_state_dict: state/w/step has float32[], expected int64[]"));
  REQUIRE_THROWS_WITH(dst->load_state_dict(with("groups/0/lr", Tensor::scalar(-1.0, DType::Float64))),
                      Contains("[Adam] invalid learning rate: -1"));
  REQUIRE_THROWS_WITH(dst->load_state_dict(with("groups/0/num_params", detail::scalar_i64(3))),
                      Contains("[Adam] load_state_dict: groups/0/num_params is 3 but param group 0 has 2 parameters"));
  REQUIRE_THROWS_WITH(dst->load_state_dict(without("groups/0/eps")), Contains("[Adam] load_state_dict: missing key groups/0/eps"));
  REQUIRE_THROWS_WITH(dst->load_state_dict(without("state/b/exp_avg_sq")),
                      Contains("[Adam] load_state_dict: parameter 'b' has state but no exp_avg_sq"));
  StateDict extra = good;
  extra.add("state/ghost/step", detail::scalar_i64(1));
  REQUIRE_THROWS_WITH(dst->load_state_dict(extra), Contains("[Adam] load_state_dict: key state/ghost/step names no parameter"));
  extra = good;
  extra.add("state/w/momentum_buffer", Tensor::zeros({2, 3}, DType::Float64));
  REQUIRE_THROWS_WITH(dst->load_state_dict(extra),
                      Contains("[Adam] load_state_dict: unknown state field 'momentum_buffer' of parameter 'w'"));
  extra = good;
  extra.add("groups/1/num_params", detail::scalar_i64(1));
  REQUIRE_THROWS_WITH(dst->load_state_dict(extra),
                      Contains("[Adam] load_state_dict: the state has more param groups than the optimizer (1)"));
  // All-or-nothing: after the failures the destination still has no state and its own lr.
  CHECK(dst->param_state("w") == nullptr);
  CHECK(dst->lr(0) == 0.2);
  dst->load_state_dict(good);
  CHECK(dst->lr(0) == 0.1);
  CHECK(dst->param_state("w")->find("exp_avg")->bit_equal(*src->param_state("w")->find("exp_avg")));
  // An SGD state does not load into Adam, and vice versa.
  SGD sgd({{"w", w}, {"b", b}}, {.lr = 0.1, .momentum = 0.5});
  sgd.step();
  REQUIRE_THROWS_WITH(dst->load_state_dict(sgd.state_dict()), Contains("[Adam] load_state_dict: unknown state field 'momentum_buffer'"));
  REQUIRE_THROWS_WITH(sgd.load_state_dict(good), Contains("[SGD] load_state_dict: unknown state field 'step'"));
}

TEST_CASE("Optimizer: groups split by dim (decay for matrices, none for biases) as the tiny LM builds them",
          "[optim]") {
  NamedParams model{{"linear.weight", rand_var({3, 2}, 1)}, {"linear.bias", rand_var({3}, 2)},
                    {"norm.weight", rand_var({3}, 3)}};
  NamedParams decay, no_decay;
  for (const auto& [name, p] : model) (p.dim() >= 2 ? decay : no_decay).emplace_back(name, p);
  AdamW opt({{decay, {.lr = 0.1, .weight_decay = 0.5}}, {no_decay, {.lr = 0.1, .weight_decay = 0.0}}});
  REQUIRE(opt.num_groups() == 2);
  CHECK(opt.group_params(0).size() == 1);
  CHECK(opt.group_params(1).size() == 2);
  // With zero grads only the decayed group moves: weight *= 1 - lr * wd.
  Tensor w0 = model[0].second.value().clone(), b0 = model[1].second.value().clone();
  for (auto& [name, p] : model) {
    Var v = p;
    v.set_grad(Tensor::zeros(p.shape(), DType::Float64));
  }
  opt.step();
  CHECK(model[0].second.value().flat(0) == w0.flat(0) * (1 - 0.1 * 0.5));
  CHECK(model[1].second.value().bit_equal(b0));
}
