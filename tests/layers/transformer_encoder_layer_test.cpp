// TransformerEncoderLayer / TransformerEncoder: names, defaults and order of PyTorch, the two norm
// placements, masks, float64 gradchecks, identical initial layers.
#include <limits>

#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/transformer_encoder_layer.h"
#include "support/layer_composition.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

TEST_CASE("TransformerEncoderLayer: state_dict keys and shapes in PyTorch's order", "[encoder]") {
  Generator gen(1);
  TransformerEncoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 16}, gen);
  std::vector<std::pair<std::string, Shape>> got;
  for (const auto& [n, t] : layer.state_dict()) got.emplace_back(n, t.shape());
  REQUIRE(got == std::vector<std::pair<std::string, Shape>>{
                     {"self_attn.in_proj_weight", {24, 8}}, {"self_attn.in_proj_bias", {24}},
                     {"self_attn.out_proj.weight", {8, 8}}, {"self_attn.out_proj.bias", {8}},
                     {"linear1.weight", {16, 8}}, {"linear1.bias", {16}}, {"linear2.weight", {8, 16}},
                     {"linear2.bias", {8}}, {"norm1.weight", {8}}, {"norm1.bias", {8}}, {"norm2.weight", {8}},
                     {"norm2.bias", {8}}});
  TransformerEncoderLayerOptions defaults{.d_model = 8, .nhead = 2};
  REQUIRE(defaults.dim_feedforward == 2048);
  REQUIRE(defaults.dropout == 0.1);
  REQUIRE(defaults.activation == Activation::relu);
  REQUIRE(defaults.layer_norm_eps == 1e-5);
  REQUIRE(!defaults.batch_first);
  REQUIRE(!defaults.norm_first);
  TransformerEncoderLayer nobias({.d_model = 8, .nhead = 2, .dim_feedforward = 16, .bias = false}, gen);
  REQUIRE(nobias.state_dict().size() == 6);   // weights only
}

TEST_CASE("TransformerEncoderLayer: forward is the composition of its blocks (post- and pre-norm)", "[encoder]") {
  for (bool norm_first : {false, true}) {
    Generator gen(2);
    TransformerEncoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.0,
                                   .activation = Activation::gelu, .norm_first = norm_first}, gen, DType::Float64);
    Var x = rand_var({5, 2, 8}, 3);
    Var mask(causal_mask(5, 5, DType::Float64));
    auto sa = [&](const Var& h) { return layer.self_attn->forward(h, h, h, {.attn_mask = mask, .need_weights = false}).attn_output; };
    const Var ref = encoder_layer_composition(layer, x, norm_first, sa);
    REQUIRE(layer.forward(x, mask).value().bit_equal(ref.value()));
    REQUIRE(max_abs_diff(layer.forward(x, {.is_causal = true}).value(), ref.value()) < 1e-14);
  }
}

TEST_CASE("TransformerEncoderLayer grad: both norm placements with masks, relu and gelu", "[encoder][grad]") {
  for (bool norm_first : {false, true})
    for (Activation act : {Activation::relu, Activation::gelu}) {
      Generator gen(3);
      TransformerEncoderLayer layer({.d_model = 4, .nhead = 2, .dim_feedforward = 6, .dropout = 0.0, .activation = act,
                                     .batch_first = true, .norm_first = norm_first}, gen, DType::Float64);
      for (auto& [n, p] : layer.named_parameters())   // random affine norms and biases, away from relu's kink
        if (n.find("norm") != std::string::npos || n.find("bias") != std::string::npos)
          p.value().copy_(rand_tensor(p.shape(), 17, 0.5, 1.5));
      Var x = rand_var({2, 3, 4}, 4);
      Tensor kpm = Tensor::zeros({2, 3}, DType::Bool);
      kpm.set({1, 2}, 1.0);
      Var am = rand_var({3, 3}, 5);
      REQUIRE_GRADCHECK([&](const std::vector<Var>& in) { return layer.forward(in[0], in[1], Var(kpm)); },
                        {x, am}, layer.parameters());
    }
}

TEST_CASE("TransformerEncoderLayer grad: dropout everywhere in training mode, replayed from the seed", "[encoder][grad]") {
  Generator gen(4);
  TransformerEncoderLayer layer({.d_model = 4, .nhead = 2, .dim_feedforward = 6, .dropout = 0.25,
                                 .activation = Activation::gelu}, gen, DType::Float64);
  Var x = rand_var({3, 2, 4}, 6);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& in) {
    gen.manual_seed(5);
    return layer.forward(in[0], {.is_causal = true});
  }, {x}, layer.parameters());
  layer.eval();
  Tensor a = layer.forward(x).value(), b = layer.forward(x).value();
  REQUIRE(a.bit_equal(b));
}

TEST_CASE("TransformerEncoder: layers start identical, keys layers.i.* and norm.*, forward chains them", "[encoder]") {
  Generator gen(5);
  TransformerEncoderLayerOptions lo{.d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.0, .batch_first = true};
  TransformerEncoder enc(lo, 3, /*final_norm=*/true, gen, DType::Float64);
  auto sd = enc.state_dict();
  REQUIRE(sd.front().first == "layers.0.self_attn.in_proj_weight");
  REQUIRE(sd.back().first == "norm.bias");
  REQUIRE(sd.size() == 3 * 12 + 2);
  for (size_t i = 0; i < 12; ++i) {
    REQUIRE(sd[i].second.bit_equal(sd[12 + i].second));
    REQUIRE(sd[i].second.bit_equal(sd[24 + i].second));
  }
  Var x = rand_var({2, 4, 8}, 7);
  Var h = x;
  for (size_t i = 0; i < 3; ++i) h = std::static_pointer_cast<TransformerEncoderLayer>((*enc.layers)[i])->forward(h);
  REQUIRE(enc.forward(x).value().bit_equal(enc.norm->forward(h).value()));
  REQUIRE_GRADCHECK([&](const std::vector<Var>& in) { return enc.forward(in[0], {.is_causal = true}); },
                    {rand_var({1, 3, 8}, 8)}, enc.parameters());
}

TEST_CASE("TransformerEncoder: the clones draw nothing, the Generator ends where one layer leaves it", "[encoder]") {
  // PyTorch's _get_clones deep-copies the prototype: a stack of any depth consumes exactly one layer's
  // draws, like TransformerDecoder (spec/decoder.md §6, §7.3).
  const TransformerEncoderLayerOptions lo{.d_model = 8, .nhead = 2, .dim_feedforward = 12, .norm_first = true};
  for (int64_t num_layers : {1, 2, 3})
    for (bool final_norm : {false, true}) {
      Generator gen(31), one(31);
      TransformerEncoder enc(lo, num_layers, final_norm, gen, DType::Float64);
      TransformerEncoderLayer single(lo, one, DType::Float64);
      INFO("num_layers=" << num_layers << " final_norm=" << final_norm);
      REQUIRE(gen.state() == one.state());
      REQUIRE(gen.next_u64() == one.next_u64());   // and the stream goes on identically
      StateDict sd = enc.state_dict(), ref = single.state_dict();
      REQUIRE(sd.size() == static_cast<size_t>(num_layers) * 12 + (final_norm ? 2 : 0));
      for (size_t l = 0; l < static_cast<size_t>(num_layers); ++l)
        for (size_t i = 0; i < 12; ++i) {
          REQUIRE(sd[l * 12 + i].first == "layers." + std::to_string(l) + "." + ref[i].first);
          REQUIRE(sd[l * 12 + i].second.bit_equal(ref[i].second));
        }
    }
}

TEST_CASE("TransformerEncoderLayer errors: options and activation are validated", "[encoder][errors]") {
  Generator gen(6);
  REQUIRE_THROWS_WITH(parse_activation("tanh"), Contains("[TransformerEncoderLayer] activation should be relu/gelu, not tanh"));
  REQUIRE_THROWS_WITH(TransformerEncoderLayer({.d_model = 10, .nhead = 4}, gen),
                      Contains("[TransformerEncoderLayer] d_model must be divisible by nhead; got d_model=10, nhead=4"));
  REQUIRE_THROWS_WITH(TransformerEncoderLayer({.d_model = 8, .nhead = 2, .dropout = 1.5}, gen),
                      Contains("[TransformerEncoderLayer] dropout must be in [0, 1); got dropout=1.5"));
  REQUIRE_THROWS_WITH(TransformerEncoder({.d_model = 8, .nhead = 2}, 0, false, gen),
                      Contains("[TransformerEncoder] num_layers must be positive; got num_layers=0"));
  TransformerEncoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 16}, gen);
  REQUIRE_THROWS_WITH(layer.forward(rand_var({3, 2, 8}, 1, -1, 1, false, DType::Float32), Var(),
                                    Var(Tensor::zeros({2, 3}, DType::Int64))),
                      Contains("[MultiheadAttention self_attn] key_padding_mask must be bool or floating"));
}
