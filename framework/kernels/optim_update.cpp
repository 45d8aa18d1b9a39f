#include "framework/kernels/optim_update.h"

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "framework/kernels/fast_math.h"
#include "framework/kernels/parallel.h"
#include "framework/kernels/simd.h"

namespace tg::kernels {
namespace {

// Elements per parallel chunk: an update costs ~10-20 flops per element.
constexpr int64_t kUpdateGrain = 8192;
// Elements summed sequentially per chunk of a norm (fixed, so the sum order depends only on numel).
constexpr int64_t kNormChunk = 4096;
// Elements per parallel chunk of scale_many (scale_into's).
constexpr int64_t kScaleGrain = 16384;

template <class T> T nan_max(T a, T b) {   // torch.maximum: NaN propagates
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
  return a < b ? b : a;
}

// Max (or min, with `take_max` false) of |x| over fixed chunks, combined in order; NaN wins.
template <class T> double abs_extreme(const T* x, int64_t n, bool take_max) {
  const double init = take_max ? 0.0 : std::numeric_limits<double>::infinity();
  int64_t nchunks = (n + kNormChunk - 1) / kNormChunk;
  std::vector<double> partial(static_cast<size_t>(nchunks), init);
  parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double acc = init;
      int64_t end = std::min(n, (c + 1) * kNormChunk);
      for (int64_t i = c * kNormChunk; i < end; ++i) {
        double a = std::abs(static_cast<double>(x[i]));
        if (std::isnan(a) || std::isnan(acc)) acc = std::numeric_limits<double>::quiet_NaN();
        else acc = take_max ? std::max(acc, a) : std::min(acc, a);
      }
      partial[static_cast<size_t>(c)] = acc;
    }
  });
  double total = init;
  for (double p : partial) {
    if (std::isnan(p) || std::isnan(total)) total = std::numeric_limits<double>::quiet_NaN();
    else total = take_max ? std::max(total, p) : std::min(total, p);
  }
  return total;
}

// Sum of |x| (squares false) or x^2 (squares true) over n values, in double, in 8 lanes.
template <class T> TG_MULTIVERSION double chunk_power_sum(const T* x, int64_t n, bool squares) {
  if (squares)
    return lane_sum<double>(n, [x](int64_t i) {
      const double v = static_cast<double>(x[i]);
      return v * v;
    });
  return lane_sum<double>(n, [x](int64_t i) { return std::abs(static_cast<double>(x[i])); });
}

template <class T> double norm_of(const T* x, int64_t n, double p) {
  if (std::isinf(p)) return abs_extreme(x, n, p > 0);
  if (p == 0.0) {
    return deterministic_sum<double>(n, kNormChunk, [&](int64_t i) { return x[i] != T(0) ? 1.0 : 0.0; });
  }
  if (p == 1.0 || p == 2.0) {   // fixed chunks, each summed in 8 vectorised lanes
    const double total = deterministic_chunk_sum<double>(
        n, kNormChunk, [&](int64_t b, int64_t e) { return chunk_power_sum(x + b, e - b, p == 2.0); });
    return p == 1.0 ? total : std::sqrt(total);
  }
  double s = deterministic_sum<double>(
      n, kNormChunk, [&](int64_t i) { return std::pow(std::abs(static_cast<double>(x[i])), p); });
  return std::pow(s, 1.0 / p);
}

// Scalars of one Adam step in the parameter's type.
template <class T> struct AdamScalars {
  T decay, wd, beta1, one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, eps, neg_step_size, grad_sign;
};

enum class WeightDecay { kNone, kL2, kDecoupled };

// Adam/AdamW over [0, n), with the weight-decay mode and amsgrad fixed at compile time so that the
// loop vectorises (vmax is used only with AmsGrad).
template <class T, WeightDecay W, bool AmsGrad>
TG_MULTIVERSION void adam_chunk(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v,
                                T* __restrict vmax, int64_t n, const AdamScalars<T> s) {
  for (int64_t i = 0; i < n; ++i) {
    T gi = g[i] * s.grad_sign;   // exact: the sign is +1 or -1
    if constexpr (W == WeightDecay::kDecoupled) p[i] = p[i] * s.decay;
    if constexpr (W == WeightDecay::kL2) gi = gi + s.wd * p[i];
    T mi = m[i] * s.beta1 + s.one_minus_beta1 * gi;
    T vi = v[i] * s.beta2 + s.one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    if constexpr (AmsGrad) vi = vmax[i] = nan_max(vmax[i], vi);
    T denom = std::sqrt(vi) / s.bc2_sqrt + s.eps;
    p[i] = p[i] + s.neg_step_size * mi / denom;
  }
}

template <class T, WeightDecay W>
void adam_range(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamScalars<T>& s) {
  if (vmax) adam_chunk<T, W, true>(p, g, m, v, vmax, n, s);
  else adam_chunk<T, W, false>(p, g, m, v, vmax, n, s);
}

}  // namespace

void sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer, const SGDStep& h) {
  dispatch_floating(param.dtype(), "sgd_update", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* buf = h.momentum != 0 ? momentum_buffer.data<T>() : nullptr;
    const T wd = static_cast<T>(h.weight_decay), mom = static_cast<T>(h.momentum);
    const T one_minus_dampening = static_cast<T>(1.0 - h.dampening), neg_lr = static_cast<T>(-h.lr);
    parallel_for(param.numel(), kUpdateGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T d = h.maximize ? -g[i] : g[i];
        if (h.weight_decay != 0) d = d + wd * p[i];
        if (buf) {
          buf[i] = h.first ? d : buf[i] * mom + one_minus_dampening * d;
          d = h.nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] = p[i] + neg_lr * d;
      }
    });
  });
}

namespace {

// One item's update over [b, e) of its elements, with the item's scalars and pointers prepared once.
using RangeUpdate = std::function<void(int64_t, int64_t)>;

RangeUpdate adam_range_update(AdamTensors& it) {
  const AdamStep& h = it.h;
  // Python-side scalars of the single-tensor implementation, in double.
  const double step = static_cast<double>(h.step);
  const double bias_correction1 = 1 - std::pow(h.beta1, step);
  const double bias_correction2 = 1 - std::pow(h.beta2, step);
  const double step_size = h.lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  return dispatch_floating(it.param.dtype(), "adam_update", [&](auto tag) -> RangeUpdate {
    using T = typename decltype(tag)::type;
    T* p = it.param.data<T>();
    const T* g = it.grad.data<T>();
    T* m = it.exp_avg.data<T>();
    T* v = it.exp_avg_sq.data<T>();
    T* vmax = h.amsgrad ? it.max_exp_avg_sq.data<T>() : nullptr;
    const AdamScalars<T> sc{static_cast<T>(1 - h.lr * h.weight_decay), static_cast<T>(h.weight_decay),
                            static_cast<T>(h.beta1), static_cast<T>(1 - h.beta1), static_cast<T>(h.beta2),
                            static_cast<T>(1 - h.beta2), static_cast<T>(bias_correction2_sqrt), static_cast<T>(h.eps),
                            static_cast<T>(-step_size), h.maximize ? T(-1) : T(1)};
    const WeightDecay mode = h.decoupled_weight_decay ? WeightDecay::kDecoupled
                             : h.weight_decay != 0    ? WeightDecay::kL2
                                                      : WeightDecay::kNone;
    return [=](int64_t b, int64_t e) {
      T* vm = vmax ? vmax + b : nullptr;
      const int64_t n = e - b;
      if (mode == WeightDecay::kDecoupled) adam_range<T, WeightDecay::kDecoupled>(p + b, g + b, m + b, v + b, vm, n, sc);
      else if (mode == WeightDecay::kL2) adam_range<T, WeightDecay::kL2>(p + b, g + b, m + b, v + b, vm, n, sc);
      else adam_range<T, WeightDecay::kNone>(p + b, g + b, m + b, v + b, vm, n, sc);
    };
  });
}

}  // namespace

void adam_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, Tensor& max_exp_avg_sq,
                 const AdamStep& h) {
  std::vector<AdamTensors> one{{param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, h}};
  adam_update_many(one);
}

void adam_update_many(std::vector<AdamTensors>& items) {
  std::vector<RangeUpdate> updates;
  std::vector<int64_t> sizes;
  for (AdamTensors& it : items) {
    updates.push_back(adam_range_update(it));
    sizes.push_back(it.param.numel());
  }
  parallel_for_pieces(sizes, kUpdateGrain, 1, [&](size_t i, int64_t b, int64_t e) { updates[i](b, e); });
}

double vector_norm(const Tensor& t, double p) {
  return dispatch_floating(t.dtype(), "vector_norm", [&](auto tag) -> double {
    using T = typename decltype(tag)::type;
    return norm_of(t.data<T>(), t.numel(), p);
  });
}

std::vector<double> vector_norms(const std::vector<Tensor>& ts, double p) {
  std::vector<double> out;
  if (p != 1.0 && p != 2.0) {
    for (const Tensor& t : ts) out.push_back(vector_norm(t, p));
    return out;
  }
  // norm_of's chunks (kNormChunk, each summed in 8 lanes) and its in-order sum of the chunk partials; a task
  // takes whole chunks of one tensor, at least kMinReduceItemsPerTask items, as deterministic_chunk_sum's.
  std::vector<int64_t> sizes;
  std::vector<std::vector<double>> partials;
  for (const Tensor& t : ts) {
    sizes.push_back(t.numel());
    partials.emplace_back(static_cast<size_t>((t.numel() + kNormChunk - 1) / kNormChunk), 0.0);
  }
  parallel_for_pieces(sizes, kNormChunk, grain_for(kNormChunk, kMinReduceItemsPerTask),
                      [&](size_t i, int64_t b, int64_t e) {
                        partials[i][static_cast<size_t>(b / kNormChunk)] =
                            dispatch_floating(ts[i].dtype(), "vector_norm", [&](auto tag) -> double {
                              using T = typename decltype(tag)::type;
                              return chunk_power_sum(ts[i].data<T>() + b, e - b, p == 2.0);
                            });
                      });
  for (const std::vector<double>& part : partials) {
    double total = 0;
    for (double v : part) total += v;
    out.push_back(p == 1.0 ? total : std::sqrt(total));
  }
  return out;
}

void scale_many(std::vector<Tensor>& ts, double alpha) {
  std::vector<int64_t> sizes;
  for (const Tensor& t : ts) sizes.push_back(t.numel());
  parallel_for_pieces(sizes, kScaleGrain, 1, [&](size_t i, int64_t b, int64_t e) {
    dispatch_floating(ts[i].dtype(), "scale_into", [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* d = ts[i].data<T>();
      const T a = static_cast<T>(alpha);
      for (int64_t k = b; k < e; ++k) d[k] *= a;
    });
  });
}

void clamp_into(Tensor& dst, double lo, double hi) {
  dispatch_floating(dst.dtype(), "clamp_into", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* d = dst.data<T>();
    const T tlo = static_cast<T>(lo), thi = static_cast<T>(hi);
    parallel_for(dst.numel(), 16384, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if (std::isnan(d[i])) continue;
        T x = d[i] < tlo ? tlo : d[i];
        d[i] = x > thi ? thi : x;
      }
    });
  });
}

}  // namespace tg::kernels
