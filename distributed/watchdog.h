#pragma once
// Internal to tapegrad_distributed: the collectives' timeout (tg::dist::Environment's `timeout`).
// Not installed, not in the include root (cmake/tapegradPublicHeaders.cmake).
// A blocking MPI collective cannot be interrupted from the thread that waits in it, so a watchdog thread
// watches the collective in progress: when one lasts longer than the timeout (the other ranks never came:
// one failed and returned from main, or called another collective), it prints what this rank waited for
// and ends the launch by ending its process with exit status 1 (std::_Exit: no MPI call from this second
// thread, which MPI_THREAD_FUNNELED does not allow; mpirun then kills the other ranks), as PyTorch's NCCL
// watchdog tears a job down. Cost on the hot path: two uncontended mutex locks per collective; the thread
// sleeps until a deadline.
#include <chrono>

#include "distributed/collectives.h"

namespace tg::dist::detail {

// Starts the watchdog for this process (rank of size ranks; no thread for one rank) with a positive
// timeout, or checks that the running one has the same timeout (std::invalid_argument otherwise).
void start_watchdog(std::chrono::milliseconds timeout, int rank, int size);
// Stops and joins the watchdog thread; nothing when none runs. Never throws.
void stop_watchdog() noexcept;

// RAII: a collective in progress, from construction to destruction. op: tapegrad's operation (the
// message's context, e.g. "Communicator::barrier"), call: the MPI call ("MPI_Barrier"); both literals.
class WatchedCall {
 public:
  WatchedCall(const char* op, const char* call);
  ~WatchedCall();
  WatchedCall(const WatchedCall&) = delete;
  WatchedCall& operator=(const WatchedCall&) = delete;
};

// Runs the MPI call `f` (returning MPI's error code) under the watchdog, then check_mpi(rc, call).
template <class F> void watched(const char* op, const char* call, F&& f) {
  int rc = 0;
  {
    const WatchedCall guard(op, call);
    rc = f();
  }
  check_mpi(rc, call);
}

}  // namespace tg::dist::detail
