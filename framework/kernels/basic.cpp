#include "framework/kernels/basic.h"

#include "tapegrad/framework/check.h"
#include "framework/kernels/parallel.h"

namespace tg::kernels {
namespace {

void check_same(const char* op, const Tensor& a, const Tensor& b) {
  TG_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(), op, "operands differ; got a=", describe(a),
           ", b=", describe(b));
}

template <class F> void for_each_floating(const char* op, Tensor& dst, F&& f) {
  dispatch_floating(dst.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* d = dst.data<T>();
    parallel_for(dst.numel(), 16384, [&](int64_t b, int64_t e) { f(d, b, e, tag); });
  });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  check_same("add", a, b);
  Tensor out = a.clone();
  add_into(out, b);
  return out;
}

void add_into(Tensor& dst, const Tensor& src) {
  check_same("add_into", dst, src);
  for_each_floating("add_into", dst, [&](auto* d, int64_t b, int64_t e, auto tag) {
    using T = typename decltype(tag)::type;
    const T* s = src.data<T>();
    for (int64_t i = b; i < e; ++i) d[i] += s[i];
  });
}

void scale_into(Tensor& dst, double alpha) {
  for_each_floating("scale_into", dst, [&](auto* d, int64_t b, int64_t e, auto tag) {
    using T = typename decltype(tag)::type;
    T a = static_cast<T>(alpha);
    for (int64_t i = b; i < e; ++i) d[i] *= a;
  });
}

void axpy_into(Tensor& dst, double alpha, const Tensor& x) {
  check_same("axpy_into", dst, x);
  for_each_floating("axpy_into", dst, [&](auto* d, int64_t b, int64_t e, auto tag) {
    using T = typename decltype(tag)::type;
    const T* s = x.data<T>();
    T a = static_cast<T>(alpha);
    for (int64_t i = b; i < e; ++i) d[i] += a * s[i];
  });
}

}  // namespace tg::kernels
