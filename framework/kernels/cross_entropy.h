#pragma once
// Fused log-softmax + negative log-likelihood kernels over the class dim of logits viewed as
// [outer, C, inner] (PyTorch's class dim 1): lane l = o * inner + i holds the C class scores
// x[o, :, i] and its target class target[l]. Lanes are independent (same bits for any thread count).
#include <cstdint>

namespace tg::kernels {

// Per-lane loss with label smoothing s, in double:
//   lse = log(sum_c exp(x_c)),  loss[l] = (1 - s) * (lse - x_t) + s / C * sum_c (lse - x_c),
// and lse[l] saved for the backward. Lanes with target == ignore_index get loss 0 (lse 0). Targets must
// already be validated (in [0, C) or ignore_index).
template <class T>
void cross_entropy_forward(const T* logits, const int64_t* target, int64_t outer, int64_t C, int64_t inner,
                           int64_t ignore_index, double label_smoothing, double* loss, T* lse);

// gx = w_l * (softmax(x) - (1 - s) * onehot(t) - s / C) per lane, w_l = scale * (lane_scale ? lane_scale[l] : 1);
// ignored lanes get 0. gx has the logits' layout and is overwritten.
template <class T>
void cross_entropy_backward(const T* logits, const int64_t* target, const T* lse, const T* lane_scale, double scale,
                            int64_t outer, int64_t C, int64_t inner, int64_t ignore_index, double label_smoothing,
                            T* gx);

// Negative log-likelihood of log-probabilities in the same layout: loss[l] = -log_probs[o, t, i]
// (0 for ignored lanes).
template <class T>
void nll_forward(const T* log_probs, const int64_t* target, int64_t outer, int64_t C, int64_t inner,
                 int64_t ignore_index, double* loss);

// gx = 0 except gx[o, t, i] = -w_l (w_l as in cross_entropy_backward); gx is overwritten.
template <class T>
void nll_backward(const int64_t* target, const T* lane_scale, double scale, int64_t outer, int64_t C, int64_t inner,
                  int64_t ignore_index, T* gx);

}  // namespace tg::kernels
