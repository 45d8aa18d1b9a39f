#pragma once
// Per-thread reusable buffers for the GEMM drivers (kernels/sgemm.cpp, kernels/sbgemm.cpp).
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace tg::kernels {

// A buffer of at least n elements of T (64-byte aligned data) taken from a per-thread free list and returned
// to it on destruction; one of over kKeepBytes (e.g. op(B) of a 2048^2 benchmark product) is freed instead.
// Re-entrant: a thread that runs another product while waiting for its tasks takes another buffer.
template <class T> class Scratch {
 public:
  static constexpr size_t kKeepBytes = size_t{4} << 20;

  explicit Scratch(size_t n) {
    auto& free = free_list();
    if (!free.empty()) {
      buf_ = std::move(free.back());
      free.pop_back();
    }
    const size_t pad = 64 / sizeof(T);
    if (buf_.size() < n + pad) buf_.resize(n + pad);
  }
  ~Scratch() {
    if (buf_.size() * sizeof(T) <= kKeepBytes) free_list().push_back(std::move(buf_));
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* data() {
    auto addr = reinterpret_cast<uintptr_t>(buf_.data());
    return buf_.data() + ((64 - addr % 64) % 64) / sizeof(T);
  }

 private:
  static std::vector<std::vector<T>>& free_list() {
    thread_local std::vector<std::vector<T>> free;
    return free;
  }
  std::vector<T> buf_;
};

}  // namespace tg::kernels
