#include "examples/custom_op/rms_norm.h"

#include <cmath>

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/tensor_ops.h"

namespace tg::examples {
namespace {

void check_inputs(const Var& x, const Var& weight, double eps) {
  TG_CHECK(x.defined(), "rms_norm", "undefined x");
  TG_CHECK(weight.defined(), "rms_norm", "undefined weight");
  TG_CHECK(is_floating(x.dtype()), "rms_norm", "expected float tensors; got x=", describe(x.value()));
  TG_CHECK(x.dtype() == weight.dtype(), "rms_norm", "dtypes differ; got x=", describe(x.value()),
           ", weight=", describe(weight.value()));
  TG_CHECK(x.dim() >= 1, "rms_norm", "x must have at least 1 dim; got x=", to_string(x.shape()));
  TG_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1), "rms_norm",
           "weight must have shape [D] with D = x.size(-1); got x=", to_string(x.shape()),
           ", weight=", to_string(weight.shape()));
  TG_CHECK(std::isfinite(eps) && eps >= 0, "rms_norm", "eps must be finite and >= 0; got eps=", eps);
}

// One dtype's forward over `rows` rows of D elements: r = 1 / sqrt(mean(x^2) + eps), with the sum of
// squares accumulated in double, and y = x * r * weight. Writes y [rows, D] and r [rows].
template <class T>
void rms_norm_rows(const T* x, const T* w, T* y, T* r, int64_t rows, int64_t D, double eps) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* xi = x + i * D;
    double sum_sq = 0;
    for (int64_t j = 0; j < D; ++j) sum_sq += static_cast<double>(xi[j]) * xi[j];
    T ri = static_cast<T>(1.0 / std::sqrt(sum_sq / static_cast<double>(D) + eps));
    for (int64_t j = 0; j < D; ++j) y[i * D + j] = xi[j] * ri * w[j];
    r[i] = ri;
  }
}

}  // namespace

Var rms_norm(const Var& x, const Var& weight, double eps) {
  check_inputs(x, weight, eps);
  Shape row_shape = x.shape();
  row_shape.back() = 1;                                   // [*, D] -> [*, 1]: one r per row
  Tensor y(x.shape(), x.dtype()), r(row_shape, x.dtype());
  dispatch_floating(x.dtype(), "rms_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    rms_norm_rows<T>(x.value().data<T>(), weight.value().data<T>(), y.data<T>(), r.data<T>(), r.numel(),
                     x.size(-1), eps);
  });
  // The closure keeps x and weight (shared, not copied) and r [*, 1]: exactly what the gradient uses.
  // x and weight are also listed as saved: a backward after either was changed in place (an optimizer
  // step, fill_) throws instead of computing a wrong gradient. r is the op's own, nobody else can change it.
  return record("rms_norm", y, {x, weight}, [xv = x.value(), w = weight.value(), r](const Tensor& gy, Grads& g) {
    Tensor x_hat = xv * r;                                // [*, D] * [*, 1]
    if (g.wants(0)) {
      // dx = r * (gy*w - x_hat * mean(gy*w * x_hat, -1))
      Tensor gw = gy * w;                                 // [*, D] * [D]
      g.add(0, r * (gw - x_hat * mean(gw * x_hat, {-1}, true)));
    }
    if (g.wants(1)) g.add(1, sum_to(gy * x_hat, w.shape()));   // [*, D] -> [D]: undo weight's broadcast
  }, {x.value(), weight.value()});
}

Var rms_norm_composite(const Var& x, const Var& weight, double eps) {
  check_inputs(x, weight, eps);
  return x / sqrt(mean(x * x, {-1}, true) + eps) * weight;
}

}  // namespace tg::examples
