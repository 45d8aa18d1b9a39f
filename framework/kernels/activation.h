#pragma once
// GELU kernels (exact erf form), forward and backward. float64 uses the C library's erf/exp (exact
// parity with PyTorch in double); float32 uses branch-free erfc/exp approximations on lane vectors
// (erfc(z) = t exp(-z^2) R(t) with a fitted polynomial R, relative error 2.2e-8, and fast_math.h's
// exp, whose one exp(-x^2 / 2) also gives the density; 8 lanes with AVX2), within a few float ulps of
// PyTorch's float GELU and many times faster than scalar erff. Each
// element's bits depend on its value only (not on n, its position or the thread count).
#include <cstdint>

#include "tapegrad/framework/autocast.h"

namespace tg::kernels {

template <class T> void gelu_forward(const T* x, T* y, int64_t n);
// dx[i] = dy[i] * (Phi(x) + x * phi(x))
template <class T> void gelu_backward(const T* x, const T* dy, T* dx, int64_t n);

// For training: y as gelu_forward and slope[i] = Phi(x) + x * phi(x) from the same Phi(x), so that the
// backward is one multiply, dx[i] = dy[i] * slope[i] (gelu_backward_slope), with gelu_backward's bits.
// The slope replaces x in the tape (the same memory); the backward's erf and exp (more than half of
// GELU's cost in a training step) are gone. y may be x (in place), in gelu_forward too.
template <class T> void gelu_forward_slope(const T* x, T* y, T* slope, int64_t n);
template <class T> void gelu_backward_slope(const T* slope, const T* dy, T* dx, int64_t n);

// y [rows, out] = gelu(x [rows, in] @ w [out, in]^T + b [out]) (b nullable) and, unless slope is null, the
// slope as gelu_forward_slope: a Linear followed by the GELU, the same bits as gemm_mixed's product and then
// gelu_forward(_slope) over y. Where that product runs tapegrad's sgemm (mode float32 and gemm_uses_sgemm)
// or its bf16 GEMM (mode native through kernels/sbgemm.h), the GELU of each tile of y is computed as the
// tile is finished (SgemmEpilogue), while it is in cache; otherwise the product, then the pass.
template <class T>
void linear_gelu_forward(Bf16Mode mode, const T* x, const T* w, const T* b, T* y, T* slope, int64_t rows, int64_t out,
                         int64_t in);

// dz [rows, hid] = (dy [rows, out] @ w [out, hid]) * slope [rows, hid]: the input gradient of a Linear (weight w)
// whose input came from the GELU (slope as gelu_forward_slope), through the GELU's backward. The same bits as
// gemm_mixed's product and then gelu_backward_slope; where that product runs tapegrad's sgemm or its bf16 GEMM
// (as linear_gelu_forward), each tile is multiplied by its slopes as it is finished, while it is in cache (the
// second pass read 1.5 MB of product and slope back from memory per tiny-LM layer); otherwise the product,
// then the pass.
template <class T>
void linear_gelu_input_grad(Bf16Mode mode, const T* dy, const T* w, const T* slope, T* dz, int64_t rows, int64_t hid,
                            int64_t out);

// y [rows, out] = residual [rows, out] + (x [rows, in] @ w [out, in]^T + b [out]) (b nullable): a Linear whose
// output joins a residual stream, the same bits as gemm_mixed's product and then residual + y element by
// element. Where that product runs tapegrad's sgemm or its bf16 GEMM (as linear_gelu_forward), each tile of y
// takes its residual as it is finished, while it is in cache; otherwise the product, then the pass.
template <class T>
void linear_residual_forward(Bf16Mode mode, const T* x, const T* w, const T* b, const T* residual, T* y, int64_t rows,
                             int64_t out, int64_t in);

}  // namespace tg::kernels
