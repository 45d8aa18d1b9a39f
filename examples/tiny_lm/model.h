#pragma once
// The tiny language model: a character-level, decoder-only transformer.
//   x = tok_emb(tokens) + pos_emb(arange(T))          (B, T, n_embd), no sqrt(n_embd) scaling
//   n_layer x TransformerEncoderLayer(norm_first, gelu, batch_first) under a causal mask
//   logits = head(ln_f(x))                             (B, T, vocab_size)
// Parameter names: tok_emb.weight, pos_emb.weight, layers.<i>.*, ln_f.*, head.* (PyTorch's keys for
// the same nn.Module tree). With tie_weights, head.weight is tok_emb.weight: state_dict lists both
// keys, named_parameters() only tok_emb.weight (as PyTorch).
#include <cstdint>
#include <memory>
#include <vector>

#include "tapegrad/layers/attention_cache.h"
#include "tapegrad/layers/embedding.h"
#include "tapegrad/layers/layer_norm.h"
#include "tapegrad/layers/linear.h"
#include "tapegrad/layers/module.h"
#include "tapegrad/layers/transformer_encoder_layer.h"

namespace tg::tiny_lm {

struct TinyLMConfig {
  int64_t vocab_size;
  int64_t block_size = 64;             // longest context (rows of pos_emb)
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t n_embd = 128;
  int64_t dim_feedforward = 0;         // 0: 4 * n_embd
  double dropout = 0.0;
  Activation activation = Activation::gelu;
  double layer_norm_eps = 1e-5;
  bool norm_first = true;
  bool head_bias = true;
  bool tie_weights = false;            // head.weight is tok_emb.weight (nanoGPT)
  void validate() const;               // throws std::invalid_argument naming the field
  int64_t ff() const { return dim_feedforward > 0 ? dim_feedforward : 4 * n_embd; }
};

class TinyLM : public Module {
 public:
  // Parameters drawn from gen with PyTorch's default initialisers; dropout masks also come from gen's
  // stream (the layers keep copies of the handle, framework/random.h). With tie_weights the constructor
  // ties with one call: set_parameter("head.weight", tok_emb->weight()).
  explicit TinyLM(TinyLMConfig config, Generator gen = default_generator(), DType dtype = DType::Float32);

  // nanoGPT's initialisation: every Linear weight (out_proj, linear1/2, head) and both embeddings
  // ~ N(0, 0.02), Linear biases 0; in_proj keeps its xavier init, norms weight 1 / bias 0.
  void init_weights(Generator gen);

  // tokens (B, T) int64 with T <= block_size -> logits (B, T, vocab_size).
  Var forward(const Tensor& tokens);
  // Mean cross-entropy of the next-token logits against targets (B, T) int64.
  Var loss(const Tensor& tokens, const Tensor& targets);

  // Cached incremental decoding: one self-attention AttentionCache per layer (bounded by block_size).
  struct Cache {
    std::vector<AttentionCache> layers;
    int64_t length() const { return layers.empty() ? 0 : layers[0].length(); }   // positions fed so far
  };
  Cache make_cache() const;
  // Inference only (no tape, no dropout, whatever the training flag): tokens_step (B, S) int64 are the
  // next S tokens, at positions cache.length() .. cache.length() + S - 1 (pos_emb rows), -> logits
  // (B, S, vocab_size), equal to forward()'s at those positions of the whole sequence fed so far.
  // Prime with the prompt in one call, then one call per new token. Throws std::invalid_argument when
  // the positions would pass block_size or the batch size / dtype differs from the cache's first use.
  Var forward_step(const Tensor& tokens_step, Cache& cache);

  const TinyLMConfig& config() const { return config_; }

  std::shared_ptr<Embedding> tok_emb, pos_emb;
  std::shared_ptr<ModuleList> layers;
  std::shared_ptr<LayerNorm> ln_f;
  std::shared_ptr<Linear> head;

 private:
  TinyLMConfig config_;
};

}  // namespace tg::tiny_lm
