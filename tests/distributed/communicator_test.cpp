// tg::dist::Communicator under mpirun (any number of ranks; registered for -np 2 shared memory, -np 2 TCP
// and -np 3 oversubscribed): every rank checks the collective's result against a sequential computation
// over every rank's inputs, which it can compute itself.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "mpi_test_support.h"
#include "tapegrad/distributed/distributed.h"
#include "tapegrad/layers/layer_norm.h"
#include "tapegrad/layers/linear.h"

using tg::dist::Communicator;
using tg::test::bit_differences;
using tg::test::rank_value;

namespace {

template <class T> std::vector<T> inputs(int r, std::size_t n) {
  std::vector<T> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = rank_value<T>(r, i);
  return x;
}

// ((x_0 + x_1) + x_2) + ... computed here, from every rank's inputs.
template <class T> std::vector<T> sequential_sum(int K, std::size_t n) {
  std::vector<T> sum = inputs<T>(0, n);
  for (int r = 1; r < K; ++r) {
    const std::vector<T> x = inputs<T>(r, n);
    for (std::size_t i = 0; i < n; ++i) sum[i] += x[i];
  }
  return sum;
}

// x_0 + (x_1 + (x_2 + ...)): another order, to show that the order matters for these inputs.
template <class T> std::vector<T> reverse_sum(int K, std::size_t n) {
  std::vector<T> sum = inputs<T>(K - 1, n);
  for (int r = K - 2; r >= 0; --r) {
    const std::vector<T> x = inputs<T>(r, n);
    for (std::size_t i = 0; i < n; ++i) sum[i] = x[i] + sum[i];
  }
  return sum;
}

template <class T> void check_sum_in_rank_order(const Communicator& comm) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{1000},
                        std::size_t{100003}}) {
    std::vector<T> x = inputs<T>(comm.rank(), n);
    comm.sum_in_rank_order(std::span<T>(x));
    INFO("rank " << comm.rank() << " of " << comm.size() << ", n=" << n);
    CHECK(bit_differences(x, sequential_sum<T>(comm.size(), n)) == 0);
    if (comm.size() >= 3 && n >= 1000) CHECK(bit_differences(x, reverse_sum<T>(comm.size(), n)) > 0);
  }
}

// A module with parameters of two dtypes and a buffer, initialised from `seed`.
class Net : public tg::Module {
 public:
  explicit Net(uint64_t seed) {
    tg::Generator gen(seed);
    fc_ = register_module("fc", std::make_shared<tg::Linear>(tg::LinearOptions{.in_features = 5, .out_features = 3}, gen));
    head_ = register_module("head", std::make_shared<tg::Linear>(tg::LinearOptions{.in_features = 3, .out_features = 2},
                                                                 gen, tg::DType::Float64));
    norm_ = register_module("norm", std::make_shared<tg::LayerNorm>(tg::LayerNormOptions{.normalized_shape = {3}}));
    register_buffer("steps", tg::Tensor::full({2}, static_cast<double>(seed), tg::DType::Int64));
    // LayerNorm's initialisation does not depend on the seed: make it.
    tg::Var w = norm_->weight();
    w.value().fill_(1.0 + static_cast<double>(seed));
  }
  std::shared_ptr<tg::Linear> fc_, head_;
  std::shared_ptr<tg::LayerNorm> norm_;
};

}  // namespace

TEST_CASE("sum_in_rank_order: every rank gets ((x_0 + x_1) + x_2) + ... bit for bit (float32)", "[dist][mpi]") {
  check_sum_in_rank_order<float>(Communicator::world());
}

TEST_CASE("sum_in_rank_order: every rank gets ((x_0 + x_1) + x_2) + ... bit for bit (float64)", "[dist][mpi]") {
  check_sum_in_rank_order<double>(Communicator::world());
}

TEST_CASE("Communicator: rank and size match the launch and all_gather returns every rank's value", "[dist][mpi]") {
  const Communicator comm = Communicator::world();
  REQUIRE(comm.size() >= 1);
  REQUIRE(comm.rank() >= 0);
  REQUIRE(comm.rank() < comm.size());
  const std::vector<double> all = comm.all_gather(1.5 * comm.rank() + 0.25);
  REQUIRE(all.size() == static_cast<std::size_t>(comm.size()));
  for (int r = 0; r < comm.size(); ++r) CHECK(all[r] == 1.5 * r + 0.25);
  comm.barrier();
}

TEST_CASE("broadcast: every rank gets root's tensor in place, from root 0 and from the last rank", "[dist][mpi]") {
  const Communicator comm = Communicator::world();
  for (int root : {0, comm.size() - 1}) {
    for (tg::DType dtype : {tg::DType::Float32, tg::DType::Float64, tg::DType::Int64}) {
      std::vector<double> values(12);
      for (int i = 0; i < 12; ++i) values[i] = 100.0 * comm.rank() + i + (dtype == tg::DType::Int64 ? 0.0 : 0.125);
      tg::Tensor t = tg::Tensor::from_vector(values, {3, 4}, dtype);
      const tg::Tensor alias = t;   // shares the storage: the broadcast writes in place
      comm.broadcast(t, root);
      INFO("root " << root << ", " << tg::describe(t) << ", rank " << comm.rank());
      for (int i = 0; i < 12; ++i) CHECK(alias.flat(i) == 100.0 * root + i + (dtype == tg::DType::Int64 ? 0.0 : 0.125));
    }
  }
}

TEST_CASE("broadcast_bytes: receivers are resized to root's bytes", "[dist][mpi]") {
  const Communicator comm = Communicator::world();
  const int root = comm.size() - 1;
  const std::string mine = "rank " + std::to_string(comm.rank()) + std::string(static_cast<std::size_t>(comm.rank()) * 7, '!');
  std::vector<char> bytes(mine.begin(), mine.end());
  comm.broadcast_bytes(bytes, root);
  const std::string expected = "rank " + std::to_string(root) + std::string(static_cast<std::size_t>(root) * 7, '!');
  CHECK(std::string(bytes.begin(), bytes.end()) == expected);
  std::vector<char> empty_on_root = comm.rank() == 0 ? std::vector<char>{} : std::vector<char>(5, 'x');
  comm.broadcast_bytes(empty_on_root, 0);
  CHECK(empty_on_root.empty());
}

TEST_CASE("broadcast_module: every parameter and buffer equals root's, in place", "[dist][mpi]") {
  const Communicator comm = Communicator::world();
  Net net(/*seed=*/17 + static_cast<uint64_t>(comm.rank()));
  const tg::Var fc_weight = net.fc_->weight();   // a handle taken before: must see the new values
  const Net expected(/*seed=*/17);              // rank 0's module, built here
  const tg::StateDict before = net.state_dict();
  comm.broadcast_module(net);
  const tg::StateDict got = net.state_dict();
  const tg::StateDict want = expected.state_dict();
  REQUIRE(got.size() == want.size());
  REQUIRE(got.size() == 7);   // steps, fc.weight, fc.bias, head.weight, head.bias, norm.weight, norm.bias
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(got[i].first << " on rank " << comm.rank());
    CHECK(got[i].first == want[i].first);
    CHECK(got[i].second.bit_equal(want[i].second));
    CHECK(got[i].second.shares_storage(before[i].second));
  }
  CHECK(fc_weight.value().bit_equal(expected.fc_->weight().value()));
}
