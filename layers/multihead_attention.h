#pragma once
// MultiheadAttention (torch.nn.MultiheadAttention, PyTorch 1.13 semantics; ../shared/spec/mha.md).
//
// Parameters, names, shapes, registration order and initialisation are PyTorch's:
//   packed (kdim = vdim = qdim = embed_dim): in_proj_weight (3E, E), in_proj_bias (3E),
//     bias_k (1, 1, E), bias_v (1, 1, E), out_proj.weight (E, E), out_proj.bias (E)
//   separate: q_proj_weight (E, qdim), k_proj_weight (E, kdim), v_proj_weight (E, vdim), then as above.
// in_proj_bias and out_proj.bias exist only with bias = true; bias_k/bias_v only with add_bias_kv.
//
// Where tapegrad does better than PyTorch 1.13 (each documented in README and tested):
//  * Masks: a bool mask (true = blocked) becomes -inf/0 and a float mask is added; both masks are
//    merged by addition (PyTorch 2.x semantics). Besides (L, S) and (N*num_heads, L, S) (row
//    n*num_heads + h), attn_mask may be (N, L, S), (1, L, S) or 4-D (N or 1, num_heads or 1, L, S),
//    broadcast over heads.
//  * is_causal = true with no attn_mask builds the causal mask (key j > query i blocked); with an
//    attn_mask, the mask is used as given.
//  * A query row whose keys are all masked gives zero attention (so its output row equals
//    out_proj.bias), zero weights and finite (zero) gradients: never NaN.
//  * qdim: the query's feature size may differ from embed_dim (separate q_proj_weight (E, qdim)).
//  * Every bad input throws std::invalid_argument naming the argument and the caller's own shapes.
//  * need_weights = false runs the fused attention kernel and never materialises the weights.
// The appended bias_k / zero-attention key columns are never masked (as in PyTorch).
#include <cstdint>
#include <memory>
#include <optional>

#include "tapegrad/framework/random.h"
#include "tapegrad/layers/linear.h"
#include "tapegrad/layers/module.h"

namespace tg {

struct MultiheadAttentionOptions {
  int64_t embed_dim;
  int64_t num_heads;
  double dropout = 0.0;                       // on the attention weights only, training mode only
  bool bias = true;
  bool add_bias_kv = false;
  bool add_zero_attn = false;
  std::optional<int64_t> kdim = std::nullopt;   // default embed_dim
  std::optional<int64_t> vdim = std::nullopt;   // default embed_dim
  bool batch_first = false;
  std::optional<int64_t> qdim = std::nullopt;   // tapegrad extension; default embed_dim
  // Throws std::invalid_argument naming the field: embed_dim, num_heads > 0, embed_dim % num_heads,
  // dropout in [0, 1), kdim/vdim/qdim > 0.
  void validate() const;
};

struct MultiheadAttentionOutput {
  Var attn_output;    // (L, N, E), (N, L, E) with batch_first, or (L, E) unbatched
  Var attn_weights;   // undefined unless need_weights: (N, L, S') averaged, (N, H, L, S') per head;
                      // batch-major whatever batch_first says; S' counts appended columns
};

class MultiheadAttention : public Module {
 public:
  // Draws the initial parameters from gen in PyTorch's order; dropout masks come from gen as well.
  explicit MultiheadAttention(MultiheadAttentionOptions options, Generator& gen = default_generator(),
                              DType dtype = DType::Float32);

  // query (L, N, qdim) / key (S, N, kdim) / value (S, N, vdim), or batch-first, or unbatched 2-D.
  // key_padding_mask: (N, S) or (S) unbatched, bool (true = padding) or float (added).
  // attn_mask: bool or float, shapes as described above. Float masks may require grad.
  MultiheadAttentionOutput forward(const Var& query, const Var& key, const Var& value,
                                   const Var& key_padding_mask = Var(), bool need_weights = true,
                                   const Var& attn_mask = Var(), bool average_attn_weights = true,
                                   bool is_causal = false);

  const MultiheadAttentionOptions& options() const { return options_; }
  bool packed() const { return packed_; }   // PyTorch's _qkv_same_embed_dim

  Var in_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight, in_proj_bias, bias_k, bias_v;
  std::shared_ptr<Linear> out_proj;

 private:
  MultiheadAttentionOptions options_;
  bool packed_;
  Generator* gen_;
};

}  // namespace tg
