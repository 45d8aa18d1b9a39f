#pragma once
// Fused softmax / log-softmax kernels, and the row primitives they share with the cross-entropy
// kernels: row max, row sums, and a lane iterator (the vectorisable exp is in fast_math.h).
//
// A tensor reduced along one dim is viewed as [outer, n, inner]: each of its outer * inner "lanes" is
// the n elements x[o, :, i] (contiguous when inner == 1). Lanes are independent, so the results are the
// same bits for any thread count; every reduction inside a lane runs in a fixed order.
#include <array>
#include <bit>
#include <cstdint>
#include <vector>

#include "framework/kernels/fast_math.h"
#include "framework/kernels/parallel.h"

namespace tg::kernels {

// y[i] = exp(x[i] - shift) for i < n, with x[i] - shift <= 0 (shift is the max of x, or an upper bound
// such as the log-sum-exp). Returns sum_i y[i], accumulated in double in a fixed order. y may equal x.
template <class T> double exp_shifted(const T* x, T shift, T* y, int64_t n);

// Largest element of x[0, n) (n >= 1); NaNs are skipped, -inf when all are -inf.
template <class T> T row_max(const T* x, int64_t n);

// Sum of x[0, n) in double, fixed order.
template <class T> double row_sum(const T* x, int64_t n);

// Calls f(lane, rows, out_row, scratch) for each of the outer * inner lanes of [outer, n, inner]
// tensors, in parallel over lanes. rows[k] points at the n elements of input k in that lane and out_row
// at the output's (nullptr when out is nullptr); both are contiguous: when inner > 1 the lane is
// gathered into a per-task buffer and out_row is scattered back after f. scratch holds n elements.
template <class T, size_t K, class F>
void for_each_lane(int64_t outer, int64_t n, int64_t inner, const std::array<const T*, K>& in, T* out, F&& f) {
  if (n <= 0) return;
  bool strided = inner != 1;
  parallel_for(outer * inner, grain_for(n * 16, int64_t{1} << 17), [&](int64_t l0, int64_t l1) {
    std::vector<T> buf(static_cast<size_t>((strided ? K + 2 : 1) * n));
    T* scratch = buf.data();
    std::array<const T*, K> rows;
    for (int64_t lane = l0; lane < l1; ++lane) {
      int64_t base = (lane / inner) * n * inner + lane % inner;   // element 0 of the lane
      T* out_row = out ? out + lane * n : nullptr;
      for (size_t k = 0; k < K; ++k) rows[k] = in[k] + lane * n;
      if (strided) {
        for (size_t k = 0; k < K; ++k) {
          T* g = buf.data() + (2 + k) * n;
          for (int64_t j = 0; j < n; ++j) g[j] = in[k][base + j * inner];
          rows[k] = g;
        }
        out_row = out ? buf.data() + n : nullptr;
      }
      f(lane, rows, out_row, scratch);
      if (strided && out)
        for (int64_t j = 0; j < n; ++j) out[base + j * inner] = out_row[j];
    }
  });
}

// Softmax (log == false) or log-softmax (log == true) along n of x viewed as [outer, n, inner].
// softmax: y = exp(x - max) / sum(exp(x - max)); log_softmax: y = (x - max) - log(sum(exp(x - max))).
// A lane that is entirely -inf gives zeros (softmax) or -inf (log_softmax).
template <class T> void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log);

// Input gradient from the forward output y and the output gradient gy, same layout:
// softmax: gx = y * (gy - sum(gy * y)); log_softmax: gx = gy - exp(y) * sum(gy).
// Lanes that were entirely -inf get gx = 0.
template <class T>
void softmax_backward(const T* y, const T* gy, T* gx, int64_t outer, int64_t n, int64_t inner, bool log);

}  // namespace tg::kernels
