#pragma once
// Fused multi-head scaled-dot-product attention: forward and backward written together
// (framework/kernels/attention.h), parallel over batch x heads x query tiles. It never
// materialises attention weights for the caller; it keeps only the [N*H, L, S] probabilities that
// backward needs, and only when a gradient will be asked for.
//
// Semantics (PyTorch's _scaled_dot_product_attention of MultiheadAttention, 1.13 slow path):
//   per head:  out = dropout(softmax(q / sqrt(D) @ k^T + mask)) @ v
// with tapegrad's decision for query rows whose keys are all masked: zero probabilities, a zero
// output row and zero gradients (PyTorch gives NaN).
#include <cstdint>

#include "tapegrad/framework/random.h"
#include "tapegrad/framework/tape.h"

namespace tg {

struct AttentionArgs {
  int64_t num_heads = 1;
  bool batch_first = false;     // layout of q, k, v and the output: [N, T, E] if true, else [T, N, E]
  Var attn_mask = Var();        // optional additive float mask broadcastable to [N, H, L, S]; may require grad
  bool is_causal = false;       // also mask key j > query i (top-left aligned); fully hidden blocks are skipped
  double dropout_p = 0.0;       // dropout on the attention probabilities
  Generator* generator = nullptr;   // required when dropout_p > 0
};

// Heads are the num_heads consecutive column blocks of E: q [L, N, E] (or [N, L, E] with batch_first),
// k and v [S, N, E] (or [N, S, E]); E % num_heads == 0. Returns the merged heads in q's layout,
// before any output projection. Throws std::invalid_argument naming q, k, v, attn_mask and shapes.
Var fused_attention(const Var& q, const Var& k, const Var& v, const AttentionArgs& args);

// Self-attention from a packed projection qkv [L, N, 3E] (or [N, L, 3E]): q, k, v are its column
// blocks [0, E), [E, 2E), [2E, 3E), read in place. Returns [L, N, E] (or [N, L, E]).
Var fused_attention_packed(const Var& qkv, const AttentionArgs& args);

// torch.nn.functional.scaled_dot_product_attention (PyTorch 2.x) for q [N, H, L, D], k and v
// [N, H, S, D]; attn_mask is an additive float mask broadcastable to [N, H, L, S]. Returns [N, H, L, D].
Var scaled_dot_product_attention(const Var& q, const Var& k, const Var& v, const Var& attn_mask = Var(),
                                 double dropout_p = 0.0, bool is_causal = false, Generator* generator = nullptr);

}  // namespace tg
