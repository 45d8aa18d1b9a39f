#include "framework/kernels/layer_norm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "framework/kernels/parallel.h"
#include "framework/kernels/simd.h"
#include "framework/kernels/softmax.h"

namespace tg::kernels {
namespace {

// Fixed split of rows into chunks for sums over rows: at most 64 chunks of at least ~32k elements (a
// few fewer when that makes their number even), a function of (rows, n) only. An odd count of a few
// chunks leaves a thread idle: 3 chunks (768 x 128, the tiny LM's layer-norm backward) run as 2 + 1 on
// two threads; as 4 they took 24% less time (min of 3000 alternated calls), the bias grads' column
// sums 6% less.
struct RowChunks {
  int64_t size = 1, count = 0;
};
RowChunks row_chunks(int64_t rows, int64_t n) {
  RowChunks c;
  c.size = std::max(grain_for(n, 32768), (rows + 63) / 64);
  c.count = (rows + c.size - 1) / c.size;
  if (c.count > 1 && c.count % 2 == 1) {
    c.size = (rows + c.count) / (c.count + 1);
    c.count = (rows + c.size - 1) / c.size;
  }
  return c;
}

// Adds the chunk partials part [count, n] in chunk order and writes them to out [n].
template <class T> void combine_partials(const std::vector<double>& part, int64_t count, int64_t n, T* out) {
  std::vector<double> acc(part.begin(), part.begin() + std::min<int64_t>(count, 1) * n);
  acc.resize(static_cast<size_t>(n), 0.0);
  for (int64_t c = 1; c < count; ++c) {
    const double* p = part.data() + c * n;
    for (int64_t j = 0; j < n; ++j) acc[static_cast<size_t>(j)] += p[j];
  }
  for (int64_t j = 0; j < n; ++j) out[j] = static_cast<T>(acc[static_cast<size_t>(j)]);
}

// Sum of (x[i] - mu)^2 in double, fixed order.
template <class T> double centered_square_sum(const T* x, double mu, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    double d0 = x[i] - mu, d1 = x[i + 1] - mu, d2 = x[i + 2] - mu, d3 = x[i + 3] - mu;
    s0 += d0 * d0;
    s1 += d1 * d1;
    s2 += d2 * d2;
    s3 += d3 * d3;
  }
  for (; i < n; ++i) s0 += (x[i] - mu) * (x[i] - mu);
  return (s0 + s1) + (s2 + s3);
}

// One row from its mean and (biased) variance: y = (x * scale + shift) * w + b with scale = rstd,
// shift = -mean * rstd (PyTorch's form); stores the row's mean and rstd.
template <class T, bool HasW, bool HasB>
[[gnu::always_inline]] inline void normalize_row(const T* x, const T* w, const T* b, T* y, int64_t n, double mu,
                                                 double var, double eps, T& mean, T& rstd) {
  const double rs = 1.0 / std::sqrt(var + eps);
  mean = static_cast<T>(mu);
  rstd = static_cast<T>(rs);
  const T scale = static_cast<T>(rs), shift = static_cast<T>(-rs * mu);
  for (int64_t j = 0; j < n; ++j) {
    T v = x[j] * scale + shift;
    if constexpr (HasW) v *= w[j];
    if constexpr (HasB) v += b[j];
    y[j] = v;
  }
}

// One row, statistics in row_sum / centered_square_sum's four lanes (the float64 rows).
template <class T, bool HasW, bool HasB>
void forward_row(const T* x, const T* w, const T* b, T* y, int64_t n, double eps, T& mean, T& rstd) {
  const double mu = n > 0 ? row_sum(x, n) / static_cast<double>(n) : 0.0;
  const double var = n > 0 ? centered_square_sum(x, mu, n) / static_cast<double>(n) : 0.0;
  normalize_row<T, HasW, HasB>(x, w, b, y, n, mu, var, eps, mean, rstd);
}

// The float row statistics in 16 double lanes (element i in lane i % 16, the tail one by one into lanes
// 0, 1, ...; the lanes combined as a fixed tree): four f64x4 chains, each a quarter as long as the four
// scalar ones of row_sum / centered_square_sum (float64 rows keep those), so the sums are no longer bound by
// the add latency. Layer-norm forward at 768 x 128: -15% (min) / -22% (median) of 3000 alternated calls,
// 1 and 2 threads; the mean and variance differ from the 4-lane order in the last bits only.
// Four floats as four doubles (exact). A lane-by-lane copy, which GCC 12 emits as one vcvtps2pd xmm -> ymm
// (its __builtin_convertvector to f64x4 becomes two 2-lane conversions and an insert).
[[gnu::always_inline]] inline f64x4 widen(const f32x4& v) {
  f64x4 r;
  for (int l = 0; l < 4; ++l) r[l] = v[l];
  return r;
}

// fold16: the 16 lanes of acc (lane 4 k + j in acc[k][j]) plus tail(i) for the tail elements i in [i, n) one by
// one into lanes 0, 1, ..., combined as the fixed tree.
// Without tail elements (n a multiple of 16, as the tiny LM's rows) the same tree runs on the vectors: lanes j
// and j + 8 are lanes of acc[0] / acc[2] and acc[1] / acc[3], and so on down; the same additions, so the same
// bits, without the round trip through memory (layer-norm forward at 768 x 128, one thread: ~25% faster).
template <class F>
[[gnu::always_inline]] inline double fold16(const f64x4 (&acc)[4], int64_t i, int64_t n, F&& tail) {
  if (i == n) {
    const f64x4 v = (acc[0] + acc[2]) + (acc[1] + acc[3]);   // lanes 0..3 after the w = 8 and w = 4 levels
    return (v[0] + v[2]) + (v[1] + v[3]);
  }
  double l[16];
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j) l[4 * k + j] = acc[k][j];
  for (int j = 0; i < n; ++i, ++j) l[j] += tail(i);
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) l[j] += l[j + w];
  return l[0];
}

template <class F> [[gnu::always_inline]] inline double lanes16_sum(const float* x, int64_t n, F&& term) {
  f64x4 acc[4] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 4; ++k) acc[k] += term(widen(load<f32x4>(x + i + 4 * k)));
  return fold16(acc, i, n, [&](int64_t t) { return term(static_cast<double>(x[t])); });
}

template <bool HasW, bool HasB>
TG_MULTIVERSION void forward_rows_f32(const float* x, const float* w, const float* b, float* y, float* mean,
                                      float* rstd, int64_t r0, int64_t r1, int64_t n, double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    const double mu = n > 0 ? lanes16_sum(xr, n, [](auto v) { return v; }) / static_cast<double>(n) : 0.0;
    const double var =
        n > 0 ? lanes16_sum(xr, n, [mu](auto v) { return (v - mu) * (v - mu); }) / static_cast<double>(n) : 0.0;
    normalize_row<float, HasW, HasB>(xr, w, b, y + r * n, n, mu, var, eps, mean[r], rstd[r]);
  }
}

template <class T, bool HasW, bool HasB>
void forward_rows(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows, int64_t n, double eps) {
  parallel_for(rows, grain_for(n * 8), [&](int64_t r0, int64_t r1) {
    if constexpr (std::is_same_v<T, float>) {
      return forward_rows_f32<HasW, HasB>(x, w, b, y, mean, rstd, r0, r1, n, eps);
    } else {
      for (int64_t r = r0; r < r1; ++r)
        forward_row<T, HasW, HasB>(x + r * n, w, b, y + r * n, n, eps, mean[r], rstd[r]);
    }
  });
}

// The two row sums of layer_norm_backward for float64 rows (float rows: backward_row_sums16): sum(g) and
// sum(g * xhat), g = gy * w and xhat = (x - mu) * rs. Four lanes (element i in lane i % 4, the tail in
// lane 0) combined as (l0 + l1) + (l2 + l3).
template <bool HasW>
[[gnu::always_inline]] inline void backward_row_sums(const double* gy, const double* x, double mu, double rs,
                                                     const double* w, int64_t n, double& sum_g, double& sum_gxhat) {
  f64x4 s1 = {}, s2 = {};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    f64x4 g = load<f64x4>(gy + i);
    if constexpr (HasW) g = g * load<f64x4>(w + i);
    s1 += g;
    s2 += g * ((load<f64x4>(x + i) - mu) * rs);
  }
  double a1 = s1[0], a2 = s2[0];
  for (; i < n; ++i) {
    double g = HasW ? gy[i] * w[i] : gy[i];
    a1 += g;
    a2 += g * ((x[i] - mu) * rs);
  }
  sum_g = (a1 + s1[1]) + (s1[2] + s1[3]);
  sum_gxhat = (a2 + s2[1]) + (s2[2] + s2[3]);
}

// backward_row_sums of a float row in lanes16_sum's 16 double lanes and order: eight f64x4 chains (four per
// sum), not two bound by the add latency. With widen, the tiny LM's layer-norm backward went from 2.7% to
// 2.4% of the training step's samples (forward: 1.7% -> 1.1%); the sums differ from the 4-lane order in
// the last bits only.
template <bool HasW>
[[gnu::always_inline]] inline void backward_row_sums16(const float* gy, const float* x, float mu, float rs,
                                                       const float* w, int64_t n, double& sum_g, double& sum_gxhat) {
  const auto g_at = [&](int64_t i) {
    if constexpr (HasW) return gy[i] * w[i];
    else return gy[i];
  };
  f64x4 s1[4] = {}, s2[4] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 4; ++k) {
      const int64_t j = i + 4 * k;
      f32x4 gv = load<f32x4>(gy + j);
      if constexpr (HasW) gv = gv * load<f32x4>(w + j);
      const f64x4 g = widen(gv);
      s1[k] += g;
      s2[k] += g * widen((load<f32x4>(x + j) - mu) * rs);
    }
  sum_g = fold16(s1, i, n, [&](int64_t t) { return static_cast<double>(g_at(t)); });
  sum_gxhat = fold16(s2, i, n, [&](int64_t t) { return static_cast<double>(g_at(t)) * ((x[t] - mu) * rs); });
}

// gx for one row (see layer_norm_backward): two passes, the first for the two row sums.
// With Accumulate, gx holds a gradient already and the row's is added to it (gx + value, the bits of add_into).
template <class T, bool HasW, bool Accumulate>
[[gnu::always_inline]] inline void backward_row_gx(const T* gy, const T* x, T mu, T rs, const T* w, T* gx, int64_t n) {
  auto g_at = [&](int64_t j) {
    if constexpr (HasW) return gy[j] * w[j];
    else return gy[j];
  };
  double sum_g, sum_gxhat;
  if constexpr (std::is_same_v<T, float>) backward_row_sums16<HasW>(gy, x, mu, rs, w, n, sum_g, sum_gxhat);
  else backward_row_sums<HasW>(gy, x, mu, rs, w, n, sum_g, sum_gxhat);
  double inv_n = 1.0 / static_cast<double>(n);
  T mean_g = static_cast<T>(sum_g * inv_n);
  T mean_gxhat = static_cast<T>(sum_gxhat * inv_n);
  const auto value = [&](int64_t j) { return rs * (g_at(j) - mean_g - (x[j] - mu) * rs * mean_gxhat); };
  if constexpr (!Accumulate) {
    for (int64_t j = 0; j < n; ++j) gx[j] = value(j);
  } else {
    // Each value rounded on its own, then added: computed and added in one loop, the v3/v4 clones would fuse the
    // last multiply into the add (GCC contracts a * b + c into an FMA by default, also under -std=c++20), which
    // is not add's bits. The block goes through memory the compiler must assume the asm reads.
    constexpr int64_t kBlock = 64;
    T block[kBlock];
    for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
      const int64_t m = std::min(kBlock, n - j0);
      for (int64_t j = 0; j < m; ++j) block[j] = value(j0 + j);
      asm volatile("" : : "r"(block) : "memory");
      for (int64_t j = 0; j < m; ++j) gx[j0 + j] = gx[j0 + j] + block[j];
    }
  }
}

// acc[j] += v(r, j) for the rows r of [r0, r1) in row order, four rows per pass over acc: the running
// sum stays in a register (the same additions, a quarter of acc's loads and stores).
template <class F>
[[gnu::always_inline]] inline void accumulate_rows(int64_t r0, int64_t r1, int64_t cols, double* acc, F&& v) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4)
    for (int64_t j = 0; j < cols; ++j) {
      double a = acc[j];
      a += v(r, j);
      a += v(r + 1, j);
      a += v(r + 2, j);
      a += v(r + 3, j);
      acc[j] = a;
    }
  for (; r < r1; ++r)
    for (int64_t j = 0; j < cols; ++j) acc[j] += v(r, j);
}

// Rows [r0, r1) of layer_norm_backward: gx, and the weight/bias partial sums aw/ab (nullable).
template <class T>
TG_MULTIVERSION void backward_rows(const T* gy, const T* x, const T* mean, const T* rstd, const T* weight, T* gx,
                                   bool accumulate, double* aw, double* ab, int64_t r0, int64_t r1, int64_t n) {
  for (int64_t r = r0; gx && r < r1; ++r) {
    const T *g = gy + r * n, *xr = x + r * n;
    if (weight && accumulate) backward_row_gx<T, true, true>(g, xr, mean[r], rstd[r], weight, gx + r * n, n);
    else if (weight) backward_row_gx<T, true, false>(g, xr, mean[r], rstd[r], weight, gx + r * n, n);
    else if (accumulate) backward_row_gx<T, false, true>(g, xr, mean[r], rstd[r], weight, gx + r * n, n);
    else backward_row_gx<T, false, false>(g, xr, mean[r], rstd[r], weight, gx + r * n, n);
  }
  if (aw)
    accumulate_rows(r0, r1, n, aw, [&](int64_t r, int64_t j) {
      return static_cast<double>(gy[r * n + j]) * ((x[r * n + j] - mean[r]) * rstd[r]);
    });
  if (ab) accumulate_rows(r0, r1, n, ab, [&](int64_t r, int64_t j) { return static_cast<double>(gy[r * n + j]); });
}

// Adds rows [r0, r1) of x [rows, cols] into acc [cols] (double), in row order.
template <class T> TG_MULTIVERSION void add_rows(const T* x, int64_t r0, int64_t r1, int64_t cols, double* acc) {
  accumulate_rows(r0, r1, cols, acc, [&](int64_t r, int64_t j) { return static_cast<double>(x[r * cols + j]); });
}

}  // namespace

template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows, int64_t n,
                        double eps) {
  if (weight && bias)
    forward_rows<T, true, true>(x, weight, bias, y, mean, rstd, rows, n, eps);
  else if (weight)
    forward_rows<T, true, false>(x, weight, bias, y, mean, rstd, rows, n, eps);
  else if (bias)
    forward_rows<T, false, true>(x, weight, bias, y, mean, rstd, rows, n, eps);
  else
    forward_rows<T, false, false>(x, weight, bias, y, mean, rstd, rows, n, eps);
}

template <class T>
void layer_norm_backward(const T* gy, const T* x, const T* mean, const T* rstd, const T* weight, T* gx, T* grad_weight,
                         T* grad_bias, int64_t rows, int64_t n, bool accumulate_gx) {
  RowChunks ch = row_chunks(rows, n);
  std::vector<double> pw(grad_weight ? static_cast<size_t>(ch.count * n) : 0, 0.0);
  std::vector<double> pb(grad_bias ? static_cast<size_t>(ch.count * n) : 0, 0.0);
  parallel_for(ch.count, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double* aw = grad_weight ? pw.data() + c * n : nullptr;
      double* ab = grad_bias ? pb.data() + c * n : nullptr;
      backward_rows(gy, x, mean, rstd, weight, gx, accumulate_gx, aw, ab, c * ch.size,
                    std::min(rows, (c + 1) * ch.size), n);
    }
  });
  if (grad_weight) combine_partials(pw, ch.count, n, grad_weight);
  if (grad_bias) combine_partials(pb, ch.count, n, grad_bias);
}

template <class T> void column_sums(const T* x, int64_t rows, int64_t cols, T* out) {
  RowChunks ch = row_chunks(rows, cols);
  std::vector<double> part(static_cast<size_t>(ch.count * cols), 0.0);
  parallel_for(ch.count, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      add_rows(x, c * ch.size, std::min(rows, (c + 1) * ch.size), cols, part.data() + c * cols);
    }
  });
  combine_partials(part, ch.count, cols, out);
}

template void layer_norm_forward<float>(const float*, const float*, const float*, float*, float*, float*, int64_t,
                                        int64_t, double);
template void layer_norm_forward<double>(const double*, const double*, const double*, double*, double*, double*,
                                         int64_t, int64_t, double);
template void layer_norm_backward<float>(const float*, const float*, const float*, const float*, const float*, float*,
                                         float*, float*, int64_t, int64_t, bool);
template void layer_norm_backward<double>(const double*, const double*, const double*, const double*, const double*,
                                          double*, double*, double*, int64_t, int64_t, bool);
template void column_sums<float>(const float*, int64_t, int64_t, float*);
template void column_sums<double>(const double*, int64_t, int64_t, double*);

}  // namespace tg::kernels
