#include "tapegrad/framework/ops/loss.h"

#include <memory>
#include <vector>

#include "tapegrad/framework/check.h"
#include "framework/kernels/cross_entropy.h"

namespace tg {
namespace {

// input viewed as [outer, C, inner] (class dim 1); lane l = o * inner + i has target l.
struct ClassLayout {
  int64_t outer = 1, C = 1, inner = 1;
  int64_t count = 0;   // targets that are not ignore_index
};

ClassLayout class_layout(const char* op, const char* name, const Var& input, const Tensor& targets,
                         int64_t ignore_index) {
  check_defined(op, name, input);
  check_defined(op, "targets", targets);
  TG_CHECK(is_floating(input.dtype()), op, "expected a float tensor; got ", name, "=", describe(input.value()));
  TG_CHECK(targets.dtype() == DType::Int64, op, "targets must be int64 class indices; got targets=", describe(targets));
  const Shape& s = input.shape();
  TG_CHECK(!s.empty(), op, name, " must have at least 1 dim (the classes); got ", name, "=", to_string(s));
  ClassLayout l;
  Shape expected;   // input without the class dim
  if (s.size() == 1) {
    l.C = s[0];
  } else {
    l.outer = s[0];
    l.C = s[1];
    expected.push_back(s[0]);
    for (size_t d = 2; d < s.size(); ++d) {
      l.inner *= s[d];
      expected.push_back(s[d]);
    }
  }
  const char* class_dim = s.size() == 1 ? "0" : "1";
  TG_CHECK(targets.shape() == expected, op, "targets must have shape ", to_string(expected), " (", name,
           " without the class dim ", class_dim, "); got ", name, "=", to_string(s), ", targets=",
           to_string(targets.shape()));
  const int64_t* t = targets.data<int64_t>();
  for (int64_t i = 0; i < targets.numel(); ++i) {
    if (t[i] == ignore_index) continue;
    TG_CHECK(t[i] >= 0 && t[i] < l.C, op, "target ", t[i], " out of range for ", l.C, " classes; got ", name, "=",
             to_string(s), ", targets=", to_string(targets.shape()));
    ++l.count;
  }
  return l;
}

// The reduced loss from per-target losses (summed in target order, in double).
Tensor reduce_losses(const std::vector<double>& loss, const ClassLayout& l, Reduction reduction,
                     const Shape& target_shape, DType dtype) {
  if (reduction == Reduction::none) {
    Tensor out(target_shape, dtype);
    dispatch_floating(dtype, "loss", [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* o = out.data<T>();
      for (size_t i = 0; i < loss.size(); ++i) o[i] = static_cast<T>(loss[i]);
    });
    return out;
  }
  double total = 0.0;
  for (double v : loss) total += v;
  if (reduction == Reduction::mean) total = l.count > 0 ? total / static_cast<double>(l.count) : 0.0;
  return Tensor::scalar(total, dtype);
}

// Backward weight per target: lane_scale (gy itself for none) times scale (dL/dtotal, / count for mean).
double backward_scale(const Tensor& gy, const ClassLayout& l, Reduction reduction) {
  if (reduction == Reduction::none) return 1.0;
  if (reduction == Reduction::sum) return gy.item();
  return l.count > 0 ? gy.item() / static_cast<double>(l.count) : 0.0;
}

}  // namespace

Var cross_entropy(const Var& logits, const Tensor& targets, int64_t ignore_index, Reduction reduction,
                  double label_smoothing) {
  ClassLayout l = class_layout("cross_entropy", "logits", logits, targets, ignore_index);
  TG_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, "cross_entropy",
           "label_smoothing must be in [0, 1]; got label_smoothing=", label_smoothing);
  std::vector<double> loss(static_cast<size_t>(l.outer * l.inner), 0.0);
  Tensor lse = Tensor::zeros({l.outer * l.inner}, logits.dtype());   // log-sum-exp per target, for the backward
  dispatch_floating(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::cross_entropy_forward<T>(logits.value().data<T>(), targets.data<int64_t>(), l.outer, l.C, l.inner,
                                      ignore_index, label_smoothing, loss.data(), lse.data<T>());
  });
  Tensor y = reduce_losses(loss, l, reduction, targets.shape(), logits.dtype());
  return record("cross_entropy", y, {logits},
                [x = logits.value(), targets, lse, l, ignore_index, reduction, label_smoothing](const Tensor& gy,
                                                                                               Grads& g) {
                  Tensor gx(x.shape(), x.dtype());
                  double scale = backward_scale(gy, l, reduction);
                  dispatch_floating(x.dtype(), "cross_entropy", [&](auto tag) {
                    using T = typename decltype(tag)::type;
                    const T* lane_scale = reduction == Reduction::none ? gy.data<T>() : nullptr;
                    kernels::cross_entropy_backward<T>(x.data<T>(), targets.data<int64_t>(), lse.data<T>(),
                                                       lane_scale, scale, l.outer, l.C, l.inner, ignore_index,
                                                       label_smoothing, gx.data<T>());
                  });
                  g.add(0, gx);
                }, {logits.value(), targets});
}

Var nll_loss(const Var& log_probs, const Tensor& targets, int64_t ignore_index, Reduction reduction) {
  ClassLayout l = class_layout("nll_loss", "log_probs", log_probs, targets, ignore_index);
  std::vector<double> loss(static_cast<size_t>(l.outer * l.inner), 0.0);
  dispatch_floating(log_probs.dtype(), "nll_loss", [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::nll_forward<T>(log_probs.value().data<T>(), targets.data<int64_t>(), l.outer, l.C, l.inner,
                            ignore_index, loss.data());
  });
  Tensor y = reduce_losses(loss, l, reduction, targets.shape(), log_probs.dtype());
  return record("nll_loss", y, {log_probs},
                [shape = log_probs.shape(), targets, l, ignore_index, reduction](const Tensor& gy, Grads& g) {
                  Tensor gx(shape, gy.dtype());
                  double scale = backward_scale(gy, l, reduction);
                  dispatch_floating(gy.dtype(), "nll_loss", [&](auto tag) {
                    using T = typename decltype(tag)::type;
                    const T* lane_scale = reduction == Reduction::none ? gy.data<T>() : nullptr;
                    kernels::nll_backward<T>(targets.data<int64_t>(), lane_scale, scale, l.outer, l.C, l.inner,
                                             ignore_index, gx.data<T>());
                  });
                  g.add(0, gx);
                }, {targets});
}

}  // namespace tg
