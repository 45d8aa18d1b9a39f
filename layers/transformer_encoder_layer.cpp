#include "tapegrad/layers/transformer_encoder_layer.h"

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"

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

void detail::build_transformer_clones(const char* op, ModuleList& layers, int64_t num_layers, Generator gen,
                                      const std::function<std::shared_ptr<Module>()>& make_layer) {
  TG_CHECK(num_layers > 0, op, "num_layers must be positive; got num_layers=", num_layers);
  auto first = layers.push_back(make_layer());
  const GeneratorState after_first = gen.state();
  const StateDict weights = first->state_dict();
  for (int64_t i = 1; i < num_layers; ++i) layers.push_back(make_layer())->load_state_dict(weights);
  gen.set_state(after_first);
}

TransformerEncoderLayer::TransformerEncoderLayer(TransformerEncoderLayerOptions o, Generator gen, DType dtype)
    : options_((o.validate(), o)) {
  // Construction (and so random draw) order is PyTorch's: self_attn, linear1, dropout, linear2, norms.
  const auto p = detail::register_transformer_layer_parts(*this, o, {"self_attn"}, gen, dtype);
  self_attn = p.attentions[0];
  linear1 = p.linear1;
  dropout = p.dropout;
  linear2 = p.linear2;
  norm1 = p.norms[0];
  norm2 = p.norms[1];
  dropout1 = p.dropouts[0];
  dropout2 = p.dropouts[1];
}

Var TransformerEncoderLayer::self_attention_block(const Var& residual, const Var& x,
                                                  const TransformerEncoderLayerForwardOptions& f) {
  return detail::attention_residual(residual, *self_attn, *dropout1, x, x, x,
                                    {.attn_mask = f.src_mask, .key_padding_mask = f.src_key_padding_mask,
                                     .need_weights = false, .is_causal = f.is_causal});
}

Var detail::attention_residual(const Var& residual, MultiheadAttention& attention, Dropout& dropout, const Var& query,
                               const Var& key, const Var& value, const MultiheadAttentionForwardOptions& options) {
  if (dropout.is_training() && dropout.options().p > 0)
    return residual + dropout.forward(attention.forward(query, key, value, options).attn_output);
  return attention.forward_residual(residual, query, key, value, options);
}

Var detail::feed_forward(const Var& residual, const Var& x, bool with_dropout, Activation activation,
                         Linear& linear1, Dropout& dropout, Linear& linear2, Dropout& out_dropout) {
  const bool gelu = activation != Activation::relu;
  const auto active = [&](const Dropout& d) { return with_dropout && d.is_training() && d.options().p > 0; };
  if (gelu && !active(dropout)) {
    if (!active(out_dropout))
      return linear_gelu_linear(x, linear1.weight(), linear1.bias(), linear2.weight(), linear2.bias(), residual);
    return residual + out_dropout.forward(
                          linear_gelu_linear(x, linear1.weight(), linear1.bias(), linear2.weight(), linear2.bias()));
  }
  const Var h = gelu ? linear_gelu(x, linear1.weight(), linear1.bias()) : relu(linear1.forward(x));
  if (!with_dropout) return residual + linear2.forward(h);
  return residual + out_dropout.forward(linear2.forward(dropout.forward(h)));
}

Var TransformerEncoderLayer::feed_forward_block(const Var& residual, const Var& x, bool with_dropout) {
  return detail::feed_forward(residual, x, with_dropout, options_.activation, *linear1, *dropout, *linear2, *dropout2);
}

Var TransformerEncoderLayer::forward(const Var& src, const TransformerEncoderLayerForwardOptions& f) {
  Var x = src;
  if (options_.norm_first) {
    x = self_attention_block(x, norm1->forward(x), f);
    x = feed_forward_block(x, norm2->forward(x));
  } else {
    x = norm1->forward(self_attention_block(x, x, f));
    x = norm2->forward(feed_forward_block(x, x));
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
    x = feed_forward_block(x, norm2->forward(x), false);
  } else {
    x = norm1->forward(x + sa(x));
    x = norm2->forward(feed_forward_block(x, x, false));
  }
  return x;
}

TransformerEncoder::TransformerEncoder(TransformerEncoderLayerOptions layer, int64_t num_layers, bool final_norm,
                                       Generator gen, DType dtype) {
  layers = register_module("layers", std::make_shared<ModuleList>());
  detail::build_transformer_clones("TransformerEncoder", *layers, num_layers, gen,
                                   [&] { return std::make_shared<TransformerEncoderLayer>(layer, gen, dtype); });
  if (final_norm) norm = register_module("norm", detail::make_transformer_norm(layer, dtype));
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
