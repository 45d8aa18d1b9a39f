// TransformerDecoderLayer / TransformerDecoder: PyTorch's names, defaults, order and draws, the two norm
// placements, mask routing, fully masked rows, error messages, float64 gradchecks with dropout replayed.
#include <cmath>
#include <limits>

#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/transformer_decoder.h"
#include "support/layer_composition.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// Random LayerNorm affines and biases (away from relu's kink), as in the recorded cases.
void randomise_one_dim(Module& m, uint64_t seed) {
  for (auto& [n, p] : m.named_parameters())
    if (p.dim() == 1) p.value().copy_(rand_tensor(p.shape(), seed++, 0.5, 1.5));
}

}  // namespace

TEST_CASE("TransformerDecoderLayer: state_dict keys and shapes in PyTorch's order, defaults", "[decoder]") {
  Generator gen(1);
  TransformerDecoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 16}, gen);
  std::vector<std::pair<std::string, Shape>> got;
  for (const auto& [n, t] : layer.state_dict()) got.emplace_back(n, t.shape());
  REQUIRE(got == std::vector<std::pair<std::string, Shape>>{
                     {"self_attn.in_proj_weight", {24, 8}}, {"self_attn.in_proj_bias", {24}},
                     {"self_attn.out_proj.weight", {8, 8}}, {"self_attn.out_proj.bias", {8}},
                     {"multihead_attn.in_proj_weight", {24, 8}}, {"multihead_attn.in_proj_bias", {24}},
                     {"multihead_attn.out_proj.weight", {8, 8}}, {"multihead_attn.out_proj.bias", {8}},
                     {"linear1.weight", {16, 8}}, {"linear1.bias", {16}}, {"linear2.weight", {8, 16}},
                     {"linear2.bias", {8}}, {"norm1.weight", {8}}, {"norm1.bias", {8}}, {"norm2.weight", {8}},
                     {"norm2.bias", {8}}, {"norm3.weight", {8}}, {"norm3.bias", {8}}});
  TransformerDecoderLayerOptions d{.d_model = 8, .nhead = 2};
  REQUIRE(d.dim_feedforward == 2048);
  REQUIRE(d.dropout == 0.1);
  REQUIRE(d.activation == Activation::relu);
  REQUIRE(d.layer_norm_eps == 1e-5);
  REQUIRE((!d.batch_first && !d.norm_first && d.bias));
  TransformerDecoderLayer nobias({.d_model = 8, .nhead = 2, .dim_feedforward = 16, .bias = false}, gen);
  REQUIRE(nobias.state_dict().size() == 9);   // 2 per attention, linear1/2.weight, norm1..3.weight
}

TEST_CASE("TransformerDecoderLayer: draws in PyTorch's order (self_attn, multihead_attn, linear1, linear2)", "[decoder]") {
  Generator gen(11), ref(11);
  TransformerDecoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 12}, gen, DType::Float64);
  MultiheadAttention sa({.embed_dim = 8, .num_heads = 2}, ref, DType::Float64);
  MultiheadAttention ca({.embed_dim = 8, .num_heads = 2}, ref, DType::Float64);
  Linear l1({.in_features = 8, .out_features = 12}, ref, DType::Float64);
  Linear l2({.in_features = 12, .out_features = 8}, ref, DType::Float64);
  REQUIRE(gen.state() == ref.state());
  StateDict sd = layer.state_dict();
  auto value = [&](const std::string& name) {
    for (const auto& [n, t] : sd)
      if (n == name) return t;
    FAIL("no " << name);
    return Tensor();
  };
  REQUIRE(value("self_attn.in_proj_weight").bit_equal(sa.in_proj_weight().value()));
  REQUIRE(value("self_attn.out_proj.weight").bit_equal(sa.out_proj->weight().value()));
  REQUIRE(value("multihead_attn.in_proj_weight").bit_equal(ca.in_proj_weight().value()));
  REQUIRE(value("linear1.weight").bit_equal(l1.weight().value()));
  REQUIRE(value("linear1.bias").bit_equal(l1.bias().value()));
  REQUIRE(value("linear2.weight").bit_equal(l2.weight().value()));
  REQUIRE(value("linear2.bias").bit_equal(l2.bias().value()));
  REQUIRE(value("self_attn.out_proj.bias").bit_equal(Tensor::zeros({8}, DType::Float64)));
  REQUIRE(value("norm3.weight").bit_equal(Tensor::ones({8}, DType::Float64)));
}

TEST_CASE("TransformerDecoderLayer: forward is the composition of its blocks, memory never normalised", "[decoder]") {
  for (bool norm_first : {false, true}) {
    Generator gen(2);
    TransformerDecoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.0,
                                   .activation = Activation::gelu, .norm_first = norm_first}, gen, DType::Float64);
    randomise_one_dim(layer, 30);
    Var x = rand_var({5, 2, 8}, 3), mem = rand_var({4, 2, 8}, 4);
    Var tmask(causal_mask(5, 5, DType::Float64));
    Tensor mk = Tensor::zeros({2, 4}, DType::Bool);
    mk.set({0, 3}, 1.0);
    Var mkpm(mk);
    auto sa = [&](const Var& h) { return layer.self_attn->forward(h, h, h, {.attn_mask = tmask, .need_weights = false}).attn_output; };
    auto ca = [&](const Var& h) {
      return layer.multihead_attn->forward(h, mem, mem, {.key_padding_mask = mkpm, .need_weights = false}).attn_output;
    };
    const Var ref = decoder_layer_composition(layer, x, norm_first, sa, ca);
    REQUIRE(max_abs_diff(layer.forward(x, mem, tmask, Var(), Var(), mkpm).value(), ref.value()) < 1e-14);
    REQUIRE(max_abs_diff(layer.forward(x, mem, {.memory_key_padding_mask = mkpm, .tgt_is_causal = true}).value(),
                         ref.value()) < 1e-14);
  }
}

TEST_CASE("TransformerDecoderLayer: a fully masked memory row gives out_proj.bias from the cross-attention, no NaN", "[decoder]") {
  Generator gen(5);
  TransformerDecoderLayer layer({.d_model = 4, .nhead = 2, .dim_feedforward = 6, .dropout = 0.0, .norm_first = true},
                                gen, DType::Float64);
  randomise_one_dim(layer, 40);
  Var x = rand_var({3, 1, 4}, 6), mem = rand_var({2, 1, 4}, 7);
  Var all_blocked(Tensor::ones({1, 2}, DType::Bool));
  Var y = layer.forward(x, mem, {.memory_key_padding_mask = all_blocked});
  // Reference: the cross-attention block contributes exactly its out_proj.bias.
  Var h = x + layer.self_attn->forward(layer.norm1->forward(x), layer.norm1->forward(x), layer.norm1->forward(x),
                                       {.need_weights = false}).attn_output;
  h = h + layer.multihead_attn->out_proj->bias();
  Var ref = h + layer.linear2->forward(relu(layer.linear1->forward(layer.norm3->forward(h))));
  REQUIRE(max_abs_diff(y.value(), ref.value()) < 1e-14);
  sum(y).backward();
  for (const auto& [n, p] : layer.named_parameters())
    for (int64_t i = 0; i < p.grad().numel(); ++i) REQUIRE(std::isfinite(p.grad().flat(i)));
  REQUIRE(max_abs_diff(mem.grad(), Tensor::zeros({2, 1, 4}, DType::Float64)) == 0.0);
}

TEST_CASE("TransformerDecoderLayer: errors name the argument and the shapes", "[decoder][errors]") {
  Generator gen(6);
  TransformerDecoderLayer layer({.d_model = 8, .nhead = 2, .dim_feedforward = 16}, gen);
  Var tgt(Tensor::zeros({3, 2, 8})), mem(Tensor::zeros({4, 2, 8}));
  REQUIRE_THROWS_WITH(layer.forward(tgt, Var(Tensor::zeros({4, 2, 6}))),
                      Contains("[TransformerDecoderLayer] memory feature size must be d_model=8; got tgt=[3, 2, 8], memory=[4, 2, 6]"));
  REQUIRE_THROWS_WITH(layer.forward(tgt, Var(Tensor::zeros({4, 3, 8}))),
                      Contains("[TransformerDecoderLayer] tgt and memory batch sizes differ (dim 1); got tgt=[3, 2, 8], memory=[4, 3, 8]"));
  REQUIRE_THROWS_WITH(layer.forward(Var(Tensor::zeros({3, 8})), mem),
                      Contains("[TransformerDecoderLayer] memory must have tgt's number of dims (unbatched); got tgt=[3, 8], memory=[4, 2, 8]"));
  REQUIRE_THROWS_WITH(layer.forward(Var(Tensor::zeros({3, 2, 6})), mem),
                      Contains("[TransformerDecoderLayer] tgt feature size must be d_model=8; got tgt=[3, 2, 6]"));
  REQUIRE_THROWS_WITH(layer.forward(tgt, mem, {.memory_mask = Var(Tensor::zeros({4, 3}))}),
                      Contains("[MultiheadAttention multihead_attn] 2-D attn_mask must be (L, S)=[3, 4]; got attn_mask=[4, 3]"));
  REQUIRE_THROWS_WITH(layer.forward(tgt, mem, {.tgt_key_padding_mask = Var(Tensor::zeros({2, 4}, DType::Bool))}),
                      Contains("[MultiheadAttention self_attn] key_padding_mask must be (N, S)=[2, 3]; got key_padding_mask=[2, 4]"));
  REQUIRE_THROWS_WITH(TransformerDecoderLayer({.d_model = 6, .nhead = 4}),
                      Contains("[TransformerDecoderLayer] d_model must be divisible by nhead; got d_model=6, nhead=4"));
  REQUIRE_THROWS_WITH(TransformerDecoder({.d_model = 8, .nhead = 2}, 0),
                      Contains("[TransformerDecoder] num_layers must be positive; got num_layers=0"));
}

TEST_CASE("TransformerDecoderLayer grad: both norm modes, all four masks, dropout replayed", "[decoder][grad]") {
  for (bool norm_first : {false, true}) {
    Generator gen(7);
    TransformerDecoderLayer layer({.d_model = 4, .nhead = 2, .dim_feedforward = 6, .dropout = 0.2,
                                   .activation = norm_first ? Activation::gelu : Activation::relu,
                                   .batch_first = norm_first, .norm_first = norm_first}, gen, DType::Float64);
    randomise_one_dim(layer, 50);
    const GeneratorState s0 = gen.state();
    Shape ts = norm_first ? Shape{2, 3, 4} : Shape{3, 2, 4}, ms = norm_first ? Shape{2, 2, 4} : Shape{2, 2, 4};
    Var tgt = rand_var(ts, 8), mem = rand_var(ms, 9);
    Var tmask = rand_var({3, 3}, 10);             // float tgt_mask, differentiable
    Tensor mm = Tensor::zeros({3, 2}, DType::Bool);
    mm.set({1, 0}, 1.0);
    Tensor tk = Tensor::zeros({2, 3}, DType::Bool);
    tk.set({0, 2}, 1.0);
    Var mkpm = rand_var({2, 2}, 11, -0.5, 0.5, false);   // float memory_key_padding_mask
    REQUIRE_GRADCHECK([&](const std::vector<Var>& in) {
      gen.set_state(s0);
      return layer.forward(in[0], in[1], {.tgt_mask = in[2], .memory_mask = Var(mm), .tgt_key_padding_mask = Var(tk),
                                          .memory_key_padding_mask = mkpm});
    }, {tgt, mem, tmask}, layer.parameters());
    // Dropout really is on: two draws differ.
    Tensor a = layer.forward(tgt, mem).value(), b = layer.forward(tgt, mem).value();
    REQUIRE(max_abs_diff(a, b) > 0.0);
  }
}

TEST_CASE("TransformerDecoder: clones start identical, draw nothing, final norm, same memory and masks", "[decoder]") {
  Generator gen(12), one(12);
  TransformerDecoder dec({.d_model = 8, .nhead = 2, .dim_feedforward = 12, .dropout = 0.0}, 3, true, gen, DType::Float64);
  TransformerDecoderLayer single({.d_model = 8, .nhead = 2, .dim_feedforward = 12, .dropout = 0.0}, one, DType::Float64);
  REQUIRE(gen.state() == one.state());
  StateDict sd = dec.state_dict(), ref = single.state_dict();
  REQUIRE(sd.size() == 3 * 18 + 2);
  REQUIRE(sd[18].first == "layers.1.self_attn.in_proj_weight");
  REQUIRE(sd.back().first == "norm.bias");
  for (size_t l = 0; l < 3; ++l)
    for (size_t i = 0; i < 18; ++i) {
      REQUIRE(sd[l * 18 + i].first == "layers." + std::to_string(l) + "." + ref[i].first);
      REQUIRE(sd[l * 18 + i].second.bit_equal(ref[i].second));
    }
  auto params = dec.named_parameters();
  REQUIRE(!params[0].second.same(params[18].second));   // distinct tensors
  randomise_one_dim(dec, 60);
  Var x = rand_var({4, 2, 8}, 13), mem = rand_var({3, 2, 8}, 14);
  Var y = dec.forward(x, mem, {.tgt_is_causal = true});
  Var h = x;
  for (size_t i = 0; i < 3; ++i)
    h = std::static_pointer_cast<TransformerDecoderLayer>((*dec.layers)[i])->forward(h, mem, {.tgt_is_causal = true});
  REQUIRE(max_abs_diff(y.value(), dec.norm->forward(h).value()) == 0.0);
}
