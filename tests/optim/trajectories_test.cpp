// Parity with PyTorch 1.13: parameter trajectories recorded by tests/fixtures/gen/optim_trajectories.py
// (torch.optim.SGD / Adam / AdamW, foreach=False) under fixed gradient sequences. The options below
// repeat the script's CASES table.
#include <algorithm>
#include <functional>
#include <memory>
#include <set>

#include "tapegrad/framework/io/hdf5_file.h"
#include "tapegrad/optim/adam.h"
#include "tapegrad/optim/lr_scheduler.h"
#include "tapegrad/optim/sgd.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::optim;
using namespace tg::test;

namespace {

const std::string kFixture = std::string(TAPEGRAD_SOURCE_DIR) + "/tests/fixtures/optim_trajectories.h5";
constexpr int64_t kSteps = 10;

enum class Extra { none, steplr, warmup_cosine, skip };

struct Case {
  std::string name;
  std::function<std::unique_ptr<Optimizer>(const Var& w, const Var& b)> make;
  Extra extra = Extra::none;
};

NamedParams both(const Var& w, const Var& b) { return {{"weight", w}, {"bias", b}}; }

template <class O, class Opt> std::function<std::unique_ptr<Optimizer>(const Var&, const Var&)> one_group(Opt o) {
  return [o](const Var& w, const Var& b) -> std::unique_ptr<Optimizer> { return std::make_unique<O>(both(w, b), o); };
}

std::vector<Case> sgd_cases() {
  return {
      {"sgd_plain", one_group<SGD>(SGDOptions{.lr = 0.1})},
      {"sgd_momentum_dampening_wd",
       one_group<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01})},
      {"sgd_nesterov", one_group<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.001, .nesterov = true})},
      {"sgd_maximize", one_group<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.5, .maximize = true})},
      {"sgd_two_groups",
       [](const Var& w, const Var& b) -> std::unique_ptr<Optimizer> {
         return std::make_unique<SGD>(std::vector<ParamGroup<SGDOptions>>{
             {{{"weight", w}}, {.lr = 0.1, .momentum = 0.8, .weight_decay = 0.1}},
             {{{"bias", b}}, {.lr = 0.2, .momentum = 0.0}}});
       }},
      {"sgd_momentum_steplr", one_group<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9}), Extra::steplr},
  };
}

std::vector<Case> adam_cases() {
  return {
      {"adam_default", one_group<Adam>(AdamOptions{})},
      {"adam_wd_amsgrad",
       one_group<Adam>(AdamOptions{.lr = 0.01, .betas = {0.8, 0.99}, .eps = 1e-6, .weight_decay = 0.1, .amsgrad = true})},
      {"adam_maximize", one_group<Adam>(AdamOptions{.lr = 0.01, .maximize = true})},
      {"adam_skip", one_group<Adam>(AdamOptions{.lr = 0.01}), Extra::skip},
  };
}

std::vector<Case> adamw_cases() {
  return {
      {"adamw_default", one_group<AdamW>(AdamWOptions{})},
      {"adamw_amsgrad", one_group<AdamW>(AdamWOptions{.lr = 0.01, .weight_decay = 0.05, .amsgrad = true})},
      {"adamw_two_groups",
       [](const Var& w, const Var& b) -> std::unique_ptr<Optimizer> {
         return std::make_unique<AdamW>(std::vector<ParamGroup<AdamWOptions>>{
             {{{"weight", w}}, {.lr = 0.01, .weight_decay = 0.1}}, {{{"bias", b}}, {.lr = 0.02, .weight_decay = 0.0}}});
       }},
      {"adamw_warmup_cosine", one_group<AdamW>(AdamWOptions{.lr = 0.01, .weight_decay = 0.1}), Extra::warmup_cosine},
  };
}

// Row k of a [steps, *shape] dataset as a fresh tensor of `dtype`.
Tensor row(const Tensor& stacked, int64_t k, DType dtype) {
  Shape shape(stacked.shape().begin() + 1, stacked.shape().end());
  return stacked.rows(k, k + 1).reshape(shape).to(dtype).clone();
}

// Runs one case in `dtype` and returns the largest deviation from the recorded trajectory.
double run_case(const io::H5File& f, const Case& c, DType dtype) {
  const std::string base = "cases/" + c.name + "/" + (dtype == DType::Float32 ? "f32/" : "");
  Var w(f.read("init/weight").to(dtype), true), b(f.read("init/bias").to(dtype), true);
  Tensor gw = f.read("grads/weight"), gb = f.read("grads/bias");
  Tensor tw = f.read(base + "weight"), tb = f.read(base + "bias");
  REQUIRE(tw.dtype() == dtype);
  REQUIRE(tw.size(0) == kSteps + 1);
  std::unique_ptr<Optimizer> opt = c.make(w, b);
  std::unique_ptr<LRScheduler> sched;
  if (c.extra == Extra::steplr) sched = std::make_unique<StepLR>(*opt, StepLROptions{.step_size = 3, .gamma = 0.5});
  if (c.extra == Extra::warmup_cosine)
    sched = std::make_unique<WarmupCosine>(
        *opt, WarmupCosineOptions{.learning_rate = 0.01, .warmup_iters = 3, .lr_decay_iters = 8, .min_lr = 0.001});
  Tensor lrs = sched ? f.read("cases/" + c.name + "/lr") : Tensor();
  Tensor has_grad = c.extra == Extra::skip ? f.read("cases/" + c.name + "/bias_has_grad") : Tensor();
  double worst = 0;
  for (int64_t k = 0; k < kSteps; ++k) {
    if (sched) REQUIRE(opt->lr(0) == lrs.flat(k));   // bitwise PyTorch's lr sequence
    w.set_grad(row(gw, k, dtype));
    if (has_grad.defined() && has_grad.flat(k) == 0.0) b.zero_grad();
    else b.set_grad(row(gb, k, dtype));
    opt->step();
    if (sched) sched->step();
    worst = std::max({worst, max_abs_diff(w.value(), row(tw, k + 1, dtype)),
                      max_abs_diff(b.value(), row(tb, k + 1, dtype))});
  }
  return worst;
}

void check_cases(const std::vector<Case>& cases) {
  io::H5File f(kFixture, io::H5File::Mode::read);
  for (const Case& c : cases) {
    double err64 = run_case(f, c, DType::Float64);
    double err32 = run_case(f, c, DType::Float32);
    INFO(c.name << ": max |tapegrad - PyTorch| float64 " << err64 << ", float32 " << err32);
    CHECK(err64 <= 1e-12);
    CHECK(err32 <= 1e-5);
  }
}

}  // namespace

TEST_CASE("SGD: trajectories match PyTorch 1.13 (float64 1e-12, float32 1e-5)", "[optim][parity]") {
  check_cases(sgd_cases());
}

TEST_CASE("Adam: trajectories match PyTorch 1.13 (float64 1e-12, float32 1e-5)", "[optim][parity]") {
  check_cases(adam_cases());
}

TEST_CASE("AdamW: trajectories match PyTorch 1.13 (float64 1e-12, float32 1e-5)", "[optim][parity]") {
  check_cases(adamw_cases());
}

TEST_CASE("trajectories: every recorded case is replayed", "[optim][parity]") {
  io::H5File f(kFixture, io::H5File::Mode::read);
  std::set<std::string> replayed;
  for (const auto& list : {sgd_cases(), adam_cases(), adamw_cases()})
    for (const Case& c : list) replayed.insert(c.name);
  std::vector<std::string> recorded = f.children("cases");
  REQUIRE(recorded.size() == replayed.size());
  for (const std::string& name : recorded) CHECK(replayed.count(name) == 1);
}
