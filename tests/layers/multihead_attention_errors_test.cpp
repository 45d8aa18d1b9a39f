// MultiheadAttention: one test per input check (spec §4.3 plus the checks PyTorch lacks). Every
// message names the argument and the caller's own shapes.
#include "tapegrad/layers/multihead_attention.h"
#include "tapegrad/layers/transformer_encoder_layer.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {
// E = 8, H = 2, sequence-first: query (L=3, N=2, 8), key/value (S=4, N=2, 8).
struct Fixture {
  Generator gen{1};
  MultiheadAttention mha{{.embed_dim = 8, .num_heads = 2}, gen, DType::Float64};
  Var q = rand_var({3, 2, 8}, 1), k = rand_var({4, 2, 8}, 2), v = rand_var({4, 2, 8}, 3);
};
Var boolean(const Shape& s) { return Var(Tensor::zeros(s, DType::Bool)); }
}  // namespace

TEST_CASE("MultiheadAttention errors: key_padding_mask dtype must be bool or floating", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(f.q, f.k, f.v, Var(Tensor::zeros({2, 4}, DType::Int64))),
                      Contains("[MultiheadAttention] key_padding_mask must be bool or floating; got key_padding_mask=int64[2, 4]"));
}

TEST_CASE("MultiheadAttention errors: query must be 2-D or 3-D", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(rand_var({1, 3, 2, 8}, 4), f.k, f.v),
                      Contains("query must be unbatched 2-D (L, E) or batched 3-D; got query=[1, 3, 2, 8]"));
}

TEST_CASE("MultiheadAttention errors: batched query needs 3-D key and value", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(f.q, rand_var({4, 8}, 5), f.v),
                      Contains("for batched (3-D) query, key and value must be 3-D; got query=[3, 2, 8], key=[4, 8], value=[4, 2, 8]"));
}

TEST_CASE("MultiheadAttention errors: batched query needs a 2-D key_padding_mask", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(f.q, f.k, f.v, boolean({4})),
                      Contains("for batched query, key_padding_mask must be 2-D (N, S); got key_padding_mask=[4]"));
}

TEST_CASE("MultiheadAttention errors: batched query needs a 2-D, 3-D or 4-D attn_mask", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(f.q, f.k, f.v, {.attn_mask = boolean({4})}),
                      Contains("attn_mask must be 2-D (L, S), 3-D (N*num_heads, L, S) or (N, L, S), or 4-D (N, num_heads, L, S); got attn_mask=[4]"));
}

TEST_CASE("MultiheadAttention errors: unbatched query needs 2-D key and value", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(rand_var({3, 8}, 6), f.k, rand_var({4, 8}, 7)),
                      Contains("for unbatched (2-D) query, key and value must be 2-D; got query=[3, 8], key=[4, 2, 8], value=[4, 8]"));
}

TEST_CASE("MultiheadAttention errors: unbatched query needs a 1-D key_padding_mask", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(rand_var({3, 8}, 6), rand_var({4, 8}, 7), rand_var({4, 8}, 8), boolean({1, 4})),
                      Contains("for unbatched query, key_padding_mask must be 1-D (S); got key_padding_mask=[1, 4]"));
}

TEST_CASE("MultiheadAttention errors: unbatched query needs a 2-D or 3-D attn_mask", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(rand_var({3, 8}, 6), rand_var({4, 8}, 7), rand_var({4, 8}, 8), {.attn_mask = boolean({1, 2, 3, 4})}),
                      Contains("attn_mask must be 2-D (L, S) or 3-D (num_heads, L, S); got attn_mask=[1, 2, 3, 4]"));
}

TEST_CASE("MultiheadAttention errors: unbatched 3-D attn_mask must be (num_heads, L, S)", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(rand_var({3, 8}, 6), rand_var({4, 8}, 7), rand_var({4, 8}, 8), {.attn_mask = boolean({1, 3, 4})}),
                      Contains("3-D attn_mask for unbatched input must be (num_heads, L, S)=[2, 3, 4]; got attn_mask=[1, 3, 4]"));
}

TEST_CASE("MultiheadAttention errors: query feature size must be embed_dim (or qdim)", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(rand_var({3, 2, 7}, 9), f.k, f.v),
                      Contains("query feature size must be embed_dim=8; got query=[3, 2, 7]"));
  Generator gen(2);
  MultiheadAttention mq({.embed_dim = 8, .num_heads = 2, .qdim = 5}, gen, DType::Float64);
  REQUIRE_THROWS_WITH(mq.forward(f.q, f.k, f.v), Contains("query feature size must be qdim=5; got query=[3, 2, 8]"));
}

TEST_CASE("MultiheadAttention errors: key and value sequence lengths must agree", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(f.q, f.k, rand_var({5, 2, 8}, 10)),
                      Contains("key and value sequence lengths differ; got key=[4, 2, 8], value=[5, 2, 8]"));
}

TEST_CASE("MultiheadAttention errors: key and value feature sizes must be kdim and vdim", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(f.q, rand_var({4, 2, 6}, 11), f.v),
                      Contains("key feature size must be embed_dim=8; got key=[4, 2, 6]"));
  Generator gen(2);
  MultiheadAttention sep({.embed_dim = 8, .num_heads = 2, .kdim = 3, .vdim = 5}, gen, DType::Float64);
  REQUIRE_THROWS_WITH(sep.forward(f.q, rand_var({4, 2, 3}, 12), rand_var({4, 2, 6}, 13)),
                      Contains("value feature size must be vdim=5; got value=[4, 2, 6]"));
}

TEST_CASE("MultiheadAttention errors: inputs must have the parameters' dtype", "[mha][errors]") {
  Fixture f;
  Var q32 = rand_var({3, 2, 8}, 14, -1, 1, false, DType::Float32);
  REQUIRE_THROWS_WITH(f.mha.forward(q32, f.k, f.v),
                      Contains("query, key and value must have the parameters' dtype float64; got query=float32[3, 2, 8], key=float64[4, 2, 8]"));
}

TEST_CASE("MultiheadAttention errors: attn_mask dtype must be bool or floating", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(f.q, f.k, f.v, {.attn_mask = Var(Tensor::zeros({3, 4}, DType::Int64))}),
                      Contains("attn_mask must be bool or floating; got attn_mask=int64[3, 4]"));
}

TEST_CASE("MultiheadAttention errors: a 2-D attn_mask must be (L, S), not transposed", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(f.q, f.k, f.v, {.attn_mask = boolean({4, 3})}),
                      Contains("2-D attn_mask must be (L, S)=[3, 4]; got attn_mask=[4, 3]"));
}

TEST_CASE("MultiheadAttention errors: a 3-D attn_mask must be (N*H, L, S), (N, L, S) or (1, L, S)", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(f.q, f.k, f.v, {.attn_mask = boolean({3, 3, 4})}),
                      Contains("3-D attn_mask must be (N*num_heads, L, S)=[4, 3, 4] with row n*num_heads+h, or (N, L, S)=[2, 3, 4] or (1, L, S); got attn_mask=[3, 3, 4]"));
}

TEST_CASE("MultiheadAttention errors: a 4-D attn_mask must be (N or 1, H or 1, L, S)", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(f.q, f.k, f.v, {.attn_mask = boolean({2, 3, 3, 4})}),
                      Contains("4-D attn_mask must be (N, num_heads, L, S)=[2, 2, 3, 4] or broadcast over N or num_heads; got attn_mask=[2, 3, 3, 4]"));
}

TEST_CASE("MultiheadAttention errors: query and key batch sizes must agree", "[mha][errors]") {
  Fixture f;
  REQUIRE_THROWS_WITH(f.mha.forward(f.q, rand_var({4, 3, 8}, 15), rand_var({4, 3, 8}, 16)),
                      Contains("query, key and value batch sizes differ (dim 1); got query=[3, 2, 8], key=[4, 3, 8], value=[4, 3, 8]"));
  Generator gen(3);
  MultiheadAttention bf({.embed_dim = 8, .num_heads = 2, .batch_first = true}, gen, DType::Float64);
  REQUIRE_THROWS_WITH(bf.forward(rand_var({2, 3, 8}, 17), rand_var({3, 4, 8}, 18), rand_var({3, 4, 8}, 19)),
                      Contains("query, key and value batch sizes differ (batch_first: dim 0); got query=[2, 3, 8], key=[3, 4, 8]"));
}

TEST_CASE("MultiheadAttention errors: key_padding_mask must be (N, S), reported in the caller's shapes", "[mha][errors]") {
  Generator gen(4);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 2, .add_bias_kv = true, .add_zero_attn = true}, gen, DType::Float64);
  // PyTorch reports the internally padded (N, S+2); tapegrad reports what the caller passed.
  REQUIRE_THROWS_WITH(mha.forward(rand_var({3, 2, 8}, 1), rand_var({4, 2, 8}, 2), rand_var({4, 2, 8}, 3), boolean({2, 5})),
                      Contains("key_padding_mask must be (N, S)=[2, 4]; got key_padding_mask=[2, 5]"));
}

TEST_CASE("MultiheadAttention errors: options are validated naming the field", "[mha][errors]") {
  Generator gen(5);
  REQUIRE_THROWS_WITH(MultiheadAttention({.embed_dim = 10, .num_heads = 3}, gen),
                      Contains("[MultiheadAttention] embed_dim must be divisible by num_heads; got embed_dim=10, num_heads=3"));
  REQUIRE_THROWS_WITH(MultiheadAttention({.embed_dim = 8, .num_heads = 2, .dropout = 1.0}, gen),
                      Contains("[MultiheadAttention] dropout must be in [0, 1); got dropout=1"));
  REQUIRE_THROWS_WITH(MultiheadAttention({.embed_dim = 8, .num_heads = 2, .dropout = -0.1}, gen),
                      Contains("[MultiheadAttention] dropout must be in [0, 1); got dropout=-0.1"));
  REQUIRE_THROWS_WITH(MultiheadAttention({.embed_dim = 8, .num_heads = 0}, gen),
                      Contains("[MultiheadAttention] num_heads must be positive; got num_heads=0"));
  REQUIRE_THROWS_WITH(MultiheadAttention({.embed_dim = 8, .num_heads = 2, .kdim = 0}, gen),
                      Contains("[MultiheadAttention] kdim must be positive; got kdim=0"));
}

TEST_CASE("MultiheadAttention errors: inside a module the message carries the dotted path", "[mha][errors]") {
  Generator gen(6);
  TransformerEncoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 16}, gen, DType::Float64);
  REQUIRE_THROWS_WITH(layer.forward(rand_var({3, 2, 8}, 1), boolean({4, 4})),
                      Contains("[MultiheadAttention self_attn] 2-D attn_mask must be (L, S)=[3, 3]; got attn_mask=[4, 4]"));
}
