#pragma once
// Caching allocator for tensor storage: 64-byte aligned blocks, freed blocks kept in per-size free
// lists and handed out again, so a training loop that allocates the same shapes every step stops
// calling malloc after the first step. Blocks of up to 1 GB are carved from one reserved address range backed
// by transparent huge pages (allocator.cpp, HugePageRange), unless the system refuses the range or under
// AddressSanitizer. Thread-safe.
#include <cstddef>
#include <cstdint>
#include <string>

namespace tg::kernels {

void* allocate(size_t bytes);          // throws std::bad_alloc (also above kMaxTensorBytes)
void release(void* ptr, size_t bytes);

struct AllocatorStats {
  int64_t bytes_in_use = 0;      // handed out and not yet released
  int64_t bytes_cached = 0;      // released, kept for reuse
  int64_t peak_bytes_in_use = 0;
};
AllocatorStats allocator_stats();
void reset_peak_bytes();
void empty_cache();              // returns every cached block (or, in the huge-page range, its pages) to the system
bool allocator_has_huge_page_range();   // blocks come from the huge-page range (false: aligned_alloc only)
// For runtime_info: "tensor memory: huge-page range (THP)", "... huge-page range, THP off (4 KB pages)" when
// the kernel's transparent_hugepage setting is never, or "tensor memory: aligned_alloc".
std::string allocator_status();

}  // namespace tg::kernels
