#include <algorithm>
#include <cmath>
#include <string>

#include "tapegrad/framework/io/hdf5_file.h"
#include "tapegrad/layers/embedding.h"
#include "tapegrad/layers/init.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

const std::string kFixture = std::string(TAPEGRAD_SOURCE_DIR) + "/tests/fixtures/layers.h5";


// Rebuilds one recorded nn.Embedding case in `dtype`, loads its weight, runs forward and backward
// with the recorded upstream gradient, and compares the output and the weight gradient.
void check_embedding_case(const io::H5File& f, const std::string& c, DType dtype, double tol) {
  EmbeddingOptions o{.num_embeddings = f.attr_int(c, "num_embeddings"), .embedding_dim = f.attr_int(c, "embedding_dim")};
  if (f.has_attr(c, "padding_idx")) o.padding_idx = f.attr_int(c, "padding_idx");
  Embedding emb(o, default_generator(), dtype);
  emb.load_state_dict({{"weight", f.read(c + "/params/weight")}});
  Tensor indices = f.read(c + "/inputs/input");
  REQUIRE(indices.dtype() == DType::Int64);
  Var y = emb.forward(indices);
  REQUIRE(y.dtype() == dtype);
  require_close(y.value(), f.read(c + "/outputs/output"), tol, c + " output");
  y.backward(f.read(c + "/grad_output").to(dtype));
  require_close(emb.weight().grad(), f.read(c + "/grads/params/weight"), tol, c + " weight grad");
}

void check_all_embedding_cases(DType dtype, double tol) {
  io::H5File f(kFixture, io::H5File::Mode::read);
  int cases = 0;
  for (const auto& name : f.children("/")) {
    if (f.attr_string("/" + name, "kind") != "embedding") continue;
    check_embedding_case(f, "/" + name, dtype, tol);
    ++cases;
  }
  REQUIRE(cases == 3);   // padding_idx 2, padding_idx -1, no padding
}

}  // namespace

TEST_CASE("Embedding: matches PyTorch output and weight grad (float64)", "[layers][parity]") {
  check_all_embedding_cases(DType::Float64, 1e-10);
}

TEST_CASE("Embedding: matches PyTorch output and weight grad (float32)", "[layers][parity]") {
  check_all_embedding_cases(DType::Float32, 1e-5);
}

TEST_CASE("Embedding: grad matches finite differences (repeated indices)", "[layers][grad]") {
  Generator gen(4);
  Embedding emb({.num_embeddings = 5, .embedding_dim = 3}, gen, DType::Float64);
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{0, 1, 4, 0, 1, 3, 0, 2}, {2, 4});
  REQUIRE_GRADCHECK(
      [&](const std::vector<Var>& v) {
        emb.set_parameter("weight", v[0]);
        return emb.forward(idx);
      },
      {emb.weight()});
  // With a padding_idx that is not looked up, every other row's gradient is still exact.
  Embedding padded({.num_embeddings = 5, .embedding_dim = 3, .padding_idx = 2}, gen, DType::Float64);
  Tensor no_pad = Tensor::from_vector(std::vector<int64_t>{0, 1, 4, 0, 1, 3}, {6});
  REQUIRE_GRADCHECK(
      [&](const std::vector<Var>& v) {
        padded.set_parameter("weight", v[0]);
        return padded.forward(no_pad);
      },
      {padded.weight()});
}

TEST_CASE("Embedding: the padding row gets no gradient, repeated rows accumulate", "[layers][grad]") {
  // PyTorch's padding_idx semantics: the padding row's gradient is zero by definition (not the true
  // derivative, so it is checked by value instead of by finite differences).
  Generator gen(4);
  Embedding emb({.num_embeddings = 5, .embedding_dim = 3, .padding_idx = 1}, gen, DType::Float64);
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{0, 1, 4, 0, 1, 3, 0, 2}, {2, 4});
  Var y = emb.forward(idx);
  for (int64_t j = 0; j < 3; ++j) REQUIRE(y.value().at({0, 1, j}) == emb.weight().value().at({1, j}));
  y.backward(Tensor::ones(y.shape(), DType::Float64));
  for (int64_t j = 0; j < 3; ++j) {
    REQUIRE(emb.weight().grad().at({1, j}) == 0.0);   // looked up twice, still zero
    REQUIRE(emb.weight().grad().at({0, j}) == 3.0);   // index 0 appears three times
    REQUIRE(emb.weight().grad().at({4, j}) == 1.0);
  }
}

TEST_CASE("Embedding: grad matches finite differences after to(float64)", "[layers][grad]") {
  Generator gen(5);
  Embedding emb({.num_embeddings = 4, .embedding_dim = 2}, gen);
  emb.to(DType::Float64);
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{3, 3, 0}, {3});
  REQUIRE_GRADCHECK(
      [&](const std::vector<Var>& v) {
        emb.set_parameter("weight", v[0]);
        return emb.forward(idx);
      },
      {emb.weight()});
}

TEST_CASE("Embedding: options have PyTorch's defaults, negative padding_idx is normalised", "[layers]") {
  EmbeddingOptions o{.num_embeddings = 10, .embedding_dim = 4};
  REQUIRE_FALSE(o.padding_idx.has_value());
  Embedding plain(o);
  REQUIRE(plain.weight().shape() == Shape{10, 4});
  REQUIRE(plain.weight().requires_grad());
  REQUIRE(plain.named_parameters().size() == 1);
  REQUIRE(plain.named_parameters()[0].first == "weight");
  REQUIRE(plain.named_parameters()[0].second.same(plain.weight()));
  Embedding neg({.num_embeddings = 10, .embedding_dim = 4, .padding_idx = -1});
  REQUIRE(neg.options().padding_idx == 9);
  for (int64_t j = 0; j < 4; ++j) REQUIRE(neg.weight().value().at({9, j}) == 0.0);
}

TEST_CASE("Embedding: initialisation is N(0, 1) with the padding row zero", "[layers][init]") {
  Generator gen(12);
  Embedding emb({.num_embeddings = 1000, .embedding_dim = 16, .padding_idx = 3}, gen);
  const Tensor& w = emb.weight().value();
  double sum = 0, sum_sq = 0;
  int64_t inside_one_sd = 0, n = 0;
  for (int64_t i = 0; i < 1000; ++i) {
    for (int64_t j = 0; j < 16; ++j) {
      double v = w.at({i, j});
      if (i == 3) {
        REQUIRE(v == 0.0);
        continue;
      }
      sum += v;
      sum_sq += v * v;
      inside_one_sd += std::abs(v) < 1.0;
      ++n;
    }
  }
  double mean = sum / n, var = sum_sq / n - mean * mean;
  REQUIRE(std::abs(mean) < 0.04);   // sd of the mean ~0.008
  REQUIRE(std::abs(var - 1.0) < 0.05);
  REQUIRE(std::abs(static_cast<double>(inside_one_sd) / n - 0.6827) < 0.02);
  // Exactly torch's recipe: normal_(weight), then the padding row filled with zero.
  Generator ref(12);
  Tensor expected = init::normal({1000, 16}, 0.0, 1.0, ref);
  expected.rows(3, 4).zero_();
  REQUIRE(w.bit_equal(expected));
  REQUIRE(gen.state() == ref.state());
}

TEST_CASE("Embedding: the same seed gives the same table, reset_parameters redraws in place", "[layers][init]") {
  Generator g1(9), g2(9), g3(10);
  Embedding a({.num_embeddings = 6, .embedding_dim = 3}, g1), b({.num_embeddings = 6, .embedding_dim = 3}, g2);
  Embedding c({.num_embeddings = 6, .embedding_dim = 3}, g3);
  REQUIRE(a.weight().value().bit_equal(b.weight().value()));
  REQUIRE_FALSE(a.weight().value().bit_equal(c.weight().value()));
  Embedding p({.num_embeddings = 6, .embedding_dim = 3, .padding_idx = 0});
  Var handle = p.named_parameters()[0].second;
  Var(p.weight()).value().fill_(5.0);
  Generator again(9);
  p.reset_parameters(again);
  REQUIRE(handle.same(p.weight()));
  Tensor expected = a.weight().value().clone();
  expected.rows(0, 1).zero_();
  REQUIRE(p.weight().value().bit_equal(expected));
}

TEST_CASE("Embedding: forward looks up rows for any index shape", "[layers]") {
  Embedding emb({.num_embeddings = 3, .embedding_dim = 2}, default_generator(), DType::Float64);
  Var(emb.weight()).value().copy_(Tensor::from_vector(std::vector<double>{0, 1, 10, 11, 20, 21}, {3, 2}));
  Var y = emb.forward(Tensor::from_vector(std::vector<int64_t>{2, 0, 2}, {3, 1}));
  REQUIRE(y.shape() == Shape{3, 1, 2});
  REQUIRE(y.value().to_vector() == std::vector<double>{20, 21, 0, 1, 20, 21});
  Tensor scalar = Tensor::zeros({}, DType::Int64);
  scalar.set_flat(0, 1);
  Var s = emb.forward(scalar);
  REQUIRE(s.shape() == Shape{2});
  REQUIRE(s.value().to_vector() == std::vector<double>{10, 11});
}

TEST_CASE("Embedding: bad options throw naming the field", "[layers][errors]") {
  REQUIRE_THROWS_WITH(Embedding({.num_embeddings = 0, .embedding_dim = 3}),
                      Contains("[Embedding] num_embeddings must be positive; got num_embeddings=0"));
  REQUIRE_THROWS_WITH(Embedding({.num_embeddings = 4, .embedding_dim = -2}),
                      Contains("[Embedding] embedding_dim must be positive; got embedding_dim=-2"));
  REQUIRE_THROWS_WITH(Embedding({.num_embeddings = 10, .embedding_dim = 3, .padding_idx = 10}),
                      Contains("[Embedding] padding_idx must be within num_embeddings=10; got padding_idx=10"));
  REQUIRE_THROWS_WITH(Embedding({.num_embeddings = 10, .embedding_dim = 3, .padding_idx = -11}),
                      Contains("[Embedding] padding_idx must be within num_embeddings=10; got padding_idx=-11"));
  REQUIRE_THROWS_WITH(Embedding({.num_embeddings = 4, .embedding_dim = 3}, default_generator(), DType::Bool),
                      Contains("[Embedding] dtype must be float32 or float64; got dtype=bool"));
}

TEST_CASE("Embedding: bad indices throw naming the layer's path and shapes", "[layers][errors]") {
  Module model;
  auto emb = model.register_module("tok_emb", std::make_shared<Embedding>(EmbeddingOptions{.num_embeddings = 5,
                                                                                            .embedding_dim = 2}));
  Tensor too_big = Tensor::from_vector(std::vector<int64_t>{0, 4, 5, 1}, {2, 2});
  REQUIRE_THROWS_WITH(emb->forward(too_big),
                      Contains("[Embedding tok_emb] index out of range [0, num_embeddings=5); got index 5 at flat "
                               "position 2, indices=[2, 2]"));
  Tensor negative = Tensor::from_vector(std::vector<int64_t>{-1}, {1});
  REQUIRE_THROWS_WITH(emb->forward(negative), Contains("[Embedding tok_emb] index out of range [0, num_embeddings=5); "
                                                       "got index -1 at flat position 0, indices=[1]"));
  REQUIRE_THROWS_WITH(emb->forward(Tensor::zeros({3}, DType::Float32)),
                      Contains("[Embedding tok_emb] indices must be int64; got indices=float32[3]"));
  Embedding root({.num_embeddings = 5, .embedding_dim = 2});
  REQUIRE_THROWS_WITH(root.forward(Tensor()), Contains("[Embedding] indices are undefined"));
}
