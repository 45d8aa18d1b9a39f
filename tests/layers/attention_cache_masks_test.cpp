// Cached decoding with masks equals the full recomputation at every step (float64 to 1e-12, float32 to
// 1e-5): a key padding mask on a left-padded prefix of the target (whose first rows are fully masked) and
// a float attn mask for MultiheadAttention, tgt and memory key padding masks for the decoder layer, the
// TransformerDecoder and a whole Transformer (encoder once, then decoder steps).
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/shape.h"
#include "tapegrad/layers/attention_cache.h"
#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/transformer.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;

namespace {

// Positions [start, start + len) of x along its time dim (dim 1 batch-first, else 0).
Var steps(const Var& x, bool batch_first, int64_t start, int64_t len) { return narrow(x, batch_first ? 1 : 0, start, len); }

void randomise_one_dim(Module& m, uint64_t seed) {
  for (auto& [n, p] : m.named_parameters())
    if (p.dim() == 1) p.value().copy_(rand_tensor(p.shape(), seed++, 0.5, 1.5, p.dtype()));
}

double tol(DType d) { return d == DType::Float64 ? 1e-12 : 1e-5; }

// (N, T) bool: batch element 1 is left-padded (its first `pad` positions are blocked).
Tensor left_padding(int64_t N, int64_t T, int64_t pad) {
  Tensor m = Tensor::zeros({N, T}, DType::Bool);
  for (int64_t j = 0; j < pad; ++j) m.set({1, j}, 1.0);
  return m;
}

// (N, S) bool: batch element 0's last `pad` memory positions are blocked.
Tensor right_padding(int64_t N, int64_t S, int64_t pad) {
  Tensor m = Tensor::zeros({N, S}, DType::Bool);
  for (int64_t j = S - pad; j < S; ++j) m.set({0, j}, 1.0);
  return m;
}

}  // namespace

TEST_CASE("AttentionCache: MultiheadAttention self-attention steps with a padded prefix and a float attn mask equal forward", "[cache]") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    Generator gen(1);
    MultiheadAttention mha({.embed_dim = 8, .num_heads = 2}, gen, dt);
    randomise_one_dim(mha, 10);
    const int64_t T = 6;
    Var x(rand_tensor({T, 2, 8}, 2, -1, 1, dt));
    Var kpm(left_padding(2, T, 2));
    Var bias(rand_tensor({T, T}, 3, -1, 1, dt));   // float attn mask; the causal part is added below
    Var full = mha.forward(x, x, x, {.attn_mask = bias + Var(causal_mask(T, T, dt)), .key_padding_mask = kpm,
                                     .need_weights = false}).attn_output;
    AttentionCache cache = AttentionCache::self_attention(T);
    for (int64_t t = 0; t < T; ++t) {
      Var xt = steps(x, false, t, 1);
      Var y = mha.forward_step(xt, xt, xt, cache, {.attn_mask = narrow(narrow(bias, 0, t, 1), 1, 0, t + 1),
                                                   .key_padding_mask = narrow(kpm, 1, 0, t + 1)});
      INFO("dtype " << to_string(dt) << " step " << t);
      REQUIRE(max_abs_diff(y.value(), steps(full, false, t, 1).value()) < tol(dt));
    }
    // The padded rows of batch element 1 saw no key at all: out_proj.bias, not NaN.
    Tensor row = narrow(narrow(full, 0, 0, 1), 1, 1, 1).value().reshape({8});
    REQUIRE(max_abs_diff(row, mha.out_proj->bias().value()) < tol(dt));
  }
}

TEST_CASE("AttentionCache: decoder layer steps with tgt and memory key padding masks equal forward", "[cache][decoder]") {
  for (DType dt : {DType::Float64, DType::Float32})
    for (bool norm_first : {false, true}) {
      Generator gen(2);
      TransformerDecoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 12, .dropout = 0.0,
                                     .batch_first = true, .norm_first = norm_first}, gen, dt);
      randomise_one_dim(layer, 20);
      const int64_t T = 5, S = 4;
      Var tgt(rand_tensor({2, T, 8}, 3, -1, 1, dt)), mem(rand_tensor({2, S, 8}, 4, -1, 1, dt));
      Var tkpm(left_padding(2, T, 2)), mkpm(right_padding(2, S, 1));
      Var full = layer.forward(tgt, mem, {.tgt_key_padding_mask = tkpm, .memory_key_padding_mask = mkpm,
                                          .tgt_is_causal = true});
      TransformerDecoderLayer::Cache cache(T);
      for (int64_t t = 0; t < T; ++t) {
        Var y = layer.forward_step(steps(tgt, true, t, 1), mem, cache,
                                   {.tgt_key_padding_mask = narrow(tkpm, 1, 0, t + 1), .memory_key_padding_mask = mkpm});
        INFO("dtype " << to_string(dt) << " norm_first " << norm_first << " step " << t);
        REQUIRE(max_abs_diff(y.value(), steps(full, true, t, 1).value()) < tol(dt));
      }
    }
}

TEST_CASE("AttentionCache: TransformerDecoder steps of 1 and 2 positions with both key padding masks equal forward", "[cache][decoder]") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    Generator gen(3);
    TransformerDecoder dec({.d_model = 8, .nhead = 4, .dim_feedforward = 16, .dropout = 0.1}, 2, true, gen, dt);
    randomise_one_dim(dec, 30);
    const int64_t T = 6, S = 5;
    Var tgt(rand_tensor({T, 2, 8}, 4, -1, 1, dt)), mem(rand_tensor({S, 2, 8}, 5, -1, 1, dt));
    Var tkpm(left_padding(2, T, 1)), mkpm(right_padding(2, S, 2));
    dec.eval();
    Var full = dec.forward(tgt, mem, {.tgt_key_padding_mask = tkpm, .memory_key_padding_mask = mkpm, .tgt_is_causal = true});
    dec.train();   // steps never apply dropout
    TransformerDecoder::Cache cache = dec.make_cache(T);
    int64_t t = 0;
    for (int64_t len : {1, 2, 1, 2}) {
      Var y = dec.forward_step(steps(tgt, false, t, len), mem, cache,
                               {.tgt_key_padding_mask = narrow(tkpm, 1, 0, t + len), .memory_key_padding_mask = mkpm});
      INFO("dtype " << to_string(dt) << " step at " << t);
      REQUIRE(max_abs_diff(y.value(), steps(full, false, t, len).value()) < tol(dt));
      t += len;
    }
    REQUIRE(cache.length() == T);
  }
}

TEST_CASE("AttentionCache: a Transformer decoded step by step (encoder once) equals Transformer::forward", "[cache][transformer]") {
  for (DType dt : {DType::Float64, DType::Float32})
    for (bool norm_first : {false, true}) {
      Generator gen(4);
      Transformer model({.d_model = 8, .nhead = 2, .num_encoder_layers = 2, .num_decoder_layers = 2,
                         .dim_feedforward = 12, .dropout = 0.0, .batch_first = true, .norm_first = norm_first},
                        gen, dt);
      randomise_one_dim(model, 40);
      const int64_t T = 5, S = 6;
      Var src(rand_tensor({2, S, 8}, 5, -1, 1, dt)), tgt(rand_tensor({2, T, 8}, 6, -1, 1, dt));
      Var skpm(right_padding(2, S, 2)), tkpm(left_padding(2, T, 1));
      Var full = model.forward(src, tgt, {.src_key_padding_mask = skpm, .tgt_key_padding_mask = tkpm,
                                          .memory_key_padding_mask = skpm, .tgt_is_causal = true});
      Var memory = model.encoder->forward(src, {.src_key_padding_mask = skpm});
      TransformerDecoder::Cache cache = model.decoder->make_cache(T);
      for (int64_t t = 0; t < T; ++t) {
        Var y = model.decoder->forward_step(steps(tgt, true, t, 1), memory, cache,
                                            {.tgt_key_padding_mask = narrow(tkpm, 1, 0, t + 1),
                                             .memory_key_padding_mask = skpm});
        INFO("dtype " << to_string(dt) << " norm_first " << norm_first << " step " << t);
        REQUIRE(max_abs_diff(y.value(), steps(full, true, t, 1).value()) < tol(dt));
      }
    }
}
