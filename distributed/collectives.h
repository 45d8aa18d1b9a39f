#pragma once
// Internal to tapegrad_distributed (not installed, not in the include root): the pieces communicator.cpp
// and gradient_averager.cpp share. Included by source path: "distributed/collectives.h".
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>

#include "tapegrad/distributed/distributed.h"

namespace tg::dist::detail {

// Throws std::runtime_error "[dist] <call> failed: <MPI's error string>" unless rc == MPI_SUCCESS.
void check_mpi(int rc, const char* call);

// What a rank says about its arguments before a collective: `value` is printed in the mismatch message
// (a length or a count), `hash` covers everything else that must match (shapes, dtypes, the root).
struct Claim {
  int64_t rejected = 0;   // 1: this rank's arguments were invalid (it throws its own error)
  int64_t value = 0;
  uint64_t hash = 0;
};
inline constexpr std::size_t kClaimBytes = sizeof(Claim);   // 24: sent to every other rank per check

// FNV-1a over bytes, continuing from `h` (start with kHashSeed).
inline constexpr uint64_t kHashSeed = 14695981039346656037ull;
uint64_t hash_bytes(uint64_t h, const void* data, std::size_t bytes);
template <class T> uint64_t hash_value(uint64_t h, const T& v) { return hash_bytes(h, &v, sizeof(T)); }

// Collective: all-gathers every rank's claim (mine.rejected is set from `error`). Then on every rank:
// a rank that rejected its arguments rethrows `error`; the others throw std::invalid_argument
// "[op] rank r rejected its arguments"; else, when some rank's (value, hash) differs from rank 0's,
// std::invalid_argument "[op] <what> differs across ranks; got <value_name>=<value> on rank 0, <value> on
// rank 1, ...",
// followed by "; this rank (r) has <mine_text()>" when mine_text is given. mine_text is called only
// then, so a collective that agrees (every step of a training loop) builds no text. With one rank:
// rethrows `error` if set, nothing else.
void agree(const Communicator& comm, const char* op, Claim mine, const std::exception_ptr& error,
           const char* what, const char* value_name, const std::function<std::string()>& mine_text = {});

// This rank's side of a mismatch message (agree's mine_text): text(0), text(1), ... for the first 6 of
// `count` entries, then "and N more"; "none" when count is 0.
template <class F> std::string first_entries(std::size_t count, F text) {
  constexpr std::size_t kShown = 6;
  if (count == 0) return "none";
  std::string s;
  for (std::size_t i = 0; i < count && i < kShown; ++i) s.append(i ? ", " : "").append(text(i));
  if (count > kShown) s.append(" and ").append(std::to_string(count - kShown)).append(" more");
  return s;
}

// The deterministic rank-ordered sum of sum_in_rank_order, without the length check (the caller
// guarantees equal n on every rank). Works in chunks of at most kSumChunk elements (MPI counts are int).
inline constexpr std::size_t kSumChunk = std::size_t{1} << 27;
// op: the caller's name for the watchdog's message (watchdog.h).
void sum_slices(const char* op, const Communicator& comm, float* x, std::size_t n);
void sum_slices(const char* op, const Communicator& comm, double* x, std::size_t n);

// Bytes rank `rank` of `ranks` sends in sum_slices over n elements of elem_bytes each: its pieces of the
// other ranks' slices (all-to-all) and its own slice to every other rank (all-gather). 0 for one rank.
std::size_t sum_slices_bytes_sent(std::size_t n, std::size_t elem_bytes, int rank, int ranks);

}  // namespace tg::dist::detail
