#include "examples/tiny_lm/processes.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "tapegrad/layers/module.h"

#if TAPEGRAD_TINY_LM_WITH_MPI
#include <mpi.h>

#include "tapegrad/distributed/distributed.h"
#endif

namespace tg::tiny_lm {

#if TAPEGRAD_TINY_LM_WITH_MPI

namespace {
bool g_mpi_active = false;   // an MpiScope initialised MPI in this process
}  // namespace

bool built_with_mpi() { return true; }

MpiScope::MpiScope(int& argc, char**& argv) {
  if (!dist::launched_by_mpi()) return;
  env_ = std::make_shared<dist::Environment>(argc, argv);
  g_mpi_active = true;
}

MpiScope::~MpiScope() {
  g_mpi_active = false;
  env_.reset();
}

int MpiScope::fail(int code) {
  if (active()) MPI_Abort(MPI_COMM_WORLD, code);
  return code;
}

Processes Processes::current() {
  Processes p;
  if (!g_mpi_active) return p;
  auto comm = std::make_shared<const dist::Communicator>(dist::Communicator::world());
  p.rank_ = comm->rank();
  p.size_ = comm->size();
  p.comm_ = comm;
  return p;
}

namespace {
const dist::Communicator* communicator(const std::shared_ptr<const void>& c) {
  return static_cast<const dist::Communicator*>(c.get());
}
}  // namespace

void Processes::barrier() const {
  if (comm_) communicator(comm_)->barrier();
}

void Processes::broadcast_module(Module& m) const {
  if (comm_) communicator(comm_)->broadcast_module(m, 0);
}

void Processes::sum_in_rank_order(std::span<float> x) const {
  if (comm_) communicator(comm_)->sum_in_rank_order(x);
}

std::vector<double> Processes::all_gather(double v) const {
  return comm_ ? communicator(comm_)->all_gather(v) : std::vector<double>{v};
}

void Processes::broadcast_bytes(std::vector<char>& bytes, int root) const {
  if (comm_) communicator(comm_)->broadcast_bytes(bytes, root);
}

#else

namespace {
// The processes mpirun started, from its environment (Open MPI, or a PMI launcher such as MPICH's).
int launched_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}
}  // namespace

bool built_with_mpi() { return false; }

MpiScope::MpiScope(int&, char**&) {
  const int n = launched_size();
  if (n > 1)
    throw std::runtime_error("started by mpirun with " + std::to_string(n) +
                             " processes, but tiny_lm was built without MPI (TAPEGRAD_WITH_MPI=OFF or no MPI "
                             "found); run it without mpirun, or rebuild with libopenmpi-dev installed");
}

MpiScope::~MpiScope() = default;

int MpiScope::fail(int code) { return code; }

Processes Processes::current() { return {}; }

void Processes::barrier() const {}

void Processes::broadcast_module(Module&) const {}

void Processes::sum_in_rank_order(std::span<float>) const {}

std::vector<double> Processes::all_gather(double v) const { return {v}; }

void Processes::broadcast_bytes(std::vector<char>&, int) const {}

#endif

}  // namespace tg::tiny_lm
