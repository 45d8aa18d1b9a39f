// nn.Transformer: module tree and state_dict order, PyTorch's exact draws (prototype layers, then
// xavier on every dim > 1 parameter), generate_square_subsequent_mask, routing, errors, gradcheck.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "tapegrad/layers/init.h"
#include "tapegrad/layers/transformer.h"
#include "support/readme_support.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

TEST_CASE("Transformer: defaults and state_dict order (encoder layers, encoder.norm, decoder layers, decoder.norm)", "[transformer]") {
  TransformerOptions d;
  REQUIRE((d.d_model == 512 && d.nhead == 8 && d.num_encoder_layers == 6 && d.num_decoder_layers == 6));
  REQUIRE((d.dim_feedforward == 2048 && d.dropout == 0.1 && d.activation == Activation::relu));
  REQUIRE((d.layer_norm_eps == 1e-5 && !d.batch_first && !d.norm_first && d.bias));
  Generator gen(1);
  Transformer t({.d_model = 8, .nhead = 2, .num_encoder_layers = 2, .num_decoder_layers = 1, .dim_feedforward = 12}, gen);
  StateDict sd = t.state_dict();
  REQUIRE(sd.size() == 46);
  REQUIRE(sd[0].first == "encoder.layers.0.self_attn.in_proj_weight");
  REQUIRE(sd[12].first == "encoder.layers.1.self_attn.in_proj_weight");
  REQUIRE(sd[24].first == "encoder.norm.weight");
  REQUIRE(sd[25].first == "encoder.norm.bias");
  REQUIRE(sd[26].first == "decoder.layers.0.self_attn.in_proj_weight");
  REQUIRE(sd[30].first == "decoder.layers.0.multihead_attn.in_proj_weight");
  REQUIRE(sd[44].first == "decoder.norm.weight");
  REQUIRE(sd[45].first == "decoder.norm.bias");
}

TEST_CASE("Transformer: draws are the prototypes' then xavier_uniform on every dim > 1 parameter in order", "[transformer]") {
  for (bool norm_first : {false, true}) {
    const TransformerOptions o{.d_model = 8, .nhead = 2, .num_encoder_layers = 2, .num_decoder_layers = 3,
                               .dim_feedforward = 12, .norm_first = norm_first};
    Generator gen(21), ref(21);
    Transformer t(o, gen, DType::Float64);
    TransformerEncoderLayer enc({.d_model = 8, .nhead = 2, .dim_feedforward = 12, .norm_first = norm_first}, ref, DType::Float64);
    TransformerDecoderLayer dec({.d_model = 8, .nhead = 2, .dim_feedforward = 12, .norm_first = norm_first}, ref, DType::Float64);
    StateDict es = enc.state_dict(), ds = dec.state_dict();
    StateDict sd = t.state_dict();
    size_t i = 0;
    auto expect = [&](const StateDict& proto, const std::string& prefix) {
      for (const auto& [n, v] : proto) {
        REQUIRE(sd[i].first == prefix + n);
        Tensor want = v.dim() > 1 ? init::xavier_uniform(v.shape(), ref, 1.0, DType::Float64) : v;
        INFO(sd[i].first);
        REQUIRE(sd[i].second.bit_equal(want));
        ++i;
      }
    };
    for (int l = 0; l < 2; ++l) expect(es, "encoder.layers." + std::to_string(l) + ".");
    i += 2;
    for (int l = 0; l < 3; ++l) expect(ds, "decoder.layers." + std::to_string(l) + ".");
    REQUIRE(i + 2 == sd.size());
    REQUIRE(gen.state() == ref.state());
    // So 1-D linear biases are identical across the layers of a stack, 2-D weights are not.
    REQUIRE(sd[5].second.bit_equal(sd[17].second));      // encoder.layers.{0,1}.linear1.bias
    REQUIRE(!sd[4].second.bit_equal(sd[16].second));     // encoder.layers.{0,1}.linear1.weight
  }
}

TEST_CASE("Transformer: generate_square_subsequent_mask is -inf above the diagonal and +0.0 elsewhere", "[transformer]") {
  Tensor m = Transformer::generate_square_subsequent_mask(3, DType::Float64);
  REQUIRE(m.shape() == Shape{3, 3});
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      double v = m.at({i, j});
      if (j > i) REQUIRE((std::isinf(v) && v < 0));
      else REQUIRE((v == 0.0 && !std::signbit(v)));
    }
  REQUIRE(Transformer::generate_square_subsequent_mask(0).shape() == Shape{0, 0});
  REQUIRE(Transformer::generate_square_subsequent_mask(1).dtype() == DType::Float32);
  REQUIRE(Transformer::generate_square_subsequent_mask(1).at({0, 0}) == 0.0);
  REQUIRE_THROWS_WITH(Transformer::generate_square_subsequent_mask(-1),
                      Contains("[Transformer] generate_square_subsequent_mask: sz must be >= 0; got sz=-1"));
}

TEST_CASE("Transformer: forward is decoder(tgt, encoder(src)), src_key_padding_mask does not reach the cross-attention", "[transformer]") {
  Generator gen(3);
  Transformer t({.d_model = 8, .nhead = 2, .num_encoder_layers = 1, .num_decoder_layers = 2, .dim_feedforward = 12,
                 .dropout = 0.0, .batch_first = true}, gen, DType::Float64);
  Var src = rand_var({2, 5, 8}, 4), tgt = rand_var({2, 3, 8}, 5);
  Tensor kpm = Tensor::zeros({2, 5}, DType::Bool);
  kpm.set({1, 4}, 1.0);
  Var y = t.forward(src, tgt, {.src_key_padding_mask = Var(kpm), .tgt_is_causal = true});
  Var mem = t.encoder->forward(src, {.src_key_padding_mask = Var(kpm)});
  REQUIRE(max_abs_diff(y.value(), t.decoder->forward(tgt, mem, {.tgt_is_causal = true}).value()) == 0.0);
  Var masked = t.forward(src, tgt, {.src_key_padding_mask = Var(kpm), .memory_key_padding_mask = Var(kpm),
                                    .tgt_is_causal = true});
  REQUIRE(max_abs_diff(masked.value(), y.value()) > 1e-6);
  Var positional = t.forward(src, tgt, Var(), Var(Transformer::generate_square_subsequent_mask(3, DType::Float64)),
                             Var(), Var(kpm), Var(), Var(kpm));
  REQUIRE(max_abs_diff(positional.value(), masked.value()) < 1e-14);
}

TEST_CASE("Transformer: errors name the shapes", "[transformer][errors]") {
  Generator gen(4);
  Transformer t({.d_model = 8, .nhead = 2, .num_encoder_layers = 1, .num_decoder_layers = 1, .dim_feedforward = 12}, gen);
  REQUIRE_THROWS_WITH(t.forward(Var(Tensor::zeros({5, 2, 8})), Var(Tensor::zeros({3, 3, 8}))),
                      Contains("[Transformer] the batch number of src and tgt must be equal (dim 1); got src=[5, 2, 8], tgt=[3, 3, 8]"));
  REQUIRE_THROWS_WITH(t.forward(Var(Tensor::zeros({5, 2, 8})), Var(Tensor::zeros({3, 2, 6}))),
                      Contains("[Transformer] the feature number of src and tgt must be equal to d_model=8; got src=[5, 2, 8], tgt=[3, 2, 6]"));
  REQUIRE_THROWS_WITH(t.forward(Var(Tensor::zeros({5, 2, 8})), Var(Tensor::zeros({3, 8}))),
                      Contains("[Transformer] src and tgt must both be batched (3-D) or both unbatched (2-D); got src=[5, 2, 8], tgt=[3, 8]"));
  REQUIRE_THROWS_WITH(Transformer({.d_model = 8, .nhead = 3}),
                      Contains("[Transformer] d_model must be divisible by nhead; got d_model=8, nhead=3"));
  REQUIRE_THROWS_WITH(Transformer({.d_model = 8, .nhead = 2, .num_decoder_layers = 0}),
                      Contains("[Transformer] num_decoder_layers must be positive; got num_decoder_layers=0"));
}

TEST_CASE("Transformer grad: small model, both norm modes, src/tgt/memory masks, dropout replayed", "[transformer][grad]") {
  for (bool norm_first : {false, true}) {
    Generator gen(5);
    Transformer t({.d_model = 4, .nhead = 2, .num_encoder_layers = 1, .num_decoder_layers = 1, .dim_feedforward = 6,
                   .dropout = 0.1, .activation = Activation::gelu, .norm_first = norm_first}, gen, DType::Float64);
    for (auto& [n, p] : t.named_parameters())
      if (p.dim() == 1) p.value().copy_(rand_tensor(p.shape(), 70 + n.size(), 0.5, 1.5));
    const GeneratorState s0 = gen.state();
    Var src = rand_var({3, 2, 4}, 6), tgt = rand_var({2, 2, 4}, 7);
    Tensor skpm = Tensor::zeros({2, 3}, DType::Bool);
    skpm.set({0, 2}, 1.0);
    REQUIRE_GRADCHECK([&](const std::vector<Var>& in) {
      gen.set_state(s0);
      return t.forward(in[0], in[1], {.src_key_padding_mask = Var(skpm), .memory_key_padding_mask = Var(skpm),
                                      .tgt_is_causal = true});
    }, {src, tgt}, t.parameters());
  }
}

namespace {

}  // namespace

TEST_CASE("Transformer: the README's cached decoding snippet runs", "[transformer][docs]") {
  Generator gen(8);
  Var src(rand_tensor({2, 5, 32}, 1, -1, 1, DType::Float32)), bos(rand_tensor({2, 1, 32}, 2, -1, 1, DType::Float32));
  Tensor kpm = Tensor::zeros({2, 5}, DType::Bool);
  kpm.set({1, 4}, 1.0);
  Var src_kpm(kpm);
  // --- README block begins
  tg::Transformer model({.d_model = 32, .nhead = 4, .num_encoder_layers = 2, .num_decoder_layers = 2,
                         .dim_feedforward = 64, .dropout = 0.0, .batch_first = true}, gen);
  tg::Var memory = model.encoder->forward(src, {.src_key_padding_mask = src_kpm});    // (N, S, 32)
  tg::TransformerDecoder::Cache cache = model.decoder->make_cache(/*max_length=*/16);
  tg::Var y = bos;                                                                    // (N, 1, 32)
  for (int t = 0; t < 4; ++t)
    y = model.decoder->forward_step(y, memory, cache, {.memory_key_padding_mask = src_kpm});
  // --- README block ends
  REQUIRE(cache.length() == 4);
  REQUIRE(y.shape() == Shape{2, 1, 32});
  tg::test::require_readme_block_matches("### Transformer decoder, nn.Transformer and cached decoding",
                                          "tests/layers/transformer_test.cpp");
}
