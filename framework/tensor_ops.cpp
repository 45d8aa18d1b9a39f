#include "tapegrad/framework/tensor_ops.h"

#include <cmath>

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/ops/shape.h"
#include "framework/kernels/broadcast.h"
#include "framework/kernels/parallel.h"

namespace tg {
namespace {

// The Tensor functions run the Var op of the same name on inputs that do not require grad, so
// nothing is recorded and there is one implementation (and one set of error messages) per op.
Var in(const char* op, const char* name, const Tensor& t) {
  TG_CHECK(t.defined(), op, "undefined tensor ", name);
  return Var(t, false);
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return add(in("add", "a", a), in("add", "b", b)).value(); }
Tensor sub(const Tensor& a, const Tensor& b) { return sub(in("sub", "a", a), in("sub", "b", b)).value(); }
Tensor mul(const Tensor& a, const Tensor& b) { return mul(in("mul", "a", a), in("mul", "b", b)).value(); }
Tensor div(const Tensor& a, const Tensor& b) { return div(in("div", "a", a), in("div", "b", b)).value(); }

Tensor add(const Tensor& a, double s) { return add(in("add", "a", a), s).value(); }
Tensor mul(const Tensor& a, double s) { return mul(in("mul", "a", a), s).value(); }
Tensor div(const Tensor& a, double s) { return div(in("div", "a", a), s).value(); }
Tensor rsub(const Tensor& a, double s) { return rsub(in("rsub", "a", a), s).value(); }
Tensor rdiv(const Tensor& a, double s) { return rdiv(in("rdiv", "a", a), s).value(); }

Tensor neg(const Tensor& a) { return neg(in("neg", "a", a)).value(); }
Tensor exp(const Tensor& a) { return exp(in("exp", "a", a)).value(); }
Tensor log(const Tensor& a) { return log(in("log", "a", a)).value(); }
Tensor sqrt(const Tensor& a) { return sqrt(in("sqrt", "a", a)).value(); }
Tensor tanh(const Tensor& a) { return tanh(in("tanh", "a", a)).value(); }
Tensor sigmoid(const Tensor& a) { return sigmoid(in("sigmoid", "a", a)).value(); }

Tensor rsqrt(const Tensor& a) {
  TG_CHECK(a.defined(), "rsqrt", "undefined tensor a");
  Tensor out(a.shape(), a.dtype());
  dispatch_floating(a.dtype(), "rsqrt", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = a.data<T>();
    T* o = out.data<T>();
    kernels::parallel_for(a.numel(), 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) o[i] = T(1) / std::sqrt(p[i]);
    });
  });
  return out;
}

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum(in("sum", "x", x), dims, keepdim).value();
}
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return mean(in("mean", "x", x), dims, keepdim).value();
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  TG_CHECK(t.defined(), "sum_to", "undefined tensor t");
  TG_CHECK(is_floating(t.dtype()), "sum_to", "expected a float tensor; got t=", describe(t));
  bool ok = shape.size() <= t.shape().size();
  size_t off = ok ? t.shape().size() - shape.size() : 0;
  for (size_t d = 0; ok && d < shape.size(); ++d) ok = shape[d] == 1 || shape[d] == t.shape()[off + d];
  TG_CHECK(ok, "sum_to", "shape=", to_string(shape), " does not broadcast to t=", to_string(t.shape()));
  return kernels::sum_to(t, shape);
}

Tensor expand(const Tensor& x, const Shape& shape) { return expand(in("expand", "x", x), shape).value(); }

Tensor matmul(const Tensor& a, const Tensor& b) {
  return matmul(in("matmul", "a", a), in("matmul", "b", b)).value();
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  return transpose(in("transpose", "x", x), dim0, dim1).value();
}

}  // namespace tg
