// One owner per parameter: layers read the Module registry through accessors, and set_parameter
// (dotted names allowed) is the one call that replaces a parameter; forward, named_parameters,
// state_dict and optimizers built afterwards all see the new Var.
#include <memory>
#include <string>
#include <vector>

#include "examples/tiny_lm/model.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/layers/embedding.h"
#include "tapegrad/layers/linear.h"
#include "tapegrad/layers/multihead_attention.h"
#include "tapegrad/optim/sgd.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// A tiny tied language model: emb (V, E) and head (E -> V) share one (V, E) matrix when tied.
struct TiedLM : Module {
  std::shared_ptr<Embedding> emb;
  std::shared_ptr<Linear> head;
  TiedLM(Generator gen, bool tie) {
    emb = register_module("emb", std::make_shared<Embedding>(EmbeddingOptions{.num_embeddings = 5, .embedding_dim = 3},
                                                              gen, DType::Float64));
    head = register_module("head", std::make_shared<Linear>(
        LinearOptions{.in_features = 3, .out_features = 5, .bias = false}, gen, DType::Float64));
    if (tie) set_parameter("head.weight", emb->weight());   // the one call
  }
  Var forward(const Tensor& tokens) const { return head->forward(emb->forward(tokens)); }
};

Tensor tokens() { return Tensor::from_vector(std::vector<int64_t>{0, 3, 4, 3}, {4}); }

}  // namespace

TEST_CASE("set_parameter: tying is one call, forward, named_parameters, state_dict and an optimizer see it", "[layers][module][tying]") {
  TiedLM m(Generator(1), true);
  // The accessor, the registry and the state dict all give the embedding's node.
  REQUIRE(m.head->weight().same(m.emb->weight()));
  auto named = m.named_parameters();
  REQUIRE(named.size() == 1);   // listed once, under its first name, as PyTorch
  REQUIRE(named[0].first == "emb.weight");
  StateDict sd = m.state_dict();
  REQUIRE(sd.size() == 2);
  REQUIRE(sd[1].first == "head.weight");
  REQUIRE(sd[1].second.shares_storage(m.emb->weight().value()));
  // Forward uses the tied matrix: logits[i, v] = <emb[t_i], emb[v]>.
  Tensor y = m.forward(tokens()).value();
  const Tensor& w = m.emb->weight().value();
  for (int64_t v = 0; v < 5; ++v) {
    double dot = 0;
    for (int64_t e = 0; e < 3; ++e) dot += w.at({3, e}) * w.at({v, e});
    REQUIRE(y.at({1, v}) == Approx(dot).epsilon(1e-14));
  }
  // One SGD step built afterwards moves the single shared tensor by lr * (grad through both uses).
  optim::SGD sgd(m.named_parameters(), {.lr = 0.5});
  Var loss = sum(m.forward(tokens()));
  loss.backward();
  Tensor before = w.clone(), grad = m.emb->weight().grad().clone();
  sgd.step();
  for (int64_t i = 0; i < w.numel(); ++i) REQUIRE(w.flat(i) == before.flat(i) - 0.5 * grad.flat(i));
  REQUIRE(m.head->weight().value().bit_equal(w));
  REQUIRE(m.state_dict()[1].second.bit_equal(w));
  // The tied gradient is the sum of both uses: equal to the untied model's two gradients added.
  TiedLM untied(Generator(1), false);
  untied.load_state_dict({{"emb.weight", before}, {"head.weight", before}});
  sum(untied.forward(tokens())).backward();
  Tensor both = untied.emb->weight().grad().clone();
  for (int64_t i = 0; i < both.numel(); ++i) both.set_flat(i, both.flat(i) + untied.head->weight().grad().flat(i));
  REQUIRE(max_abs_diff(both, grad) < 1e-14);
}

TEST_CASE("set_parameter: reassigning a parameter changes forward's output and what the registry lists", "[layers][module]") {
  Linear lin({.in_features = 2, .out_features = 2}, Generator(3), DType::Float64);
  Var x(Tensor::from_vector(std::vector<double>{1, 2}, {1, 2}));
  Var w(Tensor::from_vector(std::vector<double>{1, 0, 0, 1}, {2, 2}), true);
  Var b(Tensor::from_vector(std::vector<double>{10, 20}, {2}), true);
  REQUIRE(lin.forward(x).value().to_vector() != std::vector<double>{11, 22});
  lin.set_parameter("weight", w);
  lin.set_parameter("bias", b);
  REQUIRE(lin.forward(x).value().to_vector() == std::vector<double>{11, 22});
  REQUIRE(lin.weight().same(w));
  REQUIRE(lin.named_parameters()[0].second.same(w));
  REQUIRE(lin.named_parameters()[1].second.same(b));
  REQUIRE(lin.state_dict()[0].second.shares_storage(w.value()));
  // Grads flow to the new leaves.
  lin.forward(x).backward(Tensor::ones({1, 2}, DType::Float64));
  REQUIRE(w.grad().to_vector() == std::vector<double>{1, 2, 1, 2});
  REQUIRE(b.grad().to_vector() == std::vector<double>{1, 1});
}

TEST_CASE("set_parameter: dotted names resolve into submodules at any depth", "[layers][module]") {
  Generator gen(4);
  MultiheadAttention mha({.embed_dim = 4, .num_heads = 2}, gen, DType::Float64);
  Var zero_bias(Tensor::zeros({4}, DType::Float64), true);
  mha.set_parameter("out_proj.bias", zero_bias);
  REQUIRE(mha.out_proj->bias().same(zero_bias));
  Var in_w(Tensor::zeros({12, 4}, DType::Float64), true);
  mha.set_parameter("in_proj_weight", in_w);
  REQUIRE(mha.in_proj_weight().same(in_w));
  // Zero in-projection: q = k = v = in_proj_bias = 0, so every output is out_proj.bias = 0.
  Var x = rand_var({3, 1, 4}, 5);
  REQUIRE(mha.forward(x, x, x).attn_output.value().to_vector() == std::vector<double>(12, 0.0));

  tiny_lm::TinyLM lm({.vocab_size = 7, .block_size = 4, .n_layer = 2, .n_head = 2, .n_embd = 4}, gen);
  Var w2(Tensor::ones({16, 4}), true);
  lm.set_parameter("layers.1.linear1.weight", w2);
  REQUIRE(std::static_pointer_cast<TransformerEncoderLayer>((*lm.layers)[1])->linear1->weight().same(w2));
  REQUIRE_FALSE(std::static_pointer_cast<TransformerEncoderLayer>((*lm.layers)[0])->linear1->weight().same(w2));
}

TEST_CASE("set_parameter errors: unknown name, wrong shape, wrong dtype, undefined", "[layers][module][errors]") {
  TiedLM m(Generator(6), false);
  Var ok(Tensor::zeros({5, 3}, DType::Float64));
  REQUIRE_THROWS_WITH(m.set_parameter("head.wieght", ok), Contains("[set_parameter] no parameter named 'head.wieght'"));
  REQUIRE_THROWS_WITH(m.set_parameter("hed.weight", ok), Contains("[set_parameter] no parameter named 'hed.weight'"));
  REQUIRE_THROWS_WITH(m.set_parameter("weight", ok), Contains("[set_parameter] no parameter named 'weight'"));
  REQUIRE_THROWS_WITH(m.set_parameter("head.weight.x", ok), Contains("[set_parameter] no parameter named 'head.weight.x'"));
  REQUIRE_THROWS_WITH(m.set_parameter("head.weight", Var(Tensor::zeros({3, 5}, DType::Float64))),
                      Contains("[set_parameter] 'head.weight' is float64[5, 3]; got float64[3, 5]"));
  REQUIRE_THROWS_WITH(m.head->set_parameter("weight", Var(Tensor::zeros({5, 3}, DType::Float32))),
                      Contains("[set_parameter] 'weight' is float64[5, 3]; got float32[5, 3]"));
  REQUIRE_THROWS_WITH(m.set_parameter("emb.weight", Var()), Contains("[set_parameter] 'emb.weight' is float64[5, 3]; got undefined"));
  // A failed call changes nothing.
  REQUIRE_FALSE(m.head->weight().same(ok));
  REQUIRE(m.named_parameters().size() == 2);
}

TEST_CASE("parameter accessors: optional parameters are undefined Vars, registry references stay valid", "[layers][module]") {
  Linear no_bias({.in_features = 2, .out_features = 3, .bias = false});
  REQUIRE(no_bias.weight().defined());
  REQUIRE_FALSE(no_bias.bias().defined());
  MultiheadAttention separate({.embed_dim = 4, .num_heads = 1, .bias = false, .kdim = 3});
  REQUIRE_FALSE(separate.in_proj_weight().defined());
  REQUIRE_FALSE(separate.in_proj_bias().defined());
  REQUIRE_FALSE(separate.bias_k().defined());
  REQUIRE(separate.q_proj_weight().shape() == Shape{4, 4});
  REQUIRE(separate.k_proj_weight().shape() == Shape{4, 3});
  REQUIRE(separate.v_proj_weight().shape() == Shape{4, 4});
  // to(dtype) converts in place: the accessor still names the registered node.
  Var before = no_bias.weight();
  no_bias.to(DType::Float64);
  REQUIRE(no_bias.weight().same(before));
  REQUIRE(no_bias.weight().dtype() == DType::Float64);
}

TEST_CASE("tiny LM: tie_weights ties head.weight to tok_emb.weight with set_parameter", "[layers][module][tying]") {
  tiny_lm::TinyLM lm({.vocab_size = 6, .block_size = 4, .n_layer = 1, .n_head = 2, .n_embd = 4, .tie_weights = true},
                     Generator(7));
  REQUIRE(lm.head->weight().same(lm.tok_emb->weight()));
  for (const auto& [name, p] : lm.named_parameters()) REQUIRE(name != "head.weight");
  lm.init_weights(Generator(8));   // nanoGPT init draws the shared matrix once
  REQUIRE(lm.head->weight().same(lm.tok_emb->weight()));
}
