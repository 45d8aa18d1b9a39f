#pragma once
// The Transformer layers written as the composition of their blocks, as PyTorch 1.13 composes them: the
// reference their fused forward is checked against (bit for bit in float32, to 1e-14 in float64). sa and ca are
// the self- and cross-attention blocks applied to their (normalised, for norm_first) input, with whatever masks
// the test uses; the feed-forward block is linear2(gelu(linear1(h))), the tests' activation.
#include <functional>

#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/layers/transformer_decoder.h"
#include "tapegrad/layers/transformer_encoder_layer.h"

namespace tg::test {

using Block = std::function<Var(const Var&)>;

template <class Layer> Var gelu_feed_forward(Layer& layer, const Var& h) {
  return layer.linear2->forward(gelu(layer.linear1->forward(h)));
}

inline Var encoder_layer_composition(TransformerEncoderLayer& layer, const Var& x, bool norm_first, const Block& sa) {
  if (norm_first) {
    const Var h = x + sa(layer.norm1->forward(x));
    return h + gelu_feed_forward(layer, layer.norm2->forward(h));
  }
  const Var h = layer.norm1->forward(x + sa(x));
  return layer.norm2->forward(h + gelu_feed_forward(layer, h));
}

inline Var decoder_layer_composition(TransformerDecoderLayer& layer, const Var& x, bool norm_first, const Block& sa,
                                     const Block& ca) {
  if (norm_first) {
    Var h = x + sa(layer.norm1->forward(x));
    h = h + ca(layer.norm2->forward(h));
    return h + gelu_feed_forward(layer, layer.norm3->forward(h));
  }
  Var h = layer.norm1->forward(x + sa(x));
  h = layer.norm2->forward(h + ca(h));
  return layer.norm3->forward(h + gelu_feed_forward(layer, h));
}

}  // namespace tg::test
