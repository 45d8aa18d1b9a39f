#include "tapegrad/framework/ops/elementwise.h"

#include <cmath>

#include "tapegrad/framework/check.h"
#include "framework/kernels/activation.h"
#include "framework/kernels/broadcast.h"

namespace tg {
namespace {

void check_binary(const char* op, const Var& a, const Var& b) {
  check_defined(op, "a", a);
  check_defined(op, "b", b);
  TG_CHECK(a.dtype() == b.dtype(), op, "dtypes differ; got a=", describe(a.value()), ", b=", describe(b.value()));
  TG_CHECK(is_floating(a.dtype()), op, "expected float tensors; got a=", describe(a.value()));
}

// out = f(a, b) with broadcasting.
template <class F> Tensor binary_forward(const char* op, const Tensor& a, const Tensor& b, F&& f) {
  Shape os = broadcast_shapes(op, a.shape(), b.shape());
  Tensor out(os, a.dtype(), op);
  dispatch_floating(a.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::broadcast_binary(a.data<T>(), a.shape(), b.data<T>(), b.shape(), out.data<T>(), os,
                              [&](T x, T y) { return static_cast<T>(f(x, y)); });
  });
  return out;
}

// Element-wise map over one tensor: out[i] = f(x[i]).
template <class F> Tensor map(const char* op, const Tensor& x, F&& f) {
  Tensor out(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = x.data<T>();
    T* o = out.data<T>();
    kernels::parallel_for(x.numel(), 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) o[i] = static_cast<T>(f(p[i]));
    });
  });
  return out;
}

// What a unary op's derivative reads: the input x, the output y, both or neither. The backward keeps
// (and the tape checks, see record) only those.
enum class Reads { nothing, x, y, both };

// Unary op whose gradient is gy * d(x, y) with x the input and y the output (0 for one not read).
template <Reads R, class Fwd, class Der> Var unary(const char* op, const Var& a, Fwd fwd, Der der) {
  check_defined(op, "a", a);
  TG_CHECK(is_floating(a.dtype()), op, "expected a float tensor; got ", describe(a.value()));
  constexpr bool kX = R == Reads::x || R == Reads::both, kY = R == Reads::y || R == Reads::both;
  Tensor y = map(op, a.value(), fwd);
  Tensor x = kX ? a.value() : Tensor(), ys = kY ? y : Tensor();
  return record(op, y, {a}, [op, x, ys, der](const Tensor& gy, Grads& g) {
    Tensor dx(gy.shape(), gy.dtype());
    dispatch_floating(gy.dtype(), op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T *px = kX ? x.data<T>() : nullptr, *py = kY ? ys.data<T>() : nullptr, *pg = gy.data<T>();
      T* o = dx.data<T>();
      kernels::parallel_for(gy.numel(), 16384, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          T xi = 0, yi = 0;
          if constexpr (kX) xi = px[i];
          if constexpr (kY) yi = py[i];
          o[i] = static_cast<T>(pg[i] * der(xi, yi));
        }
      });
    });
    g.add(0, dx);
  }, {x, ys});
}

constexpr double kSqrt2OverPi = 0.79788456080286535588;

}  // namespace

Var add(const Var& a, const Var& b) {
  check_binary("add", a, b);
  Tensor y = binary_forward("add", a.value(), b.value(), [](auto x, auto z) { return x + z; });
  return record("add", y, {a, b}, [as = a.shape(), bs = b.shape()](const Tensor& gy, Grads& g) {
    if (g.wants(0)) g.add(0, kernels::sum_to(gy, as));
    if (g.wants(1)) g.add(1, kernels::sum_to(gy, bs));
  });
}

Var sub(const Var& a, const Var& b) {
  check_binary("sub", a, b);
  Tensor y = binary_forward("sub", a.value(), b.value(), [](auto x, auto z) { return x - z; });
  return record("sub", y, {a, b}, [as = a.shape(), bs = b.shape()](const Tensor& gy, Grads& g) {
    if (g.wants(0)) g.add(0, kernels::sum_to(gy, as));
    if (g.wants(1)) g.add(1, kernels::sum_to(map("sub", gy, [](auto v) { return -v; }), bs));
  });
}

Var mul(const Var& a, const Var& b) {
  check_binary("mul", a, b);
  Tensor y = binary_forward("mul", a.value(), b.value(), [](auto x, auto z) { return x * z; });
  return record("mul", y, {a, b}, [av = a.value(), bv = b.value()](const Tensor& gy, Grads& g) {
    auto times = [](auto x, auto z) { return x * z; };
    if (g.wants(0)) g.add(0, kernels::sum_to(binary_forward("mul", gy, bv, times), av.shape()));
    if (g.wants(1)) g.add(1, kernels::sum_to(binary_forward("mul", gy, av, times), bv.shape()));
  }, {a.value(), b.value()});
}

Var div(const Var& a, const Var& b) {
  check_binary("div", a, b);
  Tensor y = binary_forward("div", a.value(), b.value(), [](auto x, auto z) { return x / z; });
  return record("div", y, {a, b}, [as = a.shape(), bv = b.value(), y](const Tensor& gy, Grads& g) {
    Tensor gb_over = binary_forward("div", gy, bv, [](auto x, auto z) { return x / z; });   // gy / b
    if (g.wants(0)) g.add(0, kernels::sum_to(gb_over, as));
    if (g.wants(1)) {
      // d(a/b)/db = -y / b  ->  -(gy / b) * y
      Tensor gbb = binary_forward("div", gb_over, y, [](auto x, auto z) { return -x * z; });
      g.add(1, kernels::sum_to(gbb, bv.shape()));
    }
  }, {b.value(), y});
}

Var pow(const Var& a, const Var& b) {
  check_binary("pow", a, b);
  Tensor y = binary_forward("pow", a.value(), b.value(), [](auto x, auto z) { return std::pow(x, z); });
  return record("pow", y, {a, b}, [av = a.value(), bv = b.value(), y](const Tensor& gy, Grads& g) {
    if (g.wants(0)) {
      // d/da = b * a^(b-1)
      Tensor d = binary_forward("pow", av, bv, [](auto x, auto z) { return z * std::pow(x, z - 1); });
      g.add(0, kernels::sum_to(binary_forward("pow", gy, d, [](auto x, auto z) { return x * z; }), av.shape()));
    }
    if (g.wants(1)) {
      // d/db = a^b * log(a)
      Tensor la = map("pow", av, [](auto x) { return std::log(x); });
      Tensor d = binary_forward("pow", y, la, [](auto x, auto z) { return x * z; });
      g.add(1, kernels::sum_to(binary_forward("pow", gy, d, [](auto x, auto z) { return x * z; }), bv.shape()));
    }
  }, {a.value(), b.value(), y});
}

Var add(const Var& a, double s) {
  return unary<Reads::nothing>("add", a, [s](auto x) { return x + s; }, [](auto, auto) { return 1.0; });
}
Var mul(const Var& a, double s) {
  return unary<Reads::nothing>("mul", a, [s](auto x) { return x * s; }, [s](auto, auto) { return s; });
}
Var div(const Var& a, double s) {
  return unary<Reads::nothing>("div", a, [s](auto x) { return x / s; }, [s](auto, auto) { return 1.0 / s; });
}
Var rsub(const Var& a, double s) {
  return unary<Reads::nothing>("rsub", a, [s](auto x) { return s - x; }, [](auto, auto) { return -1.0; });
}
Var rdiv(const Var& a, double s) {
  return unary<Reads::both>("rdiv", a, [s](auto x) { return s / x; }, [](auto x, auto y) { return -y / x; });
}
Var pow(const Var& a, double e) {
  return unary<Reads::x>("pow", a, [e](auto x) { return std::pow(x, e); },
               [e](auto x, auto) { return e == 0.0 ? 0.0 : e * std::pow(x, e - 1.0); });
}

Var neg(const Var& a) {
  return unary<Reads::nothing>("neg", a, [](auto x) { return -x; }, [](auto, auto) { return -1.0; });
}
Var exp(const Var& a) {
  return unary<Reads::y>("exp", a, [](auto x) { return std::exp(x); }, [](auto, auto y) { return y; });
}
Var log(const Var& a) {
  return unary<Reads::x>("log", a, [](auto x) { return std::log(x); }, [](auto x, auto) { return 1.0 / x; });
}
Var sqrt(const Var& a) {
  return unary<Reads::y>("sqrt", a, [](auto x) { return std::sqrt(x); }, [](auto, auto y) { return 0.5 / y; });
}
Var tanh(const Var& a) {
  return unary<Reads::y>("tanh", a, [](auto x) { return std::tanh(x); }, [](auto, auto y) { return 1.0 - y * y; });
}
Var sigmoid(const Var& a) {
  return unary<Reads::y>("sigmoid", a, [](auto x) { return 1.0 / (1.0 + std::exp(-x)); },
               [](auto, auto y) { return y * (1.0 - y); });
}
Var relu(const Var& a) {
  return unary<Reads::x>("relu", a, [](auto x) { return x > 0 ? x : decltype(x)(0); },
               [](auto x, auto) { return x > 0 ? 1.0 : 0.0; });
}

Var gelu(const Var& a, GeluApproximate approximate) {
  if (approximate == GeluApproximate::none) {
    check_defined("gelu", "a", a);
    TG_CHECK(is_floating(a.dtype()), "gelu", "expected a float tensor; got ", describe(a.value()));
    Tensor y(a.shape(), a.dtype());
    if (!grad_enabled() || !a.requires_grad()) {
      dispatch_floating(a.dtype(), "gelu", [&](auto tag) {
        using T = typename decltype(tag)::type;
        kernels::gelu_forward<T>(a.value().data<T>(), y.data<T>(), y.numel());
      });
      return record("gelu", y, {a}, nullptr);
    }
    // Training: the slope dy/dx is computed with y from the same erf and kept instead of x.
    Tensor slope(a.shape(), a.dtype());
    dispatch_floating(a.dtype(), "gelu", [&](auto tag) {
      using T = typename decltype(tag)::type;
      kernels::gelu_forward_slope<T>(a.value().data<T>(), y.data<T>(), slope.data<T>(), y.numel());
    });
    return record("gelu", y, {a}, [slope](const Tensor& gy, Grads& g) {
      Tensor dx(slope.shape(), slope.dtype());
      dispatch_floating(slope.dtype(), "gelu", [&](auto tag) {
        using T = typename decltype(tag)::type;
        kernels::gelu_backward_slope<T>(slope.data<T>(), gy.data<T>(), dx.data<T>(), slope.numel());
      });
      g.add(0, dx);
    });
  }
  return unary<Reads::x>("gelu", a,
               [](auto x) {
                 double xd = x;
                 return 0.5 * xd * (1.0 + std::tanh(kSqrt2OverPi * (xd + 0.044715 * xd * xd * xd)));
               },
               [](auto x, auto) {
                 double xd = x, inner = kSqrt2OverPi * (xd + 0.044715 * xd * xd * xd);
                 double t = std::tanh(inner);
                 double dinner = kSqrt2OverPi * (1.0 + 3.0 * 0.044715 * xd * xd);
                 return 0.5 * (1.0 + t) + 0.5 * xd * (1.0 - t * t) * dinner;
               });
}

Var masked_fill(const Var& a, const Tensor& mask, double value) {
  check_defined("masked_fill", "a", a);
  check_defined("masked_fill", "mask", mask);
  TG_CHECK(is_floating(a.dtype()), "masked_fill", "expected a float tensor; got a=", describe(a.value()));
  TG_CHECK(mask.dtype() == DType::Bool, "masked_fill", "mask must be bool; got mask=", describe(mask));
  bool fits = mask.dim() <= a.dim();
  for (int64_t d = 1; fits && d <= mask.dim(); ++d)
    fits = mask.size(-d) == 1 || mask.size(-d) == a.size(-d);
  TG_CHECK(fits, "masked_fill", "mask must broadcast to the input's shape; got input=",
           to_string(a.shape()), ", mask=", to_string(mask.shape()));
  const Shape& os = a.shape();
  Tensor y(os, a.dtype());
  dispatch_floating(a.dtype(), "masked_fill", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T v = static_cast<T>(value);
    kernels::broadcast_binary(a.value().data<T>(), a.shape(), mask.data<bool>(), mask.shape(), y.data<T>(), os,
                              [v](T x, bool m) { return m ? v : x; });
  });
  return record("masked_fill", y, {a}, [mask](const Tensor& gy, Grads& g) {
    Tensor dx(gy.shape(), gy.dtype());
    dispatch_floating(gy.dtype(), "masked_fill", [&](auto tag) {
      using T = typename decltype(tag)::type;
      kernels::broadcast_binary(gy.data<T>(), gy.shape(), mask.data<bool>(), mask.shape(), dx.data<T>(),
                                gy.shape(), [](T x, bool m) { return m ? T(0) : x; });
    });
    g.add(0, dx);
  }, {mask});
}

Var where(const Tensor& cond, const Var& a, const Var& b) {
  check_binary("where", a, b);
  check_defined("where", "condition", cond);
  TG_CHECK(cond.dtype() == DType::Bool, "where", "condition must be bool; got condition=", describe(cond));
  const Shape ab = broadcast_shapes("where", a.shape(), b.shape());
  Shape os;
  try {
    os = broadcast_shapes("where", cond.shape(), ab);
  } catch (const std::invalid_argument&) {
    TG_CHECK(false, "where", "condition cannot be broadcast with a and b; got condition=", to_string(cond.shape()),
             ", a=", to_string(a.shape()), ", b=", to_string(b.shape()));
  }
  Tensor c = kernels::expand(cond, os), ae = kernels::expand(a.value(), os), be = kernels::expand(b.value(), os);
  Tensor y(os, a.dtype(), "where");
  dispatch_floating(a.dtype(), "where", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *pa = ae.data<T>(), *pb = be.data<T>();
    const bool* pc = c.data<bool>();
    T* py = y.data<T>();
    kernels::parallel_for(y.numel(), 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) py[i] = pc[i] ? pa[i] : pb[i];
    });
  });
  return record("where", y, {a, b}, [cond, as = a.shape(), bs = b.shape()](const Tensor& gy, Grads& g) {
    for (size_t k = 0; k < 2; ++k) {
      if (!g.wants(k)) continue;
      Tensor d(gy.shape(), gy.dtype());
      bool keep = k == 0;
      dispatch_floating(gy.dtype(), "where", [&](auto tag) {
        using T = typename decltype(tag)::type;
        kernels::broadcast_binary(gy.data<T>(), gy.shape(), cond.data<bool>(), cond.shape(), d.data<T>(),
                                  gy.shape(), [keep](T x, bool c) { return c == keep ? x : T(0); });
      });
      g.add(k, kernels::sum_to(d, k == 0 ? as : bs));
    }
  }, {cond});
}

}  // namespace tg
