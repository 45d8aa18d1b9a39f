#pragma once
// Element-wise ops with NumPy/PyTorch broadcasting. All take and return Vars; float32 or float64
// operands of one dtype (mixing throws). Shapes: a [*A], b [*B] -> [broadcast(A, B)].
#include "tapegrad/framework/tape.h"

namespace tg {

// ---- binary, broadcasting (torch.add/sub/mul/div). Throw "[add] shapes cannot be broadcast; ..." ----
Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);
Var pow(const Var& a, const Var& b);      // a^b, both differentiable (torch.pow); a > 0 where b needs grad

// ---- with a scalar (the scalar carries no gradient) ----
Var add(const Var& a, double s);
Var mul(const Var& a, double s);
Var div(const Var& a, double s);
Var rsub(const Var& a, double s);         // s - a
Var rdiv(const Var& a, double s);         // s / a
Var pow(const Var& a, double exponent);   // torch.pow(a, exponent)

// ---- unary ----
Var neg(const Var& a);
Var exp(const Var& a);
Var log(const Var& a);
Var sqrt(const Var& a);
Var tanh(const Var& a);
Var sigmoid(const Var& a);
Var relu(const Var& a);                   // gradient 0 at a == 0, as PyTorch
enum class GeluApproximate { none, tanh };
Var gelu(const Var& a, GeluApproximate approximate = GeluApproximate::none);   // F.gelu

// ---- selection ----
// torch.masked_fill: out = mask ? value : a; mask is a Bool tensor broadcastable to a's shape.
Var masked_fill(const Var& a, const Tensor& mask, double value);
// torch.where: out = cond ? a : b, all three broadcast together; cond is a Bool tensor.
Var where(const Tensor& cond, const Var& a, const Var& b);

// ---- operators ----
inline Var operator+(const Var& a, const Var& b) { return add(a, b); }
inline Var operator-(const Var& a, const Var& b) { return sub(a, b); }
inline Var operator*(const Var& a, const Var& b) { return mul(a, b); }
inline Var operator/(const Var& a, const Var& b) { return div(a, b); }
inline Var operator-(const Var& a) { return neg(a); }
inline Var operator+(const Var& a, double s) { return add(a, s); }
inline Var operator+(double s, const Var& a) { return add(a, s); }
inline Var operator-(const Var& a, double s) { return add(a, -s); }
inline Var operator-(double s, const Var& a) { return rsub(a, s); }
inline Var operator*(const Var& a, double s) { return mul(a, s); }
inline Var operator*(double s, const Var& a) { return mul(a, s); }
inline Var operator/(const Var& a, double s) { return div(a, s); }
inline Var operator/(double s, const Var& a) { return rdiv(a, s); }

}  // namespace tg
