#include "examples/tiny_lm/model.h"

#include <cmath>

#include "examples/tiny_lm/limits.h"
#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/loss.h"
#include "tapegrad/framework/ops/shape.h"

namespace tg::tiny_lm {

void TinyLMConfig::validate() const {
  // Each size is bounded first, so that no product below can overflow; then the whole model.
  const char* op = "TinyLM";
  TG_CHECK(vocab_size > 0 && vocab_size <= kMaxVocabSize, op, "vocab_size must be in [1, ", kMaxVocabSize,
           "]; got vocab_size=", vocab_size);
  TG_CHECK(block_size > 0 && block_size <= kMaxWidth, op, "block_size must be in [1, ", kMaxWidth,
           "]; got block_size=", block_size);
  TG_CHECK(n_layer > 0 && n_layer <= kMaxLayers, op, "n_layer must be in [1, ", kMaxLayers, "]; got n_layer=", n_layer);
  TG_CHECK(n_embd > 0 && n_embd <= kMaxWidth, op, "n_embd must be in [1, ", kMaxWidth, "]; got n_embd=", n_embd);
  TG_CHECK(n_head > 0 && n_embd % n_head == 0, op, "n_embd must be a positive multiple of n_head; got n_embd=",
           n_embd, ", n_head=", n_head);
  TG_CHECK(dim_feedforward >= 0 && dim_feedforward <= kMaxFeedForward, op, "dim_feedforward must be in [0, ",
           kMaxFeedForward, "] (0: 4 * n_embd); got dim_feedforward=", dim_feedforward);
  TG_CHECK(dropout >= 0.0 && dropout < 1.0, op, "dropout must be in [0, 1); got dropout=", dropout);
  TG_CHECK(std::isfinite(layer_norm_eps) && layer_norm_eps > 0, op,
           "layer_norm_eps must be finite and positive; got layer_norm_eps=", layer_norm_eps);
  const double params = parameter_count(*this);
  TG_CHECK(params <= static_cast<double>(kMaxParameters), op, "the model would have ", format_count(params),
           " parameters, more than the limit of ", kMaxParameters, "; got vocab_size=", vocab_size,
           ", block_size=", block_size, ", n_layer=", n_layer, ", n_embd=", n_embd, ", dim_feedforward=", ff());
}

TinyLM::TinyLM(TinyLMConfig c, Generator gen, DType dtype) : config_((c.validate(), c)) {
  tok_emb = register_module("tok_emb", std::make_shared<Embedding>(
      EmbeddingOptions{.num_embeddings = c.vocab_size, .embedding_dim = c.n_embd}, gen, dtype));
  pos_emb = register_module("pos_emb", std::make_shared<Embedding>(
      EmbeddingOptions{.num_embeddings = c.block_size, .embedding_dim = c.n_embd}, gen, dtype));
  layers = register_module("layers", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < c.n_layer; ++i)
    layers->push_back(std::make_shared<TransformerEncoderLayer>(
        TransformerEncoderLayerOptions{.d_model = c.n_embd, .nhead = c.n_head, .dim_feedforward = c.ff(),
                                       .dropout = c.dropout, .activation = c.activation,
                                       .layer_norm_eps = c.layer_norm_eps, .batch_first = true,
                                       .norm_first = c.norm_first},
        gen, dtype));
  ln_f = register_module("ln_f", std::make_shared<LayerNorm>(
      LayerNormOptions{.normalized_shape = {c.n_embd}, .eps = c.layer_norm_eps}, dtype));
  head = register_module("head", std::make_shared<Linear>(
      LinearOptions{.in_features = c.n_embd, .out_features = c.vocab_size, .bias = c.head_bias}, gen, dtype));
  if (c.tie_weights) set_parameter("head.weight", tok_emb->weight());
}

void TinyLM::init_weights(Generator gen) {
  const DType dt = tok_emb->weight().dtype();
  // In place on the registered nodes (a Var copy is a handle to the same node).
  auto normal = [&](Var w) { w.value().copy_(Tensor::normal(w.shape(), 0.0, 0.02, gen, dt)); };
  auto zero = [](Var b) {
    if (b.defined()) b.value().zero_();
  };
  normal(tok_emb->weight());
  normal(pos_emb->weight());
  for (size_t i = 0; i < layers->size(); ++i) {
    auto layer = std::static_pointer_cast<TransformerEncoderLayer>((*layers)[i]);
    for (Linear* l : {layer->self_attn->out_proj.get(), layer->linear1.get(), layer->linear2.get()}) {
      normal(l->weight());
      zero(l->bias());
    }
  }
  if (!config_.tie_weights) normal(head->weight());
  zero(head->bias());
}

Var TinyLM::forward(const Tensor& tokens) {
  TG_CHECK(tokens.dim() == 2 && tokens.dtype() == DType::Int64, "TinyLM", "tokens must be int64 (B, T); got tokens=",
           describe(tokens));
  const int64_t T = tokens.size(1);
  TG_CHECK(T <= config_.block_size, "TinyLM", "sequence length ", T, " exceeds block_size=", config_.block_size);
  Var x = tok_emb->forward(tokens) + pos_emb->forward(Tensor::arange(T));   // (B, T, C) + (T, C)
  for (size_t i = 0; i < layers->size(); ++i)
    x = std::static_pointer_cast<TransformerEncoderLayer>((*layers)[i])->forward(x, {.is_causal = true});
  x = ln_f->forward(x);
  return head->forward(x);
}

TinyLM::Cache TinyLM::make_cache() const {
  Cache cache;
  for (int64_t i = 0; i < config_.n_layer; ++i)
    cache.layers.push_back(AttentionCache::self_attention(config_.block_size));
  return cache;
}

Var TinyLM::forward_step(const Tensor& tokens_step, Cache& cache) {
  TG_CHECK(tokens_step.dim() == 2 && tokens_step.dtype() == DType::Int64 && tokens_step.size(1) > 0, "TinyLM",
           "tokens_step must be int64 (B, S) with S >= 1; got tokens_step=", describe(tokens_step));
  TG_CHECK(cache.layers.size() == layers->size(), "TinyLM", "the cache must come from make_cache(); got ",
           cache.layers.size(), " layer caches for n_layer=", layers->size());
  const int64_t start = cache.length(), S = tokens_step.size(1);
  TG_CHECK(start + S <= config_.block_size, "TinyLM", "positions ", start, "..", start + S - 1,
           " exceed block_size=", config_.block_size, "; got cache length=", start, ", step length=", S);
  NoGradGuard no_grad;
  Tensor positions = Tensor::arange(static_cast<double>(start), static_cast<double>(start + S), 1.0, DType::Int64);
  Var x = tok_emb->forward(tokens_step) + pos_emb->forward(positions);   // (B, S, C) + (S, C)
  for (size_t i = 0; i < layers->size(); ++i)
    x = std::static_pointer_cast<TransformerEncoderLayer>((*layers)[i])->forward_step(x, cache.layers[i]);
  return head->forward(ln_f->forward(x));
}

Var TinyLM::loss(const Tensor& tokens, const Tensor& targets) {
  TG_CHECK(targets.shape() == tokens.shape(), "TinyLM", "targets must have the tokens' shape; got tokens=",
           to_string(tokens.shape()), ", targets=", to_string(targets.shape()));
  Var logits = forward(tokens);
  const int64_t n = tokens.numel();
  return cross_entropy(reshape(logits, {n, config_.vocab_size}), targets.reshape({n}));
}

}  // namespace tg::tiny_lm
