#include "tapegrad/layers/transformer_encoder_layer.h"

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/elementwise.h"

namespace tg {

Activation parse_activation(const std::string& name) {
  if (name == "relu") return Activation::relu;
  if (name == "gelu") return Activation::gelu;
  detail::fail_invalid("TransformerEncoderLayer", "activation should be relu/gelu, not ", name);
}

void detail::check_transformer_sizes(const char* op, int64_t d_model, int64_t nhead, int64_t dim_feedforward,
                                     double dropout, double layer_norm_eps) {
  TG_CHECK(d_model > 0, op, "d_model must be positive; got d_model=", d_model);
  TG_CHECK(nhead > 0, op, "nhead must be positive; got nhead=", nhead);
  TG_CHECK(d_model % nhead == 0, op, "d_model must be divisible by nhead; got d_model=", d_model, ", nhead=", nhead);
  TG_CHECK(dim_feedforward > 0, op, "dim_feedforward must be positive; got dim_feedforward=", dim_feedforward);
  TG_CHECK(dropout >= 0.0 && dropout < 1.0, op, "dropout must be in [0, 1); got dropout=", dropout);
  TG_CHECK(layer_norm_eps > 0.0, op, "layer_norm_eps must be positive; got layer_norm_eps=", layer_norm_eps);
}

void TransformerEncoderLayerOptions::validate() const {
  const char* op = "TransformerEncoderLayer";
  detail::check_transformer_sizes(op, d_model, nhead, dim_feedforward, dropout, layer_norm_eps);
}

TransformerEncoderLayer::TransformerEncoderLayer(TransformerEncoderLayerOptions o, Generator gen, DType dtype)
    : options_((o.validate(), o)) {
  // Construction (and so random draw) order is PyTorch's: self_attn, linear1, dropout, linear2, norms.
  self_attn = register_module("self_attn", std::make_shared<MultiheadAttention>(
      MultiheadAttentionOptions{.embed_dim = o.d_model, .num_heads = o.nhead, .dropout = o.dropout, .bias = o.bias,
                                .batch_first = o.batch_first}, gen, dtype));
  linear1 = register_module("linear1", std::make_shared<Linear>(
      LinearOptions{.in_features = o.d_model, .out_features = o.dim_feedforward, .bias = o.bias}, gen, dtype));
  dropout = register_module("dropout", std::make_shared<Dropout>(DropoutOptions{.p = o.dropout}, gen));
  linear2 = register_module("linear2", std::make_shared<Linear>(
      LinearOptions{.in_features = o.dim_feedforward, .out_features = o.d_model, .bias = o.bias}, gen, dtype));
  LayerNormOptions ln{.normalized_shape = {o.d_model}, .eps = o.layer_norm_eps, .elementwise_affine = true, .bias = o.bias};
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(ln, dtype));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(ln, dtype));
  dropout1 = register_module("dropout1", std::make_shared<Dropout>(DropoutOptions{.p = o.dropout}, gen));
  dropout2 = register_module("dropout2", std::make_shared<Dropout>(DropoutOptions{.p = o.dropout}, gen));
}

Var TransformerEncoderLayer::self_attention_block(const Var& x, const TransformerEncoderLayerForwardOptions& f) {
  return dropout1->forward(self_attn->forward(x, x, x, {.attn_mask = f.src_mask, .key_padding_mask = f.src_key_padding_mask,
                                                        .need_weights = false, .is_causal = f.is_causal})
                               .attn_output);
}

Var TransformerEncoderLayer::feed_forward_block(const Var& x, bool with_dropout) {
  Var h = linear1->forward(x);
  h = options_.activation == Activation::relu ? relu(h) : gelu(h);
  if (!with_dropout) return linear2->forward(h);
  return dropout2->forward(linear2->forward(dropout->forward(h)));
}

Var TransformerEncoderLayer::forward(const Var& src, const TransformerEncoderLayerForwardOptions& f) {
  Var x = src;
  if (options_.norm_first) {
    x = x + self_attention_block(norm1->forward(x), f);
    x = x + feed_forward_block(norm2->forward(x));
  } else {
    x = norm1->forward(x + self_attention_block(x, f));
    x = norm2->forward(x + feed_forward_block(x));
  }
  return x;
}

Var TransformerEncoderLayer::forward_step(const Var& src_step, AttentionCache& cache, const Var& src_key_padding_mask) {
  NoGradGuard no_grad;
  auto sa = [&](const Var& y) {
    return self_attn->forward_step(y, y, y, cache, {.key_padding_mask = src_key_padding_mask});
  };
  Var x = src_step;
  if (options_.norm_first) {
    x = x + sa(norm1->forward(x));
    x = x + feed_forward_block(norm2->forward(x), false);
  } else {
    x = norm1->forward(x + sa(x));
    x = norm2->forward(x + feed_forward_block(x, false));
  }
  return x;
}

TransformerEncoder::TransformerEncoder(TransformerEncoderLayerOptions layer, int64_t num_layers, bool final_norm,
                                       Generator gen, DType dtype) {
  TG_CHECK(num_layers > 0, "TransformerEncoder", "num_layers must be positive; got num_layers=", num_layers);
  layers = register_module("layers", std::make_shared<ModuleList>());
  // PyTorch deep-copies one layer: every layer starts from the first one's weights, and the copies
  // draw nothing (the copies' construction draws are rewound).
  auto first = layers->push_back(std::make_shared<TransformerEncoderLayer>(layer, gen, dtype));
  const GeneratorState after_first = gen.state();
  StateDict weights = first->state_dict();
  for (int64_t i = 1; i < num_layers; ++i) {
    auto copy = layers->push_back(std::make_shared<TransformerEncoderLayer>(layer, gen, dtype));
    copy->load_state_dict(weights);
  }
  gen.set_state(after_first);
  if (final_norm)
    norm = register_module("norm", std::make_shared<LayerNorm>(
        LayerNormOptions{.normalized_shape = {layer.d_model}, .eps = layer.layer_norm_eps, .elementwise_affine = true,
                         .bias = layer.bias}, dtype));
}

Var TransformerEncoder::forward(const Var& src, const TransformerEncoderForwardOptions& f) {
  const TransformerEncoderLayerForwardOptions per_layer{
      .src_mask = f.mask, .src_key_padding_mask = f.src_key_padding_mask, .is_causal = f.is_causal};
  Var x = src;
  for (size_t i = 0; i < layers->size(); ++i)
    x = std::static_pointer_cast<TransformerEncoderLayer>((*layers)[i])->forward(x, per_layer);
  return norm ? norm->forward(x) : x;
}

}  // namespace tg
