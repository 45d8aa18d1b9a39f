#pragma once
// Losses over class scores (torch.nn.functional.cross_entropy / nll_loss) with class-index targets.
// Inputs are float32 or float64 with the class dim at dim 1 (PyTorch's layout):
//   input [N, C]          targets [N]           (int64 class indices)
//   input [N, C, d1, ...] targets [N, d1, ...]
//   input [C]             targets []            (0-d)
// Reduction::none returns one loss per target (targets' shape), sum their sum, mean their mean over the
// targets that are not ignore_index (0-d results). Sums run in a fixed order (same bits for any thread count).
#include <cstdint>

#include "tapegrad/framework/tape.h"

namespace tg {

enum class Reduction { none, mean, sum };

// torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100, reduction='mean',
// label_smoothing=0.0): fused log-softmax + negative log-likelihood, one kernel per row (the log-softmax
// is never materialised); backward (softmax - (1 - s) * onehot - s / C) scaled per row. With label
// smoothing s each loss is (1 - s) * nll + s / C * sum_c(-log_softmax_c), as PyTorch.
// Targets equal to ignore_index contribute 0 loss and 0 gradient. Differs from PyTorch on purpose: when
// every target is ignored (or there are none), the mean is 0 with zero gradient (PyTorch gives NaN).
// Throws std::invalid_argument:
//   "[cross_entropy] target 12 out of range for 10 classes; got logits=[4, 10], targets=[4]"
//   "[cross_entropy] targets must have shape [4] (logits without the class dim 1); got logits=[4, 10], targets=[3]"
//   "[cross_entropy] targets must be int64 class indices; got targets=float32[4]"
//   "[cross_entropy] label_smoothing must be in [0, 1]; got label_smoothing=1.5"
Var cross_entropy(const Var& logits, const Tensor& targets, int64_t ignore_index = -100,
                  Reduction reduction = Reduction::mean, double label_smoothing = 0.0);

// torch.nn.functional.nll_loss(log_probs, targets, ignore_index=-100, reduction='mean'): loss = -log_probs
// at the target class; same layouts, ignore_index and mean rules (all ignored: 0, PyTorch: NaN) as
// cross_entropy. Throws the same messages with "[nll_loss]".
Var nll_loss(const Var& log_probs, const Tensor& targets, int64_t ignore_index = -100,
             Reduction reduction = Reduction::mean);

}  // namespace tg
