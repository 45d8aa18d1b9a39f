#include "tapegrad/layers/transformer_decoder_layer.h"

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"

namespace tg {

void TransformerDecoderLayerOptions::validate() const {
  const char* op = "TransformerDecoderLayer";
  detail::check_transformer_sizes(op, d_model, nhead, dim_feedforward, dropout, layer_norm_eps);
}

TransformerDecoderLayer::TransformerDecoderLayer(TransformerDecoderLayerOptions o, Generator gen, DType dtype)
    : options_((o.validate(), o)) {
  // Construction (and so random draw) order is PyTorch's: self_attn, multihead_attn, linear1,
  // dropout, linear2, norm1..3, dropout1..3.
  const auto p = detail::register_transformer_layer_parts(*this, o, {"self_attn", "multihead_attn"}, gen, dtype);
  self_attn = p.attentions[0];
  multihead_attn = p.attentions[1];
  linear1 = p.linear1;
  dropout = p.dropout;
  linear2 = p.linear2;
  norm1 = p.norms[0];
  norm2 = p.norms[1];
  norm3 = p.norms[2];
  dropout1 = p.dropouts[0];
  dropout2 = p.dropouts[1];
  dropout3 = p.dropouts[2];
}

void TransformerDecoderLayer::check_memory(const Var& tgt, const Var& memory) const {
  const std::string op = error_op("TransformerDecoderLayer");
  const char* n = op.c_str();
  TG_CHECK(tgt.defined() && memory.defined(), n, "tgt and memory must be defined; got tgt=",
           tgt.defined() ? to_string(tgt.shape()) : "undefined", ", memory=",
           memory.defined() ? to_string(memory.shape()) : "undefined");
  TG_CHECK(tgt.dim() == 2 || tgt.dim() == 3, n, "tgt must be unbatched 2-D (T, E) or batched 3-D; got tgt=",
           to_string(tgt.shape()));
  TG_CHECK(memory.dim() == tgt.dim(), n, "memory must have tgt's number of dims (", tgt.dim() == 3 ? "batched" : "unbatched",
           "); got tgt=", to_string(tgt.shape()), ", memory=", to_string(memory.shape()));
  TG_CHECK(tgt.size(-1) == options_.d_model, n, "tgt feature size must be d_model=", options_.d_model, "; got tgt=",
           to_string(tgt.shape()));
  TG_CHECK(memory.size(-1) == options_.d_model, n, "memory feature size must be d_model=", options_.d_model,
           "; got tgt=", to_string(tgt.shape()), ", memory=", to_string(memory.shape()));
  if (tgt.dim() == 3) {
    const int64_t b = options_.batch_first ? 0 : 1;
    TG_CHECK(tgt.size(b) == memory.size(b), n, "tgt and memory batch sizes differ (", options_.batch_first ? "batch_first: dim 0" : "dim 1",
             "); got tgt=", to_string(tgt.shape()), ", memory=", to_string(memory.shape()));
  }
}

void TransformerDecoderLayer::check_cached_memory(const Var& memory, const Cache& cache) const {
  if (cache.multihead_attn.empty()) return;
  const int64_t S = memory.size(memory.dim() == 3 && options_.batch_first ? 1 : 0);
  TG_CHECK(S == cache.multihead_attn.length(), error_op("TransformerDecoderLayer").c_str(),
           "forward_step: the cross-attention cache holds a memory of length ", cache.multihead_attn.length(),
           "; got memory=", to_string(memory.shape()), " (reset() the cache for a new memory)");
}

Var TransformerDecoderLayer::feed_forward_block(const Var& residual, const Var& x, bool with_dropout) {
  return detail::feed_forward(residual, x, with_dropout, options_.activation, *linear1, *dropout, *linear2, *dropout3);
}

Var TransformerDecoderLayer::forward(const Var& tgt, const Var& memory, const TransformerDecoderLayerForwardOptions& f) {
  check_memory(tgt, memory);
  auto sa = [&](const Var& residual, const Var& y) {
    return detail::attention_residual(residual, *self_attn, *dropout1, y, y, y,
                                      {.attn_mask = f.tgt_mask, .key_padding_mask = f.tgt_key_padding_mask,
                                       .need_weights = false, .is_causal = f.tgt_is_causal});
  };
  auto ca = [&](const Var& residual, const Var& y) {
    return detail::attention_residual(residual, *multihead_attn, *dropout2, y, memory, memory,
                                      {.attn_mask = f.memory_mask, .key_padding_mask = f.memory_key_padding_mask,
                                       .need_weights = false, .is_causal = f.memory_is_causal});
  };
  Var x = tgt;
  if (options_.norm_first) {
    x = sa(x, norm1->forward(x));
    x = ca(x, norm2->forward(x));
    x = feed_forward_block(x, norm3->forward(x), true);
  } else {
    x = norm1->forward(sa(x, x));
    x = norm2->forward(ca(x, x));
    x = norm3->forward(feed_forward_block(x, x, true));
  }
  return x;
}

Var TransformerDecoderLayer::forward_step(const Var& tgt_step, const Var& memory, Cache& cache,
                                          const TransformerDecoderLayerStepOptions& f) {
  NoGradGuard no_grad;
  check_memory(tgt_step, memory);
  check_cached_memory(memory, cache);
  // Norms and the feed-forward block are positionwise: only the attentions need the cache. No dropout.
  auto sa = [&](const Var& y) {
    return self_attn->forward_step(y, y, y, cache.self_attn, {.key_padding_mask = f.tgt_key_padding_mask});
  };
  auto ca = [&](const Var& y) {
    return multihead_attn->forward_step(y, memory, memory, cache.multihead_attn,
                                        {.attn_mask = f.memory_mask, .key_padding_mask = f.memory_key_padding_mask});
  };
  // A step rejected part-way (e.g. a bad memory mask) must leave the cache as it was: keep the handles.
  const Cache saved = cache;
  try {
    Var x = tgt_step;
    if (options_.norm_first) {
      x = x + sa(norm1->forward(x));
      x = x + ca(norm2->forward(x));
      return feed_forward_block(x, norm3->forward(x), false);
    }
    x = norm1->forward(x + sa(x));
    x = norm2->forward(x + ca(x));
    return norm3->forward(feed_forward_block(x, x, false));
  } catch (...) {
    cache = saved;
    throw;
  }
}

}  // namespace tg
