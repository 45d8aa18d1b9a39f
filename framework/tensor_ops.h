#pragma once
// Tensor-level arithmetic without autograd: what a backward closure of a custom op needs (see
// docs/custom_ops.md). Every function takes plain Tensors, records nothing, and returns a new tensor
// (sum_to and expand return their argument itself when the shapes already agree). Semantics, dtype
// rules, determinism and error messages are those of the Var ops of the same name (framework/ops/*.h),
// which these functions run on detached inputs; a Var op and its Tensor twin give the same bits.
//
//   // inside record(..., [xv = x.value(), wv = w.value()](const Tensor& gy, Grads& g) { ... }):
//   if (g.wants(0)) g.add(0, sum_to(gy * wv, xv.shape()));   // undo broadcasting of x
//   if (g.wants(1)) g.add(1, sum_to(gy * xv, wv.shape()));   // [*, D] -> [D] for a weight [D]
//
// Operands are float32 or float64 tensors of one dtype (no promotion). Errors are
// std::invalid_argument "[op] ...", e.g.
//   "[mul] shapes cannot be broadcast; got a=[2, 3], b=[4]"
//   "[mul] dtypes differ; got a=float32[2], b=float64[2]"
//   "[exp] expected a float tensor; got int64[2]"
//   "[sum_to] shape=[3] does not broadcast to t=[2, 4]"
//   "[add] undefined tensor a"
// For an element-wise loop of your own (a fused derivative), dispatch on the dtype with
// tg::dispatch_floating (framework/dtype.h) and write through Tensor::data<T>():
//   Tensor out(x.shape(), x.dtype());
//   dispatch_floating(x.dtype(), "my_op", [&](auto tag) {
//     using T = typename decltype(tag)::type;
//     const T* px = x.data<T>(); T* po = out.data<T>();
//     for (int64_t i = 0; i < x.numel(); ++i) po[i] = px[i] * px[i];
//   });
#include <cstdint>
#include <vector>

#include "tapegrad/framework/tensor.h"

namespace tg {

// ---- binary with NumPy/PyTorch broadcasting: a [*A], b [*B] -> [broadcast(A, B)] ----
Tensor add(const Tensor& a, const Tensor& b);   // torch.add
Tensor sub(const Tensor& a, const Tensor& b);   // torch.sub
Tensor mul(const Tensor& a, const Tensor& b);   // torch.mul
Tensor div(const Tensor& a, const Tensor& b);   // torch.div (true division)

// ---- with a scalar: a [*A] -> [*A]; the scalar is converted to a's dtype ----
Tensor add(const Tensor& a, double s);    // a + s
Tensor mul(const Tensor& a, double s);    // a * s
Tensor div(const Tensor& a, double s);    // a / s
Tensor rsub(const Tensor& a, double s);   // s - a
Tensor rdiv(const Tensor& a, double s);   // s / a

// ---- unary, element-wise: a [*A] -> [*A] ----
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);     // 1 / sqrt(a) (torch.rsqrt)
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);   // 1 / (1 + exp(-a))

// ---- reductions (torch.sum / torch.mean): dims as in framework/ops/reduce.h (negative counts from
// the end, an empty list reduces every dim); x [*S] -> S without the dims, or with them set to 1 when
// keepdim. Sums accumulate in double in a fixed order. ----
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);

// ---- broadcasting and its adjoint ----
// Sums t down to `shape`, the shape of an operand that was broadcast to t's shape: the leading dims
// t has in excess are summed away and so are the dims where `shape` has size 1 (PyTorch's
// sum_to_size). Use it on every gradient of a broadcasting operand. t [*T] -> shape, where shape
// must broadcast to T. Deterministic: each output element adds its terms in a fixed order.
// Throws "[sum_to] shape=[3] does not broadcast to t=[2, 4]".
Tensor sum_to(const Tensor& t, const Shape& shape);
// Copies x broadcast to `shape` (torch.expand(...).contiguous(); -1 keeps a size); the adjoint of
// sum_to. Any dtype. Throws the messages of expand in framework/ops/shape.h, e.g.
// "[expand] the expanded size 4 must match the existing size 3 at non-singleton dim 1; got x=[2, 3], shape=[2, 4]".
Tensor expand(const Tensor& x, const Shape& shape);

// ---- products and layout ----
// torch.matmul(a, b), with the shapes and broadcasting of framework/ops/matmul.h:
//   [M, K] @ [K, N] -> [M, N];  [*A, M, K] @ [*B, K, N] -> [broadcast(A, B), M, N];  1-D operands as there.
// Throws "[matmul] inner dims differ; got a=[4, 3], b=[5, 2]".
Tensor matmul(const Tensor& a, const Tensor& b);
// torch.transpose(x, dim0, dim1) as a contiguous copy; the usual use is transpose(b, -2, -1) in the
// gradient of a product: for y = a @ b, da = gy @ b^T and db = a^T @ gy. Any dtype.
// Throws "[transpose] dim1 5 out of range for a 3-d tensor; got x=[2, 3, 4]".
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);

// ---- operators (broadcasting, as the functions above) ----
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator+(double s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
inline Tensor operator-(double s, const Tensor& a) { return rsub(a, s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return div(a, s); }
inline Tensor operator/(double s, const Tensor& a) { return rdiv(a, s); }

}  // namespace tg
