#pragma once
// Matrix products: matmul (torch.matmul), linear (torch.nn.functional.linear) and linear_gelu. float32 or float64
// operands of one dtype. All products run through kernels::gemm / gemm_batched / gemm_serial with
// transpose flags (no transposed copies); results are the same bits for any thread count.
#include "tapegrad/framework/tape.h"

namespace tg {

// torch.matmul(a, b):
//   [K]        @ [K]          -> []                 (dot product)
//   [M, K]     @ [K, N]       -> [M, N]
//   [K]        @ [*B, K, N]   -> [*B, N]            (a is treated as [1, K]; that dim is removed)
//   [*A, M, K] @ [K]          -> [*A, M]            (b is treated as [K, 1]; that dim is removed)
//   [*A, M, K] @ [*B, K, N]   -> [broadcast(A, B), M, N]   e.g. [2, 1, 3, 4] @ [5, 4, 6] -> [2, 5, 3, 6]
// Gradients of broadcast batch dims are summed in a fixed order (deterministic).
// Throws std::invalid_argument:
//   "[matmul] inner dims differ; got a=[4, 3], b=[5, 2]"
//   "[matmul] batch dims cannot be broadcast; got a=[2, 3, 4], b=[5, 4, 6]"
//   "[matmul] both operands must have at least 1 dim; got a=[], b=[3]"
//   "[matmul] dtypes differ; ..." and "[matmul] expected float tensors; ..."
Var matmul(const Var& a, const Var& b);

// torch.nn.functional.linear(x, weight, bias): y = x @ weight^T + bias.
//   x [*, in_features], weight [out_features, in_features], bias [out_features] or undefined (Var())
//   -> [*, out_features]
// One GEMM over the flattened rows of x; backward: dx = gy @ weight, dweight = gy^T @ x (one GEMM each),
// dbias = column sums of gy (deterministic).
// Throws std::invalid_argument naming x, weight and bias shapes, e.g.
//   "[linear] in_features differ; got x=[4, 3], weight=[5, 2]"
//   "[linear] bias must have shape [out_features]; got x=[4, 2], weight=[5, 2], bias=[3]"
//   "[linear] weight must be 2-D; ..." and "[linear] x must have at least 1 dim; ..."
Var linear(const Var& x, const Var& weight, const Var& bias = Var());

// residual + linear(x, weight, bias) as one op (residual: the output's shape, x's dtype, defined): a layer's
// output joining its residual stream, x + out_proj(attention), with add's bits, value and gradients. Through
// tapegrad's own GEMMs (float32, native bf16) each tile of the output takes its residual as it is finished,
// instead of a pass over the stream. Throws as linear, with "[linear_residual]" in front, and
//   "[linear_residual] residual must have the output's shape [4, 5]; got x=[4, 2], weight=[5, 2], residual=[4, 2]"
Var linear_residual(const Var& x, const Var& weight, const Var& bias, const Var& residual);

// gelu(linear(x, weight, bias)) (torch.nn.functional.gelu of F.linear, approximate="none") as one op: the
// same values and gradients, bit for bit, as the two ops; in float32 through tapegrad's own GEMM the GELU
// runs on each finished tile of the product while it is in cache, instead of in a second pass over the
// output. The Transformer layers' feed-forward blocks use it with activation gelu. Throws as linear, with
// "[linear_gelu]" in front of the message.
Var linear_gelu(const Var& x, const Var& weight, const Var& bias = Var());

// linear(linear_gelu(x, weight1, bias1), weight2, bias2) as one op: a Transformer layer's feed-forward block
// with activation gelu and no dropout between its linears. x [*, in], weight1 [hidden, in], bias1 [hidden],
// weight2 [out, hidden], bias2 [out] (biases may be undefined) -> [*, out]. The same values and gradients, bit
// for bit, as the two ops; in the backward, float32 through tapegrad's own GEMMs, the GELU's gradient is
// applied to each tile of the product gy @ weight2 as it is finished, instead of in a pass of its own. The
// Transformer layers use it where their middle dropout is off (p = 0 or eval). Throws as linear, with
// "[linear_gelu_linear]" in front, naming weight1 and bias1 as weight and bias, e.g.
//   "[linear_gelu_linear] weight2 must be 2-D [out_features, hidden]; got weight1=[16, 8], weight2=[16]"
//   "[linear_gelu_linear] hidden features differ; got weight1=[16, 8], weight2=[4, 12]"
//   "[linear_gelu_linear] bias2 must have shape [out_features]; got weight2=[4, 16], bias2=[16]"
// With `residual` (the output's shape and x's dtype), residual + linear(...) as one op: a pre-norm layer's
// x + feed_forward(norm(x)), the same bits as add; its tiles take the residual as they are finished (float32
// and bf16 through tapegrad's own GEMMs), instead of a pass over the output. Else
//   "[linear_gelu_linear] residual must have the output's shape [2, 4]; got x=[2, 8], weight2=[4, 16],
//    residual=[2, 8]"
Var linear_gelu_linear(const Var& x, const Var& weight1, const Var& bias1, const Var& weight2,
                       const Var& bias2 = Var(), const Var& residual = Var());

}  // namespace tg
