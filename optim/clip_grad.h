#pragma once
// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_ (PyTorch 1.13). Both act
// in place on the .grad() of the given parameters and ignore parameters whose grad is undefined.
#include <vector>

#include "tapegrad/framework/tape.h"
#include "tapegrad/optim/optimizer.h"

namespace tg::optim {

// Total norm of all grads viewed as one vector: the norm_type-norm of the per-parameter norms
// (norm_type = inf: the largest |g|; -inf, 0 and any other p as torch.norm). Computed in double with
// a fixed summation order (bitwise identical for any thread count). If
// clip_coef = max_norm / (total_norm + 1e-6) < 1 (or NaN), every grad is multiplied by clip_coef.
// Returns total_norm (0 when no parameter has a grad).
// Throws std::invalid_argument for an undefined Var, max_norm < 0 or NaN (PyTorch would flip or
// poison the grads) and NaN norm_type: "[clip_grad_norm_] max_norm must be >= 0; got max_norm=-1".
// With error_if_nonfinite, a NaN or infinite total norm throws std::runtime_error
// "[clip_grad_norm_] the total norm of order 2 for gradients from `parameters` is non-finite, ..."
// before any grad is changed.
double clip_grad_norm_(const std::vector<Var>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);
double clip_grad_norm_(const NamedParams& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

// Clamps every grad element into [-clip_value, clip_value] (NaN stays NaN). Throws
// std::invalid_argument for an undefined Var or clip_value < 0 or NaN:
// "[clip_grad_value_] clip_value must be >= 0; got clip_value=-1".
void clip_grad_value_(const std::vector<Var>& params, double clip_value);
void clip_grad_value_(const NamedParams& params, double clip_value);

}  // namespace tg::optim
