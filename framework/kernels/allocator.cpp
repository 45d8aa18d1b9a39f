#include "framework/kernels/allocator.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "tapegrad/framework/shape.h"

namespace tg::kernels {
namespace {

constexpr size_t kAlign = 64;
// Blocks larger than this are not cached (rare, and caching them could pin a lot of memory).
constexpr size_t kMaxCachedBlock = size_t{1} << 30;
// Cap on all cached bytes; beyond it released blocks go back to the system.
constexpr int64_t kMaxCachedTotal = int64_t{4} << 30;

size_t round_up(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

struct Pool {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  AllocatorStats stats;
};

Pool& pool() {
  static Pool* p = new Pool();   // never destroyed: tensors may be freed during static destruction
  return *p;
}

}  // namespace

void* allocate(size_t bytes) {
  // Past the tensor size limit round_up could wrap around: no request that large can succeed anyway.
  if (bytes > static_cast<size_t>(kMaxTensorBytes)) throw std::bad_alloc();
  size_t size = round_up(bytes == 0 ? kAlign : bytes);
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    auto it = p.free_lists.find(size);
    p.stats.bytes_in_use += static_cast<int64_t>(size);
    if (p.stats.bytes_in_use > p.stats.peak_bytes_in_use) p.stats.peak_bytes_in_use = p.stats.bytes_in_use;
    if (it != p.free_lists.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      p.stats.bytes_cached -= static_cast<int64_t>(size);
      return ptr;
    }
  }
  void* ptr = std::aligned_alloc(kAlign, size);
  if (!ptr) {
    std::lock_guard<std::mutex> lock(p.mu);
    p.stats.bytes_in_use -= static_cast<int64_t>(size);   // nothing was handed out
    throw std::bad_alloc();
  }
  return ptr;
}

void release(void* ptr, size_t bytes) {
  if (!ptr) return;
  size_t size = round_up(bytes == 0 ? kAlign : bytes);
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    p.stats.bytes_in_use -= static_cast<int64_t>(size);
    if (size <= kMaxCachedBlock && p.stats.bytes_cached + static_cast<int64_t>(size) <= kMaxCachedTotal) {
      p.free_lists[size].push_back(ptr);
      p.stats.bytes_cached += static_cast<int64_t>(size);
      return;
    }
  }
  std::free(ptr);
}

AllocatorStats allocator_stats() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  return p.stats;
}

void reset_peak_bytes() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  p.stats.peak_bytes_in_use = p.stats.bytes_in_use;
}

void empty_cache() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  for (auto& [size, list] : p.free_lists)
    for (void* ptr : list) std::free(ptr);
  p.free_lists.clear();
  p.stats.bytes_cached = 0;
}

}  // namespace tg::kernels
