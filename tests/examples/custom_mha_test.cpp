// The custom-model example: its attention is gradchecked and equals layers/MultiheadAttention when
// the weights are copied across.
#include "examples/custom_mha/custom_mha.h"
#include "tapegrad/layers/multihead_attention.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;

namespace {
void copy_weights(const examples::CustomMultiHeadAttention& c, MultiheadAttention& m, int64_t E) {
  const Linear* parts[3] = {c.W_q.get(), c.W_k.get(), c.W_v.get()};
  Var in_w = m.in_proj_weight(), in_b = m.in_proj_bias();   // handles to the registered nodes
  for (int64_t p = 0; p < 3; ++p)
    for (int64_t i = 0; i < E; ++i) {
      in_b.value().set({p * E + i}, parts[p]->bias().value().at({i}));
      for (int64_t j = 0; j < E; ++j) in_w.value().set({p * E + i, j}, parts[p]->weight().value().at({i, j}));
    }
  Var out_w = m.out_proj->weight(), out_b = m.out_proj->bias();
  out_w.value().copy_(c.W_o->weight().value());
  out_b.value().copy_(c.W_o->bias().value());
}
}  // namespace

TEST_CASE("custom_mha: grad matches finite differences (inputs and every weight, with a mask)", "[examples][grad]") {
  Generator gen(1);
  examples::CustomMultiHeadAttention mha(8, 2, gen, DType::Float64);
  Var q = rand_var({2, 3, 8}, 1), k = rand_var({2, 4, 8}, 2), v = rand_var({2, 4, 8}, 3);
  Tensor mask = Tensor::ones({3, 4}, DType::Float64);
  mask.set({0, 3}, 0.0);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& x) { return mha.forward(x[0], x[1], x[2], mask); }, {q, k, v},
                    mha.parameters());
}

TEST_CASE("custom_mha: equals MultiheadAttention with the same weights (outputs and gradients)", "[examples]") {
  const int64_t E = 12, H = 3, T = 5;
  Generator gen(2);
  examples::CustomMultiHeadAttention custom(E, H, gen, DType::Float64);
  MultiheadAttention library({.embed_dim = E, .num_heads = H, .batch_first = true}, gen, DType::Float64);
  copy_weights(custom, library, E);
  Var x1 = rand_var({2, T, E}, 3), x2 = rand_var({2, T, E}, 3);
  Tensor keep = Tensor::ones({T, T}, DType::Float64), blocked = Tensor::zeros({T, T}, DType::Bool);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = i + 1; j < T; ++j) {
      keep.set({i, j}, 0.0);
      blocked.set({i, j}, 1.0);
    }
  Var a = custom.forward(x1, x1, x1, keep);
  Var b = library.forward(x2, x2, x2, {.attn_mask = Var(blocked), .need_weights = false}).attn_output;
  REQUIRE(max_abs_diff(a.value(), b.value()) < 1e-12);
  Tensor g = rand_tensor(a.shape(), 4);
  a.backward(g);
  b.backward(g);
  REQUIRE(max_abs_diff(x1.grad(), x2.grad()) < 1e-12);
  REQUIRE(max_abs_diff(custom.W_o->weight().grad(), library.out_proj->weight().grad()) < 1e-12);
  Tensor wq = library.in_proj_weight().grad().rows(0, E);
  REQUIRE(max_abs_diff(custom.W_q->weight().grad(), wq) < 1e-12);
}
