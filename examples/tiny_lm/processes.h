#pragma once
// The processes of one tiny_lm training run: this process alone, or every process of an `mpirun`
// launch (tapegrad::distributed, when tiny_lm is built with MPI). Training code calls the same
// collectives either way; alone they are the identity, so a run without mpirun needs no MPI at run time.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace tg {
class Module;
}

namespace tg::tiny_lm {

// True when tiny_lm was built with tapegrad::distributed (TAPEGRAD_WITH_MPI and MPI found).
bool built_with_mpi();

// RAII for main(): when this process was started by mpirun (tg::dist::launched_by_mpi()), initialises
// MPI (tg::dist::Environment) and finalises it at scope exit; otherwise does nothing. Throws
// std::runtime_error when started by mpirun with more than one process but built without MPI (each
// process would train alone and all would write the same checkpoint).
class MpiScope {
 public:
  MpiScope(int& argc, char**& argv);
  ~MpiScope();
  MpiScope(const MpiScope&) = delete;
  MpiScope& operator=(const MpiScope&) = delete;
  bool active() const { return env_ != nullptr; }
  // Ends every process of the launch with `code` (MPI_Abort) when active: a process that failed must
  // not wait in MPI_Finalize for ranks blocked in a collective. Returns `code` when not active.
  int fail(int code);

 private:
  std::shared_ptr<void> env_;
};

// Rank r of size processes. Copies share the communicator.
class Processes {
 public:
  Processes() = default;                 // this process alone: rank 0 of 1
  // The mpirun world while an MpiScope is active, otherwise this process alone.
  static Processes current();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }

  void barrier() const;
  // Every parameter and buffer of m from rank 0, in registry order.
  void broadcast_module(Module& m) const;
  // x <- ((x_0 + x_1) + x_2) + ... over ranks, elementwise in rank order: the same bits on every rank
  // and for any layout (tg::dist::Communicator::sum_in_rank_order).
  void sum_in_rank_order(std::span<float> x) const;
  // v of every rank, index = rank.
  std::vector<double> all_gather(double v) const;
  // Rank `root`'s bytes on every rank (receivers' vectors take root's length); alone: unchanged.
  void broadcast_bytes(std::vector<char>& bytes, int root = 0) const;

 private:
  std::shared_ptr<const void> comm_;     // the tg::dist::Communicator, null when alone
  int rank_ = 0, size_ = 1;
};

}  // namespace tg::tiny_lm
