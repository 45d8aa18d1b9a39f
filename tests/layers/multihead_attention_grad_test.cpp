// MultiheadAttention: float64 gradchecks w.r.t. query, key, value, a float attn_mask and every
// parameter, with all options on at once and in smaller combinations.
#include "tapegrad/layers/multihead_attention.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;

namespace {
Tensor padding(const Shape& s) {
  Tensor t = Tensor::zeros(s, DType::Bool);
  t.set_flat(t.numel() - 1, 1.0);
  return t;
}
}  // namespace

TEST_CASE("MultiheadAttention grad: every option on at once (both weight paths, dropout replayed)", "[mha][grad]") {
  Generator gen(1);
  MultiheadAttention mha({.embed_dim = 6, .num_heads = 2, .dropout = 0.2, .add_bias_kv = true, .add_zero_attn = true,
                          .kdim = 4, .vdim = 5, .batch_first = true, .qdim = 3},
                         gen, DType::Float64);
  Var(mha.out_proj->bias()).value().copy_(rand_tensor({6}, 9));
  Var q = rand_var({2, 3, 3}, 2), k = rand_var({2, 4, 4}, 3), v = rand_var({2, 4, 5}, 4), am = rand_var({2, 3, 4}, 5);
  Var kpm(padding({2, 4}));
  for (bool need : {false, true}) {
    REQUIRE_GRADCHECK([&](const std::vector<Var>& x) {
      gen.manual_seed(11);   // the same dropout masks on every evaluation
      auto out = mha.forward(x[0], x[1], x[2], {.attn_mask = x[3], .key_padding_mask = kpm, .need_weights = need, .average_attn_weights = false});
      return out.attn_output;
    }, {q, k, v, am}, mha.parameters());
  }
}

TEST_CASE("MultiheadAttention grad: packed self-attention, causal, sequence-first", "[mha][grad]") {
  Generator gen(2);
  MultiheadAttention mha({.embed_dim = 6, .num_heads = 3}, gen, DType::Float64);
  Var x = rand_var({4, 2, 6}, 1);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& in) {
    return mha.forward(in[0], in[0], in[0], {.need_weights = false, .is_causal = true}).attn_output;
  }, {x}, mha.parameters());
}

TEST_CASE("MultiheadAttention grad: cross-attention with a float mask and a float key_padding_mask", "[mha][grad]") {
  Generator gen(3);
  MultiheadAttention mha({.embed_dim = 4, .num_heads = 2}, gen, DType::Float64);
  Var q = rand_var({3, 2, 4}, 1), k = rand_var({5, 2, 4}, 2), v = rand_var({5, 2, 4}, 3);
  Var am = rand_var({2 * 2, 3, 5}, 4), kpm = rand_var({2, 5}, 5);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& x) {
    return mha.forward(x[0], x[1], x[2], {.attn_mask = x[3], .key_padding_mask = x[4]}).attn_output;
  }, {q, k, v, am, kpm}, mha.parameters());
}

TEST_CASE("MultiheadAttention grad: returned weights are differentiable", "[mha][grad]") {
  Generator gen(4);
  MultiheadAttention mha({.embed_dim = 4, .num_heads = 2, .add_bias_kv = true}, gen, DType::Float64);
  Var q = rand_var({2, 1, 4}, 1), kv = rand_var({3, 1, 4}, 2);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& x) {
    return mha.forward(x[0], x[1], x[1], {.average_attn_weights = false}).attn_weights;
  }, {q, kv}, mha.parameters());
}

TEST_CASE("MultiheadAttention grad: unbatched input, bias off, bool masks", "[mha][grad]") {
  Generator gen(5);
  MultiheadAttention mha({.embed_dim = 6, .num_heads = 2, .bias = false}, gen, DType::Float64);
  Var q = rand_var({3, 6}, 1), k = rand_var({4, 6}, 2), v = rand_var({4, 6}, 3);
  Tensor am = Tensor::zeros({2, 3, 4}, DType::Bool);
  am.set({0, 1, 2}, 1.0);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& x) {
    return mha.forward(x[0], x[1], x[2], Var(padding({4})), false, Var(am)).attn_output;
  }, {q, k, v}, mha.parameters());
}
