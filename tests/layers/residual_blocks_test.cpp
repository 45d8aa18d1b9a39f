// The layers' residual forms: Linear::forward_residual and MultiheadAttention::forward_residual give the bits of
// residual + forward (value and every gradient: batched, unbatched, cross-attention, float32 through the sgemm's
// epilogue and float64), their errors; the encoder and decoder layers in float32, whose blocks add the residual
// to the tiles of their last products, equal their compositions bit for bit.
#include <vector>

#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/multihead_attention.h"
#include "tapegrad/layers/transformer_decoder.h"
#include "tapegrad/layers/transformer_encoder_layer.h"
#include "support/layer_composition.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// y.backward(gy), then y's value, the inputs' gradients and every parameter's gradient of m, in that order.
std::vector<Tensor> value_and_grads(const Module& m, const Var& y, const Tensor& gy, const std::vector<Var>& inputs) {
  y.backward(gy);
  std::vector<Tensor> r{y.value()};
  for (const Var& v : inputs) r.push_back(v.grad());
  for (const auto& [name, p] : m.named_parameters()) r.push_back(p.grad());
  return r;
}

// For both norm placements, a float32 layer (2 x 96 tokens of 32, 4 heads, FFN 64, GELU, no dropout, batch-first):
// run(layer, norm_first, composed) gives the same bits from the layer's forward (its blocks add the residual to
// the tiles of their last products, through tapegrad's sgemm) and from its composition by hand.
template <class Layer, class Options, class Run> void require_layer_equals_composition(const Run& run) {
  for (bool norm_first : {false, true}) {
    INFO("norm_first " << norm_first);
    Generator gen(4);
    Layer layer(Options{.d_model = 32, .nhead = 4, .dim_feedforward = 64, .dropout = 0.0,
                        .activation = Activation::gelu, .batch_first = true, .norm_first = norm_first},
                gen, DType::Float32);
    layer.zero_grad();
    const std::vector<Tensor> fused = run(layer, norm_first, false);
    layer.zero_grad();
    require_bit_equal(fused, run(layer, norm_first, true));
  }
}

}  // namespace

TEST_CASE("Linear::forward_residual: the bits of residual + forward, value and gradients", "[layers][fused]") {
  for (const DType dt : {DType::Float32, DType::Float64}) {
    Generator gen(7);
    Linear fc({.in_features = 24, .out_features = 16}, gen, dt);
    const Tensor gy = rand_tensor({200, 16}, 9, -1, 1, dt);
    auto run = [&](bool fused) {
      fc.zero_grad();
      Var x = rand_var({200, 24}, 5, -2, 2, true, dt), r = rand_var({200, 16}, 6, -2, 2, true, dt);
      Var y = fused ? fc.forward_residual(x, r) : r + fc.forward(x);
      return value_and_grads(fc, y, gy, {x, r});
    };
    require_bit_equal(run(true), run(false));
  }
  Generator gen(7);
  Linear fc({.in_features = 4, .out_features = 3}, gen, DType::Float64);
  REQUIRE(fc.forward_residual(rand_var({2, 4}, 1), Var()).value().bit_equal(fc.forward(rand_var({2, 4}, 1)).value()));
  REQUIRE_THROWS_WITH(fc.forward_residual(rand_var({2, 4}, 1), rand_var({2, 4}, 2)),
                      Contains("[linear_residual] residual must have the output's shape [2, 3]; got x=[2, 4], "
                               "weight=[3, 4], residual=[2, 4]"));
}

TEST_CASE("MultiheadAttention::forward_residual: the bits of residual + forward(...).attn_output", "[mha][fused]") {
  struct Config {
    MultiheadAttentionOptions o;
    bool self, unbatched;
    DType dt;
  };
  const Config configs[] = {
      {{.embed_dim = 32, .num_heads = 4, .batch_first = true}, true, false, DType::Float32},   // the packed kernel
      {{.embed_dim = 32, .num_heads = 4}, false, false, DType::Float32},                       // cross-attention
      {{.embed_dim = 12, .num_heads = 3}, true, true, DType::Float64},                         // unbatched
      {{.embed_dim = 12, .num_heads = 2, .add_bias_kv = true}, true, false, DType::Float64}};  // projected apart
  for (const Config& c : configs) {
    INFO("embed_dim " << c.o.embed_dim << " self " << c.self << " unbatched " << c.unbatched);
    Generator gen(3);
    MultiheadAttention mha(c.o, gen, c.dt);
    const Shape qs = c.unbatched ? Shape{40, c.o.embed_dim}
                     : c.o.batch_first ? Shape{2, 96, c.o.embed_dim} : Shape{96, 2, c.o.embed_dim};
    Shape ks = qs;
    ks[c.o.batch_first ? 1 : 0] = 30;
    const Tensor gy = rand_tensor(qs, 8, -1, 1, c.dt);
    auto run = [&](bool fused) {
      mha.zero_grad();
      Var q = rand_var(qs, 1, -1, 1, true, c.dt), r = rand_var(qs, 4, -2, 2, true, c.dt);
      Var kv = c.self ? q : rand_var(ks, 2, -1, 1, true, c.dt);
      const MultiheadAttentionForwardOptions f{.need_weights = false, .is_causal = c.self};
      Var y = fused ? mha.forward_residual(r, q, kv, kv, f) : r + mha.forward(q, kv, kv, f).attn_output;
      return value_and_grads(mha, y, gy, c.self ? std::vector<Var>{q, r} : std::vector<Var>{q, r, kv});
    };
    require_bit_equal(run(true), run(false));
  }
}

TEST_CASE("MultiheadAttention::forward_residual: a residual of another shape or dtype throws", "[mha][errors]") {
  Generator gen(3);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 2}, gen, DType::Float32);
  const Var q = rand_var({5, 2, 8}, 1, -1, 1, true, DType::Float32);
  REQUIRE_THROWS_WITH(mha.forward_residual(rand_var({5, 8}, 2, -1, 1, true, DType::Float32), q, q, q),
                      Contains("[MultiheadAttention] residual must have the output's shape and dtype float32[5, 2, 8]; "
                               "got query=float32[5, 2, 8], residual=float32[5, 8]"));
  REQUIRE_THROWS_WITH(mha.forward_residual(rand_var({5, 2, 8}, 2), q, q, q),
                      Contains("[MultiheadAttention] residual must have the output's shape and dtype float32[5, 2, 8]; "
                               "got query=float32[5, 2, 8], residual=float64[5, 2, 8]"));
  REQUIRE_THROWS_WITH(mha.forward_residual(Var(), q, q, q),
                      Contains("[MultiheadAttention] residual is an undefined Var"));
}

TEST_CASE("TransformerDecoderLayer: float32 forward and gradients are the composition's bits (fused blocks)",
          "[decoder][fused]") {
  const Tensor gy = rand_tensor({2, 96, 32}, 6, -1, 1, DType::Float32);
  require_layer_equals_composition<TransformerDecoderLayer, TransformerDecoderLayerOptions>(
      [&](TransformerDecoderLayer& layer, bool norm_first, bool composed) {
        Var x = rand_var({2, 96, 32}, 5, -2, 2, true, DType::Float32);
        Var mem = rand_var({2, 40, 32}, 7, -2, 2, true, DType::Float32);
        auto sa = [&](const Var& h) {
          return layer.self_attn->forward(h, h, h, {.need_weights = false, .is_causal = true}).attn_output;
        };
        auto ca = [&](const Var& h) {
          return layer.multihead_attn->forward(h, mem, mem, {.need_weights = false}).attn_output;
        };
        const Var y = composed ? decoder_layer_composition(layer, x, norm_first, sa, ca)
                               : layer.forward(x, mem, {.tgt_is_causal = true});
        return value_and_grads(layer, y, gy, {x, mem});
      });
}

TEST_CASE("TransformerEncoderLayer: float32 forward and gradients are the composition's bits (fused blocks)",
          "[encoder][fused]") {
  const Tensor gy = rand_tensor({2, 96, 32}, 6, -1, 1, DType::Float32);
  require_layer_equals_composition<TransformerEncoderLayer, TransformerEncoderLayerOptions>(
      [&](TransformerEncoderLayer& layer, bool norm_first, bool composed) {
        Var x = rand_var({2, 96, 32}, 5, -2, 2, true, DType::Float32);
        auto sa = [&](const Var& h) { return layer.self_attn->forward(h, h, h, {.need_weights = false}).attn_output; };
        const Var y = composed ? encoder_layer_composition(layer, x, norm_first, sa) : layer.forward(x);
        return value_and_grads(layer, y, gy, {x});
      });
}
