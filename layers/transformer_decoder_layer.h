#pragma once
// TransformerDecoderLayer (torch.nn.TransformerDecoderLayer, PyTorch 1.13 with the 2.x `bias`,
// `tgt_is_causal` and `memory_is_causal` arguments; ../shared/spec/decoder.md §2-§5).
//
//   post-norm (norm_first = false):  x = norm1(x + SA(x));  x = norm2(x + CA(x, memory));  x = norm3(x + FF(x))
//   pre-norm  (norm_first = true):   x = x + SA(norm1(x));  x = x + CA(norm2(x), memory);  x = x + FF(norm3(x))
//   SA(y) = dropout1(self_attn(y, y, y, tgt_mask, tgt_key_padding_mask))
//   CA(y) = dropout2(multihead_attn(y, memory, memory, memory_mask, memory_key_padding_mask))
//   FF(y) = dropout3(linear2(dropout(activation(linear1(y)))))
// `memory` is never normalised by the layer (only the query of the cross-attention is, in pre-norm);
// a pre-norm layer has no final norm (TransformerDecoder's optional `norm` does that).
// Submodules and state_dict keys in PyTorch's order: self_attn.*, multihead_attn.*, linear1.*,
// linear2.*, norm1.*, norm2.*, norm3.*. Initial draws in PyTorch's order (self_attn, multihead_attn,
// linear1, linear2); one `dropout` probability is used six times, in PyTorch's order.
//
// Decisions where PyTorch 1.13 is a trap (spec/decoder.md "Suggested decisions"; README "Layers"):
//  * Masks have MultiheadAttention's semantics in every mode: bool true = blocked, float added, the
//    attn mask and the key padding mask merged by addition (1.13 reads a float kpm beside a float
//    attn mask as bool bytes, and ORs a bool attn mask with a float kpm).
//  * A fully masked query row (self- or cross-attention) gives zero attention: that block's output
//    row is its out_proj.bias and the layer stays finite, never NaN.
//  * tgt_is_causal / memory_is_causal: with no mask given, build the causal mask (key j > query i
//    blocked, upper-left aligned when T != S, as 2.x SDPA); with a mask, the mask is used as given.
//  * There is no eval/no-grad fast path that changes results.
//  * Errors name the argument and the caller's shapes: memory's feature size != d_model, memory's
//    batch != tgt's batch, 2-D tgt with 3-D memory (PyTorch leaves these to opaque errors).
// Incremental decoding: forward_step with a TransformerDecoderLayer::Cache (inference only; see
// layers/attention_cache.h).
#include <concepts>
#include <memory>

#include "tapegrad/layers/attention_cache.h"
#include "tapegrad/layers/dropout.h"
#include "tapegrad/layers/layer_norm.h"
#include "tapegrad/layers/linear.h"
#include "tapegrad/layers/module.h"
#include "tapegrad/layers/multihead_attention.h"
#include "tapegrad/layers/transformer_encoder_layer.h"

namespace tg {

struct TransformerDecoderLayerOptions {
  int64_t d_model;
  int64_t nhead;
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  Activation activation = Activation::relu;
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;
  bool bias = true;   // both attentions, linear1, linear2 and the norms' bias (PyTorch 2.x's `bias`)
  // Throws std::invalid_argument "[TransformerDecoderLayer] <field> ..." naming the field.
  void validate() const;
};

// The optional arguments of TransformerDecoderLayer::forward, PyTorch's names and defaults.
struct TransformerDecoderLayerForwardOptions {
  Var tgt_mask = Var();                  // (T, T), (N*nhead, T, T) or MultiheadAttention's other shapes
  Var memory_mask = Var();               // (T, S), (N*nhead, T, S), ...
  Var tgt_key_padding_mask = Var();      // (N, T) or (T) unbatched; bool or float
  Var memory_key_padding_mask = Var();   // (N, S) or (S) unbatched; bool or float
  bool tgt_is_causal = false;
  bool memory_is_causal = false;
};

// The optional arguments of one cached decoding step (forward_step).
struct TransformerDecoderLayerStepOptions {
  Var memory_mask = Var();               // rows of this step: (T_step, S), bool or float
  Var tgt_key_padding_mask = Var();      // over every target position so far: (N, T_past + T_step)
  Var memory_key_padding_mask = Var();   // (N, S) or (S) unbatched
};

class TransformerDecoderLayer : public Module {
 public:
  // The self-attention and cross-attention caches of one layer (see layers/attention_cache.h).
  struct Cache {
    AttentionCache self_attn = AttentionCache::self_attention();
    AttentionCache multihead_attn = AttentionCache::cross_attention();
    explicit Cache(int64_t max_length = 0) : self_attn(AttentionCache::self_attention(max_length)) {}
  };

  explicit TransformerDecoderLayer(TransformerDecoderLayerOptions options, Generator gen = default_generator(),
                                   DType dtype = DType::Float32);

  // tgt (T, N, E) / memory (S, N, E), batch-first (N, T, E) / (N, S, E), or unbatched (T, E) / (S, E).
  // Returns tgt's shape. Throws std::invalid_argument "[TransformerDecoderLayer <path>] ..." for a memory
  // that does not fit tgt, and MultiheadAttention's errors for bad masks.
  Var forward(const Var& tgt, const Var& memory, const TransformerDecoderLayerForwardOptions& options);
  // PyTorch's positional order, the same call (a template only so that forward(t, m, {}) is not ambiguous).
  template <class Mask = Var>
    requires std::same_as<Mask, Var>
  Var forward(const Var& tgt, const Var& memory, const Mask& tgt_mask = Var(), const Var& memory_mask = Var(),
              const Var& tgt_key_padding_mask = Var(), const Var& memory_key_padding_mask = Var(),
              bool tgt_is_causal = false, bool memory_is_causal = false) {
    return forward(tgt, memory, TransformerDecoderLayerForwardOptions{
        .tgt_mask = tgt_mask, .memory_mask = memory_mask, .tgt_key_padding_mask = tgt_key_padding_mask,
        .memory_key_padding_mask = memory_key_padding_mask, .tgt_is_causal = tgt_is_causal,
        .memory_is_causal = memory_is_causal});
  }

  // One step of incremental decoding (inference: no tape, eval-mode semantics expected). tgt_step
  // holds the next T_step positions (usually 1); the self-attention attends over every position
  // cached so far plus this step, causally; the cross-attention projects memory once into the cache.
  // Equals rows [T_past, T_past + T_step) of forward(tgt, memory, {.tgt_is_causal = true, ...}).
  // Throws check_memory's and MultiheadAttention::forward_step's errors, and "[TransformerDecoderLayer]
  // forward_step: the cross-attention cache holds a memory of length 4; got memory=[5, 2, 8] ..." for a
  // memory whose length differs from the cached one (reset() the cache for a new memory; a memory of the
  // same shape is NOT compared: the cached projections are used). A rejected step leaves the cache unchanged.
  Var forward_step(const Var& tgt_step, const Var& memory, Cache& cache,
                   const TransformerDecoderLayerStepOptions& options = {});

  const TransformerDecoderLayerOptions& options() const { return options_; }

  std::shared_ptr<MultiheadAttention> self_attn, multihead_attn;
  std::shared_ptr<Linear> linear1;
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<Linear> linear2;
  std::shared_ptr<LayerNorm> norm1, norm2, norm3;
  std::shared_ptr<Dropout> dropout1, dropout2, dropout3;

 private:
  void check_memory(const Var& tgt, const Var& memory) const;
  // A filled cross-attention cache holds one memory's projections: a memory of another length throws.
  void check_cached_memory(const Var& memory, const Cache& cache) const;
  Var feed_forward_block(const Var& residual, const Var& x, bool with_dropout);   // residual + the block

  TransformerDecoderLayerOptions options_;
};

}  // namespace tg
