// kernels/parallel.h: the chunking of parallel loops and deterministic sums depends on the sizes only.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "framework/kernels/parallel.h"
#include "tapegrad/framework/runtime.h"

namespace {

using Range = std::pair<int64_t, int64_t>;

// The (begin, end) ranges f was called with, sorted.
template <class Run> std::vector<Range> ranges_of(Run&& run) {
  std::mutex mu;
  std::vector<Range> seen;
  run([&](int64_t b, int64_t e) {
    std::lock_guard<std::mutex> lock(mu);
    seen.emplace_back(b, e);
  });
  std::sort(seen.begin(), seen.end());
  return seen;
}

// A float series whose sum depends on the order of the additions.
float term(int64_t i) { return 1.0f / static_cast<float>(1 + i % 977) + (i % 3 == 0 ? 1e4f : -1e4f); }

}  // namespace

TEST_CASE("parallel_for: covers 0..n-1 once, in chunks of at most grain items, for 1 and 2 threads", "[kernels][parallel]") {
  for (int threads : {1, 2}) {
    tg::set_num_threads(threads);
    std::vector<Range> r = ranges_of([](auto f) { tg::kernels::parallel_for(1000, 64, f); });
    REQUIRE(!r.empty());
    REQUIRE(r.front().first == 0);
    REQUIRE(r.back().second == 1000);
    for (size_t i = 0; i < r.size(); ++i) {
      REQUIRE(r[i].second - r[i].first <= 64);
      REQUIRE(r[i].second > r[i].first);
      if (i > 0) REQUIRE(r[i].first == r[i - 1].second);
    }
    // n <= grain: one call on the calling thread.
    REQUIRE(ranges_of([](auto f) { tg::kernels::parallel_for(64, 64, f); }) == std::vector<Range>{{0, 64}});
  }
  tg::set_num_threads(2);
}

TEST_CASE("deterministic_chunk_sum: partials of the fixed chunks added in index order, for 1 and 2 threads",
          "[kernels][parallel]") {
  const int64_t n = 100000, chunk = 4096;   // 25 chunks, the last one short; tasks group 8 chunks
  std::vector<Range> expected;
  float reference = 0.0f;
  for (int64_t c = 0; c * chunk < n; ++c) {
    const int64_t b = c * chunk, e = std::min(n, b + chunk);
    expected.emplace_back(b, e);
    float part = 0.0f;
    for (int64_t i = b; i < e; ++i) part += term(i);
    reference += part;
  }
  for (int threads : {1, 2}) {
    tg::set_num_threads(threads);
    std::mutex mu;
    std::vector<Range> seen;
    const float total = tg::kernels::deterministic_chunk_sum<float>(n, chunk, [&](int64_t b, int64_t e) {
      {
        std::lock_guard<std::mutex> lock(mu);
        seen.emplace_back(b, e);
      }
      float part = 0.0f;
      for (int64_t i = b; i < e; ++i) part += term(i);
      return part;
    });
    std::sort(seen.begin(), seen.end());
    REQUIRE(seen == expected);   // every chunk once, with the boundaries fixed by n and chunk
    REQUIRE(total == reference);   // bit-equal: the partials are added in index order
  }
  tg::set_num_threads(2);
  // The element form sums f(i) over the same chunks.
  const float by_element = tg::kernels::deterministic_sum<float>(n, chunk, term);
  REQUIRE(by_element == reference);
  REQUIRE(tg::kernels::deterministic_sum<float>(0, chunk, term) == 0.0f);
}
