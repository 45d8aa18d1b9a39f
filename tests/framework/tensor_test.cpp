#include <catch2/catch.hpp>

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/tensor.h"

using namespace tg;
using Catch::Matchers::Contains;

TEST_CASE("tensor: creation fills shape, dtype and values", "[tensor]") {
  Tensor z = Tensor::zeros({2, 3}, DType::Float64);
  REQUIRE(z.shape() == Shape{2, 3});
  REQUIRE(z.dtype() == DType::Float64);
  REQUIRE(z.numel() == 6);
  REQUIRE(z.at({1, 2}) == 0.0);
  Tensor f = Tensor::full({4}, 2.5, DType::Float32);
  REQUIRE(f.at({3}) == 2.5);
  Tensor a = Tensor::arange(5);
  REQUIRE(a.dtype() == DType::Int64);
  REQUIRE(a.to_vector() == std::vector<double>{0, 1, 2, 3, 4});
  Tensor v = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
  REQUIRE(v.at({1, 0}) == 4.0);
  REQUIRE(v.at({-1, -1}) == 6.0);
  REQUIRE(Tensor::scalar(3.0).dim() == 0);
}

TEST_CASE("tensor: views share storage, clone copies", "[tensor]") {
  Tensor v = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor r = v.reshape({3, -1});
  REQUIRE(r.shape() == Shape{3, 2});
  REQUIRE(r.shares_storage(v));
  r.set({0, 0}, 10.0);
  REQUIRE(v.at({0, 0}) == 10.0);
  Tensor row = v.rows(1, 2);
  REQUIRE(row.shape() == Shape{1, 3});
  REQUIRE(row.at({0, 1}) == 5.0);
  Tensor c = v.clone();
  c.set({0, 0}, -1.0);
  REQUIRE(v.at({0, 0}) == 10.0);
  REQUIRE(!c.shares_storage(v));
}

TEST_CASE("tensor: to(dtype) converts values", "[tensor]") {
  Tensor v = Tensor::from_vector(std::vector<double>{1.5, -2.25}, {2});
  Tensor f = v.to(DType::Float32);
  REQUIRE(f.dtype() == DType::Float32);
  REQUIRE(f.at({1}) == -2.25);
  Tensor b = v.to(DType::Bool);
  REQUIRE(b.at({0}) == 1.0);
  REQUIRE(v.to(DType::Float64).shares_storage(v));
}

TEST_CASE("tensor: seeded generators are reproducible and restorable", "[tensor][random]") {
  Generator g(42);
  Tensor a = Tensor::uniform({100}, -1, 1, g, DType::Float64);
  GeneratorState saved = g.state();
  Tensor b = Tensor::normal({1000}, 0, 1, g, DType::Float64);
  g.set_state(saved);
  Tensor b2 = Tensor::normal({1000}, 0, 1, g, DType::Float64);
  REQUIRE(b.bit_equal(b2));
  Generator g2(42);
  REQUIRE(Tensor::uniform({100}, -1, 1, g2, DType::Float64).bit_equal(a));
  double mean = 0, var = 0;
  for (double x : b.to_vector()) mean += x / 1000;
  for (double x : b.to_vector()) var += (x - mean) * (x - mean) / 1000;
  REQUIRE(std::abs(mean) < 0.1);
  REQUIRE(std::abs(var - 1.0) < 0.1);
  for (double x : a.to_vector()) REQUIRE((x >= -1 && x < 1));
}

TEST_CASE("tensor: bad input throws naming the op and shapes", "[tensor][errors]") {
  Tensor v = Tensor::zeros({2, 3});
  REQUIRE_THROWS_WITH(v.reshape({4, 2}), Contains("[reshape] shape [4, 2] is invalid for input [2, 3]"));
  REQUIRE_THROWS_WITH(v.at({2, 0}), Contains("[Tensor::at] index 2 out of range for dim 0 of shape [2, 3]"));
  REQUIRE_THROWS_WITH(Tensor::from_vector(std::vector<double>{1, 2}, {3}), Contains("[from_vector] got 2 values"));
  REQUIRE_THROWS_WITH(v.data<double>(), Contains("requested float64 from a float32 tensor"));
  REQUIRE_THROWS_WITH(broadcast_shapes("add", {2, 3}, {4}), Contains("[add] shapes cannot be broadcast; got a=[2, 3], b=[4]"));
}
