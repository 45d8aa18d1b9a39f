#pragma once
// Fused layer-norm kernels over x viewed as [rows, n] (n = the normalised trailing size), and the
// deterministic column sums they share with linear's bias gradient.
// Row statistics are accumulated in double in a fixed order; sums over rows (weight/bias gradients,
// column sums) add fixed row chunks into per-chunk partials that are combined in chunk order, so the
// results are the same bits for any thread count.
#include <cstdint>

namespace tg::kernels {

// y = (x - mean) * rstd * weight + bias per row, with mean and biased variance over the row and
// rstd = 1 / sqrt(var + eps). weight and bias ([n]) may be nullptr (1 and 0). Writes y [rows, n] and
// the saved statistics mean [rows] and rstd [rows].
template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows, int64_t n,
                        double eps);

// Gradients of layer_norm_forward from gy [rows, n], x and the saved mean/rstd. With g = gy * weight and
// xhat = (x - mean) * rstd: gx = rstd * (g - mean_row(g) - xhat * mean_row(g * xhat)),
// grad_weight = sum_rows(gy * xhat), grad_bias = sum_rows(gy). Outputs that are nullptr are skipped;
// weight nullptr means 1. The outputs are overwritten, not accumulated, except gx with accumulate_gx: then gx
// holds a gradient already and each element becomes gx + its value (the bits of computing gx, then add_into).
template <class T>
void layer_norm_backward(const T* gy, const T* x, const T* mean, const T* rstd, const T* weight, T* gx, T* grad_weight,
                         T* grad_bias, int64_t rows, int64_t n, bool accumulate_gx = false);

// out[j] = sum over r of x[r, j] for x [rows, cols] (accumulated in double; deterministic).
template <class T> void column_sums(const T* x, int64_t rows, int64_t cols, T* out);

}  // namespace tg::kernels
