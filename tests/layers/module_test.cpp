#include <memory>
#include <string>
#include <vector>

#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/layers/activation.h"
#include "tapegrad/layers/dropout.h"
#include "tapegrad/layers/embedding.h"
#include "tapegrad/layers/layer_norm.h"
#include "tapegrad/layers/linear.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// A transformer-style block: submodules are public members named as in PyTorch and registered.
struct Block : Module {
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<LayerNorm> norm1;
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<ReLU> activation;

  explicit Block(Generator& gen) {
    linear1 = register_module("linear1", std::make_shared<Linear>(LinearOptions{.in_features = 4, .out_features = 6}, gen));
    linear2 = register_module("linear2", std::make_shared<Linear>(LinearOptions{.in_features = 6, .out_features = 4}, gen));
    norm1 = register_module("norm1", std::make_shared<LayerNorm>(LayerNormOptions{.normalized_shape = {4}}));
    dropout = register_module("dropout", std::make_shared<Dropout>(DropoutOptions{.p = 0.5}, gen));
    activation = register_module("activation", std::make_shared<ReLU>());
  }
  Var forward(const Var& x) {
    return norm1->forward(x + dropout->forward(linear2->forward(activation->forward(linear1->forward(x)))));
  }
};

// A model with its own parameter and buffer (read through accessors of the registry entries, the
// pattern layers use), an embedding, and a ModuleList of blocks.
struct Model : Module {
  std::shared_ptr<Embedding> emb;
  std::shared_ptr<ModuleList> layers;

  explicit Model(Generator& gen, int blocks = 2) {
    emb = register_module("emb", std::make_shared<Embedding>(EmbeddingOptions{.num_embeddings = 7, .embedding_dim = 4}, gen));
    scale_ = &register_parameter("scale", Tensor::full({4}, 2.0));   // registered after emb, listed before it
    mask_ = &register_buffer("mask", Tensor::ones({4}));
    layers = register_module("layers", std::make_shared<ModuleList>());
    for (int i = 0; i < blocks; ++i) layers->push_back(std::make_shared<Block>(gen));
  }
  Var forward(const Tensor& tokens) {
    Var h = emb->forward(tokens) * scale() * mask();
    for (size_t i = 0; i < layers->size(); ++i) h = std::static_pointer_cast<Block>((*layers)[i])->forward(h);
    return h;
  }
  const Var& scale() const { return *scale_; }
  const Var& mask() const { return *mask_; }

 private:
  const Var* scale_;
  const Var* mask_;
};

const std::vector<std::string> kParamNames = {
    "scale",
    "emb.weight",
    "layers.0.linear1.weight", "layers.0.linear1.bias", "layers.0.linear2.weight", "layers.0.linear2.bias",
    "layers.0.norm1.weight", "layers.0.norm1.bias",
    "layers.1.linear1.weight", "layers.1.linear1.bias", "layers.1.linear2.weight", "layers.1.linear2.bias",
    "layers.1.norm1.weight", "layers.1.norm1.bias"};

Tensor tokens() { return Tensor::from_vector(std::vector<int64_t>{1, 6, 0, 3, 3, 2}, {2, 3}); }

}  // namespace

TEST_CASE("Module: named_parameters gives PyTorch's dotted names in PyTorch's order", "[layers][module]") {
  Generator gen(1);
  Model m(gen);
  auto named = m.named_parameters();
  std::vector<std::string> names;
  for (const auto& [n, v] : named) names.push_back(n);
  REQUIRE(names == kParamNames);
  // Handles share the registered nodes.
  REQUIRE(named[0].second.same(m.scale()));
  REQUIRE(named[1].second.same(m.emb->weight()));
  auto block1 = std::static_pointer_cast<Block>((*m.layers)[1]);
  REQUIRE(named[8].second.same(block1->linear1->weight()));
  REQUIRE(m.parameters().size() == kParamNames.size());
  REQUIRE(m.parameters()[13].same(block1->norm1->bias()));
  auto children = m.named_children();
  REQUIRE(children.size() == 2);
  REQUIRE(children[0].first == "emb");
  REQUIRE(children[1].first == "layers");
  REQUIRE(children[1].second.get() == m.layers.get());
}

TEST_CASE("Module: paths are dotted from the root, ModuleList items named 0, 1, ...", "[layers][module]") {
  Generator gen(2);
  Model m(gen);
  REQUIRE(m.path().empty());
  REQUIRE(m.emb->path() == "emb");
  REQUIRE(m.layers->path() == "layers");
  REQUIRE(m.layers->size() == 2);
  REQUIRE((*m.layers)[0]->path() == "layers.0");
  auto block0 = std::static_pointer_cast<Block>((*m.layers)[0]);
  REQUIRE(block0->linear1->path() == "layers.0.linear1");
  REQUIRE(block0->dropout->path() == "layers.0.dropout");
  REQUIRE_THROWS_AS((*m.layers)[2], std::out_of_range);
  // A list filled before it is registered gets its paths when registered.
  Module root;
  auto list = std::make_shared<ModuleList>();
  auto lin = list->push_back(std::make_shared<Linear>(LinearOptions{.in_features = 2, .out_features = 2}, gen));
  REQUIRE(lin->path() == "0");
  root.register_module("encoder", list);
  REQUIRE(lin->path() == "encoder.0");
  REQUIRE(root.named_parameters()[0].first == "encoder.0.weight");
  REQUIRE_THROWS_WITH(lin->forward(Var(Tensor::zeros({3}))),
                      Contains("[Linear encoder.0] input feature size must be in_features=2; got input=[3]"));
}

TEST_CASE("Module: state_dict lists parameters then buffers, module by module", "[layers][module]") {
  Generator gen(3);
  Model m(gen, 1);
  StateDict sd = m.state_dict();
  std::vector<std::string> names;
  for (const auto& [n, t] : sd) names.push_back(n);
  REQUIRE(names == std::vector<std::string>{"scale", "mask", "emb.weight", "layers.0.linear1.weight",
                                            "layers.0.linear1.bias", "layers.0.linear2.weight", "layers.0.linear2.bias",
                                            "layers.0.norm1.weight", "layers.0.norm1.bias"});
  REQUIRE(sd[0].second.to_vector() == std::vector<double>(4, 2.0));
  REQUIRE(sd[1].second.to_vector() == std::vector<double>(4, 1.0));
  REQUIRE(m.named_parameters().size() == 8);   // the buffer is not a parameter
  REQUIRE_FALSE(m.mask().requires_grad());
}

TEST_CASE("Module: load_state_dict copies values in place and round-trips", "[layers][module]") {
  Generator g1(4), g2(5);
  Model a(g1), b(g2);
  Var handle = b.emb->weight();
  const Tensor storage_before = b.emb->weight().value();
  REQUIRE_FALSE(a.emb->weight().value().bit_equal(b.emb->weight().value()));
  b.load_state_dict(a.state_dict());
  REQUIRE(handle.same(b.emb->weight()));
  REQUIRE(b.emb->weight().value().shares_storage(storage_before));   // in place
  auto sa = a.state_dict(), sb = b.state_dict();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    INFO(sa[i].first);
    REQUIRE(sa[i].first == sb[i].first);
    REQUIRE(sa[i].second.bit_equal(sb[i].second));
  }
  // Same parameters, same outputs (dropout off).
  a.eval();
  b.eval();
  REQUIRE(a.forward(tokens()).value().bit_equal(b.forward(tokens()).value()));
  // Values of another dtype are converted to the module's dtype, as PyTorch's copy_.
  StateDict f64;
  for (const auto& [k, t] : a.state_dict()) f64.emplace_back(k, t.to(DType::Float64));
  f64[0].second.fill_(0.25);
  b.load_state_dict(f64);
  REQUIRE(b.scale().dtype() == DType::Float32);
  REQUIRE(b.scale().value().to_vector() == std::vector<double>(4, 0.25));
}

TEST_CASE("Module: load_state_dict errors name every missing, unexpected and mis-shaped key", "[layers][module][errors]") {
  Generator gen(6);
  Model m(gen, 1);
  StateDict sd = m.state_dict();
  StateDict missing(sd.begin() + 1, sd.end());   // drop "scale"
  REQUIRE_THROWS_WITH(m.load_state_dict(missing),
                      Contains("[load_state_dict] error(s) loading state dict: missing keys: scale;"));
  StateDict extra = sd;
  extra.emplace_back("layers.0.linear3.weight", Tensor::zeros({2, 2}));
  extra.emplace_back("bogus", Tensor::zeros({1}));
  REQUIRE_THROWS_WITH(m.load_state_dict(extra), Contains("unexpected keys: layers.0.linear3.weight, bogus;"));
  StateDict misshaped = sd;
  misshaped[3].second = Tensor::zeros({4, 6});   // layers.0.linear1.weight() is [6, 4]
  REQUIRE_THROWS_WITH(m.load_state_dict(misshaped),
                      Contains("size mismatch: layers.0.linear1.weight expected [6, 4], got [4, 6];"));
  // All three at once, each listed.
  StateDict all(sd.begin() + 1, sd.end());
  all.emplace_back("bogus", Tensor::zeros({1}));
  all[1].second = Tensor::zeros({7, 5});   // emb.weight() is [7, 4]
  try {
    m.load_state_dict(all);
    FAIL("load_state_dict did not throw");
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    REQUIRE_THAT(msg, Contains("missing keys: scale;"));
    REQUIRE_THAT(msg, Contains("unexpected keys: bogus;"));
    REQUIRE_THAT(msg, Contains("size mismatch: emb.weight expected [7, 4], got [7, 5];"));
  }
  // Nothing was copied by a failed load.
  REQUIRE(m.scale().value().to_vector() == std::vector<double>(4, 2.0));
  // strict = false ignores missing and unexpected keys but never a size mismatch (as PyTorch).
  StateDict partial{{"scale", Tensor::full({4}, 3.0)}, {"bogus", Tensor::zeros({1})}};
  m.load_state_dict(partial, false);
  REQUIRE(m.scale().value().to_vector() == std::vector<double>(4, 3.0));
  REQUIRE_THROWS_WITH(m.load_state_dict({{"scale", Tensor::zeros({5})}}, false),
                      Contains("size mismatch: scale expected [4], got [5];"));
  // A submodule's load names its path.
  REQUIRE_THROWS_WITH(m.emb->load_state_dict({}), Contains("[load_state_dict] error(s) loading state dict into emb: "
                                                           "missing keys: weight;"));
}

TEST_CASE("Module: train/eval propagate to every submodule", "[layers][module]") {
  Generator gen(7);
  Model m(gen);
  auto block0 = std::static_pointer_cast<Block>((*m.layers)[0]);
  REQUIRE(m.is_training());
  REQUIRE(block0->dropout->is_training());
  m.eval();
  REQUIRE_FALSE(m.is_training());
  REQUIRE_FALSE(m.layers->is_training());
  REQUIRE_FALSE(block0->is_training());
  REQUIRE_FALSE(block0->dropout->is_training());
  REQUIRE_FALSE(m.emb->is_training());
  // Eval: deterministic forward (dropout is the identity).
  Tensor y1 = m.forward(tokens()).value().clone();
  REQUIRE(m.forward(tokens()).value().bit_equal(y1));
  m.train();
  REQUIRE(block0->dropout->is_training());
  REQUIRE(block0->linear1->is_training());
  REQUIRE_FALSE(m.forward(tokens()).value().bit_equal(y1));
  m.train(false);
  REQUIRE_FALSE(block0->norm1->is_training());
  // A module registered into an eval parent takes the parent's mode.
  auto late = m.register_module("late", std::make_shared<Dropout>());
  REQUIRE_FALSE(late->is_training());
}

TEST_CASE("Module: backward fills every parameter grad and zero_grad clears them", "[layers][module]") {
  Generator gen(8);
  Model m(gen);
  m.eval();
  Var y = m.forward(tokens());
  y.backward(rand_tensor(y.shape(), 9, -1.0, 1.0, DType::Float32));
  for (const auto& [n, v] : m.named_parameters()) {
    INFO(n);
    REQUIRE(v.grad().defined());
    REQUIRE(v.grad().shape() == v.shape());
  }
  m.zero_grad();
  for (const auto& [n, v] : m.named_parameters()) {
    INFO(n);
    REQUIRE_FALSE(v.grad().defined());
  }
}

TEST_CASE("Module: parameter_count sums the elements of every parameter", "[layers][module]") {
  Generator gen(10);
  Model m(gen);
  // scale 4 + emb 7*4 + per block: linear1 6*4+6, linear2 4*6+4, norm1 4+4.
  REQUIRE(parameter_count(m) == 4 + 28 + 2 * (30 + 28 + 8));
  REQUIRE(parameter_count(Linear({.in_features = 3, .out_features = 5, .bias = false})) == 15);
  REQUIRE(parameter_count(Dropout()) == 0);
}

TEST_CASE("Module: to(dtype) converts every parameter and buffer in place", "[layers][module]") {
  Generator gen(11);
  Model m(gen);
  m.eval();
  Tensor y32 = m.forward(tokens()).value().clone();
  auto before = m.state_dict();
  Var handle = m.layers->named_parameters()[0].second;
  m.to(DType::Float64);
  for (const auto& [k, t] : m.state_dict()) {
    INFO(k);
    REQUIRE(t.dtype() == DType::Float64);
  }
  auto after = m.state_dict();
  for (size_t i = 0; i < before.size(); ++i) REQUIRE(after[i].second.to(DType::Float32).bit_equal(before[i].second));
  REQUIRE(m.mask().dtype() == DType::Float64);
  auto block0 = std::static_pointer_cast<Block>((*m.layers)[0]);
  REQUIRE(handle.same(block0->linear1->weight()));
  REQUIRE(block0->linear1->weight().dtype() == DType::Float64);
  Var y64 = m.forward(tokens());
  REQUIRE(y64.dtype() == DType::Float64);
  REQUIRE(max_abs_diff(y64.value(), y32) < 1e-5);
  m.to(DType::Float32);
  REQUIRE(m.forward(tokens()).value().bit_equal(y32));
}

TEST_CASE("Module: registration rejects bad and duplicate names", "[layers][module][errors]") {
  Module m;
  m.register_parameter("w", Tensor::zeros({2}));
  m.register_buffer("b", Tensor::zeros({2}));
  m.register_module("child", std::make_shared<ReLU>());
  REQUIRE_THROWS_WITH(m.register_parameter("a.b", Tensor::zeros({1})),
                      Contains("[register_parameter] name must be non-empty and contain no '.'; got 'a.b'"));
  REQUIRE_THROWS_WITH(m.register_parameter("", Tensor::zeros({1})),
                      Contains("[register_parameter] name must be non-empty and contain no '.'; got ''"));
  REQUIRE_THROWS_WITH(m.register_parameter("w", Tensor::zeros({1})), Contains("[register_parameter] duplicate name 'w'"));
  REQUIRE_THROWS_WITH(m.register_parameter("b", Tensor::zeros({1})),
                      Contains("[register_parameter] 'b' is already a buffer"));
  REQUIRE_THROWS_WITH(m.register_buffer("b", Tensor::zeros({1})), Contains("[register_buffer] duplicate name 'b'"));
  REQUIRE_THROWS_WITH(m.register_buffer("w", Tensor::zeros({1})), Contains("[register_buffer] 'w' is already a parameter"));
  REQUIRE_THROWS_WITH(m.register_module("child", std::make_shared<ReLU>()),
                      Contains("[register_module] duplicate name 'child'"));
  REQUIRE_THROWS_WITH(m.register_module("x.y", std::make_shared<ReLU>()),
                      Contains("[register_module] name must be non-empty and contain no '.'; got 'x.y'"));
  REQUIRE_THROWS_WITH(m.register_module("none", std::shared_ptr<ReLU>()), Contains("[register_module] module 'none' is null"));
  // A parameter registered without grad stays out of autograd but is still a parameter.
  Var frozen = m.register_parameter("frozen", Tensor::zeros({3}), false);
  REQUIRE_FALSE(frozen.requires_grad());
  REQUIRE(m.named_parameters().size() == 2);
  REQUIRE(parameter_count(m) == 5);
}
