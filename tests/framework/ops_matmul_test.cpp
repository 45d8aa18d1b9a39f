#include <cmath>

#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/runtime.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// Fixed inputs (multiples of 1/64, exact in float32) and upstream gradients; the PyTorch 1.13 reference
// values below were computed from the same formulas in float64:
//   x = [((i*i*3 + i*5 + 2) % 29 - 14) / 16 * (b - a) / 4 + (a + b) / 2], gy = [((i*5 + 1) % 13 - 6) / 8]


// torch.matmul by its definition, one output element at a time (1-D operands promoted and the added
// dim dropped, batch dims broadcast).
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  Shape as = a.dim() == 1 ? Shape{1, a.size(0)} : a.shape(), bs = b.dim() == 1 ? Shape{b.size(0), 1} : b.shape();
  int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  Shape ab(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  Shape batch = broadcast_shapes("test", ab, bb);
  Shape out = batch;
  if (a.dim() > 1) out.push_back(M);
  if (b.dim() > 1) out.push_back(N);
  Tensor y(out, DType::Float64);
  auto index_in = [](const Shape& own, const Shape& full, int64_t flat) {   // broadcast batch index
    int64_t idx = 0, stride = 1;
    for (size_t d = full.size(); d-- > 0;) {
      int64_t k = flat % full[d];
      flat /= full[d];
      size_t off = full.size() - own.size();
      if (d >= off && own[d - off] != 1) idx += k * stride;
      if (d >= off) stride *= own[d - off];
    }
    return idx;
  };
  for (int64_t bi = 0; bi < numel(batch); ++bi) {
    int64_t ia = index_in(ab, batch, bi), ib = index_in(bb, batch, bi);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += a.flat((ia * M + m) * K + k) * b.flat((ib * K + k) * N + n);
        y.set_flat((bi * M + m) * N + n, s);
      }
  }
  return y;
}

// Every rank combination and broadcast pattern the tests cover.
const std::vector<std::pair<Shape, Shape>> kShapes = {
    {{4}, {4}},                   // dot
    {{3, 4}, {4, 2}},             // 2-D x 2-D
    {{4}, {4, 3}},                // 1-D x 2-D
    {{3, 4}, {4}},                // 2-D x 1-D
    {{4}, {2, 4, 3}},             // 1-D x batched
    {{2, 3, 4}, {4}},             // batched x 1-D
    {{2, 3, 4}, {4, 5}},          // batched x 2-D (folded into one GEMM)
    {{3, 4}, {2, 4, 5}},          // 2-D x batched
    {{2, 3, 4}, {2, 4, 5}},       // same batch
    {{2, 3, 4}, {1, 4, 2}},       // batch dim of 1 on the right
    {{1, 3, 4}, {2, 4, 2}},       // batch dim of 1 on the left
    {{2, 1, 3, 4}, {5, 4, 6}},    // broadcast both ways: [2, 5, 3, 6]
    {{1, 3, 2, 4}, {2, 1, 4, 3}}, // [2, 3, 2, 3]
};

}  // namespace

namespace {
// PyTorch 1.13 reference values (float64) for matmul(a [2, 1, 2, 3], b [3, 3, 2]) with a = pattern(12, -1, 1),
// b = pattern(18, -2, 1), gy = upstream(24); and linear(x [2, 3, 4], weight [5, 4], bias [5]) with
// x = pattern(24, -1, 1), weight = pattern(20, -0.5, 0.5), bias = i / 16, gy = upstream(30).
const std::vector<double> k_mm_y{
    0.216796875, 0.1728515625, -0.0498046875, -0.00732421875, -0.158203125, 0.24609375, 0.03515625, 0.03515625,
    0.2021484375, 0.03515625, -0.0498046875, -0.00732421875, -0.10546875, 0.01171875, 0.474609375, 0.4423828125,
    0.486328125, 0.1171875, 0.345703125, 0.662109375, -0.0556640625, -0.0615234375, 0.5244140625, 0.0};
const std::vector<double> k_mm_ga{
    1.716796875, 0.697265625, 0.87890625, -1.55859375, -0.416015625, -0.896484375, -0.64453125, 0.263671875,
    -0.099609375, -0.517578125, 0.724609375, 0.4609375};
const std::vector<double> k_mm_gb{
    0.37109375, -0.48046875, -0.0078125, -0.09375, -0.31640625, 0.22265625, 0.11328125, 0.4296875, 0.2578125,
    0.0703125, 0.21484375, -0.3125, 0.3125, -0.5390625, -0.0859375, -0.171875, -0.3203125, 0.21875};
const std::vector<double> k_lin_y{
    0.12744140625, 0.119140625, 0.173828125, 0.29150390625, 0.2880859375, 0.056640625, 0.12158203125,
    0.0810546875, 0.21826171875, 0.2783203125, 0.048828125, 0.0185546875, 0.33984375, 0.1630859375, 0.16796875,
    0.10400390625, 0.09326171875, 0.1005859375, 0.42333984375, 0.39599609375, 0.0380859375, 0.0908203125,
    0.04296875, 0.33349609375, 0.36767578125, 0.0068359375, 0.09619140625, 0.025390625, 0.19091796875,
    0.2529296875};
const std::vector<double> k_lin_gx{
    0.056640625, -0.103515625, -0.21875, -0.0625, 0.142578125, -0.111328125, -0.265625, -0.09375, -0.076171875,
    -0.220703125, -0.05859375, -0.099609375, 0.009765625, -0.228515625, -0.10546875, -0.130859375, -0.234375,
    -0.0078125, 0.05078125, 0.16796875, -0.1484375, -0.015625, 0.00390625, 0.13671875};
const std::vector<double> k_lin_gw{
    -0.19140625, 0.03125, -0.26171875, 0.515625, 0.09765625, -0.08984375, -0.40234375, -0.38671875, -0.52734375,
    -0.109375, 0.3203125, 0.08203125, 0.828125, 0.27734375, 0.12890625, 0.04296875, -0.15234375, -0.09765625,
    -0.11328125, -0.19921875};
const std::vector<double> k_lin_gb{
    0.875, -1.875, 1.875, -0.875, -0.375};
}  // namespace

TEST_CASE("matmul: values and grads equal PyTorch's ([2, 1, 2, 3] @ [3, 3, 2])", "[ops][parity]") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
    Var a(Tensor::from_vector(pattern(12, -1, 1), {2, 1, 2, 3}, dt), true);
    Var b(Tensor::from_vector(pattern(18, -2, 1), {3, 3, 2}, dt), true);
    Var y = matmul(a, b);
    REQUIRE(y.shape() == Shape{2, 3, 2, 2});
    y.backward(Tensor::from_vector(upstream(24), {2, 3, 2, 2}, dt));
    require_close(y.value(), k_mm_y, tol);
    require_close(a.grad(), k_mm_ga, tol);
    require_close(b.grad(), k_mm_gb, tol);
  }
}

TEST_CASE("linear: values and grads equal PyTorch's (x [2, 3, 4], weight [5, 4], bias [5])", "[ops][parity]") {
  std::vector<double> bias{0, 1.0 / 16, 2.0 / 16, 3.0 / 16, 4.0 / 16};
  for (DType dt : {DType::Float64, DType::Float32}) {
    double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
    Var x(Tensor::from_vector(pattern(24, -1, 1), {2, 3, 4}, dt), true);
    Var w(Tensor::from_vector(pattern(20, -0.5, 0.5), {5, 4}, dt), true);
    Var b(Tensor::from_vector(bias, {5}, dt), true);
    Var y = linear(x, w, b);
    REQUIRE(y.shape() == Shape{2, 3, 5});
    y.backward(Tensor::from_vector(upstream(30), {2, 3, 5}, dt));
    require_close(y.value(), k_lin_y, tol);
    require_close(x.grad(), k_lin_gx, tol);
    require_close(w.grad(), k_lin_gw, tol);
    require_close(b.grad(), k_lin_gb, tol);
  }
}

TEST_CASE("matmul: values and shapes equal the definition in every rank combination", "[ops]") {
  uint64_t seed = 100;
  for (const auto& [sa, sb] : kShapes) {
    INFO("a=" << to_string(sa) << ", b=" << to_string(sb));
    Var a = rand_var(sa, seed++), b = rand_var(sb, seed++);
    Tensor ref = naive_matmul(a.value(), b.value());
    Var y = matmul(a, b);
    REQUIRE(y.shape() == ref.shape());
    REQUIRE(max_abs_diff(y.value(), ref) <= 1e-14);
    Var yf = matmul(Var(a.value().to(DType::Float32)), Var(b.value().to(DType::Float32)));
    REQUIRE(yf.dtype() == DType::Float32);
    REQUIRE(max_abs_diff(yf.value().to(DType::Float64), ref) <= 1e-5);
  }
  REQUIRE(matmul(rand_var({4}, 1), rand_var({4}, 2)).shape() == Shape{});
  REQUIRE(matmul(rand_var({2, 1, 3, 4}, 1), rand_var({5, 4, 6}, 2)).shape() == Shape{2, 5, 3, 6});
}

TEST_CASE("matmul: grad matches finite differences in every rank combination", "[ops][grad]") {
  uint64_t seed = 200;
  for (const auto& [sa, sb] : kShapes) {
    INFO("a=" << to_string(sa) << ", b=" << to_string(sb));
    Var a = rand_var(sa, seed++), b = rand_var(sb, seed++);
    REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return matmul(v[0], v[1]); }, {a, b});
  }
}

TEST_CASE("matmul: grad of one operand alone (the other needs no grad)", "[ops][grad]") {
  Var a = rand_var({2, 1, 3, 4}, 300), b = rand_var({5, 4, 2}, 301, -1, 1, false);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return matmul(v[0], v[1]); }, {a, b});
  Var c = rand_var({3, 4}, 302, -1, 1, false), d = rand_var({2, 4, 5}, 303);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return matmul(v[0], v[1]); }, {c, d});
}

TEST_CASE("matmul: grad accumulates for an input used twice", "[ops][grad]") {
  Var a = rand_var({4, 4}, 310), v = rand_var({4}, 311), batched = rand_var({2, 3, 3}, 312);
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return matmul(x[0], x[0]); }, {a});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return matmul(x[0], x[0]); }, {v});   // dot(v, v)
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return matmul(matmul(x[0], x[0]), x[0]); }, {batched});
  Var s(Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}), true);
  matmul(s, s).backward(Tensor::ones({2, 2}, DType::Float64));
  // d sum(S S) / dS = G S^T + S^T G with G = ones: row sums of S (3, 7) plus column sums (4, 6).
  REQUIRE(s.grad().to_vector() == std::vector<double>{3 + 4, 7 + 4, 3 + 6, 7 + 6});
}

TEST_CASE("matmul: empty inner dim gives zeros and zero grads", "[ops]") {
  Var a(Tensor::zeros({3, 0}, DType::Float64), true), b(Tensor::zeros({0, 2}, DType::Float64), true);
  Var y = matmul(a, b);
  REQUIRE(y.shape() == Shape{3, 2});
  for (double v : y.value().to_vector()) REQUIRE(v == 0.0);
  y.backward(Tensor::ones({3, 2}, DType::Float64));
  REQUIRE(a.grad().shape() == Shape{3, 0});
  REQUIRE(b.grad().shape() == Shape{0, 2});
}

TEST_CASE("linear: grad matches finite differences (with and without bias, 1-D and 3-D x)", "[ops][grad]") {
  Var x = rand_var({2, 3, 4}, 320), w = rand_var({5, 4}, 321), b = rand_var({5}, 322), x1 = rand_var({4}, 323);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear(v[0], v[1], v[2]); }, {x, w, b});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear(v[0], v[1]); }, {x, w});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear(v[0], v[1], v[2]); }, {x1, w, b});
  Var sq = rand_var({3, 3}, 324);   // an input used twice: x and weight
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return linear(v[0], v[0]); }, {sq});
}

TEST_CASE("linear: equals x @ weight^T + bias", "[ops]") {
  Var x = rand_var({2, 3, 4}, 330), w = rand_var({5, 4}, 331), b = rand_var({5}, 332);
  Tensor wt({4, 5}, DType::Float64);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 4; ++j) wt.set({j, i}, w.value().at({i, j}));
  REQUIRE(max_abs_diff(linear(x, w, b).value(), (matmul(x, Var(wt)) + b).value()) <= 1e-15);
  REQUIRE(max_abs_diff(linear(x, w).value(), matmul(x, Var(wt)).value()) <= 1e-15);
}

TEST_CASE("matmul and linear: bad input throws naming op and shapes", "[ops][errors]") {
  REQUIRE_THROWS_WITH(matmul(rand_var({4, 3}, 1), rand_var({5, 2}, 2)),
                      Contains("[matmul] inner dims differ; got a=[4, 3], b=[5, 2]"));
  REQUIRE_THROWS_WITH(matmul(rand_var({3}, 1), rand_var({4}, 2)),
                      Contains("[matmul] inner dims differ; got a=[3], b=[4]"));
  REQUIRE_THROWS_WITH(matmul(rand_var({2, 3, 4}, 1), rand_var({5, 4, 6}, 2)),
                      Contains("[matmul] batch dims cannot be broadcast; got a=[2, 3, 4], b=[5, 4, 6]"));
  REQUIRE_THROWS_WITH(matmul(rand_var({}, 1), rand_var({3}, 2)),
                      Contains("[matmul] both operands must have at least 1 dim; got a=[], b=[3]"));
  REQUIRE_THROWS_WITH(matmul(rand_var({2, 3}, 1), rand_var({3, 2}, 2, -1, 1, true, DType::Float32)),
                      Contains("[matmul] dtypes differ; got a=float64[2, 3], b=float32[3, 2]"));
  REQUIRE_THROWS_WITH(matmul(Var(Tensor::zeros({2, 2}, DType::Int64)), Var(Tensor::zeros({2, 2}, DType::Int64))),
                      Contains("[matmul] expected float tensors; got a=int64[2, 2]"));
  REQUIRE_THROWS_WITH(linear(rand_var({4, 3}, 1), rand_var({5, 2}, 2)),
                      Contains("[linear] in_features differ; got x=[4, 3], weight=[5, 2]"));
  REQUIRE_THROWS_WITH(linear(rand_var({4, 2}, 1), rand_var({5, 2}, 2), rand_var({3}, 3)),
                      Contains("[linear] bias must have shape [out_features]; got x=[4, 2], weight=[5, 2], bias=[3]"));
  REQUIRE_THROWS_WITH(linear(rand_var({4, 2}, 1), rand_var({2}, 2)),
                      Contains("[linear] weight must be 2-D [out_features, in_features]; got x=[4, 2], weight=[2]"));
  REQUIRE_THROWS_WITH(linear(rand_var({}, 1), rand_var({5, 2}, 2)),
                      Contains("[linear] x must have at least 1 dim; got x=[], weight=[5, 2]"));
  REQUIRE_THROWS_WITH(linear(rand_var({4, 2}, 1), rand_var({5, 2}, 2), rand_var({5}, 3, -1, 1, true, DType::Float32)),
                      Contains("[linear] dtypes differ; got x=float64[4, 2], bias=float32[5]"));
}

TEST_CASE("matmul and linear: determinism, forward and backward are bit-identical for 1 and 2 threads",
          "[ops][determinism]") {
  // Large enough that every GEMM is split into row blocks and the bias grad into several row chunks.
  auto run_all = [](int threads) {
    tg::set_num_threads(threads);
    std::vector<Tensor> out;
    for (DType dt : {DType::Float32, DType::Float64}) {
      Var x = rand_var({1024, 256}, 401, -1, 1, true, dt), w = rand_var({256, 256}, 402, -1, 1, true, dt);
      Var b = rand_var({256}, 403, -1, 1, true, dt);
      Var y = linear(x, w, b);
      y.backward(rand_tensor({1024, 256}, 404, -1, 1, dt));
      Var a = rand_var({8, 1, 96, 64}, 405, -1, 1, true, dt), c = rand_var({3, 64, 80}, 406, -1, 1, true, dt);
      Var z = matmul(a, c);   // [8, 3, 96, 80]: both grads reduce broadcast batch dims
      z.backward(rand_tensor({8, 3, 96, 80}, 407, -1, 1, dt));
      for (const Tensor& t : {y.value(), x.grad(), w.grad(), b.grad(), z.value(), a.grad(), c.grad()}) out.push_back(t);
    }
    return out;
  };
  require_same_bits_across_threads(run_all);
}
