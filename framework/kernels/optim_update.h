#pragma once
// Element-wise optimizer updates and gradient-clipping kernels for optim/. Each update is one pass
// over the elements of a parameter, doing per element the operations, in the order, of PyTorch 1.13's
// single-tensor (foreach=False) implementation; Python scalars are computed in double and cast to the
// tensor's element type, as ATen does. The AVX2 / AVX-512 clones (simd.h) let GCC fuse a multiply and
// its add into one FMA, as ATen's vectorised kernels also do in places, so a value may round once where
// PyTorch rounds twice: trajectories match PyTorch's within a tolerance, not bit for bit
// (tests/optim/trajectories_test.cpp). Element-wise, so bitwise identical for any thread count. All
// tensors of one call share shape and float dtype (the caller checks).
#include <cstdint>
#include <vector>

#include "tapegrad/framework/tensor.h"

namespace tg::kernels {

// One step of torch.optim.sgd._single_tensor_sgd on one parameter:
//   d = maximize ? -grad : grad;  if weight_decay != 0: d = d + weight_decay * param
//   if momentum != 0: buf = first ? d : buf * momentum + (1 - dampening) * d
//                     d = nesterov ? d + momentum * buf : buf
//   param = param + (-lr) * d
struct SGDStep {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, maximize = false;
  bool first = false;   // the momentum buffer does not hold a value yet: it is set to d
};
// momentum_buffer: param's shape and dtype when momentum != 0 (allocated by the caller; its contents
// are ignored when first), else unused (may be undefined).
void sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer, const SGDStep& h);

// One step of torch.optim.adam._single_tensor_adam (decoupled_weight_decay false) or
// torch.optim.adamw._single_tensor_adamw (true), with `step` the already incremented step count:
//   g = maximize ? -grad : grad
//   AdamW: param = param * (1 - lr * weight_decay)       Adam: if weight_decay != 0: g = g + weight_decay * param
//   exp_avg = exp_avg * beta1 + (1 - beta1) * g;  exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
//   bias_correction1 = 1 - beta1^step;  step_size = lr / bias_correction1
//   bias_correction2_sqrt = sqrt(1 - beta2^step)         (these four in double)
//   v = amsgrad ? (max_exp_avg_sq = maximum(max_exp_avg_sq, exp_avg_sq)) : exp_avg_sq
//   param = param + (-step_size) * exp_avg / (sqrt(v) / bias_correction2_sqrt + eps)
struct AdamStep {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  bool amsgrad = false, maximize = false, decoupled_weight_decay = false;
  int64_t step = 1;
};
// max_exp_avg_sq is used only when amsgrad (then param's shape and dtype).
void adam_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, Tensor& max_exp_avg_sq,
                 const AdamStep& h);

// adam_update on each item (its own step and hyper-parameters), all in one parallel region over fixed pieces
// of every parameter: the same bits as one adam_update per item (element-wise), with one region instead of
// one per parameter. Items may differ in dtype.
struct AdamTensors {
  Tensor param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq;
  AdamStep h;
};
void adam_update_many(std::vector<AdamTensors>& items);

// torch.norm(t, p) of a float tensor, computed in double with a fixed summation order:
//   p = inf: max |x|;  p = -inf: min |x|;  p = 0: number of non-zero elements;
//   p = 1: sum |x|;  p = 2: sqrt(sum x^2);  otherwise (sum |x|^p)^(1/p).
// A NaN element makes the result NaN (for p = 0 it counts as non-zero). An empty tensor gives 0
// (inf for p = -inf).
double vector_norm(const Tensor& t, double p);

// vector_norm(t, p) of each tensor, the same bits; for p = 1 and 2 the chunk sums of all tensors in one
// parallel region (clip_grad_norm_ over a model's gradients).
std::vector<double> vector_norms(const std::vector<Tensor>& ts, double p);

// dst *= alpha (kernels::scale_into, the same bits) on each tensor, in one parallel region.
void scale_many(std::vector<Tensor>& ts, double alpha);

// dst = min(max(dst, lo), hi) element-wise (torch.clamp_(min=lo, max=hi)); NaN stays NaN.
void clamp_into(Tensor& dst, double lo, double hi);

}  // namespace tg::kernels
