// The Catch2 main of the tests that run under mpirun (tests/distributed/distributed_tests.cmake): MPI is
// started before the first test case and finalised after the last, so every test case runs on every rank
// in the same order. Failures are reported by the rank that sees them; mpirun exits non-zero if any rank
// does.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "tapegrad/distributed/distributed.h"

int main(int argc, char** argv) {
  tg::dist::Environment env(argc, argv);
  return Catch::Session().run(argc, argv);
}
