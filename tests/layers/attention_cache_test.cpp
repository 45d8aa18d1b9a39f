// Incremental decoding with cached keys/values: MultiheadAttention::forward_step, the decoder layer,
// TransformerDecoder and TransformerEncoderLayer steps equal the full causal recomputation, and
// misuse throws with the argument and the shapes.
#include "tapegrad/framework/ops/shape.h"
#include "tapegrad/layers/attention_cache.h"
#include "tapegrad/layers/transformer_decoder.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// Positions [start, start + len) of x along its time dim.
Var steps(const Var& x, bool batched, bool batch_first, int64_t start, int64_t len) {
  return narrow(x, batched && batch_first ? 1 : 0, start, len);
}

void randomise_one_dim(Module& m, uint64_t seed) {
  for (auto& [n, p] : m.named_parameters())
    if (p.dim() == 1) p.value().copy_(rand_tensor(p.shape(), seed++, 0.5, 1.5, p.dtype()));
}

double tol(DType d) { return d == DType::Float64 ? 1e-12 : 1e-5; }

}  // namespace

TEST_CASE("AttentionCache: self-attention steps of 1 and 2 positions equal the full causal attention", "[cache]") {
  for (int layout = 0; layout < 3; ++layout) {   // seq-first, batch-first, unbatched
    const bool bf = layout == 1, batched = layout != 2;
    Generator gen(1);
    MultiheadAttention mha({.embed_dim = 8, .num_heads = 2, .batch_first = bf}, gen, DType::Float64);
    randomise_one_dim(mha, 10);
    Shape xs = layout == 0 ? Shape{6, 2, 8} : layout == 1 ? Shape{2, 6, 8} : Shape{6, 8};
    Var x = rand_var(xs, 2, -1, 1, false);
    Var full = mha.forward(x, x, x, {.need_weights = false, .is_causal = true}).attn_output;
    AttentionCache cache = AttentionCache::self_attention();
    int64_t t = 0;
    for (int64_t len : {1, 2, 1, 2}) {
      Var xt = steps(x, batched, bf, t, len);
      Var y = mha.forward_step(xt, xt, xt, cache);
      REQUIRE(!y.requires_grad());
      REQUIRE(cache.length() == t + len);
      REQUIRE(max_abs_diff(y.value(), steps(full, batched, bf, t, len).value()) < 1e-12);
      t += len;
    }
    cache.reset();
    REQUIRE(cache.empty());
  }
}

TEST_CASE("AttentionCache: cross-attention projects memory once and reuses it, with a key padding mask", "[cache]") {
  Generator gen(3);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 4}, gen, DType::Float64);
  randomise_one_dim(mha, 20);
  Var q = rand_var({4, 2, 8}, 4, -1, 1, false), mem = rand_var({5, 2, 8}, 5, -1, 1, false);
  Tensor kpm = Tensor::zeros({2, 5}, DType::Bool);
  kpm.set({1, 3}, 1.0);
  Var full = mha.forward(q, mem, mem, {.key_padding_mask = Var(kpm), .need_weights = false}).attn_output;
  AttentionCache cache = AttentionCache::cross_attention();
  Var y0 = mha.forward_step(steps(q, true, false, 0, 1), mem, mem, cache, {.key_padding_mask = Var(kpm)});
  Tensor k0 = cache.keys();
  REQUIRE(cache.length() == 5);
  for (int64_t t = 1; t < 4; ++t) {   // memory no longer passed: the cache is reused as is
    Var y = mha.forward_step(steps(q, true, false, t, 1), Var(), Var(), cache, {.key_padding_mask = Var(kpm)});
    REQUIRE(max_abs_diff(y.value(), steps(full, true, false, t, 1).value()) < 1e-12);
  }
  REQUIRE(cache.keys().bit_equal(k0));
  REQUIRE(max_abs_diff(y0.value(), steps(full, true, false, 0, 1).value()) < 1e-12);
}

TEST_CASE("AttentionCache: decoder layer steps equal the full causal forward (both norms, layouts, dtypes, memory kpm)", "[cache][decoder]") {
  for (DType dt : {DType::Float64, DType::Float32})
    for (bool norm_first : {false, true})
      for (bool bf : {false, true}) {
        Generator gen(4);
        TransformerDecoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 12, .dropout = 0.3,
                                       .activation = Activation::gelu, .batch_first = bf, .norm_first = norm_first},
                                      gen, dt);
        randomise_one_dim(layer, 30);
        Var tgt(rand_tensor(bf ? Shape{3, 5, 8} : Shape{5, 3, 8}, 5, -1, 1, dt));
        Var mem(rand_tensor(bf ? Shape{3, 4, 8} : Shape{4, 3, 8}, 6, -1, 1, dt));
        Tensor kpm = Tensor::zeros({3, 4}, DType::Bool);
        kpm.set({2, 0}, 1.0);
        kpm.set({2, 3}, 1.0);
        layer.eval();
        Var full = layer.forward(tgt, mem, {.memory_key_padding_mask = Var(kpm), .tgt_is_causal = true});
        layer.train();   // the step never applies dropout
        TransformerDecoderLayer::Cache cache;
        for (int64_t t = 0; t < 5; ++t) {
          Var y = layer.forward_step(steps(tgt, true, bf, t, 1), mem, cache, {.memory_key_padding_mask = Var(kpm)});
          INFO("dtype " << to_string(dt) << " norm_first " << norm_first << " batch_first " << bf << " step " << t);
          REQUIRE(max_abs_diff(y.value(), steps(full, true, bf, t, 1).value()) < tol(dt));
        }
      }
}

TEST_CASE("AttentionCache: TransformerDecoder steps (several layers, final norm, memory_mask rows) equal forward", "[cache][decoder]") {
  Generator gen(7);
  TransformerDecoder dec({.d_model = 8, .nhead = 2, .dim_feedforward = 12, .dropout = 0.0}, 3, true, gen, DType::Float64);
  for (auto& [n, p] : dec.named_parameters()) p.value().copy_(rand_tensor(p.shape(), 40 + n.size() * 7, -0.6, 0.6));
  Var tgt = rand_var({6, 8}, 8, -1, 1, false), mem = rand_var({3, 8}, 9, -1, 1, false);   // unbatched
  Var mm = rand_var({6, 3}, 10, -1, 1, false);   // float memory_mask (T, S)
  Var full = dec.forward(tgt, mem, {.memory_mask = mm, .tgt_is_causal = true});
  TransformerDecoder::Cache cache = dec.make_cache(6);
  int64_t t = 0;
  for (int64_t len : {2, 1, 3}) {
    Var y = dec.forward_step(steps(tgt, false, false, t, len), mem, cache, {.memory_mask = narrow(mm, 0, t, len)});
    REQUIRE(max_abs_diff(y.value(), steps(full, false, false, t, len).value()) < 1e-12);
    t += len;
  }
  REQUIRE(cache.length() == 6);
  REQUIRE_THROWS_WITH(dec.forward_step(steps(tgt, false, false, 0, 1), mem, cache),
                      Contains("[MultiheadAttention layers.0.self_attn] forward_step: the step would pass the cache's "
                               "max_length=6; got cached=6, query=[1, 8]"));
  cache.reset();
  REQUIRE(max_abs_diff(dec.forward_step(steps(tgt, false, false, 0, 1), mem, cache).value(),
                       dec.forward(steps(tgt, false, false, 0, 1), mem).value()) < 1e-12);
}

TEST_CASE("AttentionCache: TransformerEncoderLayer steps equal the full causal forward (decoder-only models)", "[cache][encoder]") {
  for (bool norm_first : {false, true}) {
    Generator gen(11);
    TransformerEncoderLayer layer({.d_model = 8, .nhead = 4, .dim_feedforward = 16, .dropout = 0.2,
                                   .batch_first = true, .norm_first = norm_first}, gen, DType::Float64);
    randomise_one_dim(layer, 50);
    Var x = rand_var({2, 7, 8}, 12, -1, 1, false);
    Tensor kpm = Tensor::zeros({2, 7}, DType::Bool);
    kpm.set({1, 0}, 1.0);
    layer.eval();
    Var full = layer.forward(x, {.src_key_padding_mask = Var(kpm), .is_causal = true});
    layer.train();
    AttentionCache cache = AttentionCache::self_attention(7);
    for (int64_t t = 0; t < 7; ++t) {
      Var y = layer.forward_step(steps(x, true, true, t, 1), cache, narrow(Var(kpm), 1, 0, t + 1));
      REQUIRE(max_abs_diff(y.value(), steps(full, true, true, t, 1).value()) < 1e-12);
    }
  }
}

TEST_CASE("AttentionCache: misuse throws naming the argument and the shapes", "[cache][errors]") {
  Generator gen(13);
  TransformerDecoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 12}, gen);
  Var step(Tensor::zeros({1, 2, 8})), mem(Tensor::zeros({4, 2, 8}));
  TransformerDecoderLayer::Cache cache;
  REQUIRE_THROWS_WITH(layer.forward_step(step, Var(Tensor::zeros({4, 2, 6})), cache),
                      Contains("[TransformerDecoderLayer] memory feature size must be d_model=8; got tgt=[1, 2, 8], memory=[4, 2, 6]"));
  REQUIRE_THROWS_WITH(layer.forward_step(step, Var(Tensor::zeros({4, 3, 8})), cache),
                      Contains("[TransformerDecoderLayer] tgt and memory batch sizes differ (dim 1); got tgt=[1, 2, 8], memory=[4, 3, 8]"));
  REQUIRE_THROWS_WITH(layer.forward_step(step, mem, cache, {.memory_key_padding_mask = Var(Tensor::zeros({2, 5}, DType::Bool))}),
                      Contains("[MultiheadAttention multihead_attn] forward_step: key_padding_mask must be (N, S_total)=[2, 4]; "
                               "got key_padding_mask=[2, 5]"));
  REQUIRE(cache.self_attn.empty());          // a rejected step leaves both caches as they were
  REQUIRE(cache.multihead_attn.empty());
  cache = TransformerDecoderLayer::Cache();
  REQUIRE_THROWS_WITH(layer.forward_step(step, mem, cache, {.memory_mask = Var(Tensor::zeros({4, 1}))}),
                      Contains("[MultiheadAttention multihead_attn] forward_step: attn_mask must be (L_step, S_total)=[1, 4]; "
                               "got attn_mask=[4, 1]"));
  REQUIRE(cache.multihead_attn.empty());
  cache = TransformerDecoderLayer::Cache();
  layer.forward_step(step, mem, cache);
  REQUIRE_THROWS_WITH(layer.forward_step(Var(Tensor::zeros({1, 3, 8})), Var(Tensor::zeros({4, 3, 8})), cache),
                      Contains("[MultiheadAttention self_attn] forward_step: the cache holds batch size 2; got query=[1, 3, 8] (batch size 3)"));
  TransformerDecoderLayer layer64({.d_model = 8, .nhead = 2, .dim_feedforward = 12}, gen, DType::Float64);
  REQUIRE_THROWS_WITH(layer64.forward_step(Var(Tensor::zeros({1, 2, 8}, DType::Float64)),
                                           Var(Tensor::zeros({4, 2, 8}, DType::Float64)), cache),
                      Contains("[MultiheadAttention self_attn] forward_step: the cache holds float32; got query=float64[1, 2, 8]"));
  REQUIRE_THROWS_WITH(AttentionCache::self_attention(-1),
                      Contains("[AttentionCache] max_length must be >= 0 (0: unbounded); got max_length=-1"));
  Generator g2(14);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 2}, g2);
  AttentionCache self = AttentionCache::self_attention();
  REQUIRE_THROWS_WITH(mha.forward_step(step, mem, mem, self),
                      Contains("[MultiheadAttention] forward_step with a self-attention cache: key and value must hold the "
                               "same positions as query; got query=[1, 2, 8], key=[4, 2, 8]"));
  AttentionCache cross = AttentionCache::cross_attention();
  REQUIRE_THROWS_WITH(mha.forward_step(step, Var(), Var(), cross),
                      Contains("[MultiheadAttention] forward_step: key and value are required to fill an empty cross-attention cache"));
  TransformerDecoder dec({.d_model = 8, .nhead = 2, .dim_feedforward = 12}, 2, false, gen);
  TransformerDecoder::Cache wrong = TransformerDecoder({.d_model = 8, .nhead = 2, .dim_feedforward = 12}, 3, false, gen).make_cache();
  REQUIRE_THROWS_WITH(dec.forward_step(step, mem, wrong),
                      Contains("[TransformerDecoder] cache was made for 3 layers; this decoder has 2 (use make_cache())"));
}
