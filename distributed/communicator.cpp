// Environment, Communicator and the shared collectives (agree, sum_slices) over the MPI C API.
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "distributed/collectives.h"
#include "distributed/watchdog.h"
#include "tapegrad/framework/check.h"
#include "tapegrad/framework/state_dict.h"

namespace tg::dist {

namespace {
// Environments alive in this process; Communicator::world() and every collective need at least one.
std::atomic<int> g_live_environments{0};
// An Environment that initialised MPI went away while others were alive: the last one finalises.
std::atomic<bool> g_finalize_pending{false};

// Whether MPI is initialised and not yet finalised (never throws: for destructors and abort).
bool mpi_running() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

// MPI_COMM_WORLD's size while MPI runs, else 1.
int world_size_now() {
  int size = 1;
  if (mpi_running()) MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// Throws std::logic_error "[op] no tg::dist::Environment is alive<advice>" when none is: an MPI call then
// would abort the process instead of throwing.
constexpr const char* kKeepAlive = " (MPI was finalised or never started); keep the Environment alive while any "
                                   "Communicator or GradientAverager is used";
void require_environment(const char* op, const char* advice = kKeepAlive) {
  if (g_live_environments.load() == 0) tg::detail::fail_logic(op, "no tg::dist::Environment is alive", advice);
}

template <class T> MPI_Datatype mpi_type();
template <> MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <> MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

// Rank s's slice of n elements over K ranks: the first n % K ranks own one element more.
std::size_t slice_count(std::size_t n, int K, int s) {
  return n / static_cast<std::size_t>(K) + (static_cast<std::size_t>(s) < n % static_cast<std::size_t>(K) ? 1 : 0);
}

// MPI_Bcast of any number of bytes (MPI counts are int).
void bcast_raw(const char* op, void* data, std::size_t bytes, int root) {
  auto* p = static_cast<char*>(data);
  constexpr std::size_t kMax = static_cast<std::size_t>(INT_MAX);
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t n = std::min(kMax, bytes - done);
    detail::watched(op, "MPI_Bcast",
                    [&] { return MPI_Bcast(p + done, static_cast<int>(n), MPI_BYTE, root, MPI_COMM_WORLD); });
    done += n;
  }
}

// Local checks of a root argument; throws std::invalid_argument.
void check_root(const char* op, int root, int size) {
  TG_CHECK(root >= 0 && root < size, op, "root must be in [0, size()); got root=", root, ", size()=", size);
}

// The hash of a tensor's dtype and shape.
uint64_t hash_layout(uint64_t h, const Tensor& t) {
  h = detail::hash_value(h, static_cast<int64_t>(t.dtype()));
  h = detail::hash_value(h, t.dim());
  for (int64_t d : t.shape()) h = detail::hash_value(h, d);
  return h;
}

template <class T> void sum_chunk(const char* op, T* x, std::size_t m, int r, int K, std::vector<T>& recv) {
  // Rank s owns x[offset[s], offset[s] + count[s]).
  std::vector<int> counts(K), offsets(K), recv_counts(K), recv_offsets(K);
  std::size_t offset = 0;
  for (int s = 0; s < K; ++s) {
    counts[s] = static_cast<int>(slice_count(m, K, s));
    offsets[s] = static_cast<int>(offset);
    offset += static_cast<std::size_t>(counts[s]);
  }
  const int mine = counts[r];
  for (int s = 0; s < K; ++s) {
    recv_counts[s] = mine;
    recv_offsets[s] = s * mine;
  }
  // All-to-all: recv [K, mine] holds every rank's copy of this rank's slice, rank order.
  recv.resize(static_cast<std::size_t>(K) * static_cast<std::size_t>(mine));
  detail::watched(op, "MPI_Alltoallv", [&] {
    return MPI_Alltoallv(x, counts.data(), offsets.data(), mpi_type<T>(), recv.data(), recv_counts.data(),
                         recv_offsets.data(), mpi_type<T>(), MPI_COMM_WORLD);
  });
  // The owner's sum in rank order: ((x_0 + x_1) + x_2) + ...  (elements are independent; j is outermost).
  T* out = x + offsets[r];
  std::copy(recv.begin(), recv.begin() + mine, out);
  for (int j = 1; j < K; ++j) {
    const T* xj = recv.data() + static_cast<std::size_t>(j) * static_cast<std::size_t>(mine);
    for (int i = 0; i < mine; ++i) out[i] += xj[i];
  }
  detail::watched(op, "MPI_Allgatherv", [&] {
    return MPI_Allgatherv(MPI_IN_PLACE, 0, mpi_type<T>(), x, counts.data(), offsets.data(), mpi_type<T>(),
                          MPI_COMM_WORLD);
  });
}

template <class T> void sum_slices_impl(const char* op, const Communicator& comm, T* x, std::size_t n) {
  if (comm.size() == 1 || n == 0) return;
  std::vector<T> recv;
  for (std::size_t done = 0; done < n; done += detail::kSumChunk)
    sum_chunk(op, x + done, std::min(detail::kSumChunk, n - done), comm.rank(), comm.size(), recv);
}

template <class T> void sum_checked(const Communicator& comm, T* x, std::size_t n) {
  require_environment("sum_in_rank_order");
  if (comm.size() == 1) return;
  detail::Claim mine{.value = static_cast<int64_t>(n), .hash = detail::hash_value(detail::kHashSeed, n)};
  detail::agree(comm, "sum_in_rank_order", mine, nullptr, "the length", "x.size()");
  sum_slices_impl("sum_in_rank_order", comm, x, n);
}
}  // namespace

// ---------------------------------------------------------------------------------------------------
namespace detail {

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) length = 0;
  throw std::runtime_error(std::string("[dist] ") + call + " failed: " +
                           (length > 0 ? std::string(text, static_cast<std::size_t>(length))
                                       : "MPI error code " + std::to_string(rc)));
}

uint64_t hash_bytes(uint64_t h, const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

void agree(const Communicator& comm, const char* op, Claim mine, const std::exception_ptr& error, const char* what,
           const char* value_name, const std::function<std::string()>& mine_text) {
  require_environment(op);
  const int K = comm.size();
  if (K == 1) {
    if (error) std::rethrow_exception(error);
    return;
  }
  mine.rejected = error ? 1 : 0;
  std::vector<Claim> all(static_cast<std::size_t>(K));
  watched(op, "MPI_Allgather", [&] {
    return MPI_Allgather(&mine, static_cast<int>(sizeof(Claim)), MPI_BYTE, all.data(), static_cast<int>(sizeof(Claim)),
                         MPI_BYTE, MPI_COMM_WORLD);
  });
  if (error) std::rethrow_exception(error);
  for (int s = 0; s < K; ++s)
    if (all[s].rejected) tg::detail::fail_invalid(op, "rank ", s, " rejected its arguments");
  bool differ = false;
  for (const Claim& c : all) differ = differ || c.value != all[0].value || c.hash != all[0].hash;
  if (!differ) return;
  std::ostringstream os;
  os << value_name << '=';
  for (int s = 0; s < K; ++s) os << (s ? ", " : "") << all[s].value << " on rank " << s;
  if (mine_text) os << "; this rank (" << comm.rank() << ") has " << mine_text();
  tg::detail::fail_invalid(op, what, " differs across ranks; got ", os.str());
}

void sum_slices(const char* op, const Communicator& comm, float* x, std::size_t n) { sum_slices_impl(op, comm, x, n); }
void sum_slices(const char* op, const Communicator& comm, double* x, std::size_t n) {
  sum_slices_impl(op, comm, x, n);
}

std::size_t sum_slices_bytes_sent(std::size_t n, std::size_t elem_bytes, int rank, int ranks) {
  if (ranks == 1) return 0;
  std::size_t elements = 0;
  for (std::size_t done = 0; done < n; done += kSumChunk) {
    const std::size_t m = std::min(kSumChunk, n - done);
    const std::size_t mine = slice_count(m, ranks, rank);
    elements += (m - mine) + mine * static_cast<std::size_t>(ranks - 1);   // all-to-all + all-gather
  }
  return elements * elem_bytes;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------------
bool launched_by_mpi() { return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMI_SIZE") != nullptr; }

Environment::Environment(int& argc, char**& argv, std::chrono::milliseconds timeout) : timeout_(timeout) {
  TG_CHECK(timeout.count() > 0, "dist::Environment", "timeout must be positive; got timeout=", timeout.count(), " ms");
  int initialized = 0, finalized = 0;
  detail::check_mpi(MPI_Finalized(&finalized), "MPI_Finalized");
  if (finalized)
    tg::detail::fail_logic("dist::Environment", "MPI was finalised already and cannot start again; create one "
                                            "Environment for the whole program");
  detail::check_mpi(MPI_Initialized(&initialized), "MPI_Initialized");
  if (!initialized) {
    detail::check_mpi(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &thread_level_), "MPI_Init_thread");
    owns_mpi_ = true;
  } else {
    detail::check_mpi(MPI_Query_thread(&thread_level_), "MPI_Query_thread");
  }
  detail::check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  int rank = 0, size = 1;
  detail::check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  detail::check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size), "MPI_Comm_size");
  detail::start_watchdog(timeout, rank, size);   // throws only when another Environment is alive: MPI isn't ours
  ++g_live_environments;
}

Environment::~Environment() {
  // Unwinding an exception out of main: another rank may wait in a collective this rank will never enter,
  // and MPI_Finalize would wait for it. End the whole launch instead (an uncaught exception does as much).
  if (std::uncaught_exceptions() > 0 && world_size_now() > 1) {
    std::fprintf(stderr, "[dist::Environment] an exception is unwinding through the Environment; aborting "
                         "the launch so that the other ranks do not wait for this one\n");
    abort(1);
  }
  if (owns_mpi_) g_finalize_pending = true;
  if (--g_live_environments > 0) return;
  detail::stop_watchdog();
  if (!g_finalize_pending.exchange(false)) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();   // a destructor cannot throw; MPI_Finalize's failure has no remedy here
}

void abort(int errorcode) {
  if (mpi_running()) MPI_Abort(MPI_COMM_WORLD, errorcode);
  std::_Exit(errorcode);
}

Communicator Communicator::world() {
  require_environment("Communicator::world", "; create one at the start of main");
  int rank = 0, size = 1;
  detail::check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  detail::check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size), "MPI_Comm_size");
  return Communicator(rank, size);
}

void Communicator::barrier() const {
  require_environment("Communicator::barrier");
  if (size_ > 1) detail::watched("Communicator::barrier", "MPI_Barrier", [] { return MPI_Barrier(MPI_COMM_WORLD); });
}

void Communicator::broadcast(Tensor& t, int root) const {
  std::exception_ptr error;
  detail::Claim mine;
  try {
    check_defined("broadcast", "t", t);
    check_root("broadcast", root, size_);
    mine.value = t.numel();
    mine.hash = hash_layout(detail::hash_value(detail::kHashSeed, root), t);
  } catch (const std::invalid_argument&) {
    error = std::current_exception();
  }
  detail::agree(*this, "broadcast", mine, error, "t's shape, dtype or root", "t.numel()",
                [&] { return "t=" + describe(t); });
  if (size_ == 1) return;
  bcast_raw("broadcast", t.raw(), t.nbytes(), root);
  if (rank_ != root) t.increment_version();   // changed in place (see Tensor::version)
}

void Communicator::broadcast_bytes(std::vector<char>& bytes, int root) const {
  std::exception_ptr error;
  try {
    check_root("broadcast_bytes", root, size_);
  } catch (const std::invalid_argument&) {
    error = std::current_exception();
  }
  detail::Claim mine{.value = root, .hash = detail::hash_value(detail::kHashSeed, root)};
  detail::agree(*this, "broadcast_bytes", mine, error, "the root", "root");
  if (size_ == 1) return;
  uint64_t length = bytes.size();
  bcast_raw("broadcast_bytes", &length, sizeof(length), root);
  if (rank_ != root) bytes.resize(static_cast<std::size_t>(length));
  bcast_raw("broadcast_bytes", bytes.data(), bytes.size(), root);
}

void Communicator::broadcast_module(Module& m, int root) const {
  StateDict state = m.state_dict();   // live tensors: writing them writes the module
  std::exception_ptr error;
  detail::Claim mine;
  std::size_t total = 0;
  try {
    check_root("broadcast_module", root, size_);
    uint64_t h = detail::hash_value(detail::kHashSeed, root);
    for (const auto& [name, t] : state) {
      h = hash_layout(detail::hash_bytes(h, name.data(), name.size() + 1), t);   // + 1: the terminating NUL
      total += t.nbytes();
    }
    mine.value = static_cast<int64_t>(state.size());
    mine.hash = h;
  } catch (const std::invalid_argument&) {
    error = std::current_exception();
  }
  detail::agree(*this, "broadcast_module", mine, error, "the module's entry names, shapes, dtypes or root",
                "state_dict().size()", [&] {
                  return std::to_string(state.size()) + " entries, " + std::to_string(total) + " bytes: " +
                         detail::first_entries(state.size(), [&](std::size_t i) {
                           return state[i].first + "=" + describe(state[i].second);
                         });
                });
  if (size_ == 1) return;
  // One message: root packs every entry in state_dict order; the others unpack in the same order.
  std::vector<char> packed(total);
  std::size_t at = 0;
  if (rank_ == root)
    for (const auto& [name, t] : state) {
      std::memcpy(packed.data() + at, t.raw(), t.nbytes());
      at += t.nbytes();
    }
  bcast_raw("broadcast_module", packed.data(), packed.size(), root);
  if (rank_ == root) return;
  for (auto& [name, t] : state) {
    std::memcpy(t.raw(), packed.data() + at, t.nbytes());
    t.increment_version();   // changed in place (see Tensor::version)
    at += t.nbytes();
  }
}

void Communicator::sum_in_rank_order(std::span<float> x) const { sum_checked(*this, x.data(), x.size()); }
void Communicator::sum_in_rank_order(std::span<double> x) const { sum_checked(*this, x.data(), x.size()); }

std::vector<double> Communicator::all_gather(double v) const {
  require_environment("Communicator::all_gather");
  std::vector<double> all(static_cast<std::size_t>(size_), v);
  if (size_ > 1)
    detail::watched("Communicator::all_gather", "MPI_Allgather",
                    [&] { return MPI_Allgather(&v, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, MPI_COMM_WORLD); });
  return all;
}

}  // namespace tg::dist
