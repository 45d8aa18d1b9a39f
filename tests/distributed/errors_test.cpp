// Errors of tg::dist under mpirun: arguments that differ across ranks, or that one rank rejects, throw on
// EVERY rank at the same call (a small all-gather of each rank's claim comes first), instead of hanging;
// the communicator stays usable afterwards. Needs at least 2 ranks (registered for -np 2 and -np 3).
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "tapegrad/distributed/distributed.h"
#include "tapegrad/layers/linear.h"

using Catch::Matchers::Contains;
using tg::DType;
using tg::Tensor;
using tg::Var;
using tg::dist::Communicator;
using tg::dist::GradientAverager;

namespace {

// "1 on rank 0, 2 on rank 1, ..." for values v(r).
template <class F> std::string per_rank(int K, F v) {
  std::string s;
  for (int r = 0; r < K; ++r) s += (r ? ", " : "") + std::to_string(v(r)) + " on rank " + std::to_string(r);
  return s;
}

// After an error every rank must still be at the same call: a sum over ranks still works.
void check_still_usable(const Communicator& comm) {
  std::vector<double> x{1.0 + comm.rank()};
  comm.sum_in_rank_order(std::span<double>(x));
  CHECK(x[0] == comm.size() * (comm.size() + 1) / 2.0);
}

}  // namespace

TEST_CASE("sum_in_rank_order: a length that differs across ranks throws on every rank", "[dist][mpi][errors]") {
  const Communicator comm = Communicator::world();
  REQUIRE(comm.size() >= 2);
  std::vector<float> x(static_cast<std::size_t>(comm.rank()) + 1, 1.0f);
  REQUIRE_THROWS_AS(comm.sum_in_rank_order(std::span<float>(x)), std::invalid_argument);
  REQUIRE_THROWS_WITH(comm.sum_in_rank_order(std::span<float>(x)),
                      "[sum_in_rank_order] the length differs across ranks; got x.size()=" +
                          per_rank(comm.size(), [](int r) { return r + 1; }));
  check_still_usable(comm);
}

TEST_CASE("broadcast: a shape that differs across ranks throws on every rank", "[dist][mpi][errors]") {
  const Communicator comm = Communicator::world();
  REQUIRE(comm.size() >= 2);
  Tensor t = Tensor::zeros({comm.rank() + 1}, DType::Float32);
  REQUIRE_THROWS_WITH(comm.broadcast(t),
                      "[broadcast] t's shape, dtype or root differs across ranks; got t.numel()=" +
                          per_rank(comm.size(), [](int r) { return r + 1; }) + "; this rank (" +
                          std::to_string(comm.rank()) + ") has t=float32[" + std::to_string(comm.rank() + 1) + "]");
  Tensor same_numel = comm.rank() == 0 ? Tensor::zeros({2, 3}) : Tensor::zeros({3, 2});
  REQUIRE_THROWS_WITH(comm.broadcast(same_numel), Contains("[broadcast] t's shape, dtype or root differs across ranks"));
  Tensor other_dtype = Tensor::zeros({4}, comm.rank() == 0 ? DType::Float32 : DType::Float64);
  REQUIRE_THROWS_WITH(comm.broadcast(other_dtype), Contains("[broadcast] t's shape, dtype or root differs across ranks"));
  Tensor t2 = Tensor::zeros({3});
  REQUIRE_THROWS_WITH(comm.broadcast(t2, /*root=*/comm.rank() == 0 ? 0 : 1),
                      Contains("[broadcast] t's shape, dtype or root differs across ranks"));
  check_still_usable(comm);
}

TEST_CASE("broadcast: an argument one rank rejects throws its own error there and names it on the others",
          "[dist][mpi][errors]") {
  const Communicator comm = Communicator::world();
  REQUIRE(comm.size() >= 2);
  const int last = comm.size() - 1;
  Tensor t = comm.rank() == last ? Tensor() : Tensor::zeros({3});
  if (comm.rank() == last)
    REQUIRE_THROWS_WITH(comm.broadcast(t), "[broadcast] t is an undefined Tensor");
  else
    REQUIRE_THROWS_WITH(comm.broadcast(t), "[broadcast] rank " + std::to_string(last) + " rejected its arguments");
  Tensor u = Tensor::zeros({3});
  REQUIRE_THROWS_WITH(comm.broadcast(u, comm.size()), "[broadcast] root must be in [0, size()); got root=" +
                                                           std::to_string(comm.size()) + ", size()=" +
                                                           std::to_string(comm.size()));
  std::vector<char> bytes(3);
  REQUIRE_THROWS_WITH(comm.broadcast_bytes(bytes, -1), "[broadcast_bytes] root must be in [0, size()); got root=-1, size()=" +
                                                           std::to_string(comm.size()));
  REQUIRE_THROWS_WITH(comm.broadcast_bytes(bytes, comm.rank()),
                      "[broadcast_bytes] the root differs across ranks; got root=" +
                          per_rank(comm.size(), [](int r) { return r; }));
  check_still_usable(comm);
}

TEST_CASE("broadcast_module: modules that differ across ranks throw on every rank", "[dist][mpi][errors]") {
  const Communicator comm = Communicator::world();
  REQUIRE(comm.size() >= 2);
  tg::Linear fc(tg::LinearOptions{.in_features = 2, .out_features = 1 + comm.rank()}, tg::Generator(1));
  REQUIRE_THROWS_WITH(comm.broadcast_module(fc),
                      Contains("[broadcast_module] the module's entry names, shapes, dtypes or root differs across "
                               "ranks; got state_dict().size()=2 on rank 0, 2 on rank 1"));
  const std::string out = std::to_string(1 + comm.rank());
  REQUIRE_THROWS_WITH(comm.broadcast_module(fc),
                      Contains("; this rank (" + std::to_string(comm.rank()) + ") has 2 entries, " +
                               std::to_string((3 * (1 + comm.rank())) * 4) + " bytes: weight=float32[" + out +
                               ", 2], bias=float32[" + out + "]"));
  tg::Linear no_bias_on_0(tg::LinearOptions{.in_features = 2, .out_features = 2, .bias = comm.rank() != 0},
                          tg::Generator(1));
  REQUIRE_THROWS_WITH(comm.broadcast_module(no_bias_on_0),
                      Contains("differs across ranks; got state_dict().size()=1 on rank 0, 2 on rank 1"));
  check_still_usable(comm);
}

TEST_CASE("GradientAverager: parameters that differ across ranks throw on every rank at construction",
          "[dist][mpi][errors]") {
  const Communicator comm = Communicator::world();
  REQUIRE(comm.size() >= 2);
  const Var w(Tensor::zeros({2, comm.rank() + 1}), true);
  REQUIRE_THROWS_WITH(GradientAverager(comm, {w}),
                      "[GradientAverager] the parameters' shapes, dtypes or bucket_bytes differs across ranks; got "
                      "parameters=" + per_rank(comm.size(), [](int) { return 1; }) + "; this rank (" +
                          std::to_string(comm.rank()) + ") has params[0]=float32[2, " +
                          std::to_string(comm.rank() + 1) + "], bucket_bytes=4194304");
  const Var v(Tensor::zeros({4}), true);
  REQUIRE_THROWS_WITH(GradientAverager(comm, {v}, 64 + static_cast<std::size_t>(comm.rank()) * 8),
                      Contains("[GradientAverager] the parameters' shapes, dtypes or bucket_bytes differs"));
  std::vector<Var> count_differs(static_cast<std::size_t>(comm.rank()) + 1);
  for (Var& p : count_differs) p = Var(Tensor::zeros({4}), true);
  REQUIRE_THROWS_WITH(GradientAverager(comm, count_differs),
                      Contains("got parameters=" + per_rank(comm.size(), [](int r) { return r + 1; })));
  std::vector<Var> many(static_cast<std::size_t>(comm.rank()) + 7);   // the message shows the first 6
  for (Var& p : many) p = Var(Tensor::zeros({1}), true);
  REQUIRE_THROWS_WITH(GradientAverager(comm, many),
                      Contains("params[5]=float32[1] and " + std::to_string(comm.rank() + 1) + " more, bucket_bytes="));
  check_still_usable(comm);
}

TEST_CASE("GradientAverager: bad parameter lists throw the rank's own error", "[dist][mpi][errors]") {
  const Communicator comm = Communicator::world();
  const Var w(Tensor::zeros({3}), true);
  REQUIRE_THROWS_WITH(GradientAverager(comm, {w}, 4), "[GradientAverager] bucket_bytes must be at least 8; got bucket_bytes=4");
  REQUIRE_THROWS_WITH(GradientAverager(comm, {w, Var()}), "[GradientAverager] params[1] is an undefined Var");
  REQUIRE_THROWS_WITH(GradientAverager(comm, {w, w}),
                      "[GradientAverager] params[1] is listed twice (each parameter must appear once)");
  const Var ints(Tensor::zeros({2}, DType::Int64));
  REQUIRE_THROWS_WITH(GradientAverager(comm, {ints}),
                      "[GradientAverager] only float32 and float64 parameters have gradients; got params[0]=int64[2]");
  check_still_usable(comm);
}

TEST_CASE("GradientAverager::average: gradients present on some ranks only throw on every rank",
          "[dist][mpi][errors]") {
  const Communicator comm = Communicator::world();
  REQUIRE(comm.size() >= 2);
  Var a(Tensor::zeros({3}), true), b(Tensor::zeros({2}), true);
  GradientAverager averager(comm, {a, b});
  a.set_grad(Tensor::ones({3}));
  if (comm.rank() == 0) b.set_grad(Tensor::ones({2}));
  REQUIRE_THROWS_WITH(averager.average(),
                      "[GradientAverager::average] which parameters have a gradient differs across ranks; got gradients=" +
                          per_rank(comm.size(), [](int r) { return r == 0 ? 2 : 1; }) + "; this rank (" +
                          std::to_string(comm.rank()) + ") has gradients for params[0]=float32[3]" +
                          (comm.rank() == 0 ? ", params[1]=float32[2]" : ""));
  // Same count, other parameters: rank 0 has a, the others b.
  a.zero_grad();
  b.zero_grad();
  (comm.rank() == 0 ? a : b).set_grad(comm.rank() == 0 ? Tensor::ones({3}) : Tensor::ones({2}));
  REQUIRE_THROWS_WITH(averager.average(), Contains("which parameters have a gradient differs across ranks"));
  // A gradient of the wrong shape, on the last rank only.
  a.set_grad(comm.rank() == comm.size() - 1 ? Tensor::ones({4}) : Tensor::ones({3}));
  b.set_grad(Tensor::ones({2}));
  if (comm.rank() == comm.size() - 1)
    REQUIRE_THROWS_WITH(averager.average(),
                        "[GradientAverager::average] a gradient differs from its parameter in shape or dtype; got "
                        "grad=float32[4], params[0]=float32[3]");
  else
    REQUIRE_THROWS_WITH(averager.average(), "[GradientAverager::average] rank " + std::to_string(comm.size() - 1) +
                                                " rejected its arguments");
  // Fixed: it works, and the (all ones) gradients average to ones.
  a.set_grad(Tensor::ones({3}));
  averager.average();
  CHECK(a.grad().bit_equal(Tensor::ones({3})));
  CHECK(b.grad().bit_equal(Tensor::ones({2})));
  check_still_usable(comm);
}
