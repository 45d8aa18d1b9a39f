// An error that leaves main's scope on one rank while the others wait in a collective: the Environment,
// destroyed during the unwinding, ends the whole launch (tg::dist::abort) instead of waiting in
// MPI_Finalize for ranks that wait for it. Run under mpirun -np 2 (tests/distributed/distributed_tests.cmake:
// the test passes when the abort message appears; before, the launch hung until the timeout).
#include <cstdio>
#include <stdexcept>

#include "tapegrad/distributed/distributed.h"

int main(int argc, char** argv) {
  try {
    tg::dist::Environment env(argc, argv);
    const tg::dist::Communicator comm = tg::dist::Communicator::world();
    if (comm.rank() == 1) throw std::runtime_error("rank 1 cannot go on");
    comm.barrier();   // rank 0 waits here for rank 1, which never comes
    std::printf("rank %d passed the barrier\n", comm.rank());
  } catch (const std::exception& e) {
    std::printf("caught: %s\n", e.what());
    return 3;
  }
  return 0;
}
