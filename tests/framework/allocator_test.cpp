// The tensor allocator (framework/kernels/allocator.h): aligned blocks reused by size, carved from the
// huge-page range where there is one, whose pages empty_cache gives back while keeping the addresses.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "framework/kernels/allocator.h"
#include "tapegrad/framework/tensor.h"
#include "support/test_support.h"

using namespace tg;

namespace {

// The kB of anonymous memory in transparent huge pages of this process (smaps_rollup), -1 when unknown.
int64_t anon_huge_kb() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("AnonHugePages:", 0) == 0) {
      std::istringstream fields(line.substr(14));
      int64_t kb = -1;
      fields >> kb;
      return kb;
    }
  return -1;
}

bool thp_offered() {   // "always" or "madvise" selected in the kernel's setting
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(in, s);
  return s.find("[always]") != std::string::npos || s.find("[madvise]") != std::string::npos;
}

}  // namespace

TEST_CASE("allocator: blocks are 64-byte aligned and a released block serves the next of its size",
          "[kernels][allocator]") {
  for (const size_t bytes : {size_t{1}, size_t{100}, size_t{3} << 20}) {
    INFO("bytes " << bytes);
    void* a = kernels::allocate(bytes);
    REQUIRE(reinterpret_cast<uintptr_t>(a) % 64 == 0);
    kernels::release(a, bytes);
    void* b = kernels::allocate(bytes);
    CHECK(b == a);
    kernels::release(b, bytes);
  }
}

TEST_CASE("allocator: empty_cache gives a range block's pages back and its address to the next block",
          "[kernels][allocator]") {
  if (!kernels::allocator_has_huge_page_range()) {
    WARN("no huge-page range here (AddressSanitizer or mmap refused): blocks are aligned_alloc's");
    return;
  }
  const size_t bytes = size_t{1} << 20;
  auto* a = static_cast<unsigned char*>(kernels::allocate(bytes));
  std::memset(a, 0xAB, bytes);
  kernels::release(a, bytes);
  CHECK(kernels::allocator_stats().bytes_cached >= static_cast<int64_t>(bytes));
  kernels::empty_cache();
  CHECK(kernels::allocator_stats().bytes_cached == 0);
  auto* b = static_cast<unsigned char*>(kernels::allocate(bytes));
  REQUIRE(b == a);
  // The whole pages inside the block were returned (zeros when touched again); the block's first and last
  // partial pages may be shared with neighbours and are kept.
  const size_t page = 4096, first = (page - reinterpret_cast<uintptr_t>(b) % page) % page;
  CHECK(b[first] == 0);
  CHECK(b[first + bytes / 2] == 0);
  kernels::release(b, bytes);
}

TEST_CASE("allocator: tensors of a training step's size live on transparent huge pages", "[kernels][allocator]") {
  if (!kernels::allocator_has_huge_page_range() || !thp_offered() || anon_huge_kb() < 0) {
    WARN("transparent huge pages not offered here (or no range): 4 KB pages");
    return;
  }
  const int64_t before = anon_huge_kb();
  Tensor t = Tensor::zeros({4, 1024, 1024}, DType::Float32);   // 16 MB, written by zeros()
  const int64_t after = anon_huge_kb();
  INFO("AnonHugePages before " << before << " kB, after " << after << " kB");
  CHECK(after - before >= 8 * 1024);   // at least half of the tensor in 2 MB pages
}
