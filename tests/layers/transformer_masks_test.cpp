// Decoder layer, TransformerDecoder and Transformer: masks of the wrong shape and misused caches throw
// naming the argument, the module path and the shapes; tgt/memory/src_is_causal follow spec/decoder.md
// decision 3; float64 gradcheck of the whole Transformer under every mask with dropout replayed.
#include <algorithm>
#include <limits>
#include <utility>

#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/transformer.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

void randomise_one_dim(Module& m, uint64_t seed) {
  for (auto& [n, p] : m.named_parameters())
    if (p.dim() == 1) p.value().copy_(rand_tensor(p.shape(), seed++, 0.5, 1.5, p.dtype()));
}

Var bool_mask(const Shape& shape, const std::vector<std::vector<int64_t>>& blocked) {
  Tensor m = Tensor::zeros(shape, DType::Bool);
  for (const auto& at : blocked) m.set(at, 1.0);
  return Var(m);
}

}  // namespace

TEST_CASE("TransformerDecoderLayer errors: masks of the wrong shape name the attention, the mask and the shapes", "[decoder][errors]") {
  Generator gen(1);
  TransformerDecoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 12}, gen);
  Var tgt(Tensor::zeros({3, 2, 8})), mem(Tensor::zeros({4, 2, 8}));
  REQUIRE_THROWS_WITH(layer.forward(tgt, mem, {.tgt_mask = Var(Tensor::zeros({3, 4}))}),
                      Contains("[MultiheadAttention self_attn] 2-D attn_mask must be (L, S)=[3, 3]; got attn_mask=[3, 4]"));
  REQUIRE_THROWS_WITH(layer.forward(tgt, mem, {.memory_key_padding_mask = Var(Tensor::zeros({2, 3}, DType::Bool))}),
                      Contains("[MultiheadAttention multihead_attn] key_padding_mask must be (N, S)=[2, 4]; "
                               "got key_padding_mask=[2, 3]"));
  REQUIRE_THROWS_WITH(layer.forward(tgt, mem, {.memory_key_padding_mask = Var(Tensor::zeros({3, 4}, DType::Bool))}),
                      Contains("[MultiheadAttention multihead_attn] key_padding_mask must be (N, S)=[2, 4]; "
                               "got key_padding_mask=[3, 4]"));
  REQUIRE_THROWS_WITH(layer.forward(tgt, mem, {.memory_mask = Var(Tensor::zeros({4, 4, 3}))}),
                      Contains("[MultiheadAttention multihead_attn] 3-D attn_mask must be (N*num_heads, L, S)=[4, 3, 4] with row "
                               "n*num_heads+h, or (N, L, S)=[2, 3, 4] or (1, L, S); got attn_mask=[4, 4, 3]"));
  Var tgt1(Tensor::zeros({3, 8})), mem1(Tensor::zeros({4, 8}));   // unbatched
  REQUIRE_THROWS_WITH(layer.forward(tgt1, mem1, {.memory_key_padding_mask = Var(Tensor::zeros({2, 4}, DType::Bool))}),
                      Contains("[MultiheadAttention multihead_attn] for unbatched query, key_padding_mask must be 1-D (S); "
                               "got key_padding_mask=[2, 4]"));
  REQUIRE_THROWS_WITH(layer.forward(tgt1, Var(Tensor::zeros({4, 6}))),
                      Contains("[TransformerDecoderLayer] memory feature size must be d_model=8; got tgt=[3, 8], memory=[4, 6]"));
  REQUIRE_THROWS_WITH(layer.forward(Var(), mem),
                      Contains("[TransformerDecoderLayer] tgt and memory must be defined; got tgt=undefined, memory=[4, 2, 8]"));
  TransformerDecoderLayer bf({.d_model = 8, .nhead = 2, .dim_feedforward = 12, .batch_first = true}, gen);
  REQUIRE_THROWS_WITH(bf.forward(Var(Tensor::zeros({2, 3, 8})), Var(Tensor::zeros({3, 4, 8}))),
                      Contains("[TransformerDecoderLayer] tgt and memory batch sizes differ (batch_first: dim 0); "
                               "got tgt=[2, 3, 8], memory=[3, 4, 8]"));
}

TEST_CASE("TransformerDecoder and Transformer errors carry the layer's dotted path", "[decoder][transformer][errors]") {
  Generator gen(2);
  TransformerDecoder dec({.d_model = 8, .nhead = 2, .dim_feedforward = 12}, 2, true, gen);
  Var tgt(Tensor::zeros({3, 2, 8})), mem(Tensor::zeros({4, 2, 8}));
  REQUIRE_THROWS_WITH(dec.forward(tgt, Var(Tensor::zeros({4, 2, 6}))),
                      Contains("[TransformerDecoderLayer layers.0] memory feature size must be d_model=8; "
                               "got tgt=[3, 2, 8], memory=[4, 2, 6]"));
  REQUIRE_THROWS_WITH(dec.forward(tgt, Var(Tensor::zeros({4, 1, 8}))),
                      Contains("[TransformerDecoderLayer layers.0] tgt and memory batch sizes differ (dim 1); "
                               "got tgt=[3, 2, 8], memory=[4, 1, 8]"));
  REQUIRE_THROWS_WITH(dec.forward(tgt, mem, {.tgt_key_padding_mask = Var(Tensor::zeros({2, 4}, DType::Bool))}),
                      Contains("[MultiheadAttention layers.0.self_attn] key_padding_mask must be (N, S)=[2, 3]; "
                               "got key_padding_mask=[2, 4]"));
  Transformer t({.d_model = 8, .nhead = 2, .num_encoder_layers = 1, .num_decoder_layers = 1, .dim_feedforward = 12}, gen);
  Var src(Tensor::zeros({5, 2, 8}));
  REQUIRE_THROWS_WITH(t.forward(src, tgt, {.memory_mask = Var(Tensor::zeros({5, 3}))}),
                      Contains("[MultiheadAttention decoder.layers.0.multihead_attn] 2-D attn_mask must be (L, S)=[3, 5]; "
                               "got attn_mask=[5, 3]"));
  REQUIRE_THROWS_WITH(t.forward(src, tgt, {.src_key_padding_mask = Var(Tensor::zeros({2, 3}, DType::Bool))}),
                      Contains("[MultiheadAttention encoder.layers.0.self_attn] key_padding_mask must be (N, S)=[2, 5]; "
                               "got key_padding_mask=[2, 3]"));
  REQUIRE_THROWS_WITH(t.forward(src, tgt, {.memory_key_padding_mask = Var(Tensor::zeros({2, 3}, DType::Bool))}),
                      Contains("[MultiheadAttention decoder.layers.0.multihead_attn] key_padding_mask must be (N, S)=[2, 5]; "
                               "got key_padding_mask=[2, 3]"));
  REQUIRE_THROWS_WITH(t.forward(src, tgt, {.src_mask = Var(Tensor::zeros({3, 3}))}),
                      Contains("[MultiheadAttention encoder.layers.0.self_attn] 2-D attn_mask must be (L, S)=[5, 5]; "
                               "got attn_mask=[3, 3]"));
}

TEST_CASE("TransformerDecoder::Cache is bound to a batch size, a dtype and batched input until reset()", "[cache][decoder][errors]") {
  Generator gen(3);
  const TransformerDecoderLayerOptions lo{.d_model = 8, .nhead = 2, .dim_feedforward = 12, .dropout = 0.0};
  TransformerDecoder dec(lo, 2, true, gen, DType::Float64);
  randomise_one_dim(dec, 10);
  Var mem2 = rand_var({4, 2, 8}, 4, -1, 1, false), mem3 = rand_var({4, 3, 8}, 5, -1, 1, false);
  TransformerDecoder::Cache cache = dec.make_cache();
  dec.forward_step(rand_var({1, 2, 8}, 6, -1, 1, false), mem2, cache);
  Var step3 = rand_var({1, 3, 8}, 7, -1, 1, false);
  REQUIRE_THROWS_WITH(dec.forward_step(step3, mem3, cache),
                      Contains("[MultiheadAttention layers.0.self_attn] forward_step: the cache holds batch size 2; "
                               "got query=[1, 3, 8] (batch size 3)"));
  REQUIRE(cache.length() == 1);   // the rejected step changed nothing
  REQUIRE_THROWS_WITH(dec.forward_step(rand_var({1, 8}, 8, -1, 1, false), rand_var({4, 8}, 9, -1, 1, false), cache),
                      Contains("[MultiheadAttention layers.0.self_attn] forward_step: the cache was filled with batched "
                               "input; got query=[1, 8]"));
  REQUIRE_THROWS_WITH(dec.forward_step(rand_var({1, 2, 8}, 10, -1, 1, false), rand_var({5, 2, 8}, 11, -1, 1, false), cache),
                      Contains("[TransformerDecoderLayer layers.0] forward_step: the cross-attention cache holds a memory "
                               "of length 4; got memory=[5, 2, 8] (reset() the cache for a new memory)"));
  REQUIRE(cache.length() == 1);
  TransformerDecoder dec32(lo, 2, true, gen, DType::Float32);
  REQUIRE_THROWS_WITH(dec32.forward_step(Var(Tensor::zeros({1, 2, 8})), Var(Tensor::zeros({4, 2, 8})), cache),
                      Contains("[MultiheadAttention layers.0.self_attn] forward_step: the cache holds float64; "
                               "got query=float32[1, 2, 8]"));
  // After reset() the same cache serves another batch size exactly as a fresh one.
  cache.reset();
  REQUIRE(cache.length() == 0);
  TransformerDecoder::Cache fresh = dec.make_cache();
  for (int64_t t = 0; t < 3; ++t) {
    Var s = rand_var({1, 3, 8}, 20 + t, -1, 1, false);
    REQUIRE(dec.forward_step(s, mem3, cache).value().bit_equal(dec.forward_step(s, mem3, fresh).value()));
  }
  // ... and, reset again, another dtype.
  cache.reset();
  REQUIRE(dec32.forward_step(Var(Tensor::zeros({1, 2, 8})), Var(Tensor::zeros({4, 2, 8})), cache).dtype() ==
          DType::Float32);
  REQUIRE(cache.layers[1].multihead_attn.keys().dtype() == DType::Float32);
}

TEST_CASE("TransformerDecoderLayer: tgt_is_causal / memory_is_causal build the causal mask only when none is given", "[decoder]") {
  Generator gen(4);
  TransformerDecoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 12, .dropout = 0.0, .norm_first = true},
                                gen, DType::Float64);
  randomise_one_dim(layer, 20);
  for (auto [T, S] : {std::pair<int64_t, int64_t>{5, 3}, {3, 5}}) {
    INFO("T=" << T << " S=" << S);
    Var tgt = rand_var({T, 2, 8}, 5), mem = rand_var({S, 2, 8}, 6);
    // memory_is_causal without a mask: key j > query i blocked, upper-left aligned (2.x SDPA's rule).
    Var by_flag = layer.forward(tgt, mem, {.memory_is_causal = true});
    Var explicit_mask = layer.forward(tgt, mem, {.memory_mask = Var(causal_mask(T, S, DType::Float64))});
    REQUIRE(max_abs_diff(by_flag.value(), explicit_mask.value()) < 1e-14);
    REQUIRE(max_abs_diff(by_flag.value(), layer.forward(tgt, mem).value()) > 1e-3);
    // A given mask is used as given, whatever the flag says.
    Var tm = rand_var({T, T}, 7, -1, 1, false), mm = rand_var({T, S}, 8, -1, 1, false);
    REQUIRE(layer.forward(tgt, mem, {.tgt_mask = tm, .memory_mask = mm, .tgt_is_causal = true, .memory_is_causal = true})
                .value()
                .bit_equal(layer.forward(tgt, mem, {.tgt_mask = tm, .memory_mask = mm}).value()));
    REQUIRE(layer.forward(tgt, mem, {.tgt_is_causal = true})
                .value()
                .bit_equal(layer.forward(tgt, mem, {.tgt_mask = Var(causal_mask(T, T, DType::Float64))}).value()));
  }
}

TEST_CASE("Transformer: src/tgt/memory_is_causal equal the explicit causal masks and reach the right attentions", "[transformer]") {
  Generator gen(5);
  Transformer t({.d_model = 8, .nhead = 2, .num_encoder_layers = 1, .num_decoder_layers = 2, .dim_feedforward = 12,
                 .dropout = 0.0, .batch_first = true}, gen, DType::Float64);
  Var src = rand_var({2, 4, 8}, 6), tgt = rand_var({2, 3, 8}, 7);
  Var y = t.forward(src, tgt, {.src_is_causal = true, .tgt_is_causal = true, .memory_is_causal = true});
  Var ref = t.forward(src, tgt, Var(causal_mask(4, 4, DType::Float64)), Var(causal_mask(3, 3, DType::Float64)),
                      Var(causal_mask(3, 4, DType::Float64)));
  REQUIRE(max_abs_diff(y.value(), ref.value()) < 1e-14);
  Var mem = t.encoder->forward(src, {.is_causal = true});
  REQUIRE(y.value().bit_equal(t.decoder->forward(tgt, mem, {.tgt_is_causal = true, .memory_is_causal = true}).value()));
  // Each flag matters on its own.
  for (int which = 0; which < 3; ++which) {
    Var one = t.forward(src, tgt, {.src_is_causal = which == 0, .tgt_is_causal = which == 1, .memory_is_causal = which == 2});
    REQUIRE(max_abs_diff(one.value(), t.forward(src, tgt).value()) > 1e-4);
  }
}

TEST_CASE("Transformer grad: both norm modes, all six masks (bool and float), dropout replayed", "[transformer][grad]") {
  for (bool norm_first : {false, true}) {
    Generator gen(6);
    Transformer t({.d_model = 4, .nhead = 2, .num_encoder_layers = 1, .num_decoder_layers = 1, .dim_feedforward = 6,
                   .dropout = 0.2, .activation = norm_first ? Activation::gelu : Activation::relu,
                   .batch_first = norm_first, .norm_first = norm_first}, gen, DType::Float64);
    randomise_one_dim(t, 30);
    const GeneratorState s0 = gen.state();
    Var src = rand_var(norm_first ? Shape{2, 3, 4} : Shape{3, 2, 4}, 7);
    Var tgt = rand_var(norm_first ? Shape{2, 2, 4} : Shape{2, 2, 4}, 8);
    Var src_mask = rand_var({3, 3}, 9, -0.5, 0.5);                 // float, differentiable
    Var tgt_mask = bool_mask({2, 2}, {{0, 1}});                     // bool causal
    Var memory_mask = rand_var({2, 3}, 10, -0.5, 0.5);             // float, differentiable
    Var src_kpm = bool_mask({2, 3}, {{0, 2}});
    Var tgt_kpm = rand_var({2, 2}, 11, -0.5, 0.5, false);          // float key padding mask
    Var memory_kpm = bool_mask({2, 3}, {{1, 0}});
    auto run = [&](const std::vector<Var>& in) {
      gen.set_state(s0);
      return t.forward(in[0], in[1], {.src_mask = in[2], .tgt_mask = tgt_mask, .memory_mask = in[3],
                                      .src_key_padding_mask = src_kpm, .tgt_key_padding_mask = tgt_kpm,
                                      .memory_key_padding_mask = memory_kpm});
    };
    REQUIRE_GRADCHECK(run, {src, tgt, src_mask, memory_mask}, t.parameters());
    // Dropout really is on (two draws differ), and every mask changes the result.
    Tensor a = t.forward(src, tgt).value(), b = t.forward(src, tgt).value();
    REQUIRE(max_abs_diff(a, b) > 0.0);
    t.eval();
    const Tensor all = run({src, tgt, src_mask, memory_mask}).value();
    REQUIRE(max_abs_diff(all, t.forward(src, tgt, {.tgt_mask = tgt_mask}).value()) > 1e-6);
    t.train();
  }
}

TEST_CASE("is_causal_pattern: exactly the causal masks (bool and float, square or not), any other element refuses", "[masks]") {
  for (auto [L, S] : {std::pair<int64_t, int64_t>{5, 5}, {3, 7}, {7, 3}, {40, 40}}) {
    for (DType dt : {DType::Float32, DType::Float64}) {
      Tensor m = causal_mask(L, S, dt);
      REQUIRE(is_causal_pattern(m));
      m.set({L - 1, 0}, -0.0);   // -0 == 0: still causal
      REQUIRE(is_causal_pattern(m));
      m.set({L - 1, 0}, 1e-30);   // one visible element that is not 0
      REQUIRE_FALSE(is_causal_pattern(m));
      m = causal_mask(L, S, dt);
      m.set({0, S - 1}, -1e30);   // one hidden element that is finite
      REQUIRE_FALSE(is_causal_pattern(m));
      m = causal_mask(L, S, dt);
      m.set({std::min(L, S) - 1, std::min(L, S) - 1}, -std::numeric_limits<double>::infinity());   // diagonal hidden
      REQUIRE_FALSE(is_causal_pattern(m));
    }
    Tensor b = Tensor::zeros({L, S}, DType::Bool);
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = i + 1; j < S; ++j) b.set({i, j}, 1.0);
    REQUIRE(is_causal_pattern(b));
    b.set({L - 1, L - 1 < S ? L - 1 : S - 1}, 1.0);   // the last row's diagonal (or last column) hidden
    REQUIRE_FALSE(is_causal_pattern(b));
  }
  REQUIRE_FALSE(is_causal_pattern(Tensor::zeros({4, 4}, DType::Float32)));   // nothing hidden
  REQUIRE_FALSE(is_causal_pattern(causal_mask(4, 4, DType::Float32).reshape({1, 4, 4})));   // not 2-D
}
