// The collectives' watchdog thread (see watchdog.h).
#include "distributed/watchdog.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "tapegrad/framework/check.h"

namespace tg::dist::detail {

namespace {
using Clock = std::chrono::steady_clock;

// Longest wait the clock arithmetic takes (a larger timeout means "never" in practice: 100 years).
constexpr std::chrono::milliseconds kLongest = std::chrono::hours(24 * 365 * 100);

struct Watchdog {
  std::mutex m;
  std::condition_variable cv;
  std::thread thread;
  bool stop = false;
  bool idle = false;                      // the thread waits for a collective to start
  std::chrono::milliseconds timeout{0};   // 0: not started
  int rank = 0, size = 1;
  // The collective in progress.
  bool active = false;
  unsigned long long seq = 0;             // counts collectives started
  const char* op = "";
  const char* call = "";
  Clock::time_point deadline;

  void stop_and_join() noexcept {
    {
      const std::lock_guard lock(m);
      stop = true;
      timeout = std::chrono::milliseconds(0);
    }
    cv.notify_one();
    if (thread.joinable()) thread.join();
  }
  ~Watchdog() { stop_and_join(); }   // an Environment never destroyed (leaked): join before exit
};

Watchdog& watchdog() {
  static Watchdog w;
  return w;
}

// "1800 s", "1.5 s", "0.001 s": the timeout as given, in seconds.
std::string seconds(std::chrono::milliseconds t) {
  const long long ms = t.count();
  std::string text = std::to_string(ms / 1000);
  if (ms % 1000 != 0) {
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%03lld", ms % 1000);
    text += frac;
    while (text.back() == '0') text.pop_back();
  }
  return text + " s";
}

// Prints what this rank waited for and ends the process with exit status 1, which ends the launch: mpirun
// (Open MPI, MPICH's Hydra) kills the other ranks of a launch when one exits with a nonzero status, and
// under a launcher that does not, each rank still waiting has its own watchdog. Not MPI_Abort: this thread
// is not the one MPI_THREAD_FUNNELED allows to call MPI, and Open MPI 4.1's mpiexec segfaulted (in
// PMIx_server_finalize) or hung in 5 of 60 launches of an abort from a second thread while the main thread
// waited in MPI_Barrier (with MPI_THREAD_MULTIPLE still 1 of 60); with std::_Exit, 165 of 165 ended cleanly.
[[noreturn]] void fire(const Watchdog& w) {
  std::fprintf(stderr,
               "[dist] rank %d of %d waited %s in %s (%s) for the other ranks, longer than the "
               "tg::dist::Environment's timeout: a rank failed and returned without tg::dist::abort, or called "
               "a different collective. Ending the launch\n",
               w.rank, w.size, seconds(w.timeout).c_str(), w.call, w.op);
  std::fflush(stderr);
  std::fflush(stdout);
  std::_Exit(1);
}

void loop(Watchdog& w) {
  std::unique_lock lock(w.m);
  while (!w.stop) {
    if (!w.active) {
      w.idle = true;
      w.cv.wait(lock);
      w.idle = false;
      continue;
    }
    const unsigned long long seq = w.seq;
    const Clock::time_point deadline = w.deadline;
    w.cv.wait_until(lock, deadline);   // woken early only by stop (or spuriously)
    if (!w.stop && w.active && w.seq == seq && Clock::now() >= deadline) fire(w);
  }
}
}  // namespace

void start_watchdog(std::chrono::milliseconds timeout, int rank, int size) {
  Watchdog& w = watchdog();
  const std::lock_guard lock(w.m);
  if (w.timeout.count() != 0) {
    TG_CHECK(timeout == w.timeout, "dist::Environment",
             "timeout differs from the live Environment's (one timeout per process); got timeout=", timeout.count(),
             " ms, live Environment's ", w.timeout.count(), " ms");
    return;
  }
  w.timeout = timeout;
  w.rank = rank;
  w.size = size;
  w.stop = false;
  if (size > 1) w.thread = std::thread(loop, std::ref(w));   // one rank calls no MPI collective
}

void stop_watchdog() noexcept { watchdog().stop_and_join(); }

WatchedCall::WatchedCall(const char* op, const char* call) {
  Watchdog& w = watchdog();
  bool wake = false;
  {
    const std::lock_guard lock(w.m);
    w.active = true;
    ++w.seq;
    w.op = op;
    w.call = call;
    w.deadline = Clock::now() + std::min(w.timeout, kLongest);
    wake = w.idle;
  }
  if (wake) w.cv.notify_one();
}

WatchedCall::~WatchedCall() {
  Watchdog& w = watchdog();
  const std::lock_guard lock(w.m);
  w.active = false;
}

}  // namespace tg::dist::detail
