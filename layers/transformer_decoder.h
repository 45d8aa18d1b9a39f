#pragma once
// TransformerDecoder (torch.nn.TransformerDecoder; ../shared/spec/decoder.md §6): num_layers
// TransformerDecoderLayers, keys "layers.<i>.*", then an optional final LayerNorm "norm.*".
//
// As PyTorch's _get_clones (copy.deepcopy of one layer), ALL LAYERS START WITH IDENTICAL WEIGHTS
// (distinct tensors, not shared) and only the first layer draws from the Generator: the generator's
// state afterwards is the one a single layer leaves, as in PyTorch. Re-initialise the layers yourself
// if you want them to differ (PyTorch 2.x's docs recommend the same); nn.Transformer's xavier pass does
// that for its 2-D weights (layers/transformer.h).
// forward: x = tgt; every layer gets the same memory and the same masks; then norm(x) if any.
// forward_step: incremental decoding with a TransformerDecoder::Cache (inference only, no tape).
#include <concepts>
#include <memory>
#include <vector>

#include "tapegrad/layers/layer_norm.h"
#include "tapegrad/layers/module.h"
#include "tapegrad/layers/transformer_decoder_layer.h"

namespace tg {

// The optional arguments of TransformerDecoder::forward: the layer's, passed to every layer.
using TransformerDecoderForwardOptions = TransformerDecoderLayerForwardOptions;

class TransformerDecoder : public Module {
 public:
  // One TransformerDecoderLayer::Cache per layer; make one with make_cache().
  struct Cache {
    std::vector<TransformerDecoderLayer::Cache> layers;
    int64_t length() const { return layers.empty() ? 0 : layers[0].self_attn.length(); }   // positions decoded
    void reset();
  };

  // Throws std::invalid_argument "[TransformerDecoder] num_layers must be positive; got num_layers=0".
  TransformerDecoder(TransformerDecoderLayerOptions layer, int64_t num_layers, bool final_norm = false,
                     Generator gen = default_generator(), DType dtype = DType::Float32);

  // tgt (T, N, E) and memory (S, N, E) (batch-first or unbatched as the layer). Returns tgt's shape.
  Var forward(const Var& tgt, const Var& memory, const TransformerDecoderForwardOptions& options);
  // PyTorch's positional order, the same call (a template only so that forward(t, m, {}) is not ambiguous).
  template <class Mask = Var>
    requires std::same_as<Mask, Var>
  Var forward(const Var& tgt, const Var& memory, const Mask& tgt_mask = Var(), const Var& memory_mask = Var(),
              const Var& tgt_key_padding_mask = Var(), const Var& memory_key_padding_mask = Var(),
              bool tgt_is_causal = false, bool memory_is_causal = false) {
    return forward(tgt, memory, TransformerDecoderForwardOptions{
        .tgt_mask = tgt_mask, .memory_mask = memory_mask, .tgt_key_padding_mask = tgt_key_padding_mask,
        .memory_key_padding_mask = memory_key_padding_mask, .tgt_is_causal = tgt_is_causal,
        .memory_is_causal = memory_is_causal});
  }

  // An empty cache for this decoder; max_length > 0 bounds the decoded length (a longer step throws).
  Cache make_cache(int64_t max_length = 0) const;
  // One decoding step through every layer (then the final norm): equals rows [T_past, T_past + T_step)
  // of forward(tgt, memory, {.tgt_is_causal = true, ...}). Throws std::invalid_argument for a cache
  // made for another number of layers, and the layers' errors.
  Var forward_step(const Var& tgt_step, const Var& memory, Cache& cache,
                   const TransformerDecoderLayerStepOptions& options = {});

  std::shared_ptr<ModuleList> layers;
  std::shared_ptr<LayerNorm> norm;   // null without a final norm

 private:
  TransformerDecoderLayer& layer(size_t i) const;
};

}  // namespace tg
