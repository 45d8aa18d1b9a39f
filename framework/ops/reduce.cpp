#include "tapegrad/framework/ops/reduce.h"

#include <algorithm>

#include "tapegrad/framework/check.h"
#include "framework/kernels/broadcast.h"
#include "framework/kernels/reduce.h"

namespace tg {
namespace {

void check_float(const char* op, const Var& x) {
  check_defined(op, "x", x);
  TG_CHECK(is_floating(x.dtype()), op, "expected a float tensor; got x=", describe(x.value()));
}

// Validates dims against x's rank and returns them normalised and sorted; an empty list means every
// dim; a 0-d tensor has nothing to reduce.
std::vector<int64_t> reduce_dims(const char* op, const Var& x, const std::vector<int64_t>& dims) {
  check_float(op, x);
  int64_t rank = x.dim(), lim = rank == 0 ? 1 : rank;
  std::vector<int64_t> out;
  for (int64_t d : dims) {
    TG_CHECK(d >= -lim && d < lim, op, "dim ", d, " out of range for a ", rank, "-d tensor; got x=",
             to_string(x.shape()));
    int64_t nd = d < 0 ? d + lim : d;
    TG_CHECK(std::find(out.begin(), out.end(), nd) == out.end(), op, "dim ", nd, " appears more than once in dims=",
             to_string(dims), "; got x=", to_string(x.shape()));
    out.push_back(nd);
  }
  if (rank == 0) return {};
  if (dims.empty())
    for (int64_t d = 0; d < rank; ++d) out.push_back(d);
  std::sort(out.begin(), out.end());
  return out;
}

// x's shape with the (normalised) reduced dims set to 1.
Shape keepdim_shape(const Shape& s, const std::vector<int64_t>& dims) {
  Shape k = s;
  for (int64_t d : dims) k[static_cast<size_t>(d)] = 1;
  return k;
}

// Gradient of a sum (divisor 1) or mean: gy, of the keepdim shape, broadcast to `shape` and divided by
// divisor in the input's dtype, as PyTorch's grad.expand(sizes) / numel.
Tensor spread(const Tensor& gy, const Shape& shape, double divisor) {
  if (divisor == 1.0) return kernels::expand(gy, shape);
  Tensor out(shape, gy.dtype());
  dispatch_floating(gy.dtype(), "mean", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T n = static_cast<T>(divisor);
    const T* p = gy.data<T>();
    kernels::broadcast_binary(p, gy.shape(), p, Shape{}, out.data<T>(), shape, [n](T v, T) { return v / n; });
  });
  return out;
}

Var sum_or_mean(const char* op, const Var& x, const std::vector<int64_t>& dims, bool keepdim, bool is_mean) {
  std::vector<int64_t> nd = reduce_dims(op, x, dims);
  Tensor y = is_mean ? kernels::mean(x.value(), nd, keepdim) : kernels::sum(x.value(), nd, keepdim);
  Shape keep = keepdim_shape(x.shape(), nd);
  // Elements per output (with no outputs, nothing flows back and any divisor will do).
  double divisor = is_mean && numel(keep) > 0 ? static_cast<double>(x.numel() / numel(keep)) : 1.0;
  return record(op, y, {x}, [xs = x.shape(), keep, divisor](const Tensor& gy, Grads& g) {
    g.add(0, spread(gy.reshape(keep), xs, divisor));
  });
}

}  // namespace

Var sum(const Var& x) { return sum_or_mean("sum", x, {}, false, false); }

Var sum(const Var& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean("sum", x, dims, keepdim, false);
}

Var mean(const Var& x) { return sum_or_mean("mean", x, {}, false, true); }

Var mean(const Var& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean("mean", x, dims, keepdim, true);
}

Var max(const Var& x) {
  std::vector<int64_t> all = reduce_dims("max", x, {});
  TG_CHECK(x.numel() > 0, "max", "cannot reduce an empty tensor; got x=", to_string(x.shape()));
  Tensor y = kernels::amax(x.value(), all, false);
  Shape keep = keepdim_shape(x.shape(), all);
  return record("max", y, {x}, [xv = x.value(), y, keep, all](const Tensor& gy, Grads& g) {
    g.add(0, kernels::amax_backward(xv, y.reshape(keep), gy.reshape(keep), all));
  }, {x.value(), y});
}

Var amax(const Var& x, const std::vector<int64_t>& dims, bool keepdim) {
  std::vector<int64_t> nd = reduce_dims("amax", x, dims);
  Tensor y = kernels::amax(x.value(), nd, keepdim);
  Shape keep = keepdim_shape(x.shape(), nd);
  return record("amax", y, {x}, [xv = x.value(), y, keep, nd](const Tensor& gy, Grads& g) {
    g.add(0, kernels::amax_backward(xv, y.reshape(keep), gy.reshape(keep), nd));
  }, {x.value(), y});
}

MaxResult max(const Var& x, int64_t dim, bool keepdim) {
  std::vector<int64_t> nd = reduce_dims("max", x, {dim});
  if (nd.empty()) {   // 0-d: the element itself, index 0
    Var values = record("max", x.value().clone(), {x}, [](const Tensor& gy, Grads& g) { g.add(0, gy); });
    return {values, Tensor::zeros({}, DType::Int64)};
  }
  kernels::MaxDim r = kernels::max_dim(x.value(), nd[0], keepdim);
  Shape keep = keepdim_shape(x.shape(), nd);
  Var values = record("max", r.values, {x},
                      [xs = x.shape(), idx = r.indices, keep, d = nd[0]](const Tensor& gy, Grads& g) {
                        g.add(0, kernels::max_dim_backward(gy.reshape(keep), idx.reshape(keep), xs, d));
                      }, {r.indices});
  return {values, r.indices};
}

}  // namespace tg
