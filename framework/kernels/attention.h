#pragma once
// Fused scaled-dot-product attention over N batches x H heads, forward and backward.
//
// Operands are addressed through strides, so the kernel reads heads straight out of the projection
// outputs ([N, L, E], [L, N, E], a packed [N, L, 3E], or [N, H, L, D]) with no head split/merge
// copies: row i of head h of batch n starts at  base + offset + n*batch + h*head + i*row.
// Work is cut into (batch, head, 32-row tile) tasks; with `causal`, the columns a tile can never
// see are skipped entirely. Softmax rows whose every key is masked give zero probabilities (and so
// zero output and zero gradient) instead of NaN. Dropout keeps element (b, i, j) of the
// [N*H, L, S] probabilities when Philox block (first + (b*L + i)*S + j) of `seed` draws u >= p,
// the same stream layout as ops::dropout on a [N, H, L, S] tensor, so it is replayed in backward
// without storing a mask and is identical for any thread count.
#include <cstdint>

#include "tapegrad/framework/autocast.h"

namespace tg::kernels {

struct HeadLayout {
  int64_t offset = 0, batch = 0, head = 0, row = 0;   // element strides
};

struct AttentionDims {
  int64_t N = 0, H = 0, L = 0, S = 0, D = 0;
};

// Additive mask addressed as [N, H, L, S] with per-dim strides (0 on broadcast dims).
template <class T> struct MaskView {
  const T* data = nullptr;
  int64_t batch = 0, head = 0, row = 0, col = 0;
};

struct AttentionConfig {
  bool causal = false;      // key j is masked for query i when j > i (top-left aligned, as torch)
  double dropout_p = 0.0;
  uint64_t seed = 0, first = 0;   // Philox stream for dropout
  // float32, or native/emulated: the q k^T and P v products (and their four backward products) take
  // bf16-rounded operands with float32 accumulation (kernels/bf16.h); softmax stays float32.
  Bf16Mode products = Bf16Mode::float32;
};

// Row stride of the probabilities block attention_forward writes and attention_backward reads:
// [N*H, L, S] with rows probs_row(d) >= S elements apart (the elements beyond S are never touched).
int64_t probs_row(const AttentionDims& d);

// out <- softmax(q k^T / sqrt(D) + mask) (dropout) v. When probs != nullptr it receives the
// pre-dropout probabilities as [N*H, L, S], rows probs_row(d) apart (what backward needs); under
// `causal`, the columns of a query tile beyond its last row, but for 16 zeros, are not written
// (backward never reads them).
template <class T>
void attention_forward(const AttentionDims& d, const T* q, HeadLayout ql, const T* k, HeadLayout kl, const T* v,
                       HeadLayout vl, MaskView<T> mask, const AttentionConfig& cfg, T* out, HeadLayout ol,
                       T* probs);

// Gradients from the saved probabilities (rows probs_row(d) apart). dq/dk/dv are fully written (no
// accumulation into old contents). When dscores != nullptr it receives d(loss)/d(scores) as [N*H, L, S]
// (the additive mask's gradient before any broadcast reduction).
template <class T>
void attention_backward(const AttentionDims& d, const T* q, HeadLayout ql, const T* k, HeadLayout kl, const T* v,
                        HeadLayout vl, const AttentionConfig& cfg, const T* probs, const T* dout, HeadLayout dol,
                        T* dq, HeadLayout dql, T* dk, HeadLayout dkl, T* dv, HeadLayout dvl, T* dscores);

}  // namespace tg::kernels
