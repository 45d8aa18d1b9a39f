#pragma once
// Inputs of the distributed tests that every rank can compute for every other rank, so each rank checks
// the collective's result against a sequential computation of its own.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace tg::test {

// A value for (rank r, index i) whose magnitude varies over 2^-20 .. 2^20, so that sums of several ranks'
// values depend on the order of the additions (not only on their set).
template <class T> T rank_value(int r, uint64_t i, uint64_t salt = 0) {
  uint64_t z = (static_cast<uint64_t>(r) * 0x9E3779B97F4A7C15ull) ^ (i * 0xBF58476D1CE4E5B9ull) ^ (salt * 0x94D049BB133111EBull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const double mantissa = static_cast<double>(z % 2000001) / 1e6 - 1.0;   // [-1, 1]
  const int exponent = static_cast<int>((z >> 32) % 41) - 20;
  return static_cast<T>(std::ldexp(mantissa, exponent));
}

// Elements where a and b differ in bits.
template <class T> std::size_t bit_differences(const std::vector<T>& a, const std::vector<T>& b) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(T)) != 0;
  return n + (a.size() > b.size() ? a.size() - b.size() : b.size() - a.size());
}

}  // namespace tg::test
