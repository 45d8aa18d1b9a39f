#pragma once
// Dropout mask kernels. The keep decision for element i comes from Philox block (first + i) of the
// caller's Generator (framework/random.h): keep iff u01_from(w[0], w[1]) >= p. It depends only on
// (seed, first + i), so masks are identical for any thread count and replayable from a seed.
#include <cstdint>

namespace tg::kernels {

// keep[i] as above for i < n, and y[i] = x[i] * (keep[i] ? scale : 0).
template <class T>
void dropout_forward(const T* x, T* y, bool* keep, int64_t n, double p, T scale, uint64_t seed, uint64_t first);

// gx[i] = gy[i] * (keep[i] ? scale : 0).
template <class T> void dropout_backward(const T* gy, const bool* keep, T* gx, int64_t n, T scale);

}  // namespace tg::kernels
