#pragma once
// tapegrad::distributed: data-parallel training over MPI (Open MPI / MPICH), bit-identical to one process.
//
//   int main(int argc, char** argv) {
//     tg::dist::Environment env(argc, argv);                  // MPI_Init ... MPI_Finalize
//     auto comm = tg::dist::Communicator::world();
//     MyModel model(...);
//     comm.broadcast_module(model);                            // every rank starts from rank 0's weights
//     tg::optim::AdamW opt(model.named_parameters(), {...});
//     tg::dist::GradientAverager averager(comm, model.parameters());
//     for (...) {
//       model.zero_grad();
//       loss(model, batch_of_this_rank).backward();
//       averager.average();                                    // g <- (g_0 + g_1 + ... + g_{K-1}) / K
//       opt.step();
//     }
//   }
//   $ mpirun -np 4 ./train            (as root also --allow-run-as-root; see README "Distributed training")
//
// Determinism: every reduction here sums in rank order, ((x_0 + x_1) + x_2) + ..., on every rank, with
// the same bits for any process layout, transport (shared memory, TCP) and host placement; MPI's own
// reduction operators (whose order is unspecified) are never used on floating-point data. So K ranks
// with batch B each give the bits of one process accumulating K micro-batches of B in the same order.
//
// Collectives: every method of Communicator except rank()/size(), and GradientAverager's constructor and
// average(), must be called by every rank of the communicator, in the same order. Arguments that must
// match across ranks (lengths, shapes, dtypes, which parameters have gradients) are checked by a small
// all-gather first, so a mismatch throws std::invalid_argument on EVERY rank instead of hanging:
//   "[sum_in_rank_order] the length differs across ranks; got x.size()=12 on rank 0, 10 on rank 1"
// A rank that rejects its own arguments (e.g. an undefined Tensor) throws its own message; the others
// throw "[broadcast] rank 1 rejected its arguments" at the same call.
// MPI failures (a peer that died, a broken link) throw std::runtime_error naming the MPI call.
// With size() == 1 nothing is communicated (no MPI call at all) and results equal the local values.
//
// Only MPI_COMM_WORLD is supported; calls must come from the thread that created the Environment
// (MPI_THREAD_FUNNELED; tapegrad's TBB workers never call MPI).
#include <chrono>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "tapegrad/framework/tape.h"
#include "tapegrad/framework/tensor.h"
#include "tapegrad/layers/module.h"

namespace tg::dist {

// True when this process was started by mpirun/mpiexec (OMPI_COMM_WORLD_SIZE or PMI_SIZE is set in the
// environment). Needs no MPI call, so a program may decide whether to create an Environment at all.
bool launched_by_mpi();

// RAII owner of MPI's lifetime: MPI_Init_thread(MPI_THREAD_FUNNELED) unless MPI is already initialised
// (then the caller who initialised it also finalises it), MPI_Finalize when the last Environment goes
// away (that one or a later one: while any Environment is alive, MPI stays up). Sets MPI_ERRORS_RETURN on
// MPI_COMM_WORLD so that MPI errors become exceptions. MPI can be initialised once per process: an
// Environment created after MPI_Finalize throws std::logic_error. Non-copyable.
// Every collective (Communicator's methods, GradientAverager) throws std::logic_error "[op] no
// tg::dist::Environment is alive ..." when none is, instead of letting MPI abort the process.
//
// Failures on one rank: MPI_Finalize waits for the other ranks, and they may wait in a collective this
// rank will never enter. So an Environment destroyed while an exception unwinds through it (an error
// that leaves main's scope) ends the whole launch with tg::dist::abort(1). A rank that catches an error
// it cannot share with the others (one whose peers may be waiting) should call tg::dist::abort itself:
//   try { train(comm); } catch (const std::exception& e) { std::cerr << e.what() << '\n'; tg::dist::abort(1); }
// Errors the collectives detect (mismatched arguments) are thrown on every rank alike and need no abort.
//
// Timeout (PyTorch's init_process_group(timeout=), default 30 minutes): a rank that waits in one MPI
// collective longer than `timeout` for the other ranks (one returned from main after catching an error
// without tg::dist::abort, or called a different collective) prints
//   "[dist] rank 0 of 2 waited 1800 s in MPI_Barrier (Communicator::barrier) for the other ranks, ..."
// and ends the launch (its process exits with status 1, and mpirun ends the other ranks), so a launch never
// hangs. The clock is a watchdog thread
// (with more than one rank); each collective costs two uncontended mutex locks more. One timeout per
// process: an Environment created while another is alive must pass the same one.
// Throws std::invalid_argument for timeout <= 0 or one that differs from a live Environment's.
class Environment {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout = std::chrono::minutes(30);
  Environment(int& argc, char**& argv, std::chrono::milliseconds timeout = kDefaultTimeout);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  // The thread support MPI granted (MPI_THREAD_SINGLE=0 .. MPI_THREAD_MULTIPLE=3).
  int thread_level() const { return thread_level_; }
  // The longest wait in one collective before the launch is ended.
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  std::chrono::milliseconds timeout_;
  bool owns_mpi_ = false;
  int thread_level_ = 0;
};

// Ends every process of the launch with `errorcode` (MPI_Abort on MPI_COMM_WORLD); without MPI running,
// ends this process (std::_Exit). Never returns.
[[noreturn]] void abort(int errorcode = 1);

// A group of ranks (MPI_COMM_WORLD). Cheap to copy: the rank and size are cached.
class Communicator {
 public:
  // MPI_COMM_WORLD. Throws std::logic_error "[Communicator::world] no tg::dist::Environment is alive"
  // unless an Environment exists.
  static Communicator world();

  int rank() const { return rank_; }
  int size() const { return size_; }

  void barrier() const;

  // Overwrites t on every rank with root's values, in place (t's storage is kept). t must have the same
  // shape and dtype on every rank (any dtype; the bytes are copied, so ranks must share the byte order).
  // Throws std::invalid_argument for an undefined t, a root outside [0, size()), or a shape/dtype that
  // differs across ranks.
  void broadcast(Tensor& t, int root = 0) const;
  // Root's bytes on every rank; receivers' vectors are resized to root's length.
  void broadcast_bytes(std::vector<char>& bytes, int root = 0) const;
  // Every parameter and buffer of m (state_dict() order, values copied in place, so layers and
  // optimizers keep their handles), as one packed message. Names, shapes and dtypes must match across
  // ranks (std::invalid_argument otherwise).
  void broadcast_module(Module& m, int root = 0) const;

  // Elementwise sum over ranks in rank order, on every rank: x <- ((x_0 + x_1) + x_2) + ... + x_{K-1},
  // where x_r is rank r's x. The same bits on every rank and for any process layout. x.size() must be
  // equal on every rank. Scheme: rank r owns a contiguous slice of x; an all-to-all hands every slice to
  // its owner, the owner adds the K copies in rank order starting from rank 0's, an all-gather returns
  // the sums. Sends 2 (K-1)/K * x.size() elements per rank (plus 24 bytes to each other rank for the
  // length check).
  void sum_in_rank_order(std::span<float> x) const;
  void sum_in_rank_order(std::span<double> x) const;

  // Every rank's v, indexed by rank.
  std::vector<double> all_gather(double v) const;

 private:
  Communicator(int rank, int size) : rank_(rank), size_(size) {}
  int rank_ = 0;
  int size_ = 1;
};

// Averages the gradients of `params` over ranks, called between backward() and optimizer.step():
//   g <- (((g_0 + g_1) + g_2) + ... + g_{K-1}) / K      (a true division by K, not a multiply by 1/K)
// which equals, bit for bit, one process that assigns the gradient of micro-batch 0, adds those of
// micro-batches 1 .. K-1 in order (unscaled losses) and divides by K.
// The gradients are packed into buckets of at most bucket_bytes (default 4 MiB) per dtype, a parameter
// may straddle two buckets; one sum_in_rank_order per bucket. A parameter whose gradient is none on
// every rank stays none and sends nothing; one with a gradient on some ranks only throws
// std::invalid_argument on every rank (set_grad(zeros) on the others if that is what you mean).
// The averaged gradients are new tensors (set_grad), so nothing else sharing the old ones changes.
class GradientAverager {
 public:
  // params: defined, float32/float64, each listed once (the list of Module::parameters() qualifies).
  // Frozen ones (requires_grad() false) may be listed: each average() takes the parameters that have a
  // gradient at that moment, so one unfrozen after construction (requires_grad_(true)) is averaged from
  // its first gradient on. Collective: checks that every rank passes the same count, shapes and dtypes.
  // Throws std::invalid_argument for a bad list, a mismatch across ranks, or bucket_bytes < 8.
  GradientAverager(Communicator comm, std::vector<Var> params, std::size_t bucket_bytes = 4u << 20);

  // Collective. Throws std::invalid_argument when a gradient's shape/dtype differs from its parameter's,
  // or when which parameters have gradients differs across ranks.
  void average();

  // Bytes this rank sends per average() when every parameter that requires grad now has a gradient:
  // the gradient payload, 2 (K-1)/K of the gradient bytes summed over buckets, plus 24 bytes to each
  // other rank for the consistency check. 0 when size() == 1.
  std::size_t bytes_sent_per_call() const { return cost().second; }
  // Number of buckets (sum_in_rank_order calls) per average() in the same case.
  std::size_t buckets() const { return cost().first; }

 private:
  std::pair<std::size_t, std::size_t> cost() const;   // {buckets, bytes sent}
  Communicator comm_;
  std::vector<Var> params_;
  std::size_t bucket_bytes_;
};

}  // namespace tg::dist
