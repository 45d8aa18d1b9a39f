#include "tapegrad/framework/ops/matmul.h"

#include <algorithm>
#include <memory>
#include <string>

#include "tapegrad/framework/check.h"
#include "framework/kernels/activation.h"
#include "framework/kernels/broadcast.h"
#include "framework/kernels/bf16.h"
#include "framework/kernels/gemm.h"
#include "framework/kernels/layer_norm.h"
#include "framework/kernels/parallel.h"

namespace tg {
namespace {

// How a matmul maps onto GEMMs: out[i] = A[a_idx[i]] @ B[b_idx[i]] for each of the `batch` matrices of
// the output, with A [na, M, K] and B [nb, K, N] (1-D operands promoted to [1, K] and [K, 1]).
struct MatmulPlan {
  int64_t M = 1, N = 1, K = 1;
  int64_t batch = 1, na = 1, nb = 1;
  std::vector<int64_t> a_idx, b_idx;
  bool fold = false;   // b is one matrix and a has the whole batch: fold a's batch into M (one GEMM)
  bool empty = false;  // the result has no elements: no GEMM, zero gradients
  Shape out_shape;
  Bf16Mode mode = Bf16Mode::float32;   // bf16 operands under autocast (chosen when recorded)
};

// Broadcast of the batch dims, with matmul's own message naming the full operand shapes.
Shape broadcast_batch(const Shape& ab, const Shape& bb, const Shape& as, const Shape& bs) {
  size_t rank = std::max(ab.size(), bb.size());
  Shape out(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t x = i < rank - ab.size() ? 1 : ab[i - (rank - ab.size())];
    int64_t y = i < rank - bb.size() ? 1 : bb[i - (rank - bb.size())];
    TG_CHECK(x == y || x == 1 || y == 1, "matmul", "batch dims cannot be broadcast; got a=", to_string(as),
             ", b=", to_string(bs));
    out[i] = x == 1 ? y : x;
  }
  return out;
}

MatmulPlan plan_matmul(const Shape& as, const Shape& bs) {
  TG_CHECK(!as.empty() && !bs.empty(), "matmul", "both operands must have at least 1 dim; got a=", to_string(as),
           ", b=", to_string(bs));
  Shape a2 = as.size() == 1 ? Shape{1, as[0]} : as;   // [*A, M, K]
  Shape b2 = bs.size() == 1 ? Shape{bs[0], 1} : bs;   // [*B, K, N]
  TG_CHECK(a2.back() == b2[b2.size() - 2], "matmul", "inner dims differ; got a=", to_string(as), ", b=",
           to_string(bs));
  MatmulPlan p;
  p.M = a2[a2.size() - 2];
  p.K = a2.back();
  p.N = b2.back();
  Shape ab(a2.begin(), a2.end() - 2), bb(b2.begin(), b2.end() - 2);
  Shape batch = broadcast_batch(ab, bb, as, bs);
  p.out_shape = batch;
  if (as.size() > 1) p.out_shape.push_back(p.M);
  if (bs.size() > 1) p.out_shape.push_back(p.N);
  // Checked before the per-matrix index tables are built: a broadcast batch may be far larger than either operand.
  p.empty = numel(p.out_shape, "matmul") == 0;
  if (p.empty) return p;
  p.batch = numel(batch);
  p.na = numel(ab);
  p.nb = numel(bb);
  std::vector<int64_t> sa = kernels::broadcast_strides(ab, batch), sb = kernels::broadcast_strides(bb, batch);
  p.a_idx.resize(static_cast<size_t>(p.batch));
  p.b_idx.resize(static_cast<size_t>(p.batch));
  for (int64_t i = 0; i < p.batch; ++i) {
    int64_t rem = i, ia = 0, ib = 0;
    for (size_t d = batch.size(); d-- > 0;) {
      int64_t k = rem % batch[d];
      rem /= batch[d];
      ia += k * sa[d];
      ib += k * sb[d];
    }
    p.a_idx[static_cast<size_t>(i)] = ia;
    p.b_idx[static_cast<size_t>(i)] = ib;
  }
  p.fold = p.nb == 1 && p.na == p.batch;
  return p;
}

// One operand of a batched product: matrix i is data + idx[i] * stride (idx nullptr: i itself).
template <class T> struct Operand {
  const T* data;
  int64_t ld, stride;
  const std::vector<int64_t>* idx;
  bool trans;
  const T* at(int64_t i) const { return data + (idx ? (*idx)[static_cast<size_t>(i)] : i) * stride; }
};

// 1 when idx[i] == i for all i, 0 when idx[i] == 0 for all i, -1 otherwise (nullptr counts as identity).
int uniform_step(const std::vector<int64_t>* idx) {
  if (!idx) return 1;
  bool zero = true, ident = true;
  for (size_t i = 0; i < idx->size(); ++i) {
    zero = zero && (*idx)[i] == 0;
    ident = ident && (*idx)[i] == static_cast<int64_t>(i);
  }
  return ident ? 1 : zero ? 0 : -1;
}

// out[i] = op(A_i) @ op(B_i) for the n products i, out[i] at C + i * stride_c ([M, N], row stride ldc).
template <class T>
void gemm_each(Bf16Mode mode, int64_t n, int64_t M, int64_t N, int64_t K, const Operand<T>& A, const Operand<T>& B,
               T* C, int64_t ldc, int64_t stride_c) {
  int ua = uniform_step(A.idx), ub = uniform_step(B.idx);
  if (ua >= 0 && ub >= 0) {
    kernels::gemm_mixed_batched<T>(mode, n, A.trans, B.trans, M, N, K, T(1), A.data, A.ld, A.stride * ua, B.data,
                                   B.ld, B.stride * ub, T(0), C, ldc, stride_c);
    return;
  }
  kernels::parallel_for(n, kernels::grain_for(M * N * std::max<int64_t>(K, 1), int64_t{1} << 18),
                        [&](int64_t i0, int64_t i1) {
                          for (int64_t i = i0; i < i1; ++i)
                            kernels::gemm_mixed_serial<T>(mode, A.trans, B.trans, M, N, K, T(1), A.at(i), A.ld,
                                                          B.at(i), B.ld, T(0), C + i * stride_c, ldc);
                        });
}

// out[t] = sum over the products i with target[i] == t, in increasing i, of op(A_i) @ op(B_i), for the
// `ntargets` outputs t (an output with no product is zero). The gradient of a broadcast batch dim.
template <class T>
void gemm_grouped(Bf16Mode mode, const std::vector<int64_t>& target, int64_t ntargets, int64_t M, int64_t N, int64_t K,
                  const Operand<T>& A, const Operand<T>& B, T* C, int64_t ldc, int64_t stride_c) {
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(ntargets));
  for (size_t i = 0; i < target.size(); ++i) members[static_cast<size_t>(target[i])].push_back(static_cast<int64_t>(i));
  auto run_target = [&](int64_t t, bool serial) {
    T* c = C + t * stride_c;
    const std::vector<int64_t>& list = members[static_cast<size_t>(t)];
    if (list.empty())
      for (int64_t r = 0; r < M; ++r) std::fill(c + r * ldc, c + r * ldc + N, T(0));
    for (size_t k = 0; k < list.size(); ++k) {
      int64_t i = list[k];
      T beta = k == 0 ? T(0) : T(1);
      if (serial)
        kernels::gemm_mixed_serial<T>(mode, A.trans, B.trans, M, N, K, T(1), A.at(i), A.ld, B.at(i), B.ld, beta, c,
                                      ldc);
      else
        kernels::gemm_mixed<T>(mode, A.trans, B.trans, M, N, K, T(1), A.at(i), A.ld, B.at(i), B.ld, beta, c, ldc);
    }
  };
  if (ntargets == 1) {
    run_target(0, false);   // one output: let each GEMM split its rows instead
    return;
  }
  int64_t per = (static_cast<int64_t>(target.size()) + ntargets - 1) / std::max<int64_t>(ntargets, 1);
  kernels::parallel_for(ntargets, kernels::grain_for(M * N * std::max<int64_t>(K, 1) * per, int64_t{1} << 18),
                        [&](int64_t t0, int64_t t1) {
                          for (int64_t t = t0; t < t1; ++t) run_target(t, true);
                        });
}

template <class T> void matmul_forward(const MatmulPlan& p, const T* a, const T* b, T* y) {
  if (p.fold) {   // [batch * M, K] @ [K, N]
    kernels::gemm_mixed<T>(p.mode, false, false, p.batch * p.M, p.N, p.K, T(1), a, p.K, b, p.N, T(0), y, p.N);
    return;
  }
  Operand<T> A{a, p.K, p.M * p.K, &p.a_idx, false}, B{b, p.N, p.K * p.N, &p.b_idx, false};
  gemm_each(p.mode, p.batch, p.M, p.N, p.K, A, B, y, p.N, p.M * p.N);
}

// dA[a_idx[i]] += gy_i @ B_i^T  ([M, N] @ [N, K]).
template <class T> void matmul_grad_a(const MatmulPlan& p, const T* gy, const T* b, T* da) {
  if (p.fold) {   // [batch * M, N] @ [K, N]^T
    kernels::gemm_mixed<T>(p.mode, false, true, p.batch * p.M, p.K, p.N, T(1), gy, p.N, b, p.N, T(0), da, p.K);
    return;
  }
  Operand<T> G{gy, p.N, p.M * p.N, nullptr, false}, B{b, p.N, p.K * p.N, &p.b_idx, true};
  if (p.na == p.batch)
    gemm_each(p.mode, p.batch, p.M, p.K, p.N, G, B, da, p.K, p.M * p.K);
  else
    gemm_grouped(p.mode, p.a_idx, p.na, p.M, p.K, p.N, G, B, da, p.K, p.M * p.K);
}

// dB[b_idx[i]] += A_i^T @ gy_i  ([K, M] @ [M, N]).
template <class T> void matmul_grad_b(const MatmulPlan& p, const T* a, const T* gy, T* db) {
  if (p.fold) {   // [batch * M, K]^T @ [batch * M, N]: the batch sum happens inside one GEMM
    kernels::gemm_mixed<T>(p.mode, true, false, p.K, p.N, p.batch * p.M, T(1), a, p.K, gy, p.N, T(0), db, p.N);
    return;
  }
  Operand<T> A{a, p.K, p.M * p.K, &p.a_idx, true}, G{gy, p.N, p.M * p.N, nullptr, false};
  if (p.nb == p.batch)
    gemm_each(p.mode, p.batch, p.K, p.N, p.M, A, G, db, p.N, p.K * p.N);
  else
    gemm_grouped(p.mode, p.b_idx, p.nb, p.K, p.N, p.M, A, G, db, p.N, p.K * p.N);
}

void check_operands(const char* op, const char* na, const Var& a, const char* nb, const Var& b) {
  check_defined(op, na, a);
  check_defined(op, nb, b);
  TG_CHECK(is_floating(a.dtype()), op, "expected float tensors; got ", na, "=", describe(a.value()));
  TG_CHECK(a.dtype() == b.dtype(), op, "dtypes differ; got ", na, "=", describe(a.value()), ", ", nb, "=",
           describe(b.value()));
}

std::string linear_shapes(const Var& x, const Var& weight, const Var& bias) {
  std::string s = "x=" + to_string(x.shape()) + ", weight=" + to_string(weight.shape());
  return bias.defined() ? s + ", bias=" + to_string(bias.shape()) : s;
}

void check_linear(const char* op, const Var& x, const Var& weight, const Var& bias) {
  check_operands(op, "x", x, "weight", weight);
  if (bias.defined()) check_operands(op, "x", x, "bias", bias);
  TG_CHECK(x.dim() >= 1, op, "x must have at least 1 dim; got ", linear_shapes(x, weight, bias));
  TG_CHECK(weight.dim() == 2, op, "weight must be 2-D [out_features, in_features]; got ",
           linear_shapes(x, weight, bias));
  TG_CHECK(x.size(-1) == weight.size(1), op, "in_features differ; got ", linear_shapes(x, weight, bias));
  TG_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)), op,
           "bias must have shape [out_features]; got ", linear_shapes(x, weight, bias));
}

// The rows of a linear layer's x [*, in] (flattened) and its output shape [*, out].
struct LinearDims {
  int64_t rows, in, out;
  Shape y_shape;
};
LinearDims linear_dims(const Var& x, const Var& weight) {
  Shape ys = x.shape();
  ys.back() = weight.size(0);
  return {numel(Shape(x.shape().begin(), x.shape().end() - 1)), weight.size(1), weight.size(0), ys};
}

// Which inputs of the recorded op take a linear layer's gradients; kNoInput: that gradient is not computed
// here (Grads::wants is false for it).
constexpr size_t kNoInput = static_cast<size_t>(-1);
struct LinearInputs {
  size_t x = 0, weight = 1, bias = 2;
};

// The gradients of y = x @ W^T + b from gy [rows, out] (linear, and linear_gelu after the GELU's slope); x and
// xv may be the input of a linear inside a larger op (linear_gelu_linear's second).
template <class T>
void linear_backward(Bf16Mode mode, const T* pg, const Tensor& xv, const Tensor& wv, const LinearDims& d, Grads& g,
                     LinearInputs in = {}) {
  if (g.wants(in.x)) {   // dx [rows, in] = gy [rows, out] @ W [out, in]
    Tensor dx(xv.shape(), xv.dtype());
    kernels::gemm_mixed<T>(mode, false, false, d.rows, d.in, d.out, T(1), pg, d.out, wv.data<T>(), d.in, T(0),
                           dx.data<T>(), d.in);
    g.add(in.x, dx);
  }
  if (g.wants(in.weight)) {   // dW [out, in] = gy^T [out, rows] @ x [rows, in]
    Tensor dw(wv.shape(), wv.dtype());
    kernels::gemm_mixed<T>(mode, true, false, d.out, d.in, d.rows, T(1), pg, d.out, xv.data<T>(), d.in, T(0),
                           dw.data<T>(), d.in);
    g.add(in.weight, dw);
  }
  if (g.wants(in.bias)) {   // db [out] = column sums of gy [rows, out]
    Tensor db({d.out}, wv.dtype());
    kernels::column_sums<T>(pg, d.rows, d.out, db.data<T>());
    g.add(in.bias, db);
  }
}

// The checks of linear_gelu_linear's second linear (weight2 [out, hidden], bias2 [out]).
void check_second_linear(const char* op, const Var& x, const Var& weight1, const Var& weight2, const Var& bias2) {
  check_operands(op, "x", x, "weight2", weight2);
  if (bias2.defined()) check_operands(op, "x", x, "bias2", bias2);
  const std::string w = "weight1=" + to_string(weight1.shape()) + ", weight2=" + to_string(weight2.shape());
  TG_CHECK(weight2.dim() == 2, op, "weight2 must be 2-D [out_features, hidden]; got ", w);
  TG_CHECK(weight2.size(1) == weight1.size(0), op, "hidden features differ; got ", w);
  TG_CHECK(!bias2.defined() || (bias2.dim() == 1 && bias2.size(0) == weight2.size(0)), op,
           "bias2 must have shape [out_features]; got weight2=", to_string(weight2.shape()),
           ", bias2=", to_string(bias2.shape()));
}

// The check of a residual added to a linear's output y_shape (undefined: none): that shape and x's dtype. `w` names
// the weight that gives the output its last dim (weight or weight2).
void check_residual(const char* op, const Var& x, const char* w, const Var& weight, const Var& residual,
                    const Shape& y_shape) {
  if (!residual.defined()) return;
  check_operands(op, "x", x, "residual", residual);
  TG_CHECK(residual.shape() == y_shape, op, "residual must have the output's shape ", to_string(y_shape), "; got x=",
           to_string(x.shape()), ", ", w, "=", to_string(weight.shape()), ", residual=", to_string(residual.shape()));
}

// The gradients of linear_gelu_linear from gy [rows, out]: the second linear's weight and bias (inputs 3
// and 4) from gy and its input h, then, through dz = (gy @ weight2) * slope, the first linear's (0 to 2).
template <class T>
void linear_gelu_linear_backward(Bf16Mode mode, const T* gy, const Tensor& xv, const Tensor& w1v, const Tensor& w2v,
                                 const Tensor& h, const Tensor& slope, const LinearDims& d1, int64_t out, Grads& g) {
  const int64_t hid = d1.out;
  linear_backward<T>(mode, gy, h, w2v, {d1.rows, hid, out, {}}, g, {.x = kNoInput, .weight = 3, .bias = 4});
  if (!g.wants(0) && !g.wants(1) && !g.wants(2)) return;
  Tensor dz(h.shape(), h.dtype());
  kernels::linear_gelu_input_grad<T>(mode, gy, w2v.data<T>(), slope.data<T>(), dz.data<T>(), d1.rows, hid, out);
  linear_backward<T>(mode, dz.data<T>(), xv, w1v, d1, g);
}

}  // namespace

Var matmul(const Var& a, const Var& b) {
  check_operands("matmul", "a", a, "b", b);
  MatmulPlan planned = plan_matmul(a.shape(), b.shape());
  planned.mode = detail::autocast_mode_for(a.dtype());
  auto plan = std::make_shared<const MatmulPlan>(std::move(planned));
  if (plan->empty)   // nothing to compute; every gradient is zero
    return record("matmul", Tensor(plan->out_shape, a.dtype(), "matmul"), {a, b},
                  [as = a.shape(), bs = b.shape()](const Tensor& gy, Grads& g) {
                    if (g.wants(0)) g.add(0, Tensor::zeros(as, gy.dtype()));
                    if (g.wants(1)) g.add(1, Tensor::zeros(bs, gy.dtype()));
                  });
  Tensor y(plan->out_shape, a.dtype(), "matmul");
  dispatch_floating(a.dtype(), "matmul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    matmul_forward<T>(*plan, a.value().data<T>(), b.value().data<T>(), y.data<T>());
  });
  return record("matmul", y, {a, b}, [plan, av = a.value(), bv = b.value()](const Tensor& gy, Grads& g) {
    dispatch_floating(gy.dtype(), "matmul", [&](auto tag) {
      using T = typename decltype(tag)::type;
      if (g.wants(0)) {
        Tensor da(av.shape(), av.dtype());
        matmul_grad_a<T>(*plan, gy.data<T>(), bv.data<T>(), da.data<T>());
        g.add(0, da);
      }
      if (g.wants(1)) {
        Tensor db(bv.shape(), bv.dtype());
        matmul_grad_b<T>(*plan, av.data<T>(), gy.data<T>(), db.data<T>());
        g.add(1, db);
      }
    });
  }, {a.value(), b.value()});
}

namespace {

// linear and linear_residual: y = x @ W^T + b, plus the residual when it is defined (with_residual: the op takes
// one, and an undefined residual throws).
Var linear_op(const char* op, const Var& x, const Var& weight, const Var& bias, bool with_residual,
              const Var& residual) {
  check_linear(op, x, weight, bias);
  // x [*, in] -> rows [R, in]; y [R, out] -> [*, out]
  const LinearDims d = linear_dims(x, weight);
  if (with_residual) check_defined(op, "residual", residual);
  check_residual(op, x, "weight", weight, residual, d.y_shape);
  Tensor y(d.y_shape, x.dtype(), op);
  const Bf16Mode mode = detail::autocast_mode_for(x.dtype());
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *xp = x.value().data<T>(), *wp = weight.value().data<T>();
    const T* bp = bias.defined() ? bias.value().data<T>() : nullptr;
    if (residual.defined())
      kernels::linear_residual_forward<T>(mode, xp, wp, bp, residual.value().data<T>(), y.data<T>(), d.rows, d.out,
                                          d.in);
    else   // y = bias, then y += x @ W^T, block by block inside the GEMM
      kernels::gemm_mixed<T>(mode, false, true, d.rows, d.out, d.in, T(1), xp, d.in, wp, d.in, T(0), y.data<T>(),
                             d.out, bp);
  });
  return record(op, y, {x, weight, bias, residual},
                [op, xv = x.value(), wv = weight.value(), d, mode](const Tensor& gy, Grads& g) {
                  if (g.wants(3)) g.add(3, gy);   // the residual's, as add's backward
                  dispatch_floating(gy.dtype(), op, [&](auto tag) {
                    using T = typename decltype(tag)::type;
                    linear_backward<T>(mode, gy.data<T>(), xv, wv, d, g);
                  });
                }, {x.value(), weight.value()});
}

}  // namespace

Var linear(const Var& x, const Var& weight, const Var& bias) {
  return linear_op("linear", x, weight, bias, false, Var());
}

Var linear_residual(const Var& x, const Var& weight, const Var& bias, const Var& residual) {
  return linear_op("linear_residual", x, weight, bias, true, residual);
}

Var linear_gelu(const Var& x, const Var& weight, const Var& bias) {
  check_linear("linear_gelu", x, weight, bias);
  const LinearDims d = linear_dims(x, weight);
  Tensor y(d.y_shape, x.dtype(), "linear_gelu");
  const Bf16Mode mode = detail::autocast_mode_for(x.dtype());
  const bool training =
      grad_enabled() && (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
  Tensor slope = training ? Tensor(d.y_shape, x.dtype(), "linear_gelu") : Tensor();
  dispatch_floating(x.dtype(), "linear_gelu", [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::linear_gelu_forward<T>(mode, x.value().data<T>(), weight.value().data<T>(),
                                    bias.defined() ? bias.value().data<T>() : nullptr, y.data<T>(),
                                    training ? slope.data<T>() : nullptr, d.rows, d.out, d.in);
  });
  if (!training) return record("linear_gelu", y, {x, weight, bias}, nullptr);
  // Backward: the GELU's (gy * slope, gelu's own kernel), then linear's.
  return record("linear_gelu", y, {x, weight, bias},
                [xv = x.value(), wv = weight.value(), slope, d, mode](const Tensor& gy, Grads& g) {
                  dispatch_floating(gy.dtype(), "linear_gelu", [&](auto tag) {
                    using T = typename decltype(tag)::type;
                    Tensor gz(slope.shape(), slope.dtype());
                    kernels::gelu_backward_slope<T>(slope.data<T>(), gy.data<T>(), gz.data<T>(), slope.numel());
                    linear_backward<T>(mode, gz.data<T>(), xv, wv, d, g);
                  });
                }, {x.value(), weight.value()});
}

Var linear_gelu_linear(const Var& x, const Var& weight1, const Var& bias1, const Var& weight2, const Var& bias2,
                       const Var& residual) {
  const char* op = "linear_gelu_linear";
  check_linear(op, x, weight1, bias1);
  check_second_linear(op, x, weight1, weight2, bias2);
  const LinearDims d1 = linear_dims(x, weight1);
  const int64_t out = weight2.size(0);
  Shape y_shape = x.shape();
  y_shape.back() = out;
  check_residual(op, x, "weight2", weight2, residual, y_shape);
  Tensor h(d1.y_shape, x.dtype(), op), y(y_shape, x.dtype(), op);
  const Bf16Mode mode = detail::autocast_mode_for(x.dtype());
  const std::vector<Var> inputs{x, weight1, bias1, weight2, bias2, residual};
  const bool training = grad_enabled() && std::any_of(inputs.begin(), inputs.end(), [](const Var& v) {
                          return v.defined() && v.requires_grad();
                        });
  Tensor slope = training ? Tensor(d1.y_shape, x.dtype(), op) : Tensor();
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::linear_gelu_forward<T>(mode, x.value().data<T>(), weight1.value().data<T>(),
                                    bias1.defined() ? bias1.value().data<T>() : nullptr, h.data<T>(),
                                    training ? slope.data<T>() : nullptr, d1.rows, d1.out, d1.in);
    const T* b2 = bias2.defined() ? bias2.value().data<T>() : nullptr;
    if (residual.defined())
      kernels::linear_residual_forward<T>(mode, h.data<T>(), weight2.value().data<T>(), b2,
                                          residual.value().data<T>(), y.data<T>(), d1.rows, out, d1.out);
    else
      kernels::gemm_mixed<T>(mode, false, true, d1.rows, out, d1.out, T(1), h.data<T>(), d1.out,
                             weight2.value().data<T>(), d1.out, T(0), y.data<T>(), out, b2);
  });
  if (!training) return record(op, y, inputs, nullptr);
  return record(op, y, inputs,
                [xv = x.value(), w1v = weight1.value(), w2v = weight2.value(), h, slope, d1, out, mode](
                    const Tensor& gy, Grads& g) {
                  if (g.wants(5)) g.add(5, gy);   // the residual's, as add's backward
                  dispatch_floating(gy.dtype(), "linear_gelu_linear", [&](auto tag) {
                    using T = typename decltype(tag)::type;
                    linear_gelu_linear_backward<T>(mode, gy.data<T>(), xv, w1v, w2v, h, slope, d1, out, g);
                  });
                }, {x.value(), weight1.value(), weight2.value()});
}

}  // namespace tg
