// The README's data-parallel training snippet ("Distributed training over MPI"), verbatim, under mpirun:
// K ranks training a Linear with AdamW on one micro-batch each end with the bits of one process that
// accumulates the K micro-batches of every step, and the README block is this file's block.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "mpi_test_support.h"
#include "support/readme_support.h"
#include "tapegrad/tapegrad.h"

using tg::Tensor;
using tg::Var;

namespace {

// Micro-batch k of step `step`: x [4, 8], y [4, 1].
std::pair<Var, Var> batch(int step, int k) {
  Tensor x = Tensor::zeros({4, 8}), y = Tensor::zeros({4, 1});
  for (int64_t i = 0; i < 32; ++i) x.set_flat(i, tg::test::rank_value<float>(k, static_cast<uint64_t>(i), 10 + step));
  for (int64_t i = 0; i < 4; ++i) y.set_flat(i, tg::test::rank_value<float>(k, static_cast<uint64_t>(i), 1000 + step));
  return {Var(x), Var(y)};
}

// One process: per step the gradient of micro-batch 0, += 1, ..., += K-1, / K, then the AdamW step.
std::vector<Tensor> single_process(int K) {
  tg::Linear model({.in_features = 8, .out_features = 1}, tg::Generator(0));
  tg::optim::AdamW opt(model.named_parameters(), {.lr = 1e-2});
  for (int step = 0; step < 20; ++step) {
    std::vector<Tensor> acc;
    for (int k = 0; k < K; ++k) {
      auto [x, y] = batch(step, k);
      model.zero_grad();
      Var d = model.forward(x) - y;
      tg::mean(d * d).backward();
      const std::vector<Var> ps = model.parameters();
      for (std::size_t p = 0; p < ps.size(); ++p) {
        if (k == 0) {
          acc.push_back(ps[p].grad().clone());
          continue;
        }
        for (int64_t i = 0; i < acc[p].numel(); ++i) acc[p].data<float>()[i] += ps[p].grad().data<float>()[i];
      }
    }
    std::vector<Var> ps = model.parameters();
    for (std::size_t p = 0; p < ps.size(); ++p) {
      for (int64_t i = 0; i < acc[p].numel(); ++i) acc[p].data<float>()[i] /= static_cast<float>(K);
      ps[p].set_grad(acc[p]);
    }
    opt.step();
  }
  std::vector<Tensor> out;
  for (const Var& p : model.parameters()) out.push_back(p.value());
  return out;
}

}  // namespace

TEST_CASE("README: the data-parallel snippet trains K ranks like one process accumulating K micro-batches",
          "[dist][mpi][docs]") {
  int argc = 1;
  char name[] = "readme_example";
  char* args[] = {name, nullptr};
  char** argv = args;
  std::vector<Tensor> trained;
  int K = 0;
  {
    // --- README block begins
    tg::dist::Environment env(argc, argv);                  // MPI_Init_thread(FUNNELED) ... MPI_Finalize
    const tg::dist::Communicator comm = tg::dist::Communicator::world();   // comm.rank(), comm.size()
    tg::Linear model({.in_features = 8, .out_features = 1}, tg::Generator(comm.rank()));   // differs per rank ...
    comm.broadcast_module(model);                           // ... until all hold rank 0's parameters
    tg::optim::AdamW opt(model.named_parameters(), {.lr = 1e-2});
    tg::dist::GradientAverager averager(comm, model.parameters());   // buckets of <= 4 MiB
    for (int step = 0; step < 20; ++step) {
      auto [x, y] = batch(step, comm.rank());               // this rank's micro-batch of the step
      model.zero_grad();
      tg::Var d = model.forward(x) - y;
      tg::mean(d * d).backward();
      averager.average();                                   // g <- (((g_0 + g_1) + g_2) + ...) / K
      opt.step();
    }
    // --- README block ends
    for (const Var& p : model.parameters()) trained.push_back(p.value());
    K = comm.size();
  }
  const std::vector<Tensor> expected = single_process(K);
  REQUIRE(trained.size() == expected.size());
  for (std::size_t p = 0; p < trained.size(); ++p) {
    INFO("parameter " << p << " after 20 steps on " << K << " ranks");
    CHECK(trained[p].bit_equal(expected[p]));
  }
  tg::test::require_readme_block_matches("## Distributed training over MPI", "tests/distributed/readme_example_test.cpp");
}
