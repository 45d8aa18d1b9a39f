#include "tapegrad/layers/transformer_decoder.h"

#include "tapegrad/framework/check.h"

namespace tg {

void TransformerDecoder::Cache::reset() {
  for (auto& c : layers) {
    c.self_attn.reset();
    c.multihead_attn.reset();
  }
}

TransformerDecoder::TransformerDecoder(TransformerDecoderLayerOptions layer, int64_t num_layers, bool final_norm,
                                       Generator gen, DType dtype) {
  layers = register_module("layers", std::make_shared<ModuleList>());
  // PyTorch deep-copies one layer: every layer starts from the first one's weights, the copies draw nothing.
  detail::build_transformer_clones("TransformerDecoder", *layers, num_layers, gen,
                                   [&] { return std::make_shared<TransformerDecoderLayer>(layer, gen, dtype); });
  if (final_norm) norm = register_module("norm", detail::make_transformer_norm(layer, dtype));
}

TransformerDecoderLayer& TransformerDecoder::layer(size_t i) const {
  return static_cast<TransformerDecoderLayer&>(*(*layers)[i]);
}

Var TransformerDecoder::forward(const Var& tgt, const Var& memory, const TransformerDecoderForwardOptions& f) {
  Var x = tgt;
  for (size_t i = 0; i < layers->size(); ++i) x = layer(i).forward(x, memory, f);
  return norm ? norm->forward(x) : x;
}

TransformerDecoder::Cache TransformerDecoder::make_cache(int64_t max_length) const {
  Cache c;
  for (size_t i = 0; i < layers->size(); ++i) c.layers.emplace_back(max_length);
  return c;
}

Var TransformerDecoder::forward_step(const Var& tgt_step, const Var& memory, Cache& cache,
                                     const TransformerDecoderLayerStepOptions& f) {
  NoGradGuard no_grad;
  TG_CHECK(cache.layers.size() == layers->size(), error_op("TransformerDecoder").c_str(),
           "cache was made for ", cache.layers.size(), " layers; this decoder has ", layers->size(),
           " (use make_cache())");
  const Cache saved = cache;   // a step rejected in a later layer leaves every layer's cache as it was
  try {
    Var x = tgt_step;
    for (size_t i = 0; i < layers->size(); ++i) x = layer(i).forward_step(x, memory, cache.layers[i], f);
    return norm ? norm->forward(x) : x;
  } catch (...) {
    cache = saved;
    throw;
  }
}

}  // namespace tg
