// tg::dist in one process started WITHOUT mpirun (MPI's singleton start): size() == 1 is a fast path with
// no communication, whose results are the local values; the Environment's lifetime rules; launched_by_mpi.
// Registered with catch_discover_tests, so every test case is its own process (MPI starts once per process).
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "tapegrad/distributed/distributed.h"
#include "tapegrad/layers/linear.h"

using tg::DType;
using tg::Tensor;
using tg::Var;
using tg::dist::Communicator;
using tg::dist::Environment;

namespace {
std::pair<int&, char**&> start_args() {
  static int argc = 1;
  static char name[] = "distributed_single_process_test";
  static char* args[] = {name, nullptr};
  static char** argv = args;
  return {argc, argv};
}
Environment start() { return Environment(start_args().first, start_args().second); }
}  // namespace

TEST_CASE("launched_by_mpi: true exactly when mpirun's OMPI_COMM_WORLD_SIZE or PMI_SIZE is set", "[dist]") {
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("PMI_SIZE");
  CHECK_FALSE(tg::dist::launched_by_mpi());
  ::setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  CHECK(tg::dist::launched_by_mpi());
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::setenv("PMI_SIZE", "3", 1);
  CHECK(tg::dist::launched_by_mpi());
  ::unsetenv("PMI_SIZE");
}

TEST_CASE("Communicator::world: without an Environment throws std::logic_error", "[dist]") {
  REQUIRE_THROWS_AS(Communicator::world(), std::logic_error);
  REQUIRE_THROWS_WITH(Communicator::world(),
                      "[Communicator::world] no tg::dist::Environment is alive; create one at the start of main");
}

TEST_CASE("Communicator: one process is rank 0 of 1 and every collective returns the local values", "[dist]") {
  const Environment env = start();
  const Communicator comm = Communicator::world();
  CHECK(comm.rank() == 0);
  CHECK(comm.size() == 1);
  CHECK(env.thread_level() >= 0);
  comm.barrier();
  std::vector<float> x{1.5f, -2.25f, 1e-30f};
  const std::vector<float> x0 = x;
  comm.sum_in_rank_order(std::span<float>(x));
  CHECK(x == x0);
  CHECK(comm.all_gather(3.25) == std::vector<double>{3.25});
  Tensor t = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3});
  comm.broadcast(t);
  CHECK(t.to_vector() == std::vector<double>{1, 2, 3});
  std::vector<char> bytes{'a', 'b'};
  comm.broadcast_bytes(bytes);
  CHECK(bytes == std::vector<char>{'a', 'b'});
  tg::Linear fc(tg::LinearOptions{.in_features = 2, .out_features = 2}, tg::Generator(3));
  const Tensor w = fc.weight().value().clone();
  comm.broadcast_module(fc);
  CHECK(fc.weight().value().bit_equal(w));
  // Local argument checks still apply.
  REQUIRE_THROWS_WITH(comm.broadcast(t, 1), "[broadcast] root must be in [0, size()); got root=1, size()=1");
}

TEST_CASE("GradientAverager: one process sends nothing and leaves the gradients as they are", "[dist]") {
  const Environment env = start();
  const Communicator comm = Communicator::world();
  Var w(Tensor::zeros({5}), true);
  tg::dist::GradientAverager averager(comm, {w}, 8);
  CHECK(averager.bytes_sent_per_call() == 0);
  CHECK(averager.buckets() == 3);   // 5 float32 in buckets of 2
  const Tensor g = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5}, {5});
  w.set_grad(g);
  averager.average();
  CHECK(w.grad().shares_storage(g));
  CHECK(w.grad().to_vector() == std::vector<double>{1, 2, 3, 4, 5});
  w.set_grad(Tensor::zeros({4}));
  REQUIRE_THROWS_WITH(averager.average(), "[GradientAverager::average] a gradient differs from its parameter in shape "
                                          "or dtype; got grad=float32[4], params[0]=float32[5]");
}

TEST_CASE("Environment: MPI starts once per process and a second Environment after MPI_Finalize throws", "[dist]") {
  { const Environment first = start(); }
  REQUIRE_THROWS_AS(start(), std::logic_error);
  REQUIRE_THROWS_WITH(start(), "[dist::Environment] MPI was finalised already and cannot start again; create one "
                               "Environment for the whole program");
}

TEST_CASE("Environment: MPI stays up until the last Environment goes, whichever initialised it", "[dist]") {
  std::optional<Environment> owner;
  owner.emplace(start_args().first, start_args().second);   // initialises MPI
  {
    const Environment second = start();   // MPI already up: does not own it
    owner.reset();                         // the owner goes first: MPI must stay up for `second`
    const Communicator comm = Communicator::world();   // MPI_Comm_rank: aborted the process when finalised
    CHECK(comm.rank() == 0);
    comm.barrier();
  }
  // The last one finalised MPI.
  REQUIRE_THROWS_WITH(start(), "[dist::Environment] MPI was finalised already and cannot start again; create one "
                               "Environment for the whole program");
}

TEST_CASE("Communicator and GradientAverager used after the Environment is gone throw std::logic_error", "[dist]") {
  std::optional<Communicator> comm;
  Var w(Tensor::zeros({2}), true);
  {
    const Environment env = start();
    comm = Communicator::world();
  }
  const std::string gone = " no tg::dist::Environment is alive (MPI was finalised or never started); keep the "
                           "Environment alive while any Communicator or GradientAverager is used";
  REQUIRE_THROWS_MATCHES(comm->barrier(), std::logic_error, Catch::Matchers::Message("[Communicator::barrier]" + gone));
  REQUIRE_THROWS_WITH(comm->all_gather(1.0), "[Communicator::all_gather]" + gone);
  std::vector<double> x{1.0};
  REQUIRE_THROWS_WITH(comm->sum_in_rank_order(std::span<double>(x)), "[sum_in_rank_order]" + gone);
  Tensor t = Tensor::zeros({2});
  REQUIRE_THROWS_WITH(comm->broadcast(t), "[broadcast]" + gone);
  REQUIRE_THROWS_WITH(tg::dist::GradientAverager(*comm, {w}), "[GradientAverager]" + gone);
}

TEST_CASE("Environment: the timeout is PyTorch's 30 minutes by default, positive, and one per process", "[dist]") {
  auto [argc, argv] = start_args();   // references to the static argc, argv
  REQUIRE_THROWS_MATCHES(Environment(argc, argv, std::chrono::milliseconds(0)), std::invalid_argument,
                         Catch::Matchers::Message("[dist::Environment] timeout must be positive; got timeout=0 ms"));
  REQUIRE_THROWS_WITH(Environment(argc, argv, std::chrono::milliseconds(-5)),
                      "[dist::Environment] timeout must be positive; got timeout=-5 ms");
  const Environment first = start();   // MPI was not started by the refused ones
  CHECK(first.timeout() == std::chrono::minutes(30));
  REQUIRE_THROWS_MATCHES(Environment(argc, argv, std::chrono::seconds(10)), std::invalid_argument,
                         Catch::Matchers::Message("[dist::Environment] timeout differs from the live Environment's "
                                                  "(one timeout per process); got timeout=10000 ms, live "
                                                  "Environment's 1800000 ms"));
  const Environment same(argc, argv, std::chrono::minutes(30));
  CHECK(same.timeout() == std::chrono::minutes(30));
  Communicator::world().barrier();   // the refused Environment left no count behind: MPI still up
}
