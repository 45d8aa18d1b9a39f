#pragma once
// A custom op with its own backward, written only with tapegrad's public API (docs/custom_ops.md):
// RMS normalisation over the last dim with a learned scale, as torch.nn.RMSNorm(D, eps) /
// torch.nn.functional.rms_norm(x, [D], weight, eps):
//
//   y = x / sqrt(mean(x^2 over the last dim) + eps) * weight
//
// Shapes: x [*, D] (at least 1-d), weight [D] -> y [*, D]; float32 or float64, one dtype.
#include "tapegrad/framework/tape.h"

namespace tg::examples {

// Fused: one forward loop over the rows and a hand-written backward recorded with tg::record.
// Throws std::invalid_argument, e.g.
//   "[rms_norm] weight must have shape [D] with D = x.size(-1); got x=[2, 3], weight=[4]"
//   "[rms_norm] dtypes differ; got x=float32[2, 3], weight=float64[3]"
//   "[rms_norm] x must have at least 1 dim; got x=[]"
//   "[rms_norm] eps must be finite and >= 0; got eps=-1"
//   "[rms_norm] undefined x"
Var rms_norm(const Var& x, const Var& weight, double eps = 1e-6);

// The same function composed of tapegrad ops, differentiated by the tape: the reference that the
// fused op is tested against (values and gradients).
Var rms_norm_composite(const Var& x, const Var& weight, double eps = 1e-6);

}  // namespace tg::examples
