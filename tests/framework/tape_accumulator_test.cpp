// Grads::accumulator (framework/tape.h): a backward may add into an intermediate's gradient accumulated so far,
// only when nothing else shares it; the layer norm does, with the bits of computing its gradient and adding.
#include <vector>

#include "framework/kernels/basic.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/nn_functional.h"
#include "tapegrad/framework/ops/reduce.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;

namespace {

// An op that returns x itself and records, for its backward, whether an accumulator for x was offered; its
// gradient goes through add (so the engine's accumulation is unchanged).
Var probe(const Var& x, std::vector<bool>& offered) {
  return record("probe", x.value().clone(), {x}, [&offered](const Tensor& gy, Grads& g) {
    offered.push_back(g.accumulator(0).defined());
    g.add(0, gy.clone());
  });
}

// x0.grad of h = x + f(layer_norm(x)), x = x0 * 1 (an intermediate, the same values), f = a linear layer or
// nothing, against the reference: the layer norm branch's gradient from a graph of its own, then add. The norm
// has a weight and a bias, or (affine false) neither: its backward's other accumulate branch.
void require_residual_bits(bool with_linear, DType dt, bool affine = true) {
  const Shape shape{6, 10, 16};
  const Tensor x_value = rand_tensor(shape, 1, -2, 2, dt), gy = rand_tensor(shape, 2, -1, 1, dt);
  Var w = rand_var({16}, 3, 0.5, 1.5, true, dt), b = rand_var({16}, 4, -1, 1, true, dt);
  Var lw = rand_var({16, 16}, 5, -0.5, 0.5, true, dt), lb = rand_var({16}, 6, -1, 1, true, dt);
  auto branch = [&](const Var& x) {
    const Var n = affine ? layer_norm(x, {16}, w, b) : layer_norm(x, {16});
    return with_linear ? linear(n, lw, lb) : n;
  };
  Var x0(x_value.clone(), true);
  const Var x = x0 * 1.0;
  // gy reaches the add as mul's gradient (1 * gy, exact): a tensor only the engine holds, which the add hands to
  // both its inputs; once the branch's backward has taken its share nothing else holds it, and the norm's backward
  // is offered it. (backward(gy) would keep gy itself alive through the whole backward: never offered.)
  sum((x + branch(x)) * Var(gy)).backward();
  Var x_leaf(x_value.clone(), true);
  branch(x_leaf).backward(gy);
  require_bit_equal({x0.grad()}, {kernels::add(gy, x_leaf.grad())});
}

}  // namespace

TEST_CASE("tape: the layer norm adds into a residual stream's gradient with the bits of add", "[tape][determinism]") {
  for (const DType dt : {DType::Float32, DType::Float64}) {
    INFO("dtype " << to_string(dt));
    require_residual_bits(true, dt);    // pre-norm: the add's gradient is x's alone when the norm's backward runs
    require_residual_bits(false, dt);   // x + norm(x): the norm reads the same tensor, so no accumulator
    require_residual_bits(true, dt, false);   // no weight: gx's value has no g = gy * w, the add the same
  }
}

TEST_CASE("tape: an accumulator is offered only for an unshared intermediate's gradient", "[tape]") {
  std::vector<bool> offered;
  Var x0 = rand_var({4, 5}, 7);
  auto fresh = [&] { return x0 * 2.0; };   // an intermediate; each backward frees its graph
  // probe(x) runs after linear's branch has given x its part (a fresh tensor nobody else holds): offered.
  Var x = fresh();
  sum(probe(x, offered) + linear(x, rand_var({5, 5}, 8))).backward();
  // probe(x) first in the backward: x has no gradient yet, nothing to offer.
  x = fresh();
  sum(linear(x, rand_var({5, 5}, 8)) + probe(x, offered)).backward();
  // x + probe(x): the add hands one tensor to both; while the probe reads it, it is not offered.
  x = fresh();
  sum(probe(x, offered) + x).backward();
  // A leaf's gradient is never offered.
  sum(probe(x0, offered) + x0 * 3.0).backward();
  REQUIRE(offered == std::vector<bool>{true, false, false, false});
}
