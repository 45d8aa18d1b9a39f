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
//  * Optional arguments by name: forward(q, k, v, {.attn_mask = m, .need_weights = false}), beside
//    PyTorch's positional order.
// The appended bias_k / zero-attention key columns are never masked (as in PyTorch).
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>

#include "tapegrad/framework/ops/attention.h"
#include "tapegrad/framework/random.h"
#include "tapegrad/layers/attention_cache.h"
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

// The optional arguments of MultiheadAttention::forward, named and defaulted as PyTorch's:
//   mha.forward(q, k, v, {.attn_mask = m, .need_weights = false});
// C++ designated initialisers must follow declaration order: the masks first, then the flags.
struct MultiheadAttentionForwardOptions {
  Var attn_mask = Var();          // bool or float; shapes as described above. Float masks may require grad
  Var key_padding_mask = Var();   // (N, S) or (S) unbatched, bool (true = padding) or float (added)
  bool need_weights = true;       // false: fused kernel, attn_weights undefined
  bool average_attn_weights = true;
  bool is_causal = false;
};

// The optional arguments of one cached step (MultiheadAttention::forward_step). S_total is the
// number of key positions attended by this step (cached + new for a self-attention cache).
struct MultiheadAttentionStepOptions {
  Var attn_mask = Var();          // (L_step, S_total), bool or float; added to the causal rule of a self cache
  Var key_padding_mask = Var();   // (N, S_total) or (S_total) unbatched, bool or float
};

class MultiheadAttention : public Module {
 public:
  // Draws the initial parameters from gen in PyTorch's order. The module keeps a copy of the handle
  // (sharing the caller's stream, see the rule in framework/random.h) and draws its dropout masks from it.
  explicit MultiheadAttention(MultiheadAttentionOptions options, Generator gen = default_generator(),
                              DType dtype = DType::Float32);

  // query (L, N, qdim) / key (S, N, kdim) / value (S, N, vdim), or batch-first, or unbatched 2-D.
  // Throws std::invalid_argument "[MultiheadAttention <path>] ..." naming the argument and every shape.
  MultiheadAttentionOutput forward(const Var& query, const Var& key, const Var& value,
                                   const MultiheadAttentionForwardOptions& options);

  // PyTorch's positional order: forward(query, key, value, key_padding_mask, need_weights, attn_mask,
  // average_attn_weights, is_causal); the same call as the options form. (A template only so that
  // `forward(q, k, v, {})` picks the options overload instead of being ambiguous.)
  template <class Mask = Var>
    requires std::same_as<Mask, Var>
  MultiheadAttentionOutput forward(const Var& query, const Var& key, const Var& value,
                                   const Mask& key_padding_mask = Var(), bool need_weights = true,
                                   const Var& attn_mask = Var(), bool average_attn_weights = true,
                                   bool is_causal = false) {
    return forward(query, key, value,
                   MultiheadAttentionForwardOptions{.attn_mask = attn_mask, .key_padding_mask = key_padding_mask,
                                                    .need_weights = need_weights,
                                                    .average_attn_weights = average_attn_weights,
                                                    .is_causal = is_causal});
  }

  // residual + forward(query, key, value, options).attn_output, with the output projection and the residual add as
  // one op (Linear::forward_residual: add's bits; the residual joins each tile of the product), as a Transformer
  // layer's x + self_attn(norm(x)). No weights: options.need_weights is ignored. residual has the output's shape
  // and dtype, else std::invalid_argument "[MultiheadAttention <path>] residual must have the output's shape and
  // dtype float32[5, 2, 8]; got query=float32[5, 2, 8], residual=float32[5, 8]".
  Var forward_residual(const Var& residual, const Var& query, const Var& key, const Var& value,
                       const MultiheadAttentionForwardOptions& options = {});

  // Incremental decoding with cache (layers/attention_cache.h): query (L_step, N, qdim), batch-first
  // or unbatched as in forward; key/value this step's new positions (self-attention cache, same length
  // as query) or the whole memory (cross-attention cache; ignored and may be undefined once the cache is
  // filled). Returns the attention output in query's layout, equal (to rounding) to the matching rows
  // of a full causal forward. No tape, no dropout, no weights; add_bias_kv / add_zero_attn are not
  // supported here. Throws std::invalid_argument "[MultiheadAttention <path>] ..." naming the argument
  // and shapes: bad shapes or dtypes, a cache bound to another batch size / dtype / layout, a step
  // past the cache's max_length, masks of the wrong shape.
  Var forward_step(const Var& query, const Var& key, const Var& value, AttentionCache& cache,
                   const MultiheadAttentionStepOptions& options = {});

  const MultiheadAttentionOptions& options() const { return options_; }
  bool packed() const { return packed_; }   // PyTorch's _qkv_same_embed_dim

  // Parameters, read from the Module registry (replace one with set_parameter, layers/module.h);
  // an undefined Var when this configuration does not have it.
  const Var& in_proj_weight() const { return param(in_proj_weight_); }   // (3E, E), packed only
  const Var& q_proj_weight() const { return param(q_proj_weight_); }     // (E, qdim), separate only
  const Var& k_proj_weight() const { return param(k_proj_weight_); }     // (E, kdim), separate only
  const Var& v_proj_weight() const { return param(v_proj_weight_); }     // (E, vdim), separate only
  const Var& in_proj_bias() const { return param(in_proj_bias_); }       // (3E), bias only
  const Var& bias_k() const { return param(bias_k_); }                   // (1, 1, E), add_bias_kv only
  const Var& bias_v() const { return param(bias_v_); }                   // (1, 1, E), add_bias_kv only
  std::shared_ptr<Linear> out_proj;                                      // submodule "out_proj"

 private:
  struct Call;        // one forward call: checked shapes, batched inputs, resolved mask (the .cpp)
  struct Projected { Var q, k, v; };

  static const Var& param(const Var* entry) { return entry ? *entry : absent(); }
  Call prepare(const Var& query, const Var& key, const Var& value, const MultiheadAttentionForwardOptions& f);
  void resolve_masks(Call& c, const MultiheadAttentionForwardOptions& f) const;
  Projected project(const Call& c) const;
  AttentionArgs attention_args(const Call& c);
  Var project_step(const Var& x, int64_t which) const;   // which: 0 q, 1 k, 2 v; x 3-D (.., F)
  Var attend_with_weights(const Call& c, const Projected& p, const MultiheadAttentionForwardOptions& f,
                          Var* attn_weights);
  // The heads' attention, merged, before the output projection (weights into *attn_weights when asked for).
  Var attend(const Call& c, const MultiheadAttentionForwardOptions& f, Var* attn_weights);

  MultiheadAttentionOptions options_;
  bool packed_;
  Generator gen_;   // shares the caller's stream (framework/random.h); dropout masks
  // Registry entries (layers/module.h): they follow set_parameter; null when not registered.
  const Var *in_proj_weight_ = nullptr, *q_proj_weight_ = nullptr, *k_proj_weight_ = nullptr,
            *v_proj_weight_ = nullptr, *in_proj_bias_ = nullptr, *bias_k_ = nullptr, *bias_v_ = nullptr;
};

}  // namespace tg
