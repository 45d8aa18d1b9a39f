#include "tapegrad/framework/ops/nn_functional.h"

#include <algorithm>

#include "tapegrad/framework/check.h"
#include "framework/kernels/dropout.h"
#include "framework/kernels/layer_norm.h"
#include "framework/kernels/softmax.h"

namespace tg {
namespace {

void check_float(const char* op, const char* name, const Var& v) {
  check_defined(op, name, v);
  TG_CHECK(is_floating(v.dtype()), op, "expected a float tensor; got ", name, "=", describe(v.value()));
}

// x viewed as [outer, n, inner] around dim d.
struct Lanes {
  int64_t outer = 1, n = 1, inner = 1;
};
Lanes lanes_around(const Shape& s, int64_t d) {
  Lanes l;
  if (s.empty()) return l;   // a 0-d tensor is one lane of one element
  for (int64_t i = 0; i < d; ++i) l.outer *= s[static_cast<size_t>(i)];
  l.n = s[static_cast<size_t>(d)];
  for (size_t i = static_cast<size_t>(d) + 1; i < s.size(); ++i) l.inner *= s[i];
  return l;
}

Var softmax_impl(const char* op, const Var& x, int64_t dim, bool log) {
  check_float(op, "x", x);
  int64_t rank = x.dim(), lim = std::max<int64_t>(rank, 1);
  TG_CHECK(dim >= -lim && dim < lim, op, "dim ", dim, " out of range for a ", rank, "-d tensor; got x=",
           to_string(x.shape()));
  Lanes l = lanes_around(x.shape(), dim < 0 ? dim + lim : dim);
  Tensor y(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::softmax_forward<T>(x.value().data<T>(), y.data<T>(), l.outer, l.n, l.inner, log);
  });
  return record(op, y, {x}, [op, y, l, log](const Tensor& gy, Grads& g) {
    Tensor gx(y.shape(), y.dtype());
    dispatch_floating(y.dtype(), op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      kernels::softmax_backward<T>(y.data<T>(), gy.data<T>(), gx.data<T>(), l.outer, l.n, l.inner, log);
    });
    g.add(0, gx);
  }, {y});
}

void check_layer_norm(const Var& x, const Shape& ns, const Var& weight, const Var& bias) {
  check_float("layer_norm", "x", x);
  TG_CHECK(!ns.empty(), "layer_norm", "normalized_shape must have at least 1 dim; got x=", to_string(x.shape()),
           ", normalized_shape=", to_string(ns));
  const Shape& xs = x.shape();
  bool trailing =
      ns.size() <= xs.size() && std::equal(ns.begin(), ns.end(), xs.end() - static_cast<int64_t>(ns.size()));
  TG_CHECK(trailing, "layer_norm", "normalized_shape must match the trailing dims of x; got x=", to_string(xs),
           ", normalized_shape=", to_string(ns));
  const char* names[2] = {"weight", "bias"};
  const Var* params[2] = {&weight, &bias};
  for (int i = 0; i < 2; ++i) {
    if (!params[i]->defined()) continue;
    TG_CHECK(params[i]->dtype() == x.dtype(), "layer_norm", "dtypes differ; got x=", describe(x.value()), ", ",
             names[i], "=", describe(params[i]->value()));
    TG_CHECK(params[i]->shape() == ns, "layer_norm", names[i],
             " must have shape normalized_shape; got normalized_shape=", to_string(ns), ", ", names[i], "=",
             to_string(params[i]->shape()));
  }
}

}  // namespace

Var softmax(const Var& x, int64_t dim) { return softmax_impl("softmax", x, dim, false); }

Var log_softmax(const Var& x, int64_t dim) { return softmax_impl("log_softmax", x, dim, true); }

Var layer_norm(const Var& x, const Shape& normalized_shape, const Var& weight, const Var& bias, double eps) {
  check_layer_norm(x, normalized_shape, weight, bias);
  // x [*, *normalized_shape] -> [rows, n]
  const Shape& xs = x.shape();
  int64_t n = numel(normalized_shape);
  int64_t rows = numel(Shape(xs.begin(), xs.end() - static_cast<int64_t>(normalized_shape.size())));
  Tensor y(x.shape(), x.dtype()), mean({rows}, x.dtype()), rstd({rows}, x.dtype());
  Tensor wv = weight.defined() ? weight.value() : Tensor(), bv = bias.defined() ? bias.value() : Tensor();
  dispatch_floating(x.dtype(), "layer_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::layer_norm_forward<T>(x.value().data<T>(), wv.defined() ? wv.data<T>() : nullptr,
                                   bv.defined() ? bv.data<T>() : nullptr, y.data<T>(), mean.data<T>(), rstd.data<T>(),
                                   rows, n, eps);
  });
  return record("layer_norm", y, {x, weight, bias},
                [xv = x.value(), wv, mean, rstd, rows, n, ns = normalized_shape](const Tensor& gy, Grads& g) {
                  // x's gradient from its other consumers so far (a pre-norm layer's residual add): added into
                  // in place, no tensor of its own and no pass of the engine's to add the two.
                  Tensor acc = g.accumulator(0);
                  Tensor gx = acc.defined() ? acc : g.wants(0) ? Tensor(xv.shape(), xv.dtype()) : Tensor();
                  Tensor gw = g.wants(1) ? Tensor(ns, xv.dtype()) : Tensor();
                  Tensor gb = g.wants(2) ? Tensor(ns, xv.dtype()) : Tensor();
                  dispatch_floating(xv.dtype(), "layer_norm", [&](auto tag) {
                    using T = typename decltype(tag)::type;
                    auto ptr = [](Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
                    kernels::layer_norm_backward<T>(gy.data<T>(), xv.data<T>(), mean.data<T>(), rstd.data<T>(),
                                                    wv.defined() ? wv.data<T>() : nullptr, ptr(gx), ptr(gw),
                                                    ptr(gb), rows, n, acc.defined());
                  });
                  if (gx.defined() && !acc.defined()) g.add(0, gx);
                  if (gw.defined()) g.add(1, gw);
                  if (gb.defined()) g.add(2, gb);
                }, {x.value(), wv});
}

Var dropout(const Var& x, double p, bool training, Generator& gen) {
  check_float("dropout", "x", x);
  TG_CHECK(p >= 0.0 && p <= 1.0, "dropout", "p must be in [0, 1]; got p=", p);
  if (!training || p == 0.0 || x.numel() == 0) return x;
  int64_t n = x.numel();
  Tensor keep(x.shape(), DType::Bool), y(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), "dropout", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.value().data<T>();
    if (p == 1.0) {   // everything dropped, no random numbers drawn (as PyTorch): y = x * 0
      std::fill(keep.data<bool>(), keep.data<bool>() + n, false);
      kernels::dropout_backward<T>(px, keep.data<bool>(), y.data<T>(), n, T(0));
      return;
    }
    T scale = static_cast<T>(1) / static_cast<T>(1.0 - p);
    const Reservation r = gen.reserve_blocks(static_cast<uint64_t>(n));
    kernels::dropout_forward<T>(px, y.data<T>(), keep.data<bool>(), n, p, scale, r.seed, r.first);
  });
  return record("dropout", y, {x}, [keep, p](const Tensor& gy, Grads& g) {
    Tensor gx(gy.shape(), gy.dtype());
    dispatch_floating(gy.dtype(), "dropout", [&](auto tag) {
      using T = typename decltype(tag)::type;
      T scale = p == 1.0 ? T(0) : static_cast<T>(1) / static_cast<T>(1.0 - p);
      kernels::dropout_backward<T>(gy.data<T>(), keep.data<bool>(), gx.data<T>(), gy.numel(), scale);
    });
    g.add(0, gx);
  });
}

}  // namespace tg
