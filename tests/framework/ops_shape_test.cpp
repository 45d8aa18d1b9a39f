#include <cstdint>
#include <limits>

#include "framework/kernels/permute.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/ops/shape.h"
#include "tapegrad/framework/runtime.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

Var iota(const Shape& shape, bool requires_grad = false) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return Var(Tensor::from_vector(v, shape), requires_grad);
}

std::vector<int64_t> unravel(int64_t flat, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = flat % s[d];
    flat /= s[d];
  }
  return idx;
}

// out[i_0, .., i_{r-1}] = x[j] with j[dims[k]] = i_k, element by element.
Tensor naive_permute(const Tensor& x, const std::vector<int64_t>& dims) {
  Shape os(dims.size());
  for (size_t k = 0; k < dims.size(); ++k) os[k] = x.shape()[static_cast<size_t>(dims[k])];
  Tensor out = Tensor::zeros(os, x.dtype());
  for (int64_t f = 0; f < out.numel(); ++f) {
    auto i = unravel(f, os);
    std::vector<int64_t> j(dims.size());
    for (size_t k = 0; k < dims.size(); ++k) j[static_cast<size_t>(dims[k])] = i[k];
    out.set_flat(f, x.at(j));
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- views

TEST_CASE("reshape: a view sharing storage, with -1 inferred", "[ops][shape]") {
  Var x = iota({2, 3, 4});
  Var y = reshape(x, {4, -1});
  REQUIRE(y.shape() == Shape{4, 6});
  REQUIRE(y.value().shares_storage(x.value()));
  REQUIRE(y.value().to_vector() == x.value().to_vector());
  REQUIRE(reshape(x, {24}).value().at({13}) == 13.0);
}

TEST_CASE("reshape: grad matches finite differences (also of a transposed input)", "[ops][grad]") {
  auto x = rand_var({2, 3, 4}, 1), w = rand_var({6, 4}, 2);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return reshape(v[0], {6, -1}); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return reshape(transpose(v[0], 0, 1), {-1, 4}) * v[1]; }, {x, w});
}

TEST_CASE("reshape: bad shape throws", "[ops][errors]") {
  Var x = iota({2, 3});
  REQUIRE_THROWS_WITH(reshape(x, {4, 4}), Contains("[reshape] shape [4, 4] is invalid for input [2, 3]"));
}

TEST_CASE("flatten: merges a range of dims as a view", "[ops][shape]") {
  Var x = iota({2, 3, 4});
  REQUIRE(flatten(x).shape() == Shape{24});
  REQUIRE(flatten(x, 1).shape() == Shape{2, 12});
  REQUIRE(flatten(x, 0, 1).shape() == Shape{6, 4});
  REQUIRE(flatten(x, -2, -2).shape() == Shape{2, 3, 4});
  REQUIRE(flatten(x, 1).value().shares_storage(x.value()));
  REQUIRE(flatten(Var(Tensor::scalar(2.0, DType::Float64))).shape() == Shape{1});
  auto v = rand_var({2, 3, 2}, 3);
  REQUIRE_GRADCHECK([](const std::vector<Var>& a) { return flatten(a[0], 1) * flatten(a[0], 1); }, {v});
}

TEST_CASE("flatten: bad dims throw", "[ops][errors]") {
  Var x = iota({2, 3});
  REQUIRE_THROWS_WITH(flatten(x, 1, 0),
                      Contains("[flatten] start_dim cannot come after end_dim; got start_dim=1, end_dim=0, x=[2, 3]"));
  REQUIRE_THROWS_WITH(flatten(x, 0, 2), Contains("[flatten] end_dim 2 out of range for a 2-d tensor; got x=[2, 3]"));
}

TEST_CASE("unsqueeze/squeeze: insert and remove size-1 dims as views", "[ops][shape]") {
  Var x = iota({2, 3});
  REQUIRE(unsqueeze(x, 0).shape() == Shape{1, 2, 3});
  REQUIRE(unsqueeze(x, 2).shape() == Shape{2, 3, 1});
  REQUIRE(unsqueeze(x, -1).shape() == Shape{2, 3, 1});
  REQUIRE(unsqueeze(x, -3).shape() == Shape{1, 2, 3});
  REQUIRE(unsqueeze(Var(Tensor::scalar(1.0)), 0).shape() == Shape{1});
  Var y = iota({2, 1, 3});
  REQUIRE(squeeze(y, 1).shape() == Shape{2, 3});
  REQUIRE(squeeze(y, -2).shape() == Shape{2, 3});
  REQUIRE(squeeze(y, 0).shape() == Shape{2, 1, 3});   // size 2: unchanged, as PyTorch
  REQUIRE(squeeze(y, 1).value().shares_storage(y.value()));
  auto v = rand_var({3, 1, 2}, 4), w = rand_var({3, 2}, 5);
  REQUIRE_GRADCHECK([](const std::vector<Var>& a) { return squeeze(a[0], 1) * a[1]; }, {v, w});
  REQUIRE_GRADCHECK([](const std::vector<Var>& a) { return unsqueeze(a[1], 1) + a[0]; }, {v, w});
}

TEST_CASE("unsqueeze/squeeze: bad dims throw", "[ops][errors]") {
  Var x = iota({2, 3});
  REQUIRE_THROWS_WITH(unsqueeze(x, 3), Contains("[unsqueeze] dim 3 out of range [-3, 2]; got x=[2, 3]"));
  Var y = iota({2, 1});
  REQUIRE_THROWS_WITH(squeeze(y, 2), Contains("[squeeze] dim 2 out of range for a 2-d tensor; got x=[2, 1]"));
}

// ---------------------------------------------------------------- transpose / permute / expand

TEST_CASE("transpose: swaps two dims into a contiguous copy", "[ops][shape]") {
  Var x = iota({2, 3});
  Var t = transpose(x, 0, 1);
  REQUIRE(t.shape() == Shape{3, 2});
  REQUIRE(t.value().to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
  REQUIRE(transpose(x, -1, -2).value().to_vector() == t.value().to_vector());
  REQUIRE(transpose(x, 1, 1).value().to_vector() == x.value().to_vector());
  Tensor b = rand_tensor({2, 3, 4}, 6);
  REQUIRE(transpose(Var(b), 0, 2).value().bit_equal(naive_permute(b, {2, 1, 0})));
}

TEST_CASE("transpose: grad matches finite differences (feeding other ops)", "[ops][grad]") {
  auto x = rand_var({2, 3, 4}, 7), y = rand_var({4, 3, 2}, 8);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return transpose(v[0], 0, 2) * v[1]; }, {x, y});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return transpose(v[0], 1, 2) + transpose(v[0], 2, 1); }, {x});
}

TEST_CASE("transpose: bad dims throw", "[ops][errors]") {
  Var x = iota({2, 3, 4});
  REQUIRE_THROWS_WITH(transpose(x, 0, 5),
                      Contains("[transpose] dim1 5 out of range for a 3-d tensor; got x=[2, 3, 4]"));
  REQUIRE_THROWS_WITH(transpose(x, -4, 0),
                      Contains("[transpose] dim0 -4 out of range for a 3-d tensor; got x=[2, 3, 4]"));
}

TEST_CASE("permute: matches an element-wise reference for every layout and dtype", "[ops][shape]") {
  struct Case { Shape shape; std::vector<int64_t> dims; };
  std::vector<Case> cases{
      {{2, 5, 3, 4}, {0, 2, 1, 3}},        // split heads [B, T, H, D] -> [B, H, T, D]: runs of D
      {{2, 3, 5, 4}, {0, 2, 1, 3}},        // merge heads back
      {{2, 5, 3, 4}, {0, 2, 3, 1}},        // [B, T, H, D] -> [B, H, D, T]: innermost dim moves (tiles)
      {{37, 70}, {1, 0}},                  // plain matrix transpose crossing tile edges
      {{3, 1, 4, 1, 5}, {4, 2, 0, 3, 1}},  // size-1 dims dropped
      {{2, 3, 4, 5}, {2, 3, 0, 1}},        // merged pairs
      {{6, 1, 7}, {1, 0, 2}},              // no-op after dropping size-1 dims
      {{4, 0, 3}, {2, 0, 1}},              // empty
      {{}, {}},                            // 0-d
  };
  for (const Case& c : cases)
    for (DType dt : {DType::Float32, DType::Float64}) {
      Tensor x = rand_tensor(c.shape, 9, -1.0, 1.0, dt);
      INFO(to_string(c.shape) << " dims " << to_string(c.dims));
      REQUIRE(permute(Var(x), c.dims).value().bit_equal(naive_permute(x, c.dims)));
    }
  Tensor ints = Tensor::arange(120).reshape({2, 3, 4, 5});
  REQUIRE(kernels::permute(ints, {3, 1, 0, 2}).bit_equal(naive_permute(ints, {3, 1, 0, 2})));
  Tensor mask = Tensor::from_bools({true, false, false, true, true, false}, {2, 3});
  REQUIRE(permute(Var(mask), {1, 0}).value().to_vector() == std::vector<double>{1, 1, 0, 1, 0, 0});
  REQUIRE(permute(Var(ints), {-1, 0, 1, 2}).value().bit_equal(naive_permute(ints, {3, 0, 1, 2})));
}

TEST_CASE("permute: grad matches finite differences (attention head split and merge)", "[ops][grad]") {
  auto x = rand_var({2, 3, 2, 4}, 10), w = rand_var({2, 2, 3, 4}, 11);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return permute(v[0], {0, 2, 1, 3}) * v[1]; }, {x, w});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return permute(permute(v[0], {0, 2, 3, 1}), {3, 0, 2, 1}); }, {x});
}

TEST_CASE("permute: bad dims throw", "[ops][errors]") {
  Var x = iota({2, 3, 4});
  REQUIRE_THROWS_WITH(permute(x, {0, 0, 1}),
                      Contains("[permute] dims must list each of the 3 dims once; got dims=[0, 0, 1], x=[2, 3, 4]"));
  REQUIRE_THROWS_WITH(permute(x, {0, 1}),
                      Contains("[permute] dims must list each of the 3 dims once; got dims=[0, 1], x=[2, 3, 4]"));
  REQUIRE_THROWS_WITH(permute(x, {0, 1, 3}),
                      Contains("[permute] dims must list each of the 3 dims once; got dims=[0, 1, 3], x=[2, 3, 4]"));
}

TEST_CASE("expand: repeats size-1 and new leading dims, -1 keeps a size", "[ops][shape]") {
  Var x(Tensor::from_vector(std::vector<double>{1, 2, 3}, {3, 1}));
  Var y = expand(x, {2, -1, 2});
  REQUIRE(y.shape() == Shape{2, 3, 2});
  REQUIRE(y.value().to_vector() == std::vector<double>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});
  REQUIRE(expand(x, {3, 0}).shape() == Shape{3, 0});
  auto v = rand_var({3, 1}, 12);
  REQUIRE_GRADCHECK([](const std::vector<Var>& a) { return expand(a[0], {2, -1, 4}); }, {v});
  REQUIRE_GRADCHECK([](const std::vector<Var>& a) { return expand(a[0], {3, 2}) * expand(a[0], {3, 2}); }, {v});
}

TEST_CASE("expand: bad shapes throw", "[ops][errors]") {
  Var x = iota({2, 3});
  REQUIRE_THROWS_WITH(expand(x, {2, 4}), Contains("[expand] the expanded size 4 must match the existing size 3 at "
                                                   "non-singleton dim 1; got x=[2, 3], shape=[2, 4]"));
  REQUIRE_THROWS_WITH(expand(x, {-1, 2, 3}),
                      Contains("[expand] -1 is not allowed in the leading new dim 0; got x=[2, 3], shape=[-1, 2, 3]"));
  REQUIRE_THROWS_WITH(expand(x, {3}), Contains("[expand] shape has fewer dims than x; got x=[2, 3], shape=[3]"));
}

// ---------------------------------------------------------------- concat / split / narrow / slice

TEST_CASE("concat: joins along a dim", "[ops][shape]") {
  Var a = iota({2, 2}), b = iota({2, 1}), c = iota({2, 3});
  Var y = concat({a, b, c}, 1);
  REQUIRE(y.shape() == Shape{2, 6});
  REQUIRE(y.value().to_vector() == std::vector<double>{0, 1, 0, 0, 1, 2, 2, 3, 1, 3, 4, 5});
  Var z = concat({a, iota({1, 2})}, -2);
  REQUIRE(z.value().to_vector() == std::vector<double>{0, 1, 2, 3, 0, 1});
  Var skip = concat({Var(Tensor::zeros({0}, DType::Float64)), a}, 0);   // PyTorch 1.13 skips 1-d empty tensors
  REQUIRE(skip.value().to_vector() == a.value().to_vector());
}

TEST_CASE("concat: grad matches finite differences (3 inputs, one without grad)", "[ops][grad]") {
  auto a = rand_var({2, 3}, 13), b = rand_var({2, 1}, 14, -1, 1, false), c = rand_var({2, 2}, 15);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return concat({v[0], v[1], v[2]}, 1); }, {a, b, c});
  auto d = rand_var({1, 3}, 16);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return concat({v[0], v[1], v[0]}, 0); }, {a, d});
  Var x(a.value().clone(), true);
  Var y = concat({x, b, x}, 1);
  y.backward(Tensor::ones(y.shape(), DType::Float64));
  REQUIRE(x.grad().to_vector() == std::vector<double>(6, 2.0));
  REQUIRE_FALSE(b.grad().defined());
}

TEST_CASE("concat: bad input throws", "[ops][errors]") {
  Var a = iota({2, 3}), b = iota({3, 3}), v = iota({3});
  REQUIRE_THROWS_WITH(concat({}, 0), Contains("[concat] expected a non-empty list of tensors"));
  REQUIRE_THROWS_WITH(concat({a, b}, 1),
                      Contains("[concat] sizes must match except in dim 1; got xs[0]=[2, 3], xs[1]=[3, 3]"));
  REQUIRE_THROWS_WITH(concat({a, v}, 0),
                      Contains("[concat] tensors must have the same number of dims; got xs[0]=[2, 3], xs[1]=[3]"));
  Var f(Tensor::zeros({2, 3}, DType::Float32));
  REQUIRE_THROWS_WITH(concat({a, f}, 0),
                      Contains("[concat] all tensors must have one dtype; "
                               "got xs[0]=float64[2, 3], xs[1]=float32[2, 3]"));
  REQUIRE_THROWS_WITH(concat({a, Var(Tensor::scalar(1.0, DType::Float64))}, 0),
                      Contains("[concat] a 0-d tensor cannot be concatenated; got xs[1]=[]"));
  REQUIRE_THROWS_WITH(concat({a, a}, 2), Contains("[concat] dim 2 out of range for a 2-d tensor; got x=[2, 3]"));
}

TEST_CASE("split: pieces of split_size or of given sizes", "[ops][shape]") {
  Var x = iota({5, 2});
  auto p = split(x, 2);
  REQUIRE(p.size() == 3);
  REQUIRE(p[0].value().to_vector() == std::vector<double>{0, 1, 2, 3});
  REQUIRE(p[2].shape() == Shape{1, 2});
  REQUIRE(p[2].value().to_vector() == std::vector<double>{8, 9});
  REQUIRE(p[1].value().shares_storage(x.value()));   // dim 0 pieces are views
  auto q = split(x, std::vector<int64_t>{1, 0, 1}, -1);
  REQUIRE(q.size() == 3);
  REQUIRE(q[1].shape() == Shape{5, 0});
  REQUIRE(q[2].value().to_vector() == std::vector<double>{1, 3, 5, 7, 9});
  auto e = split(Var(Tensor::zeros({0, 3})), 2);
  REQUIRE(e.size() == 1);
  REQUIRE(e[0].shape() == Shape{0, 3});
  REQUIRE(split(Var(Tensor::zeros({0, 3})), 0).size() == 1);
}

TEST_CASE("split: grad matches finite differences through only some pieces", "[ops][grad]") {
  auto x = rand_var({3, 7}, 17);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) {
    auto p = split(v[0], 3, 1);   // [3, 3], [3, 3], [3, 1]: the middle piece is unused
    return p[0] * 2.0 + p[0] * expand(p[2], {3, 3});
  }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) {
    auto p = split(v[0], std::vector<int64_t>{2, 1}, 0);
    return p[1] * p[1];
  }, {x});
  Var y(x.value().clone(), true);
  auto p = split(y, std::vector<int64_t>{2, 1}, 0);
  sum(p[1]).backward();
  REQUIRE(y.grad().to_vector() == std::vector<double>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1});
}

TEST_CASE("split: bad sizes throw", "[ops][errors]") {
  Var x = iota({4, 3});
  REQUIRE_THROWS_WITH(split(x, -1), Contains("[split] split_size must be non-negative; got split_size=-1"));
  REQUIRE_THROWS_WITH(split(x, 0),
                      Contains("[split] split_size can only be 0 if the dim size is 0; "
                               "got split_size=0, dim 0 of x=[4, 3]"));
  REQUIRE_THROWS_WITH(split(x, std::vector<int64_t>{1, 2}),
                      Contains("[split] split_sizes must be non-negative and sum to 4, the size of dim 0; "
                               "got split_sizes=[1, 2], x=[4, 3]"));
  REQUIRE_THROWS_WITH(split(x, std::vector<int64_t>{5, -1}),
                      Contains("[split] split_sizes must be non-negative and sum to 4"));
  REQUIRE_THROWS_WITH(split(x, 1, 2), Contains("[split] dim 2 out of range for a 2-d tensor; got x=[4, 3]"));
}

TEST_CASE("narrow: a range along a dim, negative start counted from the end", "[ops][shape]") {
  Var x = iota({4, 3});
  Var a = narrow(x, 0, 1, 2);
  REQUIRE(a.value().to_vector() == std::vector<double>{3, 4, 5, 6, 7, 8});
  REQUIRE(a.value().shares_storage(x.value()));
  REQUIRE(narrow(x, 1, -2, 2).value().to_vector() == std::vector<double>{1, 2, 4, 5, 7, 8, 10, 11});
  REQUIRE(narrow(x, 0, 4, 0).shape() == Shape{0, 3});
  auto v = rand_var({3, 5, 2}, 18);
  REQUIRE_GRADCHECK([](const std::vector<Var>& a) { return narrow(a[0], 1, 1, 3); }, {v});
  REQUIRE_GRADCHECK([](const std::vector<Var>& a) { return narrow(a[0], 1, 0, 2) * narrow(a[0], -2, -2, 2); }, {v});
}

TEST_CASE("narrow: bad ranges throw", "[ops][errors]") {
  Var x = iota({4, 3});
  REQUIRE_THROWS_WITH(narrow(x, 0, 5, 0), Contains("[narrow] start 5 out of range for dim 0 of size 4; got x=[4, 3]"));
  REQUIRE_THROWS_WITH(narrow(x, 0, 1, 4),
                      Contains("[narrow] start 1 + length 4 exceeds the size 4 of dim 0; got x=[4, 3]"));
  REQUIRE_THROWS_WITH(narrow(x, 0, 1, -1), Contains("[narrow] length must be non-negative; got length=-1, x=["));
  REQUIRE_THROWS_WITH(narrow(Var(Tensor::scalar(1.0)), 0, 0, 1),
                      Contains("[narrow] cannot narrow a 0-d tensor; got x=[]"));
}

TEST_CASE("slice: Python slicing semantics with clamping and steps", "[ops][shape]") {
  Var x = iota({7});
  struct Case { int64_t start, end, step; std::vector<double> want; };   // Python list(range(7))[start:end:step]
  std::vector<Case> cases{{1, 5, 1, {1, 2, 3, 4}}, {-3, 100, 1, {4, 5, 6}}, {-100, 3, 2, {0, 2}},
                          {5, 2, 1, {}}, {0, std::numeric_limits<int64_t>::max(), 3, {0, 3, 6}},
                          {-1, -8, 1, {}}, {2, -1, 2, {2, 4}}, {-7, 7, 4, {0, 4}}};
  for (const Case& c : cases) {
    INFO(c.start << ":" << c.end << ":" << c.step);
    REQUIRE(slice(x, 0, c.start, c.end, c.step).value().to_vector() == c.want);
  }
  Var m = iota({3, 4});
  REQUIRE(slice(m, 1, 1, 4, 2).value().to_vector() == std::vector<double>{1, 3, 5, 7, 9, 11});
  REQUIRE(slice(m, -2, 1, 3).value().to_vector() == std::vector<double>{4, 5, 6, 7, 8, 9, 10, 11});
}

TEST_CASE("slice: grad matches finite differences (steps and negative bounds)", "[ops][grad]") {
  auto v = rand_var({3, 7, 2}, 19);
  REQUIRE_GRADCHECK([](const std::vector<Var>& a) { return slice(a[0], 1, 1, 7, 2); }, {v});
  REQUIRE_GRADCHECK([](const std::vector<Var>& a) { return slice(a[0], 1, -4, -1) + slice(a[0], 1, 0, 3); }, {v});
  REQUIRE_GRADCHECK([](const std::vector<Var>& a) { return slice(a[0], 0, 0, 3, 2) * 3.0; }, {v});
}

TEST_CASE("slice: bad arguments throw", "[ops][errors]") {
  Var x = iota({4, 3});
  REQUIRE_THROWS_WITH(slice(x, 0, 0, 2, 0), Contains("[slice] step must be positive; got step=0, x=[4, 3]"));
  REQUIRE_THROWS_WITH(slice(Var(Tensor::scalar(1.0)), 0, 0, 1),
                      Contains("[slice] cannot slice a 0-d tensor; got x=[]"));
  REQUIRE_THROWS_WITH(slice(x, 2, 0, 1), Contains("[slice] dim 2 out of range for a 2-d tensor; got x=[4, 3]"));
}

// ---------------------------------------------------------------- index_select / embedding

TEST_CASE("index_select: values and scatter-added grad with repeated indices", "[ops][shape]") {
  Var x = iota({3, 4}, true);
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{3, 0, 3}, {3});
  Var y = index_select(x, 1, idx);
  // x.index_select(1, [3, 0, 3]) and its grad for ones, PyTorch 1.13
  REQUIRE(y.value().to_vector() == std::vector<double>{3, 0, 3, 7, 4, 7, 11, 8, 11});
  y.backward(Tensor::ones({3, 3}, DType::Float64));
  REQUIRE(x.grad().to_vector() == std::vector<double>{1, 0, 0, 2, 1, 0, 0, 2, 1, 0, 0, 2});
  Var row = index_select(iota({5}), 0, Tensor::from_vector(std::vector<int64_t>{2}, {}));
  REQUIRE(row.shape() == Shape{1});
  REQUIRE(row.item() == 2.0);
  Var s = index_select(Var(Tensor::scalar(3.0, DType::Float64)), 0, Tensor::from_vector(std::vector<int64_t>{0}, {1}));
  REQUIRE(s.shape() == Shape{});
  REQUIRE(index_select(iota({2, 3}), 0, Tensor::zeros({0}, DType::Int64)).shape() == Shape{0, 3});
}

TEST_CASE("index_select: grad matches finite differences with repeated indices", "[ops][grad]") {
  auto x = rand_var({4, 3, 2}, 20);
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{2, 2, 0, 1, 2}, {5});
  REQUIRE_GRADCHECK([idx](const std::vector<Var>& v) { return index_select(v[0], 0, idx); }, {x});
  REQUIRE_GRADCHECK([idx](const std::vector<Var>& v) { return index_select(v[0], 1, idx.rows(2, 5)) * 2.0; }, {x});
  REQUIRE_GRADCHECK([idx](const std::vector<Var>& v) { return index_select(transpose(v[0], 0, 2), -1, idx); }, {x});
}

TEST_CASE("index_select: bad index throws naming it", "[ops][errors]") {
  Var x = iota({5, 3});
  REQUIRE_THROWS_WITH(index_select(x, 0, Tensor::from_vector(std::vector<int64_t>{1, 7}, {2})),
                      Contains("[index_select] index 7 out of range for dim 0 of size 5; got x=[5, 3], index=[2]"));
  REQUIRE_THROWS_WITH(index_select(x, 1, Tensor::from_vector(std::vector<int64_t>{-1}, {1})),
                      Contains("[index_select] index -1 out of range for dim 1 of size 3; got x=[5, 3], index=[1]"));
  REQUIRE_THROWS_WITH(index_select(x, 0, Tensor::zeros({2}, DType::Float64)),
                      Contains("[index_select] index must be an int64 tensor with at most one dim; "
                               "got index=float64[2]"));
  REQUIRE_THROWS_WITH(index_select(x, 0, Tensor::zeros({2, 2}, DType::Int64)),
                      Contains("[index_select] index must be an int64 tensor with at most one dim; "
                               "got index=int64[2, 2]"));
  REQUIRE_THROWS_WITH(index_select(x, 2, Tensor::zeros({1}, DType::Int64)),
                      Contains("[index_select] dim 2 out of range for a 2-d tensor; got x=[5, 3]"));
}

TEST_CASE("embedding: rows of the weight, padding_idx row gets zero grad (PyTorch values)", "[ops][shape]") {
  Var w = iota({5, 3}, true);
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{4, 0, 4, 2}, {2, 2});
  Var e = embedding(w, idx, -1);   // padding_idx -1 -> 4
  REQUIRE(e.shape() == Shape{2, 2, 3});
  // F.embedding(idx, w, padding_idx=-1) and w.grad for upstream arange(12).reshape(2, 2, 3), PyTorch 1.13
  REQUIRE(e.value().to_vector() == std::vector<double>{12, 13, 14, 0, 1, 2, 12, 13, 14, 6, 7, 8});
  e.backward(iota({2, 2, 3}).value());
  REQUIRE(w.grad().to_vector() == std::vector<double>{3, 4, 5, 0, 0, 0, 9, 10, 11, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("embedding: grad matches finite differences with repeated indices", "[ops][grad]") {
  auto w = rand_var({6, 4}, 21);
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{1, 5, 1, 1, 0, 5}, {2, 3});
  REQUIRE_GRADCHECK([idx](const std::vector<Var>& v) { return embedding(v[0], idx); }, {w});
  Tensor flat = idx.reshape({6});
  REQUIRE_GRADCHECK([flat](const std::vector<Var>& v) { return embedding(v[0], flat) * embedding(v[0], flat); }, {w});
  // With padding_idx, the padding row's gradient is zero and every other row is unchanged.
  Tensor up = rand_tensor({2, 3, 4}, 22);
  Var a(w.value().clone(), true), b(w.value().clone(), true);
  embedding(a, idx).backward(up);
  embedding(b, idx, 1).backward(up);
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t c = 0; c < 4; ++c) REQUIRE(b.grad().at({r, c}) == (r == 1 ? 0.0 : a.grad().at({r, c})));
  REQUIRE(a.grad().at({1, 0}) != 0.0);
}

TEST_CASE("embedding: bad input throws naming the index", "[ops][errors]") {
  Var w = iota({5, 3});
  Tensor bad = Tensor::from_vector(std::vector<int64_t>{0, 7, 1, 2}, {2, 2});
  REQUIRE_THROWS_WITH(embedding(w, bad),
                      Contains("[embedding] index 7 out of range for num_embeddings=5; "
                               "got weight=[5, 3], indices=[2, 2]"));
  REQUIRE_THROWS_WITH(embedding(w, Tensor::from_vector(std::vector<int64_t>{-1}, {1})),
                      Contains("[embedding] index -1 out of range for num_embeddings=5"));
  REQUIRE_THROWS_WITH(embedding(iota({5}), bad), Contains("[embedding] weight must be 2-d; got weight=[5]"));
  REQUIRE_THROWS_WITH(embedding(w, Tensor::zeros({3}, DType::Float32)),
                      Contains("[embedding] indices must be int64; got indices=float32[3]"));
  Tensor ok = Tensor::zeros({2}, DType::Int64);
  REQUIRE_THROWS_WITH(embedding(w, ok, 5),
                      Contains("[embedding] padding_idx 5 out of range for num_embeddings=5; got weight=[5, 3]"));
  REQUIRE_THROWS_WITH(embedding(w, ok, -6), Contains("[embedding] padding_idx -6 out of range for num_embeddings=5"));
}

// ---------------------------------------------------------------- determinism

TEST_CASE("index_select/embedding/permute/concat: determinism of values and grads across thread counts",
          "[ops][shape][determinism]") {
  Tensor table = rand_tensor({300, 96}, 23, -1.0, 1.0, DType::Float32);
  Generator gen(24);
  Tensor draw = Tensor::uniform({64, 50}, 0.0, 40.0, gen, DType::Float64);   // many repeats among 40 rows
  std::vector<int64_t> ids(static_cast<size_t>(draw.numel()));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(draw.flat(static_cast<int64_t>(i)));
  Tensor idx = Tensor::from_vector(ids, {64, 50}), flat = idx.reshape({3200});
  Tensor up = rand_tensor({64, 50, 96}, 25, -1.0, 1.0, DType::Float32);
  Tensor up_sel = rand_tensor({8, 3200, 12}, 26, -1.0, 1.0, DType::Float32);
  auto run = [&](int threads) {
    set_num_threads(threads);
    Var w(table.clone(), true), x(table.reshape({300, 8, 12}).clone(), true);
    Var e = embedding(w, idx, 3);
    e.backward(up);
    Var s = index_select(permute(x, {1, 0, 2}), 1, flat);   // [8, 3200, 12]
    s.backward(up_sel);
    Var c = concat({x, x, x}, 1);
    return std::vector<Tensor>{e.value(), w.grad(), s.value(), x.grad(), c.value()};
  };
  auto [one, two] = require_same_bits_across_threads(run);
  REQUIRE(std::abs(one[1].at({3, 0})) == 0.0);   // padding row
}
