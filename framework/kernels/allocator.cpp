#include "framework/kernels/allocator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
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

// Blocks of at most kMaxCachedBlock come from one reserved range of address space that the kernel backs with
// 2 MB transparent huge pages (madvise), carved one after another. A training step touches tens of MB of
// tensors; on 4 KB pages that is thousands of pages, far more than the TLB holds, and the tiny LM's step spent
// ~6% of its time on the misses (bench_train, f32 15.7 -> 14.8 ms, bf16 12.2 -> 11.5 ms). The range is only
// reserved (MAP_NORESERVE): memory is committed page by page as blocks are first written. A block is never
// given back to the range: freed, it waits in its size's free list, and when it leaves the cache its pages are
// returned to the system (MADV_DONTNEED) while its addresses stay listed for the next block of that size.
// Without the range (mmap refused, it is full, or AddressSanitizer, which must see every block) blocks come
// from aligned_alloc as before.
class HugePageRange {
 public:
  static constexpr size_t kReserve = size_t{1} << 38;   // 256 GB of address space, none of it committed
  static constexpr size_t kHuge = size_t{2} << 20;

  HugePageRange() {
#if !defined(__SANITIZE_ADDRESS__)
    void* p = mmap(nullptr, kReserve + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) return;
    const auto addr = reinterpret_cast<uintptr_t>(p);
    base_ = reinterpret_cast<char*>((addr + kHuge - 1) / kHuge * kHuge);
    madvise(base_, kReserve, MADV_HUGEPAGE);   // a kernel without THP ignores it: 4 KB pages then
#endif
  }
  // nullptr when the range is full (or absent). Called under the pool's lock.
  void* carve(size_t size) {
    if (!base_ || size > kReserve - used_) return nullptr;
    void* p = base_ + used_;
    used_ += size;
    return p;
  }
  bool active() const { return base_ != nullptr; }
  bool owns(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return base_ && c >= base_ && c < base_ + kReserve;
  }
  // Returns the whole pages inside [p, p + size) to the system; the addresses stay mapped (zeros when next
  // touched). The partial pages at either end belong to neighbouring blocks too and are kept.
  static void decommit(void* p, size_t size) {
    static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const auto begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const auto end = (reinterpret_cast<uintptr_t>(p) + size) / page * page;
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }

 private:
  char* base_ = nullptr;
  size_t used_ = 0;
};

struct FreeBlock {
  void* ptr;
  bool committed;   // false: a block of the range whose pages went back to the system (not in bytes_cached)
};

struct Pool {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<FreeBlock>> free_lists;
  AllocatorStats stats;
  HugePageRange range;
};

Pool& pool() {
  static Pool* p = new Pool();   // never destroyed: tensors may be freed during static destruction
  return *p;
}

// A block leaves the cache: pages of the range go back to the system (the addresses stay listed), other
// blocks are freed.
void give_back(Pool& p, size_t size, void* ptr) {
  if (p.range.owns(ptr)) {
    HugePageRange::decommit(ptr, size);
    p.free_lists[size].push_back({ptr, false});
  } else {
    std::free(ptr);
  }
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
      const FreeBlock b = it->second.back();
      it->second.pop_back();
      if (b.committed) p.stats.bytes_cached -= static_cast<int64_t>(size);
      return b.ptr;
    }
    if (size <= kMaxCachedBlock)
      if (void* ptr = p.range.carve(size)) return ptr;
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
  std::lock_guard<std::mutex> lock(p.mu);
  p.stats.bytes_in_use -= static_cast<int64_t>(size);
  if (size <= kMaxCachedBlock && p.stats.bytes_cached + static_cast<int64_t>(size) <= kMaxCachedTotal) {
    p.free_lists[size].push_back({ptr, true});
    p.stats.bytes_cached += static_cast<int64_t>(size);
    return;
  }
  give_back(p, size, ptr);
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
  std::unordered_map<size_t, std::vector<FreeBlock>> lists;
  lists.swap(p.free_lists);
  for (auto& [size, list] : lists)
    for (const FreeBlock& b : list) {
      if (b.committed) give_back(p, size, b.ptr);
      else p.free_lists[size].push_back(b);
    }
  p.stats.bytes_cached = 0;
}

bool allocator_has_huge_page_range() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  return p.range.active();
}

std::string allocator_status() {
  if (!allocator_has_huge_page_range()) return "tensor memory: aligned_alloc";
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string setting;
  std::getline(in, setting);
  const bool thp = setting.find("[always]") != std::string::npos || setting.find("[madvise]") != std::string::npos;
  return thp ? "tensor memory: huge-page range (THP)" : "tensor memory: huge-page range, THP off (4 KB pages)";
}

}  // namespace tg::kernels
