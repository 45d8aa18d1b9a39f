#pragma once
// Deterministic parallel loops. The split of [0, n) into chunks depends only on n and the grain,
// never on the thread count, so any reduction combined chunk by chunk in index order gives the same
// bits with 1 or 64 threads. This header (with kernels/*.cpp) is the only place that uses tbb::.
#include <cstdint>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

namespace tg::kernels {

// Runs f(begin, end) over chunks of [0, n) of at most `grain` items, in parallel.
template <class F> void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n <= grain) {
    f(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, n, grain),
      [&f](const tbb::blocked_range<int64_t>& r) { f(r.begin(), r.end()); }, tbb::simple_partitioner());
}

// Runs f(i, begin, end) over pieces of [0, sizes[i]) for every i: each range cut into pieces of at most
// `piece` items, then `group` consecutive pieces of one range per task, all tasks of all ranges in one
// parallel region (a multi-tensor update: one region instead of one per tensor, and small tensors share the
// threads). The pieces depend only on the sizes and `piece`, never on the thread count.
template <class F> void parallel_for_pieces(const std::vector<int64_t>& sizes, int64_t piece, int64_t group, F&& f) {
  struct Task {
    size_t i;
    int64_t begin, end;
  };
  std::vector<Task> tasks;
  const int64_t span = piece * (group < 1 ? 1 : group);
  for (size_t i = 0; i < sizes.size(); ++i)
    for (int64_t b = 0; b < sizes[i]; b += span) tasks.push_back({i, b, b + span < sizes[i] ? b + span : sizes[i]});
  parallel_for(static_cast<int64_t>(tasks.size()), 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const Task& k = tasks[static_cast<size_t>(t)];
      for (int64_t b = k.begin; b < k.end; b += piece) f(k.i, b, b + piece < k.end ? b + piece : k.end);
    }
  });
}

// Grain that gives roughly `work_per_chunk` scalar operations per chunk when each item costs
// `cost_per_item`.
inline int64_t grain_for(int64_t cost_per_item, int64_t work_per_chunk = 32768) {
  if (cost_per_item < 1) cost_per_item = 1;
  int64_t g = work_per_chunk / cost_per_item;
  return g < 1 ? 1 : g;
}

// Items of a reduction one parallel task takes at least: a task of fewer would not pay for waking a
// second thread (a 128 x 128 gradient's norm is a few microseconds of work).
inline constexpr int64_t kMinReduceItemsPerTask = 32768;

// Deterministic sum over [0, n) cut into fixed chunks of `chunk` items: chunk_sum(begin, end) gives
// each chunk's partial (computed in parallel, whole chunks per task, at least kMinReduceItemsPerTask
// items per task), and the partials are added in index order. Acc is the accumulator type (double
// for float inputs). The partials depend on n and chunk only, so the total does not depend on how
// the chunks are grouped into tasks or on the thread count.
template <class Acc, class G> Acc deterministic_chunk_sum(int64_t n, int64_t chunk, G&& chunk_sum) {
  if (n <= 0) return Acc(0);
  int64_t nchunks = (n + chunk - 1) / chunk;
  std::vector<Acc> partial(static_cast<size_t>(nchunks), Acc(0));
  parallel_for(nchunks, grain_for(chunk, kMinReduceItemsPerTask), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
      partial[static_cast<size_t>(c)] = chunk_sum(c * chunk, end);
    }
  });
  Acc total(0);
  for (Acc p : partial) total += p;
  return total;
}

// Deterministic sum of f(i) over [0, n): fixed chunks of `chunk` items summed sequentially, chunk
// partials added in index order.
template <class Acc, class F> Acc deterministic_sum(int64_t n, int64_t chunk, F&& f) {
  return deterministic_chunk_sum<Acc>(n, chunk, [&](int64_t begin, int64_t end) {
    Acc acc(0);
    for (int64_t i = begin; i < end; ++i) acc += f(i);
    return acc;
  });
}

}  // namespace tg::kernels
