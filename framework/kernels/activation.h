#pragma once
// GELU kernels (exact erf form), forward and backward. float64 uses the C library's erf/exp (exact
// parity with PyTorch in double); float32 uses branch-free, auto-vectorised erfc/exp approximations
// (Numerical Recipes' erfc, |relative error| < 1.2e-7, and fast_math.h's exp), within a few float
// ulps of PyTorch's float GELU and many times faster than scalar erff.
#include <cstdint>

namespace tg::kernels {

template <class T> void gelu_forward(const T* x, T* y, int64_t n);
// dx[i] = dy[i] * (Phi(x) + x * phi(x))
template <class T> void gelu_backward(const T* x, const T* dy, T* dx, int64_t n);

}  // namespace tg::kernels
