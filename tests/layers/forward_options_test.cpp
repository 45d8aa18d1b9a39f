// Readable calls: MultiheadAttention, TransformerEncoderLayer and TransformerEncoder take their
// optional arguments as an options struct with designated initialisers, beside PyTorch's positional
// order; both styles compile (`{}` included) and give bit-identical results.
#include <vector>

#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/multihead_attention.h"
#include "tapegrad/layers/transformer_encoder_layer.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;

namespace {

void require_same(const MultiheadAttentionOutput& a, const MultiheadAttentionOutput& b) {
  REQUIRE(a.attn_output.value().bit_equal(b.attn_output.value()));
  REQUIRE(a.attn_weights.defined() == b.attn_weights.defined());
  if (a.attn_weights.defined()) REQUIRE(a.attn_weights.value().bit_equal(b.attn_weights.value()));
}

Tensor padding(int64_t N, int64_t S) {   // (N, S) bool, the last key of batch 1 is padding
  Tensor m = Tensor::zeros({N, S}, DType::Bool);
  m.set({1, S - 1}, 1.0);
  return m;
}

// The overload set resolves `{}` and designated initialisers (checked at compile time).
template <class M>
concept AcceptsEmptyBraces = requires(M& m, const Var& x) { m.forward(x, x, x, {}); };
static_assert(AcceptsEmptyBraces<MultiheadAttention>);
static_assert(requires(MultiheadAttention& m, const Var& x) { m.forward(x, x, x, {}, false, {}, true, true); });
static_assert(requires(TransformerEncoderLayer& l, const Var& x) { l.forward(x, {}); });
static_assert(requires(TransformerEncoderLayer& l, const Var& x) { l.forward(x, {}, {}, true); });
static_assert(requires(TransformerEncoder& e, const Var& x) { e.forward(x, {}); });

}  // namespace

TEST_CASE("MultiheadAttention: the options form and the positional form agree for every option", "[mha][options]") {
  Generator gen(1);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 2}, gen, DType::Float64);
  const int64_t L = 4, N = 2, S = 5;
  Var q = rand_var({L, N, 8}, 2), k = rand_var({S, N, 8}, 3), v = rand_var({S, N, 8}, 4);
  Var am = rand_var({L, S}, 5), kpm(padding(N, S));
  for (bool need : {true, false})
    for (bool average : {true, false}) {
      require_same(mha.forward(q, k, v, {.attn_mask = am, .key_padding_mask = kpm, .need_weights = need,
                                         .average_attn_weights = average}),
                   mha.forward(q, k, v, kpm, need, am, average));
    }
  // Defaults: need_weights = true, averaged, no masks, not causal.
  MultiheadAttentionForwardOptions defaults;
  REQUIRE(defaults.need_weights);
  REQUIRE(defaults.average_attn_weights);
  REQUIRE_FALSE(defaults.is_causal);
  REQUIRE_FALSE(defaults.attn_mask.defined());
  REQUIRE_FALSE(defaults.key_padding_mask.defined());
  auto plain = mha.forward(q, k, v);
  require_same(plain, mha.forward(q, k, v, {}));
  require_same(plain, mha.forward(q, k, v, defaults));
  REQUIRE(plain.attn_weights.shape() == Shape{N, L, S});
  // Only what is named changes: the mask alone, and need_weights alone.
  require_same(mha.forward(q, k, v, {.attn_mask = am}), mha.forward(q, k, v, Var(), true, am));
  auto fused = mha.forward(q, k, v, {.need_weights = false});
  REQUIRE_FALSE(fused.attn_weights.defined());
  REQUIRE(max_abs_diff(fused.attn_output.value(), plain.attn_output.value()) < 1e-14);
}

TEST_CASE("MultiheadAttention: is_causal by name equals the explicit causal mask", "[mha][options]") {
  Generator gen(2);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 2, .batch_first = true}, gen, DType::Float64);
  Var x = rand_var({2, 6, 8}, 6);
  Var causal(causal_mask(6, 6, DType::Float64));
  for (bool need : {true, false}) {
    auto by_name = mha.forward(x, x, x, {.need_weights = need, .is_causal = true});
    auto positional = mha.forward(x, x, x, Var(), need, Var(), true, true);
    auto explicit_mask = mha.forward(x, x, x, {.attn_mask = causal, .need_weights = need});
    require_same(by_name, positional);
    REQUIRE(max_abs_diff(by_name.attn_output.value(), explicit_mask.attn_output.value()) < 1e-14);
    REQUIRE(max_abs_diff(by_name.attn_output.value(), mha.forward(x, x, x, {.need_weights = need}).attn_output.value()) >
            1e-3);
  }
}

TEST_CASE("TransformerEncoderLayer and TransformerEncoder: options form equals positional form", "[encoder][options]") {
  Generator gen(3);
  TransformerEncoderLayerOptions o{.d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.0};
  TransformerEncoderLayer layer(o, gen, DType::Float64);
  TransformerEncoder encoder(o, 2, /*final_norm=*/true, gen, DType::Float64);
  const int64_t S = 5, N = 2;
  Var x = rand_var({S, N, 8}, 7), mask = rand_var({S, S}, 8), kpm(padding(N, S));
  REQUIRE(layer.forward(x, {.src_mask = mask, .src_key_padding_mask = kpm}).value().bit_equal(
      layer.forward(x, mask, kpm).value()));
  REQUIRE(layer.forward(x, {.is_causal = true}).value().bit_equal(layer.forward(x, Var(), Var(), true).value()));
  REQUIRE(layer.forward(x, {}).value().bit_equal(layer.forward(x).value()));
  REQUIRE(max_abs_diff(layer.forward(x, {.is_causal = true}).value(), layer.forward(x).value()) > 1e-3);
  REQUIRE(encoder.forward(x, {.mask = mask, .src_key_padding_mask = kpm}).value().bit_equal(
      encoder.forward(x, mask, kpm).value()));
  REQUIRE(encoder.forward(x, {.is_causal = true}).value().bit_equal(encoder.forward(x, {}, {}, true).value()));
  REQUIRE(encoder.forward(x, {}).value().bit_equal(encoder.forward(x).value()));
}
