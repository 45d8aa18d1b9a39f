#pragma once
// Fused neural-network functions (torch.nn.functional): softmax, log_softmax, layer_norm, dropout.
// Each runs one fused kernel per row (parallel over rows, same bits for any thread count) with a
// hand-written backward. float32 or float64 inputs of one dtype; int64/bool inputs throw.
#include <cstdint>

#include "tapegrad/framework/random.h"
#include "tapegrad/framework/tape.h"

namespace tg {

// torch.softmax(x, dim): y = exp(x - max) / sum(exp(x - max)) along dim; x of any shape, same shape out
// (a 0-d x is one element); dim may be negative.
// Differs from PyTorch on purpose: a slice along dim that is entirely -inf (a fully masked attention row)
// gives a slice of zeros and gradient 0 there; PyTorch gives NaN. A NaN in a slice makes it NaN.
// Throws "[softmax] dim 2 out of range for a 2-d tensor; got x=[3, 4]".
Var softmax(const Var& x, int64_t dim);

// torch.log_softmax(x, dim): y = (x - max) - log(sum(exp(x - max))) along dim.
// A slice that is entirely -inf gives -inf values and gradient 0 there (PyTorch: NaN).
// Throws "[log_softmax] dim 2 out of range for a 2-d tensor; got x=[3, 4]".
Var log_softmax(const Var& x, int64_t dim);

// torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps): normalises over the trailing
// dims given by normalized_shape, y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased
// variance (divisor n). x [*, *normalized_shape]; weight and bias [*normalized_shape] or undefined (Var()).
// The fused forward saves mean and 1/sqrt(var + eps) per row; the backward is fused for x, weight and bias;
// weight/bias gradients are reduced over rows in a fixed chunk order.
// Throws:
//   "[layer_norm] normalized_shape must match the trailing dims of x; got x=[2, 3], normalized_shape=[4]"
//   "[layer_norm] normalized_shape must have at least 1 dim; got x=[2, 3], normalized_shape=[]"
//   "[layer_norm] weight must have shape normalized_shape; got normalized_shape=[3], weight=[4]" (same for bias)
Var layer_norm(const Var& x, const Shape& normalized_shape, const Var& weight = Var(), const Var& bias = Var(),
               double eps = 1e-5);

// torch.nn.functional.dropout(x, p, training): identity (returns x) when !training or p == 0; x * 0 when
// p == 1; otherwise each element is kept with probability 1 - p and scaled by 1 / (1 - p). The keep mask
// of element i comes from Philox block (first + i) with {seed, first} = gen.reserve_blocks(x.numel()), so
// it is identical for any thread count and replayable: a Generator re-seeded with the same seed gives the
// same mask.
// The backward multiplies by the same mask * scale. gen is advanced only when a mask is drawn.
// Throws "[dropout] p must be in [0, 1]; got p=1.5".
Var dropout(const Var& x, double p, bool training, Generator& gen);

}  // namespace tg
