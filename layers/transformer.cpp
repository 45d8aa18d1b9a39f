#include "tapegrad/layers/transformer.h"

#include "tapegrad/framework/check.h"
#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/init.h"

namespace tg {

void TransformerOptions::validate() const {
  const char* op = "Transformer";
  detail::check_transformer_sizes(op, d_model, nhead, dim_feedforward, dropout, layer_norm_eps);
  TG_CHECK(num_encoder_layers > 0, op, "num_encoder_layers must be positive; got num_encoder_layers=", num_encoder_layers);
  TG_CHECK(num_decoder_layers > 0, op, "num_decoder_layers must be positive; got num_decoder_layers=", num_decoder_layers);
}

Transformer::Transformer(TransformerOptions o, Generator gen, DType dtype) : options_((o.validate(), o)) {
  const TransformerEncoderLayerOptions enc{.d_model = o.d_model, .nhead = o.nhead, .dim_feedforward = o.dim_feedforward,
                                           .dropout = o.dropout, .activation = o.activation,
                                           .layer_norm_eps = o.layer_norm_eps, .batch_first = o.batch_first,
                                           .norm_first = o.norm_first, .bias = o.bias};
  // PyTorch draws for each stack's prototype layer only (the clones are deep copies); the encoder and
  // the decoder leave the stream where their prototype left it.
  encoder = register_module("encoder", std::make_shared<TransformerEncoder>(enc, o.num_encoder_layers, true, gen, dtype));
  const TransformerDecoderLayerOptions dec{.d_model = o.d_model, .nhead = o.nhead, .dim_feedforward = o.dim_feedforward,
                                           .dropout = o.dropout, .activation = o.activation,
                                           .layer_norm_eps = o.layer_norm_eps, .batch_first = o.batch_first,
                                           .norm_first = o.norm_first, .bias = o.bias};
  decoder = register_module("decoder", std::make_shared<TransformerDecoder>(dec, o.num_decoder_layers, true, gen, dtype));
  // _reset_parameters: xavier_uniform_ on every parameter with dim > 1, in state_dict order.
  for (auto& [name, p] : named_parameters())
    if (p.dim() > 1) {
      Var w = p;
      w.value().copy_(init::xavier_uniform(p.shape(), gen, 1.0, p.dtype()));
    }
}

Tensor Transformer::generate_square_subsequent_mask(int64_t sz, DType dtype) {
  TG_CHECK(sz >= 0, "Transformer", "generate_square_subsequent_mask: sz must be >= 0; got sz=", sz);
  TG_CHECK(is_floating(dtype), "Transformer", "generate_square_subsequent_mask: dtype must be floating; got dtype=",
           to_string(dtype));
  return causal_mask(sz, sz, dtype);
}

void Transformer::check_inputs(const Var& src, const Var& tgt) const {
  const char* n = "Transformer";
  TG_CHECK(src.defined() && tgt.defined(), n, "src and tgt must be defined");
  const auto shp = [](const Var& v) { return to_string(v.shape()); };
  TG_CHECK((src.dim() == 3 && tgt.dim() == 3) || (src.dim() == 2 && tgt.dim() == 2), n,
           "src and tgt must both be batched (3-D) or both unbatched (2-D); got src=", shp(src), ", tgt=", shp(tgt));
  if (src.dim() == 3) {
    const int64_t b = options_.batch_first ? 0 : 1;
    TG_CHECK(src.size(b) == tgt.size(b), n, "the batch number of src and tgt must be equal (",
             options_.batch_first ? "batch_first: dim 0" : "dim 1", "); got src=", shp(src), ", tgt=", shp(tgt));
  }
  TG_CHECK(src.size(-1) == options_.d_model && tgt.size(-1) == options_.d_model, n,
           "the feature number of src and tgt must be equal to d_model=", options_.d_model, "; got src=", shp(src),
           ", tgt=", shp(tgt));
}

Var Transformer::forward(const Var& src, const Var& tgt, const TransformerForwardOptions& f) {
  check_inputs(src, tgt);
  Var memory = encoder->forward(src, {.mask = f.src_mask, .src_key_padding_mask = f.src_key_padding_mask,
                                      .is_causal = f.src_is_causal});
  return decoder->forward(tgt, memory, {.tgt_mask = f.tgt_mask, .memory_mask = f.memory_mask,
                                        .tgt_key_padding_mask = f.tgt_key_padding_mask,
                                        .memory_key_padding_mask = f.memory_key_padding_mask,
                                        .tgt_is_causal = f.tgt_is_causal, .memory_is_causal = f.memory_is_causal});
}

}  // namespace tg
