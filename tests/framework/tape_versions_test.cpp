// In-place changes and the tape: Tensor::version counts them (PyTorch's _version), and a backward that
// would read a tensor an op saved after it changed throws before computing or accumulating anything,
// where PyTorch raises "one of the variables needed for gradient computation has been modified by an
// inplace operation". A tensor no backward reads may change freely, as in PyTorch.
#include "support/test_support.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/loss.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/ops/shape.h"
#include "tapegrad/layers/attention_cache.h"
#include "tapegrad/layers/linear.h"
#include "tapegrad/layers/multihead_attention.h"
#include "tapegrad/optim/adam.h"
#include "tapegrad/optim/sgd.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;
using Catch::Matchers::Message;

TEST_CASE("Tensor::version: in-place changes count, views share the count, creation and data<T>() do not",
          "[tape][version]") {
  Tensor t = Tensor::zeros({2, 3}, DType::Float64);
  REQUIRE(t.version() == 0);
  REQUIRE(Tensor::ones({2}).version() == 0);
  REQUIRE(Tensor::full({2}, 7.0, DType::Int64).version() == 0);
  REQUIRE(Tensor::from_vector(std::vector<double>{1, 2}, {2}).version() == 0);
  t.fill_(1.0);
  REQUIRE(t.version() == 1);
  t.zero_();
  t.copy_(Tensor::ones({2, 3}, DType::Float32));
  t.set({1, 2}, 5.0);
  t.set_flat(0, 4.0);
  REQUIRE(t.version() == 5);
  Tensor view = t.reshape({3, 2}), row = t.rows(1, 2);
  REQUIRE(view.version() == 5);
  row.fill_(2.0);   // through a view: the base sees it
  REQUIRE(t.version() == 6);
  REQUIRE(view.version() == 6);
  t.data<double>()[0] = 9.0;   // raw writes are not counted (PyTorch's data_ptr)
  REQUIRE(t.version() == 6);
  t.increment_version();
  REQUIRE(t.version() == 7);
  REQUIRE(t.clone().version() == 0);
  REQUIRE(Tensor().version() == 0);
  REQUIRE_THROWS_MATCHES(Tensor().increment_version(), std::logic_error,
                         Message("[Tensor::increment_version] called on an undefined Tensor"));
}

TEST_CASE("tape: a weight changed after the forward stops the backward before any gradient", "[tape][version]") {
  Var x = rand_var({4, 3}, 1, -1, 1, true), w = rand_var({2, 3}, 2, -1, 1, true), b = rand_var({2}, 3, -1, 1, true);
  Var loss = sum(linear(x, w, b) * 2.0);
  w.value().fill_(0.5);
  REQUIRE_THROWS_MATCHES(
      loss.backward(), std::logic_error,
      Message("[backward] linear needs float64[2, 3] (saved tensor 2 of 2) as it was in the forward, but it was "
              "modified in place since (version 1; expected 0). Change a clone() instead, or run the backward "
              "before the change"));
  // Nothing ran: no leaf has a gradient, not even b's, which needs no saved tensor.
  REQUIRE(!x.grad().defined());
  REQUIRE(!w.grad().defined());
  REQUIRE(!b.grad().defined());
}

TEST_CASE("tape: only tensors a backward reads are checked, as in PyTorch", "[tape][version]") {
  Var a = rand_var({3}, 4, -1, 1, true), c = rand_var({3}, 5, -1, 1, true);
  SECTION("add reads neither input") {
    Var y = sum(a + c);
    a.value().fill_(3.0);
    c.value().fill_(4.0);
    y.backward();
    REQUIRE(a.grad().to_vector() == std::vector<double>{1, 1, 1});
  }
  SECTION("exp reads its output, not its input") {
    Var e = exp(a);
    Var y = sum(e);
    const std::vector<double> expected = e.value().to_vector();
    a.value().fill_(0.0);
    y.backward();
    REQUIRE(a.grad().to_vector() == expected);
    Var e2 = exp(c);
    Var y2 = sum(e2);
    e2.value().fill_(1.0);
    REQUIRE_THROWS_WITH(y2.backward(), Contains("[backward] exp needs float64[3] (saved tensor 1 of 1)"));
  }
  SECTION("relu reads its input") {
    Var y = sum(relu(a));
    a.value().set({0}, 1.0);
    REQUIRE_THROWS_WITH(y.backward(), Contains("[backward] relu needs float64[3]"));
  }
  SECTION("a multiply reads the other operand") {
    Var y = sum(a * c);
    c.value().set_flat(1, 2.0);
    REQUIRE_THROWS_WITH(y.backward(), Contains("[backward] mul needs float64[3] (saved tensor 2 of 2)"));
  }
}

TEST_CASE("tape: indices and targets an op saved are checked too", "[tape][version]") {
  Var w = rand_var({5, 2}, 6, -1, 1, true);
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{0, 3, 3}, {3});
  Var emb = sum(embedding(w, idx));
  idx.set({1}, 4.0);   // a reused batch buffer refilled before the backward
  REQUIRE_THROWS_WITH(emb.backward(), Contains("[backward] embedding needs int64[3] (saved tensor 1 of 1)"));

  Var logits = rand_var({3, 5}, 7, -1, 1, true);
  Tensor targets = Tensor::from_vector(std::vector<int64_t>{1, 0, 4}, {3});
  Var loss = cross_entropy(logits, targets);
  targets.copy_(Tensor::from_vector(std::vector<int64_t>{2, 2, 2}, {3}));
  REQUIRE_THROWS_WITH(loss.backward(), Contains("[backward] cross_entropy needs int64[3] (saved tensor 2 of 2)"));
}

TEST_CASE("tape: an optimizer step between a forward and its backward is caught", "[tape][version]") {
  for (bool adam : {false, true}) {
    INFO("adam=" << adam);
    Generator gen(8);
    Linear lin({.in_features = 3, .out_features = 2}, gen, DType::Float64);
    Var x = rand_var({4, 3}, 9, -1, 1, false);
    sum(lin.forward(x)).backward();   // grads, so that the step below changes the weights
    Var loss = sum(lin.forward(x));
    if (adam) optim::Adam(lin.named_parameters()).step();
    else optim::SGD(lin.named_parameters(), {.lr = 0.1}).step();
    REQUIRE_THROWS_WITH(loss.backward(), Contains("[backward] linear needs float64[2, 3] (saved tensor 2 of 2) as "
                                                  "it was in the forward, but it was modified in place since"));
  }
}

TEST_CASE("tape: retain_graph and a change between two backwards", "[tape][version]") {
  Var a = rand_var({3}, 10, -1, 1, true);
  Var y = sum(a * a);
  y.backward(true);
  a.value().fill_(1.0);
  REQUIRE_THROWS_WITH(y.backward(), Contains("[backward] mul needs float64[3]"));
  REQUIRE(max_abs_diff(a.grad(), Tensor::full({3}, 0.0, DType::Float64)) > 0);   // the first backward's, kept
}

TEST_CASE("tape: a cache's appends do not disturb a backward through an earlier keys() view",
          "[tape][version][cache]") {
  // forward_step itself records nothing, but a caller may use keys() in ops of its own. Later steps
  // write rows of the same buffer that no view shows: no false alarm, and the gradient is the view's
  // values as they were.
  Generator gen(11);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 2, .batch_first = true}, gen, DType::Float64);
  Var x = rand_var({1, 12, 8}, 12, -1, 1, false);
  AttentionCache cache = AttentionCache::self_attention();
  for (int64_t t = 0; t < 5; ++t) mha.forward_step(narrow(x, 1, t, 1), narrow(x, 1, t, 1), narrow(x, 1, t, 1), cache);
  Tensor k5 = cache.keys(), before = k5.clone();   // a view of the buffer (N = 1)
  const uint64_t version = k5.version();
  Var q = rand_var({1, 5, 8}, 13, -1, 1, true);
  Var y = sum(q * Var(k5));
  for (int64_t t = 5; t < 12; ++t)   // rows 5..11 of the same 16-row buffer, in place
    mha.forward_step(narrow(x, 1, t, 1), narrow(x, 1, t, 1), narrow(x, 1, t, 1), cache);
  REQUIRE(cache.keys().reshape({12, 8}).rows(0, 5).bit_equal(before.reshape({5, 8})));
  REQUIRE(k5.version() == version);
  y.backward();
  REQUIRE(q.grad().bit_equal(before));
  Var y2 = sum(q * Var(k5));
  k5.fill_(0.0);   // a real change to the saved view is still caught
  REQUIRE_THROWS_WITH(y2.backward(), Contains("[backward] mul needs float64[1, 5, 8] (saved tensor 2 of 2)"));
}
