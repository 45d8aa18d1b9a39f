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
#include <functional>
#include <memory>
#include <string>
#include <vector>

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

// The submodules every transformer layer has (encoder: one attention, decoder: two).
struct TransformerLayerParts {
  std::vector<std::shared_ptr<MultiheadAttention>> attentions;   // in the order of attention_names
  std::shared_ptr<Linear> linear1;
  std::shared_ptr<Dropout> dropout;   // after the activation
  std::shared_ptr<Linear> linear2;
  std::vector<std::shared_ptr<LayerNorm>> norms;    // norm1 .. normK, K = attentions + 1 (one per block)
  std::vector<std::shared_ptr<Dropout>> dropouts;   // dropout1 .. dropoutK
};

// The final LayerNorm of a stack or of nn.Transformer's encoder/decoder: (d_model), layer_norm_eps, bias.
template <class LayerOptions> std::shared_ptr<LayerNorm> make_transformer_norm(const LayerOptions& o, DType dtype) {
  return std::make_shared<LayerNorm>(
      LayerNormOptions{.normalized_shape = {o.d_model}, .eps = o.layer_norm_eps, .elementwise_affine = true, .bias = o.bias},
      dtype);
}

// Registers on `layer`, in PyTorch's construction (and so random draw) order: the attentions named
// attention_names (MultiheadAttention(d_model, nhead, dropout, bias, batch_first)), linear1, dropout, linear2,
// norm1..normK, dropout1..dropoutK. The Dropouts and attentions keep `gen` (share the caller's stream).
// LayerOptions: TransformerEncoderLayerOptions or TransformerDecoderLayerOptions (the same fields).
template <class LayerOptions>
TransformerLayerParts register_transformer_layer_parts(Module& layer, const LayerOptions& o,
                                                       const std::vector<std::string>& attention_names,
                                                       const Generator& gen, DType dtype) {
  TransformerLayerParts p;
  const MultiheadAttentionOptions mha{.embed_dim = o.d_model, .num_heads = o.nhead, .dropout = o.dropout, .bias = o.bias,
                                      .batch_first = o.batch_first};
  for (const std::string& name : attention_names)
    p.attentions.push_back(layer.register_module(name, std::make_shared<MultiheadAttention>(mha, gen, dtype)));
  const DropoutOptions drop{.p = o.dropout};
  p.linear1 = layer.register_module("linear1", std::make_shared<Linear>(
      LinearOptions{.in_features = o.d_model, .out_features = o.dim_feedforward, .bias = o.bias}, gen, dtype));
  p.dropout = layer.register_module("dropout", std::make_shared<Dropout>(drop, gen));
  p.linear2 = layer.register_module("linear2", std::make_shared<Linear>(
      LinearOptions{.in_features = o.dim_feedforward, .out_features = o.d_model, .bias = o.bias}, gen, dtype));
  const size_t blocks = attention_names.size() + 1;
  for (size_t i = 1; i <= blocks; ++i)
    p.norms.push_back(layer.register_module("norm" + std::to_string(i), make_transformer_norm(o, dtype)));
  for (size_t i = 1; i <= blocks; ++i)
    p.dropouts.push_back(layer.register_module("dropout" + std::to_string(i), std::make_shared<Dropout>(drop, gen)));
  return p;
}

// Fills `layers` with num_layers layers made by make_layer (which draws from gen) that start from the first
// one's weights, as PyTorch's _get_clones (copy.deepcopy of one prototype): the clones' construction draws
// are rewound, so gen ends where one layer leaves it. Throws std::invalid_argument
// "[<op>] num_layers must be positive; got num_layers=0".
void build_transformer_clones(const char* op, ModuleList& layers, int64_t num_layers, Generator gen,
                              const std::function<std::shared_ptr<Module>()>& make_layer);
}  // namespace detail

enum class Activation { relu, gelu };   // gelu is the exact erf form, as PyTorch's "gelu"

// "relu" or "gelu"; anything else throws "[TransformerEncoderLayer] activation should be relu/gelu, not tanh".
Activation parse_activation(const std::string& name);

namespace detail {
// residual + a Transformer layer's feed-forward block, out_dropout(linear2(dropout(activation(linear1(x))))),
// the dropouts left out when with_dropout is false. With gelu, linear_gelu (the GELU on the product's tiles), and
// when the middle dropout is off (p = 0 or eval) linear_gelu_linear (both linears as one op), which also adds the
// residual to the product's tiles when the output dropout is off too: the same bits as the ops one by one.
Var feed_forward(const Var& residual, const Var& x, bool with_dropout, Activation activation, Linear& linear1,
                 Dropout& dropout, Linear& linear2, Dropout& out_dropout);
// residual + dropout(attention.forward(query, key, value, options).attn_output): with the dropout off (p = 0 or
// eval), MultiheadAttention::forward_residual (the output projection and the add as one op): the same bits.
Var attention_residual(const Var& residual, MultiheadAttention& attention, Dropout& dropout, const Var& query,
                       const Var& key, const Var& value, const MultiheadAttentionForwardOptions& options);
}  // namespace detail

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
  // residual + the block
  Var self_attention_block(const Var& residual, const Var& x, const TransformerEncoderLayerForwardOptions& f);
  Var feed_forward_block(const Var& residual, const Var& x, bool with_dropout = true);   // residual + the block

  TransformerEncoderLayerOptions options_;
};

// The optional arguments of TransformerEncoder::forward, PyTorch's names (`mask`, not `src_mask`).
struct TransformerEncoderForwardOptions {
  Var mask = Var();
  Var src_key_padding_mask = Var();
  bool is_causal = false;
};

// num_layers encoder layers that start from identical weights (PyTorch deep-copies the layer it is
// given), keys "layers.<i>.*", and an optional final LayerNorm ("norm.*"). As PyTorch, only the first
// layer draws from the Generator: its state afterwards is the one a single layer leaves, whatever
// num_layers is (layers/transformer_decoder.h does the same).
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
