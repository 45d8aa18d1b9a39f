// The multi-tensor kernels under Adam/AdamW and clip_grad_norm_ (framework/kernels/optim_update.h): one parallel
// region over pieces of every tensor gives the bits of one call per tensor, for any thread count; and Adam checks
// every gradient before it changes any parameter.
#include <cmath>
#include <memory>
#include <vector>

#include "framework/kernels/basic.h"
#include "framework/kernels/optim_update.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/optim/adam.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::optim;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// Sizes around the pieces (8192 for the update, 4096 and 8 x 4096 for the norms, 16384 for the scale), mixed
// dtypes, an empty tensor.
struct Spec {
  Shape shape;
  DType dtype;
};
const std::vector<Spec> kSpecs = {{{128, 512}, DType::Float32}, {{5}, DType::Float32},   {{0}, DType::Float32},
                                  {{8193}, DType::Float32},     {{3, 7}, DType::Float64}, {{40000}, DType::Float64},
                                  {{16385}, DType::Float32},    {{4096}, DType::Float32}};

std::vector<Tensor> tensors(uint64_t seed) {
  std::vector<Tensor> ts;
  for (const Spec& s : kSpecs) ts.push_back(rand_tensor(s.shape, seed++, -1, 1, s.dtype));
  return ts;
}

}  // namespace

TEST_CASE("AdamW over many parameters: the bits of one optimizer per parameter, for 1 and 2 threads",
          "[optim][determinism]") {
  const int before = get_num_threads();
  std::vector<std::vector<Tensor>> results;
  for (const int threads : {1, 2})
    for (const bool together : {true, false}) {
      set_num_threads(threads);
      std::vector<Var> params;
      NamedParams named;
      for (const Tensor& t : tensors(100)) params.emplace_back(t.clone(), true);
      for (size_t i = 0; i < params.size(); ++i)
        named.push_back({std::string(1, static_cast<char>('a' + i)), params[i]});   // "a", "b", ...
      const AdamWOptions o{.lr = 0.01, .weight_decay = 0.1, .amsgrad = true};
      std::vector<std::unique_ptr<AdamW>> opts;
      if (together) opts.push_back(std::make_unique<AdamW>(named, o));
      else
        for (const auto& np : named) opts.push_back(std::make_unique<AdamW>(NamedParams{np}, o));
      for (uint64_t step = 0; step < 3; ++step) {
        const std::vector<Tensor> grads = tensors(200 + 10 * step);
        for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(grads[i]);
        for (auto& a : opts) a->step();
      }
      std::vector<Tensor> values;
      for (const Var& p : params) values.push_back(p.value());
      results.push_back(values);
    }
  set_num_threads(before);
  for (size_t r = 1; r < results.size(); ++r) require_bit_equal(results[r], results[0]);
  REQUIRE(results[0][0].flat(0) != tensors(100)[0].flat(0));   // the parameters did move
}

TEST_CASE("Adam: a mismatched gradient of a later parameter throws before any parameter or state changes",
          "[optim][errors]") {
  Var a = rand_var({4}, 1), b = rand_var({3}, 2);
  const Tensor a0 = a.value().clone();
  Adam adam({{"a", a}, {"b", b}}, {.lr = 0.1});
  a.set_grad(rand_tensor({4}, 3));
  b.set_grad(rand_tensor({3}, 4));
  adam.step();
  const Tensor a1 = a.value().clone(), step_a = adam.param_state("a")->find("step")->clone();
  a.set_grad(rand_tensor({4}, 5));
  b.set_grad(rand_tensor({3}, 6, -1, 1, DType::Float32));
  REQUIRE_THROWS_WITH(adam.step(), Contains("[Adam] grad of parameter 'b' does not match the parameter; got "
                                            "grad=float32[3], param=float64[3]"));
  require_bit_equal({a.value(), *adam.param_state("a")->find("step")}, {a1, step_a});
  REQUIRE(a1.flat(0) != a0.flat(0));
}

TEST_CASE("vector_norms and scale_many: the bits of vector_norm and scale_into per tensor, 1 and 2 threads",
          "[optim][determinism]") {
  const int before = get_num_threads();
  const std::vector<Tensor> ts = tensors(300);
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    for (const double p : {2.0, 1.0, 3.0, double(INFINITY), 0.0}) {
      INFO("threads " << threads << " p " << p);
      const std::vector<double> many = kernels::vector_norms(ts, p);
      REQUIRE(many.size() == ts.size());
      for (size_t i = 0; i < ts.size(); ++i) CHECK(many[i] == kernels::vector_norm(ts[i], p));
    }
    std::vector<Tensor> scaled, each;
    for (const Tensor& t : ts) {
      scaled.push_back(t.clone());
      each.push_back(t.clone());
    }
    kernels::scale_many(scaled, 0.3);
    for (Tensor& t : each) kernels::scale_into(t, 0.3);
    require_bit_equal(scaled, each);
  }
  set_num_threads(before);
  // A 2-norm by hand for one tensor: the kernels compute norms, not something else of the same bits.
  double s = 0;
  for (int64_t i = 0; i < ts[4].numel(); ++i) s += ts[4].flat(i) * ts[4].flat(i);
  CHECK(std::abs(kernels::vector_norms(ts, 2.0)[4] - std::sqrt(s)) < 1e-12);
}
