#include "framework/kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "framework/kernels/parallel.h"
#include "framework/kernels/softmax.h"

namespace tg::kernels {

template <class T>
void cross_entropy_forward(const T* logits, const int64_t* target, int64_t outer, int64_t C, int64_t inner,
                           int64_t ignore_index, double label_smoothing, double* loss, T* lse) {
  double s = label_smoothing;
  for_each_lane<T, 1>(outer, C, inner, {logits}, nullptr,
                      [&](int64_t l, const std::array<const T*, 1>& r, T*, T* scratch) {
                        const T* x = r[0];
                        int64_t t = target[l];
                        if (t == ignore_index) {
                          loss[l] = 0.0;
                          lse[l] = T(0);
                          return;
                        }
                        T m = row_max(x, C);
                        double e = exp_shifted(x, m, scratch, C);   // scratch = exp(x - max), discarded
                        double v = static_cast<double>(m) + std::log(e);
                        double out = (1.0 - s) * (v - static_cast<double>(x[t]));
                        // Only with smoothing: sum(x) may be -inf for masked classes (0 * inf = NaN).
                        if (s != 0.0) out += s * (v - row_sum(x, C) / static_cast<double>(C));
                        loss[l] = out;
                        lse[l] = static_cast<T>(v);
                      });
}

template <class T>
void cross_entropy_backward(const T* logits, const int64_t* target, const T* lse, const T* lane_scale, double scale,
                            int64_t outer, int64_t C, int64_t inner, int64_t ignore_index, double label_smoothing,
                            T* gx) {
  double s = label_smoothing;
  for_each_lane<T, 1>(outer, C, inner, {logits}, gx, [&](int64_t l, const std::array<const T*, 1>& r, T* g, T*) {
    int64_t t = target[l];
    if (t == ignore_index) {
      std::fill(g, g + C, T(0));
      return;
    }
    double w = scale * (lane_scale ? static_cast<double>(lane_scale[l]) : 1.0);
    exp_shifted(r[0], lse[l], g, C);   // g = softmax(x)
    T a = static_cast<T>(w), b = static_cast<T>(w * s / static_cast<double>(C));
    for (int64_t j = 0; j < C; ++j) g[j] = g[j] * a - b;
    g[t] -= static_cast<T>(w * (1.0 - s));
  });
}

template <class T>
void nll_forward(const T* log_probs, const int64_t* target, int64_t outer, int64_t C, int64_t inner,
                 int64_t ignore_index, double* loss) {
  parallel_for(outer * inner, 16384, [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; ++l) {
      int64_t t = target[l];
      int64_t at = (l / inner) * C * inner + t * inner + l % inner;
      loss[l] = t == ignore_index ? 0.0 : -static_cast<double>(log_probs[at]);
    }
  });
}

template <class T>
void nll_backward(const int64_t* target, const T* lane_scale, double scale, int64_t outer, int64_t C, int64_t inner,
                  int64_t ignore_index, T* gx) {
  std::fill(gx, gx + outer * C * inner, T(0));
  parallel_for(outer * inner, 16384, [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; ++l) {
      int64_t t = target[l];
      if (t == ignore_index) continue;
      double w = scale * (lane_scale ? static_cast<double>(lane_scale[l]) : 1.0);
      gx[(l / inner) * C * inner + t * inner + l % inner] = static_cast<T>(-w);
    }
  });
}

template void cross_entropy_forward<float>(const float*, const int64_t*, int64_t, int64_t, int64_t, int64_t, double,
                                           double*, float*);
template void cross_entropy_forward<double>(const double*, const int64_t*, int64_t, int64_t, int64_t, int64_t, double,
                                            double*, double*);
template void cross_entropy_backward<float>(const float*, const int64_t*, const float*, const float*, double, int64_t,
                                            int64_t, int64_t, int64_t, double, float*);
template void cross_entropy_backward<double>(const double*, const int64_t*, const double*, const double*, double,
                                             int64_t, int64_t, int64_t, int64_t, double, double*);
template void nll_forward<float>(const float*, const int64_t*, int64_t, int64_t, int64_t, int64_t, double*);
template void nll_forward<double>(const double*, const int64_t*, int64_t, int64_t, int64_t, int64_t, double*);
template void nll_backward<float>(const int64_t*, const float*, double, int64_t, int64_t, int64_t, int64_t, float*);
template void nll_backward<double>(const int64_t*, const double*, double, int64_t, int64_t, int64_t, int64_t, double*);

}  // namespace tg::kernels
