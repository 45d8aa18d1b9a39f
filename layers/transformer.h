#pragma once
// Transformer (torch.nn.Transformer; ../shared/spec/decoder.md §7): a TransformerEncoder of
// num_encoder_layers layers with a final LayerNorm ("encoder.*") and a TransformerDecoder of
// num_decoder_layers layers with a final LayerNorm ("decoder.*"). Both final norms exist whatever
// norm_first is (in post-norm mode each stack therefore ends with two LayerNorms in a row, as PyTorch).
//
// Initialisation is PyTorch's, draw for draw: the encoder prototype layer's draws, the decoder
// prototype layer's draws (the cloned layers draw nothing and start identical), then xavier_uniform_
// on every parameter with dim > 1 in state_dict order. So the 2-D weights differ between layers, while
// the 1-D ones (linear1/linear2 biases: the prototype's U(+-1/sqrt(fan_in)) draws) are IDENTICAL in every
// layer of a stack, exactly as in PyTorch.
//
//   memory = encoder(src, src_mask, src_key_padding_mask)
//   output = decoder(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask)
// src_key_padding_mask does NOT reach the cross-attention (PyTorch's trap): pass the same tensor as
// memory_key_padding_mask to hide padded source positions from the decoder.
// Decisions where PyTorch 1.13 is a trap: no eval/no-grad nested-tensor path (1.13 truncates memory
// there and then fails on memory_key_padding_mask); masks have MultiheadAttention's semantics in every
// mode; src/tgt/memory_is_causal (2.x names) build the causal mask when the mask is absent.
// Incremental decoding: encoder->forward(src, ...) once, then decoder->forward_step per token with a
// decoder->make_cache() (layers/transformer_decoder.h).
#include <concepts>
#include <memory>

#include "tapegrad/layers/module.h"
#include "tapegrad/layers/transformer_decoder.h"
#include "tapegrad/layers/transformer_encoder_layer.h"

namespace tg {

struct TransformerOptions {
  int64_t d_model = 512;
  int64_t nhead = 8;
  int64_t num_encoder_layers = 6;
  int64_t num_decoder_layers = 6;
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  Activation activation = Activation::relu;
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;
  bool bias = true;
  // Throws std::invalid_argument "[Transformer] <field> ..." naming the field.
  void validate() const;
};

// The optional arguments of Transformer::forward, PyTorch's names and order.
struct TransformerForwardOptions {
  Var src_mask = Var();                  // (S, S), ...: every encoder layer's self-attention
  Var tgt_mask = Var();                  // (T, T), ...: every decoder layer's self-attention
  Var memory_mask = Var();               // (T, S), ...: every decoder layer's cross-attention
  Var src_key_padding_mask = Var();      // (N, S): encoder only
  Var tgt_key_padding_mask = Var();      // (N, T)
  Var memory_key_padding_mask = Var();   // (N, S): cross-attention
  bool src_is_causal = false;
  bool tgt_is_causal = false;
  bool memory_is_causal = false;
};

class Transformer : public Module {
 public:
  explicit Transformer(TransformerOptions options = {}, Generator gen = default_generator(),
                       DType dtype = DType::Float32);

  // src (S, N, E), tgt (T, N, E); (N, S, E) / (N, T, E) with batch_first; or unbatched (S, E) / (T, E).
  // Returns tgt's shape. Throws std::invalid_argument "[Transformer] the batch number of src and tgt must
  // be equal; got src=[..], tgt=[..]", "[Transformer] the feature number of src and tgt must be equal to
  // d_model=8; got ...", "[Transformer] src and tgt must both be batched (3-D) or both unbatched (2-D); got ...".
  Var forward(const Var& src, const Var& tgt, const TransformerForwardOptions& options);
  // PyTorch's positional order, the same call (a template only so that forward(s, t, {}) is not ambiguous).
  template <class Mask = Var>
    requires std::same_as<Mask, Var>
  Var forward(const Var& src, const Var& tgt, const Mask& src_mask = Var(), const Var& tgt_mask = Var(),
              const Var& memory_mask = Var(), const Var& src_key_padding_mask = Var(),
              const Var& tgt_key_padding_mask = Var(), const Var& memory_key_padding_mask = Var()) {
    return forward(src, tgt, TransformerForwardOptions{
        .src_mask = src_mask, .tgt_mask = tgt_mask, .memory_mask = memory_mask,
        .src_key_padding_mask = src_key_padding_mask, .tgt_key_padding_mask = tgt_key_padding_mask,
        .memory_key_padding_mask = memory_key_padding_mask});
  }

  // (sz, sz) float mask: -inf strictly above the diagonal, +0.0 on and below it (sz = 0 gives (0, 0)).
  // Throws std::invalid_argument for sz < 0.
  static Tensor generate_square_subsequent_mask(int64_t sz, DType dtype = DType::Float32);

  const TransformerOptions& options() const { return options_; }

  std::shared_ptr<TransformerEncoder> encoder;
  std::shared_ptr<TransformerDecoder> decoder;

 private:
  void check_inputs(const Var& src, const Var& tgt) const;

  TransformerOptions options_;
};

}  // namespace tg
