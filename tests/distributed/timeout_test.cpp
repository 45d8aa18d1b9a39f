// The Environment's timeout (distributed/watchdog.h), under mpirun -np 2 (distributed_tests.cmake):
//   timeout_test fires   rank 1 catches an error and returns from main normally, without tg::dist::abort,
//                        while rank 0 waits in a barrier: rank 0's watchdog ends the launch after 1 s with
//                        its message (the test matches it; before, the launch hung until ctest's timeout).
//   timeout_test late    rank 1 comes 1 s late to a broadcast, rank 0 to a sum, within a 20 s timeout:
//                        nothing fires, both ranks finish and exit 0.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "tapegrad/distributed/distributed.h"
#include "tapegrad/framework/tensor.h"

namespace {
int fires(int argc, char** argv) {
  tg::dist::Environment env(argc, argv, std::chrono::milliseconds(1000));
  const tg::dist::Communicator comm = tg::dist::Communicator::world();
  if (comm.rank() == 1) {
    try {
      throw std::runtime_error("rank 1 cannot go on");
    } catch (const std::exception& e) {
      std::printf("rank 1 caught: %s; returning from main\n", e.what());
      return 3;   // the mistake: no tg::dist::abort, so rank 0 waits for rank 1 forever
    }
  }
  comm.barrier();
  std::printf("rank 0 passed the barrier\n");
  return 0;
}

int late(int argc, char** argv) {
  tg::dist::Environment env(argc, argv, std::chrono::seconds(20));
  const tg::dist::Communicator comm = tg::dist::Communicator::world();
  if (comm.rank() == 1) std::this_thread::sleep_for(std::chrono::seconds(1));
  tg::Tensor t = tg::Tensor::full({3}, comm.rank() + 1.0);
  comm.broadcast(t, 0);
  if (comm.rank() == 0) std::this_thread::sleep_for(std::chrono::seconds(1));
  float x[2] = {1.0f, 2.0f};
  comm.sum_in_rank_order(x);
  const bool ok = t.flat(2) == 1.0 && x[0] == 2.0f && x[1] == 4.0f;
  std::printf("rank %d finished %s\n", comm.rank(), ok ? "with the expected values" : "WITH WRONG VALUES");
  return ok ? 0 : 1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "fires") == 0) return fires(argc, argv);
  if (argc > 1 && std::strcmp(argv[1], "late") == 0) return late(argc, argv);
  std::fprintf(stderr, "usage: timeout_test fires|late\n");
  return 2;
}
