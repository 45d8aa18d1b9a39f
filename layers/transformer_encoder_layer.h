#pragma once
// TransformerEncoderLayer and TransformerEncoder (torch.nn.TransformerEncoderLayer / Encoder,
// PyTorch 1.13 slow path; ../shared/spec/mha.md §10), built on MultiheadAttention.
//
//   post-norm (norm_first = false):  x = norm1(x + SA(x));  x = norm2(x + FF(x))
//   pre-norm  (norm_first = true):   x = x + SA(norm1(x));  x = x + FF(norm2(x))
//   SA(x) = dropout1(self_attn(x, x, x, src_mask, src_key_padding_mask, need_weights = false))
//   FF(x) = dropout2(linear2(dropout(activation(linear1(x)))))
// Submodules and state_dict keys: self_attn.*, linear1.*, linear2.*, norm1.*, norm2.* (dropouts have
// no parameters). One `dropout` probability is used by the attention and the three Dropouts.
// Masks have MultiheadAttention's semantics (bool true = blocked, float added, merged by addition,
// is_causal builds the causal mask when src_mask is absent, fully masked rows give zeros, not NaN).
// Optional forward arguments by name: layer.forward(src, {.src_mask = m, .is_causal = true}).
// Randomness: the layer's attention and Dropouts keep copies of the Generator handle given at
// construction, sharing the caller's stream (the rule is in framework/random.h).
#include <concepts>
#include <memory>
#include <string>

#include "tapegrad/layers/activation.h"
#include "tapegrad/layers/attention_cache.h"
#include "tapegrad/layers/dropout.h"
#include "tapegrad/layers/layer_norm.h"
#include "tapegrad/layers/linear.h"
#include "tapegrad/layers/module.h"
#include "tapegrad/layers/multihead_attention.h"

namespace tg {

namespace detail {
// The option checks every transformer layer and model shares (encoder/decoder layers, Transformer): throws
// std::invalid_argument "[op] d_model must be positive; got d_model=0" and likewise for nhead, d_model % nhead,
// dim_feedforward, dropout in [0, 1) and layer_norm_eps.
void check_transformer_sizes(const char* op, int64_t d_model, int64_t nhead, int64_t dim_feedforward, double dropout,
                             double layer_norm_eps);
}  // namespace detail

enum class Activation { relu, gelu };   // gelu is the exact erf form, as PyTorch's "gelu"
// "relu" or "gelu"; anything else throws "[TransformerEncoderLayer] activation should be relu/gelu, not tanh".
Activation parse_activation(const std::string& name);

struct TransformerEncoderLayerOptions {
  int64_t d_model;
  int64_t nhead;
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  Activation activation = Activation::relu;
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;
  bool bias = true;   // linear1, linear2, self_attn and the norms' bias (PyTorch 2.x's `bias`)
  void validate() const;   // throws std::invalid_argument naming the field
};

// The optional arguments of TransformerEncoderLayer::forward, PyTorch's names and defaults.
struct TransformerEncoderLayerForwardOptions {
  Var src_mask = Var();               // (S, S) or (N*nhead, S, S) (and MultiheadAttention's other shapes)
  Var src_key_padding_mask = Var();   // (N, S), bool or float
  bool is_causal = false;
};

class TransformerEncoderLayer : public Module {
 public:
  explicit TransformerEncoderLayer(TransformerEncoderLayerOptions options, Generator gen = default_generator(),
                                   DType dtype = DType::Float32);

  // src (S, N, E), (N, S, E) with batch_first, or unbatched (S, E). Masks bool or float, as above.
  // Returns src's shape. Throws std::invalid_argument from the attention for bad shapes.
  Var forward(const Var& src, const TransformerEncoderLayerForwardOptions& options);
  // PyTorch's positional order, the same call (a template only so that forward(src, {}) is not ambiguous).
  template <class Mask = Var>
    requires std::same_as<Mask, Var>
  Var forward(const Var& src, const Mask& src_mask = Var(), const Var& src_key_padding_mask = Var(),
              bool is_causal = false) {
    return forward(src, TransformerEncoderLayerForwardOptions{
                            .src_mask = src_mask, .src_key_padding_mask = src_key_padding_mask, .is_causal = is_causal});
  }

  // One step of cached causal decoding for decoder-only models (e.g. a causal LM built from these
  // layers): src_step holds the next positions (usually 1); the self-attention appends their keys and
  // values to `cache` (an AttentionCache::self_attention(max_length)) and attends over every cached
  // position causally. Equals rows [P, P + L_step) of forward(src, {.is_causal = true}). Inference
  // only: no tape, no dropout. src_key_padding_mask covers every position so far: (N, P + L_step).
  // Throws MultiheadAttention::forward_step's errors (layers/attention_cache.h).
  Var forward_step(const Var& src_step, AttentionCache& cache, const Var& src_key_padding_mask = Var());

  const TransformerEncoderLayerOptions& options() const { return options_; }

  std::shared_ptr<MultiheadAttention> self_attn;
  std::shared_ptr<Linear> linear1;
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<Linear> linear2;
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<Dropout> dropout1, dropout2;

 private:
  Var self_attention_block(const Var& x, const TransformerEncoderLayerForwardOptions& f);
  Var feed_forward_block(const Var& x, bool with_dropout = true);

  TransformerEncoderLayerOptions options_;
};

// num_layers encoder layers that start from identical weights (PyTorch deep-copies the layer it is
// given), keys "layers.<i>.*", and an optional final LayerNorm ("norm.*"). As PyTorch, only the first
// layer draws from the Generator: its state afterwards is the one a single layer leaves, whatever
// num_layers is (layers/transformer_decoder.h does the same).
// The optional arguments of TransformerEncoder::forward, PyTorch's names (`mask`, not `src_mask`).
struct TransformerEncoderForwardOptions {
  Var mask = Var();
  Var src_key_padding_mask = Var();
  bool is_causal = false;
};

class TransformerEncoder : public Module {
 public:
  TransformerEncoder(TransformerEncoderLayerOptions layer, int64_t num_layers, bool final_norm = false,
                     Generator gen = default_generator(), DType dtype = DType::Float32);

  // Runs every layer with the same masks, then the final norm if any.
  Var forward(const Var& src, const TransformerEncoderForwardOptions& options);
  // PyTorch's positional order, the same call (a template only so that forward(src, {}) is not ambiguous).
  template <class Mask = Var>
    requires std::same_as<Mask, Var>
  Var forward(const Var& src, const Mask& mask = Var(), const Var& src_key_padding_mask = Var(), bool is_causal = false) {
    return forward(src, TransformerEncoderForwardOptions{
                            .mask = mask, .src_key_padding_mask = src_key_padding_mask, .is_causal = is_causal});
  }

  std::shared_ptr<ModuleList> layers;
  std::shared_ptr<LayerNorm> norm;   // null without a final norm
};

}  // namespace tg
