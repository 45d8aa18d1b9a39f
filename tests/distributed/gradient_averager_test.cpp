// tg::dist::GradientAverager under mpirun: the averaged gradients equal the sequential formula
// (((g_0 + g_1) + g_2) + ...) / K bit for bit, over many buckets and both dtypes, and equal one process
// accumulating K micro-batches; bytes_sent_per_call() and buckets() are the scheme's figures.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <vector>

#include "mpi_test_support.h"
#include "tapegrad/distributed/distributed.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/layers/linear.h"

using tg::DType;
using tg::Tensor;
using tg::Var;
using tg::dist::Communicator;
using tg::dist::GradientAverager;
using tg::test::rank_value;

namespace {

// Rank r's gradient for parameter `index`: rank_value elements.
Tensor rank_grad(int r, std::size_t index, const tg::Shape& shape, DType dtype) {
  Tensor g = Tensor::zeros(shape, dtype);
  for (int64_t i = 0; i < g.numel(); ++i)
    g.set_flat(i, dtype == DType::Float32 ? static_cast<double>(rank_value<float>(r, static_cast<uint64_t>(i), index))
                                          : rank_value<double>(r, static_cast<uint64_t>(i), index));
  return g;
}

// (((g_0 + g_1) + g_2) + ...) / K in T, computed here from every rank's gradient.
template <class T> Tensor expected_average(int K, std::size_t index, const tg::Shape& shape) {
  const DType dtype = std::is_same_v<T, float> ? DType::Float32 : DType::Float64;
  Tensor sum = rank_grad(0, index, shape, dtype);
  T* s = sum.data<T>();
  for (int r = 1; r < K; ++r) {
    const Tensor g = rank_grad(r, index, shape, dtype);
    for (int64_t i = 0; i < sum.numel(); ++i) s[i] += g.data<T>()[i];
  }
  for (int64_t i = 0; i < sum.numel(); ++i) s[i] /= static_cast<T>(K);
  return sum;
}

// Bytes rank r sends to sum m elements over K ranks: its pieces of the other slices, then its own slice
// to the K - 1 others. The slices: the first m % K ranks own one element more.
std::size_t scheme_bytes(std::size_t m, int K, int r, std::size_t elem) {
  const std::size_t own = m / K + (static_cast<std::size_t>(r) < m % K ? 1 : 0);
  return ((m - own) + own * static_cast<std::size_t>(K - 1)) * elem;
}

}  // namespace

TEST_CASE("GradientAverager: ((g_0 + g_1) + ...) / K bit for bit over 8 buckets of float32 and float64",
          "[dist][mpi]") {
  const Communicator comm = Communicator::world();
  const int K = comm.size();
  struct P { tg::Shape shape; DType dtype; };
  const std::vector<P> specs{{{7, 5}, DType::Float32}, {{13}, DType::Float32}, {{4, 6}, DType::Float64},
                             {{3, 3, 3}, DType::Float32}, {{1}, DType::Float32}};
  std::vector<Var> params;
  for (const P& p : specs) params.emplace_back(Tensor::zeros(p.shape, p.dtype), true);
  const Var frozen(Tensor::zeros({2}, DType::Float32), false);   // ignored
  const Var without_grad(Tensor::zeros({3}, DType::Float32), true);   // no gradient on any rank
  std::vector<Var> all = params;
  all.push_back(frozen);
  all.push_back(without_grad);
  // 64-byte buckets: float32 79 elements (with without_grad's 3) -> 5 buckets of <= 16, float64 24 -> 3 of 8.
  GradientAverager averager(comm, all, 64);
  CHECK(averager.buckets() == 8);

  std::vector<Tensor> before;
  for (std::size_t i = 0; i < params.size(); ++i) {
    params[i].set_grad(rank_grad(comm.rank(), i, specs[i].shape, specs[i].dtype));
    before.push_back(params[i].grad());
  }
  const std::vector<Tensor> originals = [&] {
    std::vector<Tensor> copies;
    for (const Tensor& g : before) copies.push_back(g.clone());
    return copies;
  }();
  averager.average();
  for (std::size_t i = 0; i < params.size(); ++i) {
    INFO("params[" << i << "] on rank " << comm.rank() << " of " << K);
    const Tensor want = specs[i].dtype == DType::Float32 ? expected_average<float>(K, i, specs[i].shape)
                                                         : expected_average<double>(K, i, specs[i].shape);
    CHECK(params[i].grad().bit_equal(want));
    CHECK(before[i].bit_equal(originals[i]));   // the old gradient tensors are not written
  }
  CHECK_FALSE(without_grad.grad().defined());
  CHECK_FALSE(frozen.grad().defined());
}

TEST_CASE("GradientAverager: bytes_sent_per_call is 2 (K-1)/K of the gradient bytes plus 24 bytes per peer",
          "[dist][mpi]") {
  const Communicator comm = Communicator::world();
  const int K = comm.size();
  const std::size_t k = static_cast<std::size_t>(K);
  // 600 float32 (divisible by 2 and 3) in one default 4 MiB bucket.
  const Var w(Tensor::zeros({600}, DType::Float32), true);
  const GradientAverager one(comm, {w});
  CHECK(one.buckets() == 1);
  CHECK(one.bytes_sent_per_call() == (K == 1 ? 0 : 2 * (k - 1) * 600 * 4 / k + 24 * (k - 1)));
  // 1001 float32 and 10 float64 in 400-byte buckets: float32 100 + 100 + ... + 1 (11 buckets), float64 1.
  const Var a(Tensor::zeros({1001}, DType::Float32), true);
  const Var b(Tensor::zeros({2, 5}, DType::Float64), true);
  const GradientAverager many(comm, {a, b}, 400);
  CHECK(many.buckets() == 12);
  std::size_t expected = 0;
  if (K > 1) {
    for (std::size_t begin = 0; begin < 1001; begin += 100)
      expected += scheme_bytes(std::min<std::size_t>(100, 1001 - begin), K, comm.rank(), 4);
    expected += scheme_bytes(10, K, comm.rank(), 8) + 24 * (k - 1);
  }
  CHECK(many.bytes_sent_per_call() == expected);
}

TEST_CASE("GradientAverager: K ranks with one micro-batch each equal one process accumulating K micro-batches",
          "[dist][mpi]") {
  const Communicator comm = Communicator::world();
  const int K = comm.size();
  tg::Linear fc(tg::LinearOptions{.in_features = 4, .out_features = 3}, tg::Generator(5));
  // Micro-batch k: x [6, 4], y [6, 3].
  auto loss_of = [&](int k) {
    Var x(tg::Tensor::from_vector(std::vector<float>(24), {6, 4}));
    Var y(tg::Tensor::from_vector(std::vector<float>(18), {6, 3}));
    for (int i = 0; i < 24; ++i) x.value().set_flat(i, rank_value<float>(k, static_cast<uint64_t>(i), 100));
    for (int i = 0; i < 18; ++i) y.value().set_flat(i, rank_value<float>(k, static_cast<uint64_t>(i), 200));
    const Var d = tg::sub(fc.forward(x), y);
    return tg::sum(tg::mul(d, d));
  };
  // One process: the gradient of micro-batch 0 assigned, += 1, += 2, ..., then / K.
  std::vector<Tensor> accumulated;
  for (int k = 0; k < K; ++k) {
    fc.zero_grad();
    loss_of(k).backward();
    const std::vector<Var> ps = fc.parameters();
    for (std::size_t p = 0; p < ps.size(); ++p) {
      if (k == 0) {
        accumulated.push_back(ps[p].grad().clone());
        continue;
      }
      float* acc = accumulated[p].data<float>();
      for (int64_t i = 0; i < accumulated[p].numel(); ++i) acc[i] += ps[p].grad().data<float>()[i];
    }
  }
  for (Tensor& g : accumulated)
    for (int64_t i = 0; i < g.numel(); ++i) g.data<float>()[i] /= static_cast<float>(K);
  // K ranks: micro-batch k = rank.
  GradientAverager averager(comm, fc.parameters());
  fc.zero_grad();
  loss_of(comm.rank()).backward();
  averager.average();
  const std::vector<Var> ps = fc.parameters();
  REQUIRE(ps.size() == accumulated.size());
  for (std::size_t p = 0; p < ps.size(); ++p) {
    INFO("parameter " << p << " on rank " << comm.rank() << " of " << K);
    CHECK(ps[p].grad().bit_equal(accumulated[p]));
  }
}

TEST_CASE("GradientAverager: a parameter unfrozen after construction is averaged from its first gradient on",
          "[dist][mpi]") {
  // Fine-tuning's freeze-then-unfreeze: the averager was built while b was frozen. It used to leave b's
  // gradients unaveraged, so the replicas drifted apart silently.
  const Communicator comm = Communicator::world();
  Var w(Tensor::zeros({3}, DType::Float32), true), b(Tensor::zeros({2}, DType::Float64), false);
  GradientAverager averager(comm, {w, b}, 64);
  CHECK(averager.buckets() == 1);   // b does not count while frozen
  b.requires_grad_(true);
  CHECK(averager.buckets() == 2);
  w.set_grad(rank_grad(comm.rank(), 0, {3}, DType::Float32));
  b.set_grad(rank_grad(comm.rank(), 1, {2}, DType::Float64));
  averager.average();
  CHECK(w.grad().bit_equal(expected_average<float>(comm.size(), 0, {3})));
  CHECK(b.grad().bit_equal(expected_average<double>(comm.size(), 1, {2})));
}
