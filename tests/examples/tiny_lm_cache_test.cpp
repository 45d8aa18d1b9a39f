// TinyLM's cached incremental decoding: forward_step logits equal the full forward's at every position
// (float64 and float32, tied and untied head, batch of 2), its misuse throws, and sample_tokens with
// the cache draws the same tokens as the uncached recomputation, also past block_size.
#include "examples/tiny_lm/generate.h"
#include "support/test_support.h"
#include "tapegrad/framework/ops/shape.h"

using Catch::Matchers::Contains;
using namespace tg;
using namespace tg::test;
using namespace tg::tiny_lm;

namespace {

TinyLMConfig cache_config(bool tie) {
  return {.vocab_size = 13, .block_size = 9, .n_layer = 2, .n_head = 2, .n_embd = 8, .dim_feedforward = 12,
          .dropout = 0.2, .activation = Activation::gelu, .layer_norm_eps = 1e-5, .norm_first = true,
          .head_bias = true, .tie_weights = tie};
}

// (rows, T) int64 tokens, a fixed pattern different in each row.
Tensor token_grid(int64_t rows, int64_t T, int64_t vocab) {
  Tensor t({rows, T}, DType::Int64);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < T; ++i) t.data<int64_t>()[r * T + i] = (7 * i + 3 * r + i * i) % vocab;
  return t;
}

}  // namespace

TEST_CASE("TinyLM::forward_step: a primed prompt then single steps equal the full forward at each position",
          "[tiny_lm][cache]") {
  for (DType dt : {DType::Float64, DType::Float32})
    for (bool tie : {false, true}) {
      Generator gen(21);
      TinyLM model(cache_config(tie), gen, dt);
      model.init_weights(Generator(22));
      model.eval();
      const int64_t block = model.config().block_size;
      Tensor tokens = token_grid(2, block, model.config().vocab_size);
      Var full = model.forward(tokens);   // (2, block, V)
      const double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
      TinyLM::Cache cache = model.make_cache();
      int64_t t = 0;
      for (int64_t len : {3, 1, 2, 1, 1, 1}) {   // positions 0..8: prompt of 3, then steps
        model.train();   // the cached path never applies dropout, whatever the training flag
        Var y = model.forward_step(narrow(Var(tokens), 1, t, len).value(), cache);
        model.eval();
        REQUIRE(!y.requires_grad());
        REQUIRE(y.shape() == Shape{2, len, 13});
        REQUIRE(cache.length() == t + len);
        REQUIRE(max_abs_diff(y.value(), narrow(full, 1, t, len).value()) < tol);
        t += len;
      }
      REQUIRE(t == block);
    }
}

TEST_CASE("TinyLM::forward_step refuses positions past block_size, bad tokens and a foreign cache",
          "[tiny_lm][cache][errors]") {
  Generator gen(23);
  TinyLM model(cache_config(false), gen, DType::Float64);
  TinyLM::Cache cache = model.make_cache();
  REQUIRE(cache.layers.size() == 2);
  REQUIRE(cache.length() == 0);
  model.forward_step(token_grid(1, 8, 13), cache);
  REQUIRE_THROWS_WITH(model.forward_step(token_grid(1, 2, 13), cache),
                      Contains("[TinyLM] positions 8..9 exceed block_size=9; got cache length=8, step length=2"));
  REQUIRE(cache.length() == 8);
  REQUIRE_THROWS_WITH(model.forward_step(Tensor::zeros({1, 1}), cache), Contains("tokens_step must be int64 (B, S)"));
  REQUIRE_THROWS_WITH(model.forward_step(Tensor({1, 0}, DType::Int64), cache), Contains("with S >= 1"));
  TinyLM::Cache empty;
  REQUIRE_THROWS_WITH(model.forward_step(token_grid(1, 1, 13), empty),
                      Contains("the cache must come from make_cache(); got 0 layer caches for n_layer=2"));
}

TEST_CASE("sample_tokens: the cached path draws the uncached path's tokens, within and past block_size",
          "[tiny_lm][cache]") {
  for (bool tie : {false, true}) {
    Generator gen(24);
    TinyLM model(cache_config(tie), gen, DType::Float64);
    // Larger weights than nanoGPT's 0.02 so that the distributions are far from uniform.
    Generator w(25);
    for (auto& [name, p] : model.named_parameters())
      if (p.dim() == 2) p.value().copy_(Tensor::normal(p.shape(), 0.0, 0.5, w, DType::Float64));
    model.eval();
    const std::vector<std::vector<int64_t>> prompts{{4}, {1, 2, 3, 4, 5}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}};
    for (const auto& prompt : prompts)       // the last prompt is already longer than block_size = 9
      for (int64_t top_k : {0, 4}) {
        Generator a(7), b(7);
        const auto cached = sample_tokens(model, prompt, 20, 1.0, top_k, a, true);
        const auto uncached = sample_tokens(model, prompt, 20, 1.0, top_k, b, false);
        REQUIRE(cached.size() == 20);
        REQUIRE(cached == uncached);
        Generator c(8);   // another seed draws another text: the comparison is not between constants
        REQUIRE(sample_tokens(model, prompt, 20, 1.0, top_k, c, true) != cached);
      }
  }
}
